/*
 * session - one SMTP conversation (RFC 5321 server side), as a state machine.
 *
 * Owns: reading CRLF-terminated command lines (and nothing else: a bare CR
 * or LF is refused, so SMTP smuggling cannot split a message), the command
 * table, the transaction (sender, recipients, message data with dot-
 * unstuffing and the Received: header), limits, timeouts, error counting,
 * replies with enhanced status codes, and the per-RCPT decision log line.
 * Must not: decide relaying itself (policy does) or write files (queue does).
 */
#ifndef RG_SESSION_H
#define RG_SESSION_H

#include <sys/socket.h>

#include <event2/util.h>

#include "config/config.h"
#include "net/net.h"

struct server;
struct session;

/* Take over an accepted socket; the session frees itself when it ends.
 * NULL (socket closed) when it cannot even start. */
struct session *session_start(struct server *srv, evutil_socket_t fd,
			      const struct sockaddr *sa, const char *listener,
			      enum listen_role role);
/* Refuse a connection with one reply line (e.g. too many connections). */
void session_refuse(evutil_socket_t fd, const char *line);
/* The server is stopping: end now with 421, or after the current message. */
void session_shutdown(struct session *s);
/* The grace period is over: 421 now, even in the middle of a message. */
void session_force_shutdown(struct session *s);
/* The server keeps live sessions in a doubly-linked list through this. */
struct session_link {
	struct session *prev, *next;
};
struct session_link *session_link(struct session *s);
const struct rg_ip *session_client_ip(const struct session *s);
/* Memory is short: send the message text this session holds to disk now. */
void session_spool_held(struct session *s);

#endif
