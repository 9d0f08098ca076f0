/*
 * hop_pool - the connection bookkeeping the SMTP and LMTP transports share:
 * destinations by route key, each with its count of jobs in flight, its
 * requests waiting for a slot (oldest first) and its idle connections
 * parked for the next job; and the connections closed but still waiting
 * for the QUIT reply, so that they can be freed at exit.
 *
 * Owns: those lists, the idle connections' expiry timers, and closing or
 * aborting every connection handed to it.
 * Must not: open connections, send mail, decide outcomes, or know what a
 * transport's job is (the transports do).
 */
#ifndef RG_HOP_POOL_H
#define RG_HOP_POOL_H

#include "qmgr/route.h"
#include "qmgr/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;
struct smtp_out;
struct hop_pool;

#define HOP_IDLE_SECONDS 2 /* Postfix's smtp_connection_cache_time_limit */

/* An idle connection and what the job that used it knew about it. */
struct hop_idle {
	struct smtp_out *o;
	struct hop_dest *dest;
	struct event *timer;
	char relay[320], tls[160];  /* "": not noted */
	struct hop_idle *next;
};

/* A destination; a transport may embed it first in a larger struct (see
 * hop_pool_new's dest_size). */
struct hop_dest {
	char key[ROUTE_HOST_MAX + 16];
	struct hop_pool *pool;
	unsigned active;                        /* jobs holding a slot */
	struct delivery *wait_head, *wait_tail; /* waiting for a slot (d->next) */
	struct hop_idle *idle;
	size_t n_idle;
	struct hop_dest *next;
};

struct hop_pool {
	struct event_base *base;
	size_t dest_size;           /* what hop_dest_get allocates */
	size_t idle_limit;          /* idle connections kept per destination */
	struct hop_dest *dests;
	struct smtp_out **quitting; /* closed, waiting for the QUIT reply */
	size_t n_quitting;
	bool stopping;              /* hop_pool_stop was called: park nothing */
};

/* A pool whose destinations are dest_size bytes (at least a hop_dest). */
struct hop_pool *hop_pool_new(struct event_base *base, size_t dest_size, size_t idle_limit);
/* Aborts every idle and quitting connection; frees the destinations. */
void hop_pool_free(struct hop_pool *p);
/* SIGTERM: idle connections are closed, waiting requests go back untried. */
void hop_pool_stop(struct hop_pool *p);

/* The destination for key, made (zeroed) on first use. */
struct hop_dest *hop_dest_get(struct hop_pool *p, const char *key);
/* Queue d behind the requests waiting for a slot of dest. */
void hop_wait(struct hop_dest *dest, struct delivery *d);
/* The oldest waiting request, holding a slot now, when dest has fewer than
 * limit jobs and the pool is not stopping; else NULL. */
struct delivery *hop_next(struct hop_dest *dest, uint64_t limit);
/* A job is over: its slot is free; o (or NULL) is parked when reusable
 * and there is room, else closed. relay and tls (or NULL) are kept with it. */
void hop_release(struct hop_dest *dest, struct smtp_out *o, const char *relay,
		 const char *tls);
/* Close o politely (QUIT); it is aborted at hop_pool_free if still open. */
void hop_close(struct hop_pool *p, struct smtp_out *o);

/* usable(arg, idle) - may a job use this reusable idle connection? */
typedef bool hop_usable_fn(void *arg, const struct hop_idle *ic);
/* An idle connection of dest that is reusable and usable (NULL: any),
 * copied into out; false when none is. Those passed over are closed. */
bool hop_take_idle(struct hop_dest *dest, hop_usable_fn *usable, void *arg,
		   struct hop_idle *out);

#endif
