/*
 * auth.c - the AUTH backends behind one interface (see auth.h).
 *
 * DESCRIPTION
 *	passwd-file: each check is a job on a small worker pool of its own
 *	(a slow hash must not hold up queue commits); a cancelled request is
 *	only marked, and its done callback frees it without calling back.
 *	dovecot: requests go straight to the Dovecot client on the loop.
 */
#include "auth/auth.h"
#include "auth/dovecot.h"
#include "auth/passwd.h"
#include "config/config.h"
#include "util/util.h"
#include "util/workers.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_THREADS 2
#define AUTH_QUEUE_MAX 64 /* checks waiting for a thread; beyond: 454, try later */
#define DOVECOT_TIMEOUT 10

struct auth {
	struct event_base *base;
	struct passwd_db *db;      /* passwd-file */
	struct workers *workers;   /* passwd-file, made on first use */
	struct dovecot_auth *dv;   /* dovecot */
};

struct auth_req {
	struct auth *a;
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

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
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

static void passwd_done(void *arg)
{
	struct auth_req *r = arg;
	if (!atomic_load(&r->cancelled))
		r->done(r->st, r->st == AUTH_OK ? r->canon : NULL, r->reason, r->arg);
	req_free(r);
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
	if (workers_pending(a->workers) >= AUTH_QUEUE_MAX) { /* a flood of AUTHs */
		req_free(r);
		return NULL;
	}
	workers_submit(a->workers, passwd_work, passwd_done, r);
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
	atomic_store(&r->cancelled, true); /* the worker owns it: passwd_done frees it */
}
