/*
 * bounce_queue - turn recipient outcomes into a queued DSN (RFC 3464).
 *
 * Owns: which recipients a report covers (bounced ones; with NOTIFY=SUCCESS,
 * delivered ones here and ones relayed to a next hop without DSN), honouring
 * NOTIFY=, RET=HDRS, ENVID= and ORCPT=; choosing the DSN's recipient (the
 * sender; postmaster for a failed bounce; nobody for a failed double bounce);
 * reading the original text; building the DSN (queue/bounce.h) and
 * committing it as a new message.
 * Must not: run on the event loop (it reads and fsyncs queue files).
 */
#ifndef RG_BOUNCE_QUEUE_H
#define RG_BOUNCE_QUEUE_H

#include <stdbool.h>
#include <time.h>

#include "address/address.h"
#include "config/config.h"
#include "queue/queue.h"

enum bounce_kind {
	BOUNCE_FAILURES,  /* recipients whose outcome is RCPT_BOUNCED */
	BOUNCE_SUCCESSES, /* RCPT_SENT recipients that asked for NOTIFY=SUCCESS */
	BOUNCE_DELAYS,    /* RCPT_DEFERRED recipients: a delay warning */
};

/* Worker thread. Commit the DSN of this kind for m to active/ and return it
 * in *out (NULL when none is due). False when a due DSN could not be queued
 * (the caller tries again later). */
bool bounce_queue_make(const struct config *cfg, const struct addr_domains *domains,
		       struct queue_msg *m, time_t now, enum bounce_kind kind,
		       struct queue_msg **out);

/* The sender of double bounces: "double-bounce@myhostname". */
/* An envelope for mail we make ourselves (a DSN, a TLS report): from sender
 * ("" for <>) to rcpt, resolved like any recipient, as if from localhost;
 * NULL when rcpt is not a usable address. The caller adds the text. */
struct queue_msg *bounce_queue_envelope(const struct config *cfg, const struct addr_domains *dom,
					const char *sender, const char *rcpt, time_t now);
void bounce_double_sender(const struct config *cfg, char *out, size_t outlen);

#endif
