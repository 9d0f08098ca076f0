/*
 * tlsmem_cmd - `relayguard tls-memory list|forget DOMAIN`: the operator's
 * view of the TLS downgrade memory (tlspol/tlsmem.h); and `relayguard
 * tls-report send --now` (TLS-RPT, tlspol/tlsrpt_send.h).
 *
 * Owns: the subcommand's arguments, asking a running server over its control
 * socket, and the fall-back to queue_directory/tls-memory when none runs.
 * Must not: change the file while a server holds the queue lock.
 */
#ifndef RG_TLSMEM_CMD_H
#define RG_TLSMEM_CMD_H

/* argv[0] is the subcommand (list, forget); returns the exit status. */
int tlsmem_main(int argc, char **argv);
/* argv[0] is "send", then --now; returns the exit status. */
int tlsreport_main(int argc, char **argv);

#endif
