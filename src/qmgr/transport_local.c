/*
 * transport_local.c - the local transport: Maildir delivery on the delivery
 * pool, in batches (see delivery/local.c for the group commit of directory
 * syncs). At most LOCAL_BATCHES batches are in flight; requests arriving
 * meanwhile wait and form the next, larger batch.
 * At start one job first removes our orphaned Maildir tmp/ files; no batch
 * starts before it ends (a retry may reuse an orphan's name).
 */
#include "qmgr/transport_local.h"
#include "delivery/delivered.h"
#include "delivery/local.h"
#include "util/util.h"
#include "util/workers.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCAL_THREADS 2
#define LOCAL_BATCHES 2
#define LOCAL_BATCH_MAX 64

struct local_transport {
	struct transport t;          /* first: the interface */
	const struct config *cfg;
	struct workers *pool;
	struct delivery *wait_head, *wait_tail;
	size_t n_waiting;
	unsigned in_flight;
	bool stopping;
	bool cleaning;               /* the start-up tmp/ clean-up runs */
	time_t started;
	struct timespec started_at; /* the same, precisely: tmp/ files older are orphans */
};

struct local_batch {
	struct local_transport *lt;
	struct delivery *reqs[LOCAL_BATCH_MAX];
	size_t n;
};

static void dispatch(struct local_transport *lt);

static void batch_work(void *arg)
{
	struct local_batch *b = arg;
	local_deliver_batch(b->lt->cfg, b->reqs, b->n, b->lt->started);
}

static void batch_done(void *arg)
{
	struct local_batch *b = arg;
	struct local_transport *lt = b->lt;
	lt->in_flight--;
	for (size_t i = 0; i < b->n; i++)
		b->reqs[i]->done(b->reqs[i]);
	free(b);
	dispatch(lt);
}

/* dispatch - oldest requests first, up to LOCAL_BATCHES batches in flight. */
static void dispatch(struct local_transport *lt)
{
	while (!lt->cleaning && lt->wait_head != NULL && lt->in_flight < LOCAL_BATCHES) {
		struct local_batch *b = xcalloc(1, sizeof(*b));
		b->lt = lt;
		while (lt->wait_head != NULL && b->n < LOCAL_BATCH_MAX) {
			struct delivery *d = lt->wait_head;
			lt->wait_head = d->next;
			d->next = NULL;
			b->reqs[b->n++] = d;
			lt->n_waiting--;
		}
		if (lt->wait_head == NULL)
			lt->wait_tail = NULL;
		lt->in_flight++;
		workers_submit(lt->pool, batch_work, batch_done, b);
	}
}

static void local_deliver(struct transport *t, struct delivery *d)
{
	struct local_transport *lt = (struct local_transport *)t;
	d->next = NULL;
	if (lt->wait_tail)
		lt->wait_tail->next = d;
	else
		lt->wait_head = d;
	lt->wait_tail = d;
	lt->n_waiting++;
	dispatch(lt);
}

static bool local_idle(const struct transport *t)
{
	const struct local_transport *lt = (const struct local_transport *)t;
	return !lt->cleaning && lt->in_flight == 0 && lt->wait_head == NULL;
}

/* local_stop - requests not yet started are given back as untried: their
 * messages stay queued for the next start. */
static void local_stop(struct transport *t)
{
	struct local_transport *lt = (struct local_transport *)t;
	lt->stopping = true;
	while (lt->wait_head != NULL) {
		struct delivery *d = lt->wait_head;
		lt->wait_head = d->next;
		lt->n_waiting--;
		d->done(d);
	}
	lt->wait_tail = NULL;
}

static void local_free(struct transport *t)
{
	struct local_transport *lt = (struct local_transport *)t;
	workers_free(lt->pool);
	delivered_free();
	free(lt);
}

static void clean_work(void *arg)
{
	struct local_transport *lt = arg;
	local_clean_tmp(lt->cfg, &lt->started_at);
}

static void clean_done(void *arg)
{
	struct local_transport *lt = arg;
	lt->cleaning = false;
	if (!lt->stopping)
		dispatch(lt);
}

struct transport *transport_local_new(struct event_base *base, const struct config *cfg)
{
	struct local_transport *lt = xcalloc(1, sizeof(*lt));
	lt->t = (struct transport){"local", local_deliver, local_idle, local_stop, NULL, local_free};
	lt->cfg = cfg;
	lt->pool = workers_new(base, LOCAL_THREADS);
	clock_gettime(CLOCK_REALTIME, &lt->started_at);
	lt->started = lt->started_at.tv_sec;
	lt->cleaning = true;
	workers_submit(lt->pool, clean_work, clean_done, lt);
	return &lt->t;
}
