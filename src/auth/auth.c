/*
 * auth.c - the AUTH backends behind one interface (see auth.h).
 *
 * DESCRIPTION
 *	passwd-file: each check is a job on a small worker pool of its own
 *	(a slow hash must not hold up queue commits). Checks wait here, in one
 *	queue per client address (IPv4, IPv6 /64), and go to the threads in
 *	turn, one client after the other: a flood from a few addresses delays
 *	a real user by one check per busy address, not by the whole backlog.
 *	A client may hold at most its share (AUTH_QUEUE_MAX / clients waiting)
 *	of the waiting places; beyond it, and beyond AUTH_WAIT_MAX in all, 454.
 *	A cancelled request still waiting is dropped; one with a thread is only
 *	marked, and its done callback frees it without calling back.
 *	dovecot: requests go straight to the Dovecot client on the loop.
 */
#include "auth/auth.h"
#include "auth/dovecot.h"
#include "auth/passwd.h"
#include "config/config.h"
#include "net/net.h"
#include "util/util.h"
#include "util/workers.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_THREADS 2
#define AUTH_QUEUE_MAX 64 /* waiting places shared fairly between client addresses */
#define AUTH_WAIT_MAX (2 * AUTH_QUEUE_MAX) /* in all, whatever the shares */
#define DOVECOT_TIMEOUT 10

struct auth_req;

/* The checks one client address has waiting for a thread. */
struct client_queue {
	struct rg_ip key;
	unsigned waiting;
	struct auth_req *first, *last;
	struct client_queue *next; /* the next client's turn */
};

struct auth {
	struct event_base *base;
	struct passwd_db *db;      /* passwd-file */
	struct workers *workers;   /* passwd-file, made on first use */
	struct dovecot_auth *dv;   /* dovecot */
	struct client_queue *turn, *last_turn; /* clients with checks waiting, in turn */
	unsigned n_clients, n_waiting, n_running;
};

struct auth_req {
	struct auth *a;
	struct client_queue *cq;   /* while waiting for a thread */
	struct auth_req *next;     /* in cq */
	char *user, *pass;
	auth_done_fn *done;
	void *arg;
	atomic_bool cancelled;   /* set on the loop, read by the worker */
	struct dovecot_req *dr;
	/* results, written by the worker */
	enum auth_status st;
	char canon[256], reason[128];
};

