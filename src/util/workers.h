/*
 * workers - a small thread pool for the blocking work the event loop must not do.
 *
 * Owns: the threads that write and fsync queue files and Maildir messages,
 * and the hand-back of each finished job to the event loop thread.
 * Must not: touch libevent objects from a worker thread; a job's "done"
 * callback runs on the loop, and only it may talk to sessions.
 */
#ifndef RG_WORKERS_H
#define RG_WORKERS_H

#include <stddef.h>

struct event_base;
struct workers;

typedef void (*work_fn)(void *arg); /* on a worker thread */
typedef void (*done_fn)(void *arg); /* on the event loop, after work_fn */

struct workers *workers_new(struct event_base *base, unsigned nthreads);
void workers_submit(struct workers *w, work_fn work, done_fn done, void *arg);
/* workers_defer - called by a work_fn: its job is not finished when the
 * work_fn returns, but when workers_finish(token) is called later, from
 * any thread (its done callback then runs on the loop as usual). The
 * thread goes on with other jobs meanwhile. */
struct workers_token;
struct workers_token *workers_defer(void);
void workers_finish(struct workers_token *token);

/* Jobs submitted and not yet handed back. */
size_t workers_pending(const struct workers *w);
/* Finish every job (running its done callback), then stop the threads. */
void workers_free(struct workers *w);

#endif
