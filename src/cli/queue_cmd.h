/*
 * queue_cmd - `relayguard queue ...`: the operator's view of the queue.
 *
 * Owns: the queue subcommands' arguments, talking to a running server over
 * its control socket, and the fall-back to the queue files when none runs.
 * Must not: change queue files while a server holds the queue lock.
 */
#ifndef RG_QUEUE_CMD_H
#define RG_QUEUE_CMD_H

/* argv[0] is the subcommand (list, show, ...); returns the exit status. */
int queue_main(int argc, char **argv);
/* relayguard lockout list|stats|clear IP: argv[0] is the subcommand. */
int lockout_main(int argc, char **argv);

#endif