struct auth *auth_new(const struct config *cfg, struct event_base *base, char *err,
		      size_t errlen)
{
	struct auth *a = xcalloc(1, sizeof(*a));
	a->base = base;
	if (cfg->smtpd_sasl_type == SASL_DOVECOT)
		a->dv = dovecot_auth_new(base, cfg->smtpd_sasl_path, DOVECOT_TIMEOUT, err, errlen);
	else
		a->db = passwd_db_load(cfg->smtpd_sasl_path, err, errlen);
	if (a->dv == NULL && a->db == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

static void req_free(struct auth_req *r);

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	while (a->turn) { /* checks nobody will wait for any more */
		struct client_queue *cq = a->turn;
		a->turn = cq->next;
		while (cq->first) {
			struct auth_req *r = cq->first;
			cq->first = r->next;
			req_free(r);
		}
		free(cq);
	}
	workers_free(a->workers); /* runs the done callbacks of cancelled requests */
	passwd_db_free(a->db);
	dovecot_auth_free(a->dv);
	free(a);
}

static void req_free(struct auth_req *r)
{
	explicit_bzero(r->pass, strlen(r->pass));
	free(r->pass);
	free(r->user);
	free(r);
}

static void passwd_work(void *arg)
{
	struct auth_req *r = arg;
	if (atomic_load(&r->cancelled)) /* the client left: spare the hash */
		return;
	r->st = passwd_db_verify(r->a->db, r->user, r->pass, r->canon, sizeof(r->canon),
				 r->reason, sizeof(r->reason));
	explicit_bzero(r->pass, strlen(r->pass));
}

static void dispatch(struct auth *a);

static void passwd_done(void *arg)
{
	struct auth_req *r = arg;
	struct auth *a = r->a;
	a->n_running--;
	if (!atomic_load(&r->cancelled))
		r->done(r->st, r->st == AUTH_OK ? r->canon : NULL, r->reason, r->arg);
	req_free(r);
	dispatch(a);
}

/* client_key - whose share a check takes: an IPv4 address or an IPv6 /64. */
static struct rg_ip client_key(const char *ip_text)
{
	struct rg_ip k;
	if (ip_text == NULL || !ip_parse(ip_text, &k))
		memset(&k, 0, sizeof(k));
	if (k.family == AF_INET6)
		memset(k.addr + 8, 0, 8);
	return k;
}

/* queue_of - KEY's queue, made and put last in turn if it has none. */
static struct client_queue *queue_of(struct auth *a, const struct rg_ip *key, bool make)
{
	for (struct client_queue *cq = a->turn; cq; cq = cq->next)
		if (ip_equal(&cq->key, key))
			return cq;
	if (!make)
		return NULL;
	struct client_queue *cq = xcalloc(1, sizeof(*cq));
	cq->key = *key;
	*(a->last_turn ? &a->last_turn->next : &a->turn) = cq;
	a->last_turn = cq;
	a->n_clients++;
	return cq;
}

/* unlink_turn - CQ leaves the turn order (the head, or anywhere for a cancel). */
static void unlink_turn(struct auth *a, struct client_queue *cq)
{
	struct client_queue **pp = &a->turn, *prev = NULL;
	while (*pp != cq) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = cq->next;
	if (a->last_turn == cq)
		a->last_turn = prev;
	cq->next = NULL;
}

/* take - the first check of CQ leaves its queue; an empty queue is dropped. */
static struct auth_req *take(struct auth *a, struct client_queue *cq, struct auth_req *r)
{
	struct auth_req **pp = &cq->first, *prev = NULL;
	while (*pp != r) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = r->next;
	if (cq->last == r)
		cq->last = prev;
	r->next = NULL;
	r->cq = NULL;
	cq->waiting--;
	a->n_waiting--;
	if (cq->waiting == 0) {
		unlink_turn(a, cq);
		a->n_clients--;
		free(cq);
	}
	return r;
}

/* dispatch - fill the threads, one check per client in turn. */
static void dispatch(struct auth *a)
{
	while (a->turn != NULL && a->n_running < AUTH_THREADS) {
		struct client_queue *cq = a->turn;
		bool more = cq->waiting > 1;
		struct auth_req *r = take(a, cq, cq->first); /* frees CQ if it was the last */
		if (more) { /* its next check waits for the other clients' turns */
			unlink_turn(a, cq);
			*(a->last_turn ? &a->last_turn->next : &a->turn) = cq;
			a->last_turn = cq;
		}
		a->n_running++;
		workers_submit(a->workers, passwd_work, passwd_done, r);
	}
}

/* enqueue - R waits for a thread in its client's queue; false when that client
 * has its share of the waiting places already, or all are taken. */
static bool enqueue(struct auth *a, struct auth_req *r, const char *ip_text)
{
	struct rg_ip key = client_key(ip_text);
	struct client_queue *cq = queue_of(a, &key, false);
	unsigned clients = a->n_clients + (cq == NULL);
	unsigned share = AUTH_QUEUE_MAX / clients ? AUTH_QUEUE_MAX / clients : 1;
	if (a->n_waiting >= AUTH_WAIT_MAX || (cq != NULL && cq->waiting >= share))
		return false;
	cq = cq ? cq : queue_of(a, &key, true);
	r->cq = cq;
	*(cq->last ? &cq->last->next : &cq->first) = r;
	cq->last = r;
	cq->waiting++;
	a->n_waiting++;
	return true;
}

static void dovecot_done(enum auth_status st, const char *user, const char *reason, void *arg)
{
	struct auth_req *r = arg;
	r->dr = NULL;
	r->done(st, user, reason, r->arg);
	req_free(r);
}

struct auth_req *auth_verify(struct auth *a, const char *user, const char *pass,
			     const struct auth_info *info, auth_done_fn *done, void *arg)
{
	struct auth_req *r = xcalloc(1, sizeof(*r));
	r->a = a;
	r->user = xstrdup(user);
	r->pass = xstrdup(pass);
	r->done = done;
	r->arg = arg;
	if (a->dv != NULL) {
		struct dovecot_req_info di = {"smtp", info->local_ip, info->remote_ip, info->secured};
		r->dr = dovecot_auth_verify(a->dv, user, pass, &di, dovecot_done, r);
		explicit_bzero(r->pass, strlen(r->pass));
		if (r->dr == NULL) { /* could not even start */
			req_free(r);
			return NULL;
		}
		return r;
	}
	if (a->workers == NULL)
		a->workers = workers_new(a->base, AUTH_THREADS);
	if (!enqueue(a, r, info->remote_ip)) { /* a flood of AUTHs from this client */
		req_free(r);
		return NULL;
	}
	dispatch(a);
	return r;
}

void auth_cancel(struct auth_req *r)
{
	if (r == NULL)
		return;
	if (r->a->dv != NULL) {
		if (r->dr != NULL)
			dovecot_auth_cancel(r->dr);
		req_free(r);
		return;
	}
	if (r->cq != NULL) { /* still waiting: no thread will see it */
		req_free(take(r->a, r->cq, r));
		return;
	}
	atomic_store(&r->cancelled, true); /* the worker owns it: passwd_done frees it */
}
