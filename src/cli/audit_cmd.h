/*
 * audit_cmd - relayguard audit and relayguard explain (the command lines).
 *
 * Owns: their options, loading the configuration (relayguard's or Postfix's),
 * printing, and the exit statuses (audit: 0 closed, 1 open, 3 suspicious,
 * 2 undecided; both: 64 usage, 78 unreadable configuration).
 * Must not: decide anything itself; src/audit/ does.
 */
#ifndef RG_AUDIT_CMD_H
#define RG_AUDIT_CMD_H

int audit_main(int argc, char **argv);
int explain_main(int argc, char **argv);

/*
 * audit_selftest - serve's audit of its own configuration, before it binds:
 * every trick a stranger could relay with is logged (fatal "open-relay"
 * lines, or "open-relay-risk" warnings with relay_selftest = warn). Returns
 * 0 to go on, 78 when the server must not start (relay_selftest = enforce).
 */
struct config;
int audit_selftest(const struct config *cfg);

/*
 * audit_selftest_reload - the same verdict for a SIGHUP reload's new file
 * (server_set_selftest): the lines are errors, not fatal, and say that the
 * running configuration stays; the server keeps running.
 */
int audit_selftest_reload(const struct config *cfg);

/*
 * audit_selftest_check - the same verdict for `relayguard config`: 78 when
 * serve would refuse the file, with serve's lines on standard error.
 */
int audit_selftest_check(const struct config *cfg);

#endif
