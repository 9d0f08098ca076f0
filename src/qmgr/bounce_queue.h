/*
 * bounce_queue - turn a message's failed recipients into a queued DSN.
 *
 * Owns: choosing the DSN's recipient (the sender; postmaster for a failed
 * bounce; nobody for a failed double bounce), reading the original text,
 * building the DSN (queue/bounce.h) and committing it as a new message.
 * Must not: run on the event loop (it reads and fsyncs queue files).
 */
#ifndef RG_BOUNCE_QUEUE_H
#define RG_BOUNCE_QUEUE_H

#include <stdbool.h>
#include <time.h>

#include "address/address.h"
#include "config/config.h"
#include "queue/queue.h"

/* Worker thread. For the recipients of m whose outcome is RCPT_BOUNCED:
 * commit a DSN to active/ and return it in *out (NULL when none is due).
 * False when a due DSN could not be queued (the caller tries again later). */
bool bounce_queue_make(const struct config *cfg, const struct addr_domains *domains,
		       struct queue_msg *m, time_t now, struct queue_msg **out);

/* The sender of double bounces: "double-bounce@myhostname". */
void bounce_double_sender(const struct config *cfg, char *out, size_t outlen);

#endif
