/*
 * local - deliver a committed message to its local recipients (the MDA step).
 *
 * Owns: delivering the recipients of delivery requests to their Maildirs
 * in batches and setting each one's outcome (sent, or deferred with the
 * reason).
 * Must not: run on the event loop (it is a worker job), or touch the queue
 * file beyond reading the text: the queue manager records the outcomes.
 */
#ifndef RG_LOCAL_H
#define RG_LOCAL_H

#include <stdbool.h>
#include <time.h>

#include "config/config.h"
#include "qmgr/transport.h"

/* Worker thread: deliver the recipients of reqs[0..n), each request's
 * mailboxes by its own configuration (reqs[i]->cfg, its queue pass's
 * generation; NULL: cfg), directories by cfg. A message whose file
 * is damaged is moved to corrupt/ and marked set_aside. started: when this
 * process started; a message that arrived before it, or was tried before,
 * is first looked up in the Maildir (delivered by an earlier run?). */
void local_deliver_batch(const struct config *cfg, struct delivery **reqs, size_t n,
			 time_t started);

/* Worker thread, at commit (delivery at acceptance): write every recipient
 * of m (all routed to local delivery; the text in m->body) to its Maildir
 * before the client hears 250: each copy written and fsync'd under its
 * queued name, linked (or renamed) into new/, then each new/ synced once.
 * done(arg, ok, err) runs when that is over: on success each recipient's
 * last_reply holds its mailbox file; on failure nothing was promised, err
 * says why, the copies written are removed again, and the caller queues m
 * instead (or refuses it). done runs on this thread, or on the thread
 * whose directory sync covered the last copy (dirsync_then): this thread
 * does not wait for another's sync. */
typedef void (*local_done_fn)(void *arg, bool ok, const char *err);
void local_deliver_then(const struct config *cfg, struct queue_msg *m, local_done_fn done,
			void *arg);

/* Worker thread, at start: remove our own orphaned Maildir tmp/ files
 * written before started (a crash mid-write leaves them); logs the count. */
void local_clean_tmp(const struct config *cfg, const struct timespec *started);

#endif
