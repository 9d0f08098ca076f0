/*
 * tlsrpt_send - sending TLS-RPT reports (RFC 8460) through our own queue.
 *
 * Owns: the daily timer and `relayguard tls-report send --now`; per policy
 * domain with sessions since the last report: the _smtp._tls TXT record's
 * rua=mailto:, the report (JSON built on the loop; gzip, the message and the
 * queue commit on a worker thread), and handing the committed message to
 * the queue manager. Reports of domains without a mailto: rua are dropped
 * (logged).
 * Must not: deliver the report itself (the queue does, like any mail).
 */
#ifndef RG_TLSRPT_SEND_H
#define RG_TLSRPT_SEND_H

#include <stddef.h>

#include "address/address.h"
#include "config/config.h"
#include "queue/queue.h"
#include "tlspol/tlsrpt.h"

#define TLSRPT_INTERVAL (24 * 3600) /* RFC 8460 4.1: one report a day */

struct event_base;
struct dns;
struct tlsrpt_sender;

/* Hand a committed message (active/) to the queue manager (it takes m). */
typedef void (*tlsrpt_submit_fn)(void *arg, struct queue_msg *m);

struct tlsrpt_sender *tlsrpt_sender_new(struct event_base *base, struct dns *dns,
					const struct config *cfg, struct tlsrpt *counts);
/* Where reports go: without this, reports are not sent (the counts stay). */
void tlsrpt_sender_set_queue(struct tlsrpt_sender *s, const struct addr_domains *domains,
			     tlsrpt_submit_fn submit, void *arg);
/* Report now every domain with sessions; returns how many reports are on their way. */
size_t tlsrpt_send_now(struct tlsrpt_sender *s);
/* Reports in flight finish (their commits); then free. NULL is fine. */
void tlsrpt_sender_free(struct tlsrpt_sender *s);

#endif
