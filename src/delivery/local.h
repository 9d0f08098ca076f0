/*
 * local - deliver a committed message to its local recipients (the MDA step).
 *
 * Owns: walking a queue message's recipients, delivering each local one to
 * its Maildir, logging each outcome, and finishing the queue file (removed
 * when nothing is left, moved to deferred/ while non-local recipients wait
 * for outbound delivery, which a later release adds).
 * Must not: run on the event loop; it is a worker job.
 */
#ifndef RG_LOCAL_H
#define RG_LOCAL_H

#include <stdbool.h>

#include "config/config.h"
#include "queue/queue.h"

/* Worker thread: deliver msgs[0..n). retry[i] is set when message i still has
 * local recipients that failed (it stays in active/ and is tried again). */
void local_deliver_batch(const struct config *cfg, struct queue_msg **msgs, size_t n,
			 bool *retry);

#endif
