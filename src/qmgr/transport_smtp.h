/*
 * transport_smtp - outbound delivery over SMTP behind the transport
 * interface.
 *
 * Owns: per-destination state (concurrency up to
 * default_destination_concurrency_limit, requests waiting for a slot, a
 * destination that failed as a whole being suspended for
 * minimal_backoff_time so it is not hammered once per message), resolving a
 * route to addresses (dns/route), refusing to deliver to ourselves (5.4.6),
 * trying the next MX address on connection-level failures, the TLS policy
 * and relayhost credentials of each next hop, reusing an idle connection to
 * the same destination, and turning replies into recipient outcomes. And
 * applying issue 14's TLS that cannot be stripped to each connection: the
 * downgrade memory (tlspol/tlsmem; its raises shared with other hosts
 * through a hook the owner sets), DANE (secure MX and TLSA -> level and
 * TLSA records), MTA-STS (tlspol/sts: MX filter, verified TLS), and counting
 * sessions for TLS-RPT (tlspol/tlsrpt).
 * Must not: decide retries or bounces, or touch queue files (the queue
 * manager does); speak SMTP itself (client/dialogue does).
 */
#ifndef RG_TRANSPORT_SMTP_H
#define RG_TRANSPORT_SMTP_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "net/net.h"
#include "address/address.h"
#include "qmgr/transport.h"
#include "queue/queue.h"
#include "util/util.h"

struct event_base;
struct dns;

struct smtp_transport_env {
	struct event_base *base;
	const struct config *cfg;
	struct dns *dns;
	const struct rg_ip *local_ips; /* our own addresses: a "*" listener's */
	size_t n_local_ips;
};

/* NULL with err when the TLS client context cannot be made, or the TLS
 * downgrade memory (queue_directory/tls-memory) cannot be read. */
struct transport *transport_smtp_new(const struct smtp_transport_env *env, char *err,
				     size_t errlen);

/* The operator's view of the TLS downgrade memory (control socket): forget
 * NULL lists it into out, else forgets that domain. False with the reason in
 * out (memory off, domain not remembered). t is transport_smtp_new's. */
bool transport_smtp_tls_memory(struct transport *t, const char *forget, struct strbuf *out);

/* Sharing the downgrade memory between hosts (shared_state; server.c
 * connects it to the abuse module's Redis connection). RAISED(arg, domain,
 * level) runs when a delivery here raised domain's memory to "tls" or
 * "verified" (domain valid, lower case). transport_smtp_tls_heard takes a
 * raise another host shared, TEXT "DOMAIN LEVEL" as received (distrusted):
 * it raises the memory here, never lowers it, and ignores anything
 * malformed. Memory off or t not an SMTP transport: nothing. */
typedef void transport_smtp_tls_raised_fn(void *arg, const char *domain, const char *level);
void transport_smtp_set_tls_share(struct transport *t, transport_smtp_tls_raised_fn *raised,
				  void *arg);
void transport_smtp_tls_heard(struct transport *t, const char *text);

/* TLS-RPT reports go through the queue: domains classify the rua address,
 * submit hands the committed report to the queue manager. Not an SMTP
 * transport (t NULL or another): nothing. */
void transport_smtp_set_queue(struct transport *t, const struct addr_domains *domains,
			      void (*submit)(void *arg, struct queue_msg *m), void *arg);
/* `relayguard tls-report send --now`: false with the reason (reporting off). */
bool transport_smtp_tls_report_send(struct transport *t, struct strbuf *out);

#endif
