/*
 * dkim_cmd - `relayguard dkim keygen|check|sign|verify`: the operator's DKIM
 * tools (msgauth/dkim.h).
 *
 * Owns: the subcommands' arguments, the key file (mode 0600, never
 * overwritten), the TXT record text to publish, and the DNS look-ups of
 * check and verify (c-ares on an event loop of their own).
 * Must not: touch a running server's state or its configuration.
 */
#ifndef RG_DKIM_CMD_H
#define RG_DKIM_CMD_H

/* argv[0] is the subcommand; returns the exit status (0 ok, 1 failed/mismatch, 64 usage). */
int dkim_main(int argc, char **argv);

#endif
