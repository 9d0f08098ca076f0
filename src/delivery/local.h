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

/* Worker thread. Returns true when local recipients are still pending (retry). */
bool local_deliver(const struct config *cfg, struct queue_msg *m);

#endif
