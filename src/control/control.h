/*
 * control - the operator's control socket: <queue_directory>/control.
 *
 * Owns: the unix stream socket (mode 0660, the owner's group; the queue
 * directory gets g+x so that group can reach it), the request protocol,
 * request validation (queue ids are checked before any callback runs) and
 * the log line of every command with the caller's uid (SO_PEERCRED).
 * Must not: know how the queue works; every command goes to control_ops,
 * which the queue manager implements. Runs on the event loop: never blocks.
 *
 * PROTOCOL
 *	One request line (at most CONTROL_REQUEST_MAX bytes, LF or CRLF):
 *	    list | list-json | status | flush [ID] | delete ID|--all | hold ID | release ID
 *	    tls-memory-list | tls-memory-forget DOMAIN | tls-report-send
 *	    lockout-list | lockout-clear IP | abuse-stats   (control_set_abuse)
 *	    release-login LOGIN | delete-login LOGIN        (the same)
 *	The reply is text lines; the last one is "ok" or "error REASON", then
 *	the server closes the connection. A client that sends nothing for
 *	CONTROL_TIMEOUT_SECONDS is dropped.
 */
#ifndef RG_CONTROL_H
#define RG_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

#define CONTROL_SOCKET_NAME "control"
#define CONTROL_REQUEST_MAX 4096
#define CONTROL_TIMEOUT_SECONDS 10
#define CONTROL_MAX_CLIENTS 32

struct event_base;
struct control;

/* Each returns true on success and appends human-readable text (JSON for
 * list with json) to out; on failure, out holds the reason. id is a valid
 * queue id, or NULL for "all" (flush, delete). Called on the event loop. */
struct control_ops {
	bool (*list)(void *arg, bool json, struct strbuf *out);
	bool (*flush)(void *arg, const char *id, struct strbuf *out);
	bool (*delete)(void *arg, const char *id, struct strbuf *out);
	bool (*hold)(void *arg, const char *id, struct strbuf *out);
	bool (*release)(void *arg, const char *id, struct strbuf *out);
	/* delivery's state: the active set, the backlog, in-flow control */
	bool (*status)(void *arg, struct strbuf *out);
	/* The TLS downgrade memory: forget NULL lists it, else forgets that
	 * (valid) domain. NULL: the commands say it is not available. */
	bool (*tls_memory)(void *arg, const char *forget, struct strbuf *out);
	/* TLS-RPT: send the reports now. NULL: not available. */
	bool (*tls_report_send)(void *arg, struct strbuf *out);
};

/* The abuse-control commands (abuse/abuse.c implements them): the AUTH
 * lock-outs and suspended logins in force, lifting a lock-out (IP is a valid
 * address), the counters, and a suspended login's held mail. */
struct control_abuse_ops {
	bool (*lockout_list)(void *arg, struct strbuf *out);
	bool (*lockout_clear)(void *arg, const char *ip, struct strbuf *out);
	bool (*stats)(void *arg, struct strbuf *out);
	/* the held mail of a login (suspended as hijacked): released or deleted,
	 * and the login's suspension lifted */
	bool (*by_login)(void *arg, const char *login, bool release, struct strbuf *out);
};

/* Listen on queue_dir/control (queue_dir is held open by basedir; a stale
 * socket left by a killed server is replaced). Call it as the user that
 * will own the socket: after privileges are dropped. NULL with err. */
struct control *control_new(struct event_base *base, const char *queue_dir,
			    const struct control_ops *ops, void *arg, char *err, size_t errlen);
/* Register the abuse-control commands (without them they answer an error). */
void control_set_abuse(struct control *c, const struct control_abuse_ops *ops, void *arg);
/* Close every client, stop listening and remove the socket file. */
void control_free(struct control *c);

#endif
