/*
 * hop_pool.c - destinations, waiting requests and idle connections for the
 * SMTP and LMTP transports (see hop_pool.h).
 */
#include "qmgr/hop_pool.h"
#include "client/dialogue.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* hop_pool_new - see hop_pool.h. */
struct hop_pool *hop_pool_new(struct event_base *base, size_t dest_size, size_t idle_limit)
{
	struct hop_pool *p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->dest_size = dest_size < sizeof(struct hop_dest) ? sizeof(struct hop_dest) : dest_size;
	p->idle_limit = idle_limit;
	return p;
}

/* ---- closing connections politely, and still freeing them at exit ---- */

/* on_conn_freed - o got its QUIT reply (or gave up): unlist it. */
static void on_conn_freed(void *arg, struct smtp_out *o)
{
	struct hop_pool *p = arg;
	for (size_t i = 0; i < p->n_quitting; i++) {
		if (p->quitting[i] == o) {
			p->quitting[i] = p->quitting[--p->n_quitting];
			return;
		}
	}
}

/* hop_close - see hop_pool.h. */
void hop_close(struct hop_pool *p, struct smtp_out *o)
{
	if (o == NULL)
		return;
	p->quitting = xrealloc(p->quitting, (p->n_quitting + 1) * sizeof(*p->quitting));
	p->quitting[p->n_quitting++] = o;
	smtp_out_close_notify(o, on_conn_freed, p); /* may free (and unlist) at once */
}

/* ---- destinations and their idle connections ---- */

/* hop_dest_get - see hop_pool.h. */
struct hop_dest *hop_dest_get(struct hop_pool *p, const char *key)
{
	for (struct hop_dest *d = p->dests; d != NULL; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	struct hop_dest *d = xcalloc(1, p->dest_size);
	rg_strlcpy(d->key, key, sizeof(d->key));
	d->pool = p;
	d->next = p->dests;
	p->dests = d;
	return d;
}

/* idle_free - unlist ic; quit: close its connection (else the caller owns it). */
static void idle_free(struct hop_idle *ic, bool quit)
{
	struct hop_idle **pp = &ic->dest->idle;
	while (*pp != ic)
		pp = &(*pp)->next;
	*pp = ic->next;
	ic->dest->n_idle--;
	event_free(ic->timer);
	if (quit)
		hop_close(ic->dest->pool, ic->o);
	free(ic);
}

static void on_idle_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	idle_free(arg, true);
}

/* park - keep o for the next job to dest, if the pool has room. */
static void park(struct hop_dest *dest, struct smtp_out *o, const char *relay,
		 const char *tls)
{
	struct hop_pool *p = dest->pool;
	if (dest->n_idle >= p->idle_limit) {
		hop_close(p, o);
		return;
	}
	struct hop_idle *ic = xcalloc(1, sizeof(*ic));
	struct timeval tv = {HOP_IDLE_SECONDS, 0};
	ic->o = o;
	ic->dest = dest;
	rg_strlcpy(ic->relay, relay ? relay : "", sizeof(ic->relay));
	rg_strlcpy(ic->tls, tls ? tls : "", sizeof(ic->tls));
	ic->timer = evtimer_new(p->base, on_idle_expired, ic);
	evtimer_add(ic->timer, &tv);
	ic->next = dest->idle;
	dest->idle = ic;
	dest->n_idle++;
}

/* hop_release - see hop_pool.h. */
void hop_release(struct hop_dest *dest, struct smtp_out *o, const char *relay,
		 const char *tls)
{
	if (o != NULL && smtp_out_reusable(o) && !dest->pool->stopping)
		park(dest, o, relay, tls);
	else
		hop_close(dest->pool, o);
	dest->active--;
}

/* hop_take_idle - see hop_pool.h. */
bool hop_take_idle(struct hop_dest *dest, hop_usable_fn *usable, void *arg,
		   struct hop_idle *out)
{
	while (dest->idle != NULL) {
		struct hop_idle *ic = dest->idle;
		bool ok = smtp_out_reusable(ic->o) && (usable == NULL || usable(arg, ic));
		if (ok)
			*out = *ic;
		idle_free(ic, !ok);
		if (ok)
			return true;
	}
	return false;
}

/* ---- requests waiting for a slot ---- */

/* hop_wait - see hop_pool.h. */
void hop_wait(struct hop_dest *dest, struct delivery *d)
{
	d->next = NULL;
	if (dest->wait_tail)
		dest->wait_tail->next = d;
	else
		dest->wait_head = d;
	dest->wait_tail = d;
}

/* take_waiting - the oldest request waiting for a slot of dest, or NULL. */
static struct delivery *take_waiting(struct hop_dest *dest)
{
	struct delivery *d = dest->wait_head;
	if (d == NULL)
		return NULL;
	dest->wait_head = d->next;
	if (dest->wait_head == NULL)
		dest->wait_tail = NULL;
	d->next = NULL;
	return d;
}

/* hop_next - see hop_pool.h. */
struct delivery *hop_next(struct hop_dest *dest, uint64_t limit)
{
	if (dest->pool->stopping || dest->active >= limit || dest->wait_head == NULL)
		return NULL;
	dest->active++;
	return take_waiting(dest);
}

/* ---- stop and free ---- */

/* hop_pool_stop - see hop_pool.h. */
void hop_pool_stop(struct hop_pool *p)
{
	p->stopping = true;
	for (struct hop_dest *dest = p->dests; dest != NULL; dest = dest->next) {
		while (dest->idle != NULL)
			idle_free(dest->idle, true);
		struct delivery *d;
		while ((d = take_waiting(dest)) != NULL)
			d->done(d); /* untried: tried again after the next start */
	}
}

/* hop_pool_free - see hop_pool.h. */
void hop_pool_free(struct hop_pool *p)
{
	if (p == NULL)
		return;
	p->stopping = true;
	while (p->dests != NULL) {
		struct hop_dest *dest = p->dests;
		p->dests = dest->next;
		while (dest->idle != NULL) {
			smtp_out_abort(dest->idle->o);
			idle_free(dest->idle, false);
		}
		free(dest);
	}
	while (p->n_quitting > 0)
		smtp_out_abort(p->quitting[--p->n_quitting]);
	free(p->quitting);
	free(p);
}
