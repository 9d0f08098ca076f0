/*
 * spf_cmd - `relayguard spf check`: one SPF evaluation through the real DNS
 * (c-ares), printed with its Received-SPF field; for operators checking a
 * domain's record and for the end-to-end tests.
 *
 * Owns: the subcommand's arguments and its event loop.
 * Must not: send mail or change any state.
 */
#ifndef RG_SPF_CMD_H
#define RG_SPF_CMD_H

/* argv[0] is the subcommand ("check"); returns the exit status. */
int spf_main(int argc, char **argv);

#endif
