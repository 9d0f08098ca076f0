/*
 * events - the mail server's metrics, one function per thing that happens.
 *
 * Owns: the names, help texts, label names and allowed label values of the
 * metrics serve exports (metrics_listen), so the call sites in the session,
 * the queue manager and the TLS code are one line each and a name cannot be
 * spelt two ways. Every label value is one of a fixed set here (or a
 * restriction name, which comes from the configuration): nothing a client
 * says becomes a label.
 * Must not: decide anything, or do I/O.
 */
#ifndef RG_METRICS_EVENTS_H
#define RG_METRICS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

/* Make every family (so a scrape shows them at 0 before anything happens). */
void mev_init(void);
/* Forget them all (the end of serve; tests): later events count nowhere. */
void mev_reset(void);

void mev_connection(void);                       /* a client connected */
void mev_connection_refused(const char *why);     /* "limit", "rate", "lockout", "shutdown" */
void mev_session_open(int delta);                 /* +1 / -1: sessions open now */
void mev_command(const char *verb);               /* an SMTP command, by verb */
/* A RCPT decision: RESULT "accept", "reject", "defer"; RESTRICTION the one that decided
 * ("" when none did: a syntax error or a limit). */
void mev_rcpt(const char *result, const char *restriction);
/* A message answered at the end of DATA; BYTES and SECONDS (the final dot to
 * the 250) count only when it was accepted. */
void mev_message(bool accepted, size_t bytes, double seconds_to_reply);
void mev_auth(bool ok);
void mev_lockout(void);
void mev_rate_limited(const char *limit);         /* the parameter, e.g. smtpd_client_message_rate_limit */
void mev_hijack(const char *what);                /* "suspended", "held", "refused" */
void mev_shared_state_failure(void);              /* Redis slow, down or refusing */
void mev_tls(const char *version);                /* a handshake done: "TLSv1.3" ... */
/* A delivery attempt's outcome per recipient: "delivered", "deferred", "bounced";
 * KIND the transport ("local", "smtp", "lmtp", "error", "discard"); SECONDS from arrival. */
void mev_delivery(const char *status, const char *kind, double seconds);

/* Queue sizes by state, asked of FN(ARG, counts) at each scrape: counts[] in
 * the order "incoming", "active", "deferred", "hold". */
typedef void mev_queue_fn(void *arg, unsigned long counts[4]);
void mev_queue_source(mev_queue_fn *fn, void *arg);

#endif
