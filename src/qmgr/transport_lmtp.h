/*
 * transport_lmtp - delivery to a mailbox server (Dovecot) over LMTP
 * (RFC 2033) behind the transport interface: mailbox_transport and
 * virtual_transport = lmtp:unix:/path or lmtp:inet:IP:port.
 *
 * Owns: per-destination limits (at most lmtp_destination_concurrency_limit
 * connections, requests waiting for one, up to lmtp_connection_cache_limit
 * idle connections kept for reuse for a few seconds), reading the message
 * text on a worker, and turning each recipient's own reply after the data
 * into its outcome (2xx sent, 4xx deferred, 5xx bounced). A server that is
 * down, refuses the connection or times out defers every recipient.
 * Must not: decide retries or bounces, or touch queue files (the queue
 * manager does); speak the protocol itself (client/dialogue does).
 */
#ifndef RG_TRANSPORT_LMTP_H
#define RG_TRANSPORT_LMTP_H

#include "config/config.h"
#include "qmgr/transport.h"

#include <stdbool.h>
#include <stddef.h>

struct event_base;

struct transport *transport_lmtp_new(struct event_base *base, const struct config *cfg);

/* Pure, for tests: the address sent in RCPT TO for local@domain, the local
 * part quoted when it is not a dot-atom (RFC 5321 4.1.2). False when it
 * does not fit in out or holds a byte that cannot be sent. */
bool lmtp_rcpt_address(const char *local, const char *domain, char *out, size_t outlen);

#endif
