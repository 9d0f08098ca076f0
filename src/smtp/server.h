/*
 * server - listeners, the set of live sessions, and the hand-off to the queue.
 *
 * Owns: binding the smtpd_listen sockets, accepting connections (pausing
 * when accept() fails), the per-client (IPv4 address, IPv6 /64) and overall
 * connection limits, the cached free space of the queue file system, the
 * list of sessions (for SIGTERM), the commit and spool worker pools, and the
 * hand-off of each committed message to the queue manager (qmgr/), which it
 * starts and stops with the resolver and the control socket; and the
 * wiring between modules that must not know each other (the SMTP
 * transport's TLS downgrade memory <-> abuse's shared_state connection);
 * SIGHUP reloads (read and self-tested on a worker, then handed to reload.c's
 * confset) and the sd_notify states (READY, RELOADING, STOPPING).
 * Must not: speak SMTP (the session does), make policy decisions, or decide
 * anything about delivery (the queue manager does).
 */
#ifndef RG_SERVER_H
#define RG_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "address/address.h"
#include "config/config.h"
#include "queue/queue.h"

struct event_base;
struct dns;
struct tls_server;
struct auth;
struct lockout;
struct abuse;
struct session;
struct server;

struct server *server_new(const struct config *cfg, char *err, size_t errlen);
/* Bind every listener (before privileges are dropped). */
bool server_bind(struct server *srv, char *err, size_t errlen);
/* The relay self-test (audit_selftest) a SIGHUP reload runs on the new
 * configuration: nonzero refuses it, as at start. NULL: none. */
void server_set_selftest(struct server *srv, int (*selftest)(const struct config *cfg));
/* Recover the queue, start accepting, run until SIGTERM/SIGINT; returns exit
 * status. READY=1 goes to systemd (NOTIFY_SOCKET) once the listeners accept;
 * SIGHUP re-reads the configuration file (new sessions get it; see reload.h). */
int server_run(struct server *srv);
void server_free(struct server *srv);

/* For sessions: the configuration a session starting now uses (the current
 * one after SIGHUP reloads); a session reads it once, at its start. */
const struct config *server_config(const struct server *srv);
const struct addr_domains *server_domains(const struct server *srv);
struct event_base *server_base(const struct server *srv);
/* TLS, AUTH and the AUTH lock-out table (tls and auth may be NULL: not configured). */
struct tls_server *server_tls(const struct server *srv);
struct auth *server_auth(const struct server *srv);
struct lockout *server_lockout(const struct server *srv);
/* Rate limits and lock-out exceptions (abuse/abuse.h). */
struct abuse *server_abuse(const struct server *srv);
/* The resolver for ip's name, or NULL when its name is not looked up. */
struct dns *server_dns_for(const struct server *srv, const struct rg_ip *ip);
void server_session_closed(struct server *srv, struct session *s);
/* The worker pool of end-of-data stages (CPU work: never blocked behind the
 * fsyncs of commits, which have their own threads). */
struct workers *server_workers(const struct server *srv);
/* Commit m to the queue on a worker; done(arg, ok) runs on the loop. After a
 * successful commit the server owns m and delivers it. With a spool (the
 * text so far already written), m->body holds only the rest; the spool is
 * consumed either way. */
void server_commit(struct server *srv, struct queue_msg *m, struct queue_spool *sp,
		   void (*done)(void *arg, bool ok, const char *err), void *arg);
/* Append data (taken; the strbuf is left empty) to a spool on a worker. At
 * most one write per spool at a time; done(arg, ok, err) runs on the loop. */
void server_spool_write(struct server *srv, struct queue_spool *sp, struct strbuf *data,
			void (*done)(void *arg, bool ok, const char *err), void *arg);
/* Close and remove a spool that will not be committed (on a worker). */
void server_spool_abort(struct server *srv, struct queue_spool *sp);

/* smtpd_connection_limit: configured, or (0) derived from RLIMIT_NOFILE. */
size_t server_connection_limit_for(uint64_t configured, uint64_t nofile);
/* The free bytes the queue keeps: queue_minfree, at least 1.5 x message_size_limit. */
uint64_t server_queue_minfree(const struct config *cfg);
/* Room for a message of size bytes (SIZE=, or 0) above server_queue_minfree?
 * Reads a figure a timer refreshes every second: no I/O here. */
bool server_queue_space_ok(const struct server *srv, uint64_t size);
/* Message text held in memory beyond which sessions spool early. */
size_t server_data_pressure_mark(const struct server *srv);
/* Memory is short: every session in DATA sends the text it holds to disk. */
void server_data_pressure(struct server *srv);

#endif
