/*
 * transport_smtp.c - outbound SMTP delivery (see transport_smtp.h).
 *
 * One job per delivery request:
 *
 *   deliver ─▶ wait for a slot of the destination ─▶ [worker] read the text
 *           ─▶ an idle connection to the destination, or: DNS route ─▶
 *              candidates (host, address), minus ourselves ─▶ open the next
 *              one until a session is ready ─▶ send ─▶ outcomes
 *           ─▶ the connection is parked for the next job to the destination
 *              (HOP_IDLE_SECONDS) or closed ─▶ done.
 *
 * A destination whose every address failed at the connection level is
 * suspended for minimal_backoff_time: requests for it are deferred at once
 * with the same reason instead of connecting again.
 */
#include "qmgr/transport_smtp.h"
#include "client/dialogue.h"
#include "client/smtpc.h"
#include "dns/answer.h"
#include "dns/dns.h"
#include "qmgr/hop_pool.h"
#include "tlspol/sts.h"
#include "tlspol/tlsmem.h"
#include "tlspol/tlsrpt.h"
#include "tlspol/tlsrpt_send.h"
#include "util/log.h"
#include "util/util.h"
#include "util/workers.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#define LOADER_THREADS 2
#define MAX_CANDIDATES 5        /* Postfix's smtp_mx_address_limit */

struct smtp_transport;
struct dest;

struct candidate {
	char name[256];
	struct rg_ip ip;
	bool secure;                  /* its address answers were DNSSEC-validated */
};

struct job {
	struct smtp_transport *st;
	struct delivery *d;
	struct dest *dest;
	struct queue_msg *text;       /* the message read back from its file */
	struct dns_query *query;
	struct candidate cand[MAX_CANDIDATES];
	size_t n_cand, next_cand;
	bool looped;                  /* a candidate was ourselves */
	struct smtp_out *o;
	struct smtp_out *opening;     /* being opened: its ready callback is due */
	bool reused;                  /* o came from the connection cache */
	bool conn_failures_only;      /* every failure so far was the connection's */
	char relay[320], tls[160];
	char err[600], err_dsn[16];
	bool eightbit;                /* the text has 8-bit bytes (found on the worker) */
	bool mem_raised;              /* the downgrade memory raised the TLS policy */
	bool mx_secure;               /* DANE: the MX answer was validated */
	char tlsa_host[256];          /* DANE: the host tlsa_res is for ("": none yet) */
	struct dns_tlsa_result tlsa_res;
	struct dns_tlsa *tlsa_recs;   /* tlsa_res.n, data owned; tlsa_res.records points here */
	bool dane_used;               /* the session being opened authenticates by DANE */
	struct sts_query *stsq;       /* MTA-STS lookup in flight */
	bool sts_done;                /* the MTA-STS policy (if any) is known */
	bool sts_raised;              /* MTA-STS enforce raised the TLS policy */
	bool sts_skipped;             /* enforce: an MX host not in the policy was left out */
	struct sts_policy *sts;       /* in force for this delivery (testing/enforce), or NULL */
	struct smtp_out_msg msg;      /* the dialogue holds on to it while sending */
	struct smtp_out_rcpt *rcpts;
	struct job *all_prev, *all_next;
};

/* dest - a destination, and whether it is suspended. */
struct dest {
	struct hop_dest hop;          /* first: the pool's part */
	time_t suspended_until;
	char suspended_why[600];
};

struct smtp_transport {
	struct transport t;           /* first: the interface */
	struct smtp_transport_env env;
	SSL_CTX *tls_ctx;
	struct tlsmem *mem;           /* downgrade memory; NULL when switched off */
	transport_smtp_tls_raised_fn *tls_raised; /* shares raises; NULL: not shared */
	void *tls_raised_arg;
	struct sts *sts;              /* MTA-STS; NULL when switched off */
	struct tlsrpt *rpt;           /* TLS-RPT counts; NULL when switched off */
	struct tlsrpt_sender *rpt_sender;
	struct workers *loader;
	struct hop_pool *pool;        /* destinations, idle and closing connections */
	struct job *jobs;             /* every job, for stop and free */
};

static void job_finish(struct job *j);
static void try_next(struct job *j);
static void start_send(struct job *j);
static void resolve(struct job *j);
static void dane_failed(struct job *j, const struct smtp_result *r);
static void open_candidate(struct job *j, const struct candidate *c, enum smtp_tls_policy p,
			   const struct smtpc_tlsa *tlsa, size_t n_tlsa);

static void smtp_free(struct transport *t);

/* ---- downgrade memory ---- */

/* remembered - the memory's entry for j's destination while it holds. */
static const struct tlsmem_entry *remembered(const struct job *j)
{
	const struct smtp_transport *st = j->st;
	if (st->mem == NULL)
		return NULL;
	const struct tlsmem_entry *e = tlsmem_get(st->mem, j->d->route.host);
	time_t now = time(NULL);
	if (e == NULL || (now > e->last && /* a clock gone back: age 0 */
			  (uint64_t)(now - e->last) > st->env.cfg->smtp_tls_memory_lifetime))
		return NULL;
	return e;
}

/* below_memory - would a session with this TLS be a downgrade? */
static bool below_memory(const struct job *j, const char *tls_desc)
{
	const struct tlsmem_entry *e = remembered(j);
	return e != NULL && e->best == TLSMEM_VERIFIED &&
	       tlsmem_level_of(tls_desc) < TLSMEM_VERIFIED;
}

/* memory_policy - verified TLS seen before: nothing less this time. An
 * explicit "none" stays the operator's word. */
static enum smtp_tls_policy memory_policy(struct job *j, enum smtp_tls_policy p)
{
	const struct tlsmem_entry *e = remembered(j);
	j->mem_raised = false;
	if (e == NULL || e->best != TLSMEM_VERIFIED || p == STLS_NONE || p >= STLS_VERIFY)
		return p;
	j->mem_raised = true;
	return STLS_VERIFY;
}

/* downgrade_refused - the raised policy failed at STARTTLS: say why plainly. */
static void downgrade_refused(struct job *j)
{
	const struct tlsmem_entry *e = remembered(j);
	char since[32] = "?";
	struct tm tm;
	if (e != NULL && gmtime_r(&e->since, &tm) != NULL)
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	char why[600];
	rg_strlcpy(why, j->err, sizeof(why));
	snprintf(j->err, sizeof(j->err), "TLS downgrade refused: %s has offered verified TLS "
		 "since %s; %s", j->d->route.host, since, why);
	rg_strlcpy(j->err_dsn, "4.7.5", sizeof(j->err_dsn));
	log_ev(LOG_WARNING, "tls-downgrade-refused", {"queue", j->d->msg->id},
	       {"domain", j->d->route.host}, {"relay", j->relay}, {"remembered", "verified"},
	       {"since", since}, {"reason", why});
}

/* as_smtp - t when it is this transport (the queue manager's tests may run
 * others in its place), else NULL. */
static struct smtp_transport *as_smtp(struct transport *t)
{
	return t != NULL && t->free == smtp_free ? (struct smtp_transport *)t : NULL;
}

/* transport_smtp_tls_memory - see transport_smtp.h. */
bool transport_smtp_tls_memory(struct transport *t, const char *forget, struct strbuf *out)
{
	struct smtp_transport *st = as_smtp(t);
	if (st == NULL || st->mem == NULL) {
		strbuf_puts(out, "the TLS downgrade memory is off (smtp_tls_memory_lifetime = 0)");
		return false;
	}
	if (forget == NULL) {
		tlsmem_list(st->mem, out);
		return true;
	}
	if (!tlsmem_forget(st->mem, forget)) {
		strbuf_printf(out, "%s is not remembered", forget);
		return false;
	}
	log_ev(LOG_INFO, "tls-memory-forget", {"domain", forget});
	strbuf_printf(out, "forgot %s", forget);
	return true;
}

/* best_of - what the memory says of domain now (TLSMEM_UNKNOWN: nothing). */
static enum tlsmem_level best_of(const struct smtp_transport *st, const char *domain)
{
	const struct tlsmem_entry *e = tlsmem_get(st->mem, domain);
	return e ? e->best : TLSMEM_UNKNOWN;
}

/* remember - a delivery here saw level at domain; a raise to tls or
 * verified is shared with the other hosts (their memory rises too). */
static void remember(struct smtp_transport *st, const char *domain, enum tlsmem_level level)
{
	if (st->mem == NULL)
		return;
	enum tlsmem_level was = best_of(st, domain);
	tlsmem_note(st->mem, domain, level, time(NULL));
	enum tlsmem_level now = best_of(st, domain);
	if (now > was && now >= TLSMEM_TLS && st->tls_raised != NULL) {
		char lower[256];
		rg_strlcpy(lower, domain, sizeof(lower));
		rg_str_lower(lower); /* tlsmem_note took it: valid */
		st->tls_raised(st->tls_raised_arg, lower, tlsmem_level_name(now));
	}
}

void transport_smtp_set_tls_share(struct transport *t, transport_smtp_tls_raised_fn *raised,
				  void *arg)
{
	struct smtp_transport *st = as_smtp(t);
	if (st == NULL)
		return;
	st->tls_raised = raised;
	st->tls_raised_arg = arg;
}

/* transport_smtp_tls_heard - not shared again: every host heard it already. */
void transport_smtp_tls_heard(struct transport *t, const char *text)
{
	struct smtp_transport *st = as_smtp(t);
	struct tlsmem_entry e;
	if (st == NULL || st->mem == NULL || !tlsmem_parse_shared(text, &e))
		return;
	enum tlsmem_level was = best_of(st, e.domain);
	tlsmem_note(st->mem, e.domain, e.best, time(NULL));
	if (best_of(st, e.domain) > was)
		log_ev(LOG_INFO, "tls-memory-shared", {"domain", e.domain},
		       {"level", tlsmem_level_name(e.best)}, {"source", "shared"});
}

/* idle_usable - no downgrade from what the memory says of j's domain. */
static bool idle_usable(void *arg, const struct hop_idle *ic)
{
	return !below_memory(arg, ic->tls);
}

/* take_idle - a parked connection of j's destination, if one is usable. */
static bool take_idle(struct job *j)
{
	struct hop_idle ic;
	if (!hop_take_idle(&j->dest->hop, idle_usable, j, &ic))
		return false;
	j->o = ic.o;
	rg_strlcpy(j->relay, ic.relay, sizeof(j->relay));
	rg_strlcpy(j->tls, ic.tls, sizeof(j->tls));
	return true;
}

/* ---- outcomes ---- */

static void outcome_all(struct job *j, enum rcpt_outcome o, const char *dsn, const char *text)
{
	delivery_outcome_all(j->d, o, dsn, text, j->relay[0] ? j->relay : NULL);
	for (size_t i = 0; i < j->d->n_rcpt; i++)
		rg_strlcpy(j->d->msg->rcpts[j->d->rcpt[i]].tls, j->tls,
			   sizeof(j->d->msg->rcpts[0].tls));
}

static enum rcpt_outcome outcome_of(int code)
{
	return code >= 200 && code < 300 ? RCPT_SENT
	       : code >= 500		? RCPT_BOUNCED
					: RCPT_DEFERRED;
}

/* default_dsn - the enhanced status when the server gave none. */
static const char *default_dsn(int code)
{
	return code >= 200 && code < 300 ? "2.0.0" : code >= 500 ? "5.0.0" : "4.0.0";
}

/* ---- the job ---- */

static void load_work(void *arg)
{
	struct job *j = arg;
	char err[512];
	j->text = xcalloc(1, sizeof(*j->text));
	if (!queue_load(j->st->env.cfg->queue_directory, j->d->msg->path, j->text, err,
			sizeof(err))) {
		rg_strlcpy(j->err, err, sizeof(j->err));
		queue_msg_free(j->text);
		j->text = NULL;
		return;
	}
	for (size_t i = 0; i < j->text->body.len && !j->eightbit; i++)
		j->eightbit = (unsigned char)j->text->body.data[i] >= 0x80;
}

static void load_done(void *arg)
{
	struct job *j = arg;
	if (j->text == NULL) {
		outcome_all(j, RCPT_DEFERRED, "4.3.0", j->err);
		job_finish(j);
	} else if (j->st->pool->stopping) {
		job_finish(j); /* untried: delivered after the next start */
	} else if (take_idle(j)) {
		j->reused = true;
		start_send(j);
	} else {
		resolve(j);
	}
}

static void job_start(struct job *j)
{
	workers_submit(j->st->loader, load_work, load_done, j);
}

/* job_new - a job for d: made only when d gets a slot, so that requests
 * waiting for one cost no more than the request itself. */
static struct job *job_new(struct smtp_transport *st, struct delivery *d, struct dest *dest)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->st = st;
	j->d = d;
	j->dest = dest;
	j->all_next = st->jobs;
	if (st->jobs)
		st->jobs->all_prev = j;
	st->jobs = j;
	return j;
}

/* dest_kick - start waiting jobs while the destination has free slots. */
static void dest_kick(struct smtp_transport *st, struct dest *dest)
{
	unsigned limit = (unsigned)st->env.cfg->default_destination_concurrency_limit;
	struct delivery *d;
	while ((d = hop_next(&dest->hop, limit)) != NULL)
		job_start(job_new(st, d, dest));
}

static void job_free(struct job *j)
{
	struct smtp_transport *st = j->st;
	if (j->all_prev)
		j->all_prev->all_next = j->all_next;
	else
		st->jobs = j->all_next;
	if (j->all_next)
		j->all_next->all_prev = j->all_prev;
	if (j->query)
		dns_cancel(j->query);
	sts_cancel(j->stsq);
	free(j->sts);
	queue_msg_free(j->text);
	free(j->rcpts);
	dns_tlsa_free(j->tlsa_recs, j->tlsa_res.n);
	free(j->tlsa_recs);
	free(j);
}

static void job_finish(struct job *j)
{
	struct smtp_transport *st = j->st;
	struct dest *dest = j->dest;
	struct delivery *d = j->d;
	hop_release(&dest->hop, j->o, j->relay, j->tls);
	j->o = NULL;
	job_free(j);
	d->done(d);
	dest_kick(st, dest);
}

/* suspend - every address of the destination failed: defer what comes next. */
static void suspend(struct job *j)
{
	j->dest->suspended_until = time(NULL) + (time_t)j->st->env.cfg->minimal_backoff_time;
	snprintf(j->dest->suspended_why, sizeof(j->dest->suspended_why),
		 "delivery temporarily suspended: %s", j->err);
}

/* ---- routing to addresses ---- */

static bool is_myself_ip(const struct smtp_transport *st, const struct rg_ip *ip, unsigned port)
{
	const struct config *cfg = st->env.cfg;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		const struct listen_addr *la = &cfg->listen[i];
		struct rg_ip lip;
		if (la->port != port)
			continue;
		if (strcmp(la->host, "*") == 0 || strcmp(la->host, "0.0.0.0") == 0 ||
		    strcmp(la->host, "::") == 0) {
			if (ip_is_loopback(ip))
				return true;
			for (size_t k = 0; k < st->env.n_local_ips; k++)
				if (ip_equal(&st->env.local_ips[k], ip))
					return true;
		} else if (ip_parse(la->host, &lip) && ip_equal(&lip, ip)) {
			return true;
		}
	}
	return false;
}

/* ---- TLS-RPT (RFC 8460) ---- */

void transport_smtp_set_queue(struct transport *t, const struct addr_domains *domains,
			      void (*submit)(void *arg, struct queue_msg *m), void *arg)
{
	struct smtp_transport *st = as_smtp(t);
	if (st != NULL && st->rpt_sender != NULL)
		tlsrpt_sender_set_queue(st->rpt_sender, domains, submit, arg);
}

bool transport_smtp_tls_report_send(struct transport *t, struct strbuf *out)
{
	struct smtp_transport *st = as_smtp(t);
	if (st == NULL || st->rpt_sender == NULL) {
		strbuf_puts(out, "TLS reporting is off (smtp_tls_reporting = no)");
		return false;
	}
	size_t n = tlsrpt_send_now(st->rpt_sender);
	strbuf_printf(out, "%zu TLS report%s on the way (see tls-report-* in the log)", n,
		      n == 1 ? "" : "s");
	return true;
}

/* sts_text - the policy as its file said it (4.4 policy-string). */
static void sts_text(const struct sts_policy *p, char *out, size_t len)
{
	size_t used = (size_t)snprintf(out, len, "version: STSv1\nmode: %s\n",
				       sts_mode_name(p->mode));
	for (size_t i = 0; i < p->n_mx && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "mx: %s\n", p->mx[i]);
	if (used < len)
		snprintf(out + used, len - used, "max_age: %llu", (unsigned long long)p->max_age);
}

/* tlsa_text - the TLSA records in presentation form, one a line. */
static void tlsa_text(const struct job *j, char *out, size_t len)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < j->tlsa_res.n && used + 16 < len; i++) {
		const struct dns_tlsa *t = &j->tlsa_res.records[i];
		used += (size_t)snprintf(out + used, len - used, "%s%u %u %u ", i ? "\n" : "",
					 t->usage, t->selector, t->mtype);
		for (size_t k = 0; k < t->len && used + 3 < len; k++)
			used += (size_t)snprintf(out + used, len - used, "%02x", t->data[k]);
	}
}

/* report - one session (result NULL: it succeeded) under the policy in force:
 * DANE when it authenticated or failed, else MTA-STS. */
static void report(struct job *j, bool dane, const char *result, const char *ip)
{
	char text[4096], mx[STS_MX_MAX * 260] = "";
	if (j->st->rpt == NULL || (!dane && j->sts == NULL))
		return;
	if (dane)
		tlsa_text(j, text, sizeof(text));
	else {
		sts_text(j->sts, text, sizeof(text));
		sts_mx_list(j->sts, mx, sizeof(mx));
	}
	const char *host = j->tlsa_host[0] && dane ? j->tlsa_host : NULL;
	tlsrpt_note(j->st->rpt, j->d->route.host, dane ? TLSRPT_TLSA : TLSRPT_STS, text, mx, result,
		    host, ip);
}

/* tls_result - the RFC 8460 4.3 result type of a failed or weak session. */
static const char *tls_result(const char *why)
{
	if (strstr(why, "not offered") != NULL || strstr(why, "STARTTLS") != NULL)
		return "starttls-not-supported";
	if (strstr(why, "hostname mismatch") != NULL)
		return "certificate-host-mismatch";
	if (strstr(why, "expired") != NULL)
		return "certificate-expired";
	return "certificate-not-trusted";
}

/* candidate_ip - the address of the candidate tried last, for reports. */
static void candidate_ip(const struct job *j, char *out, size_t len)
{
	out[0] = '\0';
	if (j->next_cand > 0)
		ip_format(&j->cand[j->next_cand - 1].ip, out, len);
}

/* ---- MTA-STS (RFC 8461) ---- */

static void sts_log(const struct job *j, const char *event, const char *detail)
{
	log_ev(LOG_INFO, event, {"queue", j->d->msg->id}, {"domain", j->d->route.host},
	       {"mode", sts_mode_name(j->sts->mode)}, {"id", j->sts->id}, {"relay", j->relay},
	       {"detail", detail});
}

/* tlsrpt_mx - an MX host outside the policy, for the report. */
static void tlsrpt_mx(struct job *j, const char *host)
{
	char text[4096], mx[STS_MX_MAX * 260];
	if (j->st->rpt == NULL)
		return;
	sts_text(j->sts, text, sizeof(text));
	sts_mx_list(j->sts, mx, sizeof(mx));
	tlsrpt_note(j->st->rpt, j->d->route.host, TLSRPT_STS, text, mx, "validation-failure", host,
		    NULL);
}

/* sts_mx_allowed - 4.1: under enforce only MX hosts the policy names; under
 * testing every one, with a report line for those it does not name. */
static bool sts_mx_allowed(struct job *j, const char *host)
{
	if (j->sts == NULL || sts_mx_match(j->sts, host))
		return true;
	char detail[600];
	snprintf(detail, sizeof(detail), "MX host %s is not in the policy", host);
	sts_log(j, j->sts->mode == STS_ENFORCE ? "mta-sts-mx-refused" : "mta-sts-testing-failure",
		detail);
	tlsrpt_mx(j, host);
	j->sts_skipped |= j->sts->mode == STS_ENFORCE;
	return j->sts->mode != STS_ENFORCE;
}

/* sts_policy - enforce: a certificate that verifies for the MX host
 * (unless DANE authenticates it; an explicit none stays the operator's). */
static enum smtp_tls_policy sts_policy(struct job *j, enum smtp_tls_policy p)
{
	j->sts_raised = false;
	if (j->sts == NULL || j->sts->mode != STS_ENFORCE || p == STLS_NONE || p >= STLS_VERIFY)
		return p;
	j->sts_raised = true;
	return STLS_VERIFY;
}

/* sts_failed - enforce, and the session had no verified TLS. */
static void sts_failed(struct job *j)
{
	char why[600];
	rg_strlcpy(why, j->err, sizeof(why));
	snprintf(j->err, sizeof(j->err), "MTA-STS policy of %s (enforce, id %s) needs verified "
		 "TLS: %s", j->d->route.host, j->sts->id, why);
	rg_strlcpy(j->err_dsn, "4.7.5", sizeof(j->err_dsn));
	sts_log(j, "mta-sts-tls-refused", why);
	char ip[RG_IP_STRLEN];
	candidate_ip(j, ip, sizeof(ip));
	report(j, false, tls_result(why), ip);
}

static void on_sts(void *arg, const struct sts_policy *p)
{
	struct job *j = arg;
	j->stsq = NULL;
	j->sts_done = true;
	if (p != NULL && p->mode != STS_NONE) {
		j->sts = xcalloc(1, sizeof(*j->sts));
		*j->sts = *p;
		sts_log(j, "mta-sts", "policy in force");
	}
	resolve(j);
}

/* add_candidates - the addresses of one host, unless it is ourselves. */
static bool add_candidates(struct job *j, const struct dns_route_host *h)
{
	const struct config *cfg = j->st->env.cfg;
	if (rg_strcasecmp(h->name, cfg->myhostname) == 0)
		return false;
	if (!sts_mx_allowed(j, h->name))
		return true;
	for (size_t k = 0; k < h->n_addrs; k++) {
		if (is_myself_ip(j->st, &h->addrs[k], j->d->route.port))
			return false;
		if (j->n_cand == MAX_CANDIDATES)
			return true;
		struct candidate *c = &j->cand[j->n_cand++];
		rg_strlcpy(c->name, h->name, sizeof(c->name));
		c->ip = h->addrs[k];
		c->secure = h->secure;
	}
	return true;
}

/* route_failed - a DNS outcome that is not a list of addresses. */
static void route_failed(struct job *j, const struct dns_route *r)
{
	static const struct {
		enum dns_route_status st;
		enum rcpt_outcome o;
		const char *dsn;
	} map[] = {
		{DNS_ROUTE_NXDOMAIN, RCPT_BOUNCED, "5.1.2"},
		{DNS_ROUTE_NULL_MX, RCPT_BOUNCED, "5.1.10"},
		{DNS_ROUTE_NO_ADDRESS, RCPT_BOUNCED, "5.4.4"},
		{DNS_ROUTE_TEMP, RCPT_DEFERRED, "4.4.3"},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(map); i++) {
		if (map[i].st == r->status) {
			outcome_all(j, map[i].o, map[i].dsn, r->error);
			return;
		}
	}
	outcome_all(j, RCPT_DEFERRED, "4.4.3", r->error);
}

static void on_route(void *arg, const struct dns_route *r)
{
	struct job *j = arg;
	j->query = NULL;
	if (r->status != DNS_ROUTE_OK) {
		route_failed(j, r);
		job_finish(j);
		return;
	}
	j->mx_secure = r->secure;
	/* hosts come best first: from the first that is ourselves on, none is better */
	bool better_unknown = false; /* a better host's address lookup failed for now */
	for (size_t i = 0; i < r->n_hosts && !j->looped; i++) {
		j->looped = !add_candidates(j, &r->hosts[i]);
		better_unknown |= !j->looped && r->hosts[i].n_addrs == 0 && r->hosts[i].temp_failed;
	}
	if (j->n_cand == 0 && j->sts_skipped && !j->looped) {
		char mx[STS_MX_MAX * 260], text[900];
		sts_mx_list(j->sts, mx, sizeof(mx));
		snprintf(text, sizeof(text), "MTA-STS policy of %s (enforce, id %s): no MX host "
			 "matches its mx patterns (%s)", j->d->route.host, j->sts->id, mx);
		outcome_all(j, RCPT_DEFERRED, "4.7.5", text);
		job_finish(j);
		return;
	}
	if (j->n_cand == 0 && better_unknown) {
		outcome_all(j, RCPT_DEFERRED, "4.4.3", "unable to look up a better MX host than "
			    "myself (DNS failure); trying again later");
		job_finish(j);
		return;
	}
	if (j->n_cand == 0) {
		char text[600];
		snprintf(text, sizeof(text), j->looped ? "mail for %s loops back to myself"
						       : "no address to deliver mail for %s",
			 j->d->route.host);
		outcome_all(j, RCPT_BOUNCED, j->looped ? "5.4.6" : "5.4.4", text);
		job_finish(j);
		return;
	}
	j->conn_failures_only = true;
	try_next(j);
}

static int family_of(enum inet_protocols p)
{
	return p == INET_IPV4 ? AF_INET : p == INET_IPV6 ? AF_INET6 : AF_UNSPEC;
}

static void resolve(struct job *j)
{
	const struct config *cfg = j->st->env.cfg;
	const struct route *rt = &j->d->route;
	if (j->st->sts != NULL && rt->mx && !j->sts_done) {
		j->stsq = sts_lookup(j->st->sts, rt->host, on_sts, j);
		return;
	}
	int family = family_of(cfg->inet_protocols);
	int prefer = family_of(cfg->smtp_address_preference);
	j->query = rt->mx ? dns_mx_route(j->st->env.dns, rt->host, family, prefer, on_route, j)
			  : dns_host_route(j->st->env.dns, rt->host, family, prefer, on_route, j);
}

/* ---- per next hop: TLS policy and credentials ---- */

/* lookup_hop - the first table value for the next hop: its key ("[host]:port"
 * or the MX domain), "[host]", or the host. Never the recipient's domain: one
 * connection (and one batch) serves every domain routed to the same next hop,
 * so its TLS level and credentials must depend on the next hop alone. */
static const char *lookup_hop(struct map **maps, const struct job *j)
{
	const struct route *rt = &j->d->route;
	char bracketed[ROUTE_HOST_MAX + 2];
	snprintf(bracketed, sizeof(bracketed), "[%s]", rt->host);
	const char *keys[] = {rt->key, bracketed, rt->host};
	for (size_t k = 0; k < RG_ARRAY_LEN(keys); k++)
		for (size_t m = 0; maps && maps[m]; m++) {
			const char *v = map_lookup(maps[m], keys[k]);
			if (v != NULL)
				return v;
		}
	return NULL;
}

static enum smtp_tls_policy tls_policy(const struct job *j)
{
	const struct config *cfg = j->st->env.cfg;
	enum smtp_tls_level lvl = cfg->smtp_tls_security_level;
	const char *v = lookup_hop(cfg->smtp_tls_policy_maps, j);
	if (v != NULL) {
		char word[32];
		rg_strlcpy(word, v, sizeof(word));
		word[strcspn(word, " \t")] = '\0';
		config_smtp_tls_level(word, &lvl); /* checked when the table was loaded */
	}
	static const enum smtp_tls_policy map[] = {STLS_NONE, STLS_MAY, STLS_ENCRYPT,
						   STLS_VERIFY, STLS_SECURE, STLS_DANE};
	return map[lvl];
}

/* credentials - "user:password" for this next hop into user/pass. */
static bool credentials(const struct job *j, char *user, size_t ulen, char *pass, size_t plen)
{
	const struct config *cfg = j->st->env.cfg;
	if (!cfg->smtp_sasl_auth_enable)
		return false;
	const char *v = lookup_hop(cfg->smtp_sasl_password_maps, j);
	const char *colon = v ? strchr(v, ':') : NULL;
	if (colon == NULL || (size_t)(colon - v) >= ulen)
		return false;
	memcpy(user, v, (size_t)(colon - v));
	user[colon - v] = '\0';
	rg_strlcpy(pass, colon + 1, plen);
	return true;
}

/* bind_source - smtp_bind_address(6) for the candidate's family, if set. */
static bool bind_source(const struct config *cfg, int family, struct sockaddr_storage *ss,
			socklen_t *len)
{
	const char *text = family == AF_INET6 ? cfg->smtp_bind_address6 : cfg->smtp_bind_address;
	struct rg_ip ip;
	if (text[0] == '\0' || !ip_parse(text, &ip) || ip.family != family)
		return false;
	*len = ip_to_sockaddr(&ip, 0, ss);
	return true;
}

static unsigned ms(uint64_t seconds)
{
	return (unsigned)(seconds * 1000);
}

static void fill_timeouts(const struct config *cfg, struct smtp_hop_opts *h)
{
	h->connect_ms = ms(cfg->smtp_connect_timeout);
	h->helo_ms = ms(cfg->smtp_helo_timeout);
	h->mail_ms = ms(cfg->smtp_mail_timeout);
	h->rcpt_ms = ms(cfg->smtp_rcpt_timeout);
	h->data_init_ms = ms(cfg->smtp_data_init_timeout);
	h->data_xfer_ms = ms(cfg->smtp_data_xfer_timeout);
	h->data_done_ms = ms(cfg->smtp_data_done_timeout);
	h->quit_ms = ms(cfg->smtp_quit_timeout);
}

/* ---- connecting and sending ---- */

static void set_relay(struct job *j, const struct candidate *c)
{
	char ip[RG_IP_STRLEN];
	ip_format(&c->ip, ip, sizeof(ip));
	snprintf(j->relay, sizeof(j->relay), "%s[%s]:%u", c->name, ip, j->d->route.port);
}

static void on_open(struct smtp_out *o, const struct smtp_result *r, void *arg)
{
	struct job *j = arg;
	j->opening = NULL;
	if (r->kind == SR_DONE) {
		j->o = o;
		rg_strlcpy(j->tls, r->tls_desc, sizeof(j->tls));
		remember(j->st, j->d->route.host, tlsmem_level_of(r->tls_desc));
		bool weak = tlsmem_level_of(r->tls_desc) < TLSMEM_VERIFIED;
		if (j->sts != NULL && j->sts->mode == STS_TESTING && weak)
			sts_log(j, "mta-sts-testing-failure", r->tls_desc);
		char ip[RG_IP_STRLEN];
		candidate_ip(j, ip, sizeof(ip));
		report(j, j->dane_used, weak && !j->dane_used ? tls_result(r->tls_desc) : NULL, ip);
		log_ev(LOG_INFO, "smtp-connected", {"queue", j->d->msg->id}, {"relay", j->relay},
		       {"tls", r->tls_desc}, {"auth", r->auth_desc});
		start_send(j);
		return;
	}
	hop_close(j->st->pool, o);
	if (r->local && strstr(r->text, j->relay) != NULL)
		snprintf(j->err, sizeof(j->err), "%s", r->text); /* it names the relay already */
	else if (r->local)
		snprintf(j->err, sizeof(j->err), "%s with %s: %s", r->stage, j->relay, r->text);
	else
		snprintf(j->err, sizeof(j->err), "host %s said: %s (in reply to %s)", j->relay,
			 r->text, r->stage);
	rg_strlcpy(j->err_dsn, r->enhanced[0] ? r->enhanced : "4.4.1", sizeof(j->err_dsn));
	if (j->err_dsn[0] == '5')
		j->err_dsn[0] = '4'; /* a refused session is retried, maybe elsewhere */
	if (j->mem_raised && strcmp(r->stage, "STARTTLS") == 0)
		downgrade_refused(j);
	if (j->dane_used && strcmp(r->stage, "STARTTLS") == 0)
		dane_failed(j, r);
	if (j->sts_raised && strcmp(r->stage, "STARTTLS") == 0)
		sts_failed(j);
	j->conn_failures_only &= r->try_next_address;
	if (r->try_next_address) {
		try_next(j);
		return;
	}
	outcome_all(j, RCPT_DEFERRED, j->err_dsn, j->err);
	job_finish(j);
}

/* ---- DANE (RFC 7672) ---- */

static void on_tlsa(void *arg, const struct dns_tlsa_result *r)
{
	struct job *j = arg;
	j->query = NULL;
	dns_tlsa_free(j->tlsa_recs, j->tlsa_res.n); /* the previous host's */
	free(j->tlsa_recs);
	j->tlsa_res = *r;
	j->tlsa_recs = xcalloc(r->n + 1, sizeof(*j->tlsa_recs));
	for (size_t i = 0; i < r->n; i++) { /* deep: r's data goes when we return */
		j->tlsa_recs[i] = r->records[i];
		j->tlsa_recs[i].data = xmalloc(r->records[i].len + 1);
		memcpy(j->tlsa_recs[i].data, r->records[i].data, r->records[i].len);
	}
	j->tlsa_res.records = j->tlsa_recs;
	try_next(j);
}

/* dane_lookup_needed - level dane, a validated MX and host, and no TLSA
 * answer for this host yet: look it up before connecting. */
static bool dane_lookup_needed(struct job *j, const struct candidate *c, enum smtp_tls_policy p)
{
	if (p != STLS_DANE || !j->mx_secure || !c->secure || strcmp(j->tlsa_host, c->name) == 0)
		return false;
	rg_strlcpy(j->tlsa_host, c->name, sizeof(j->tlsa_host));
	j->query = dns_tlsa_lookup(j->st->env.dns, c->name, j->d->route.port, on_tlsa, j);
	return true;
}

/* dane_usable - RFC 7672 3.1: DANE-TA(2) and DANE-EE(3), selectors 0/1,
 * matching types 0/1/2; PKIX usages (0, 1) are not for SMTP. */
static bool dane_usable(const struct dns_tlsa *t)
{
	return (t->usage == 2 || t->usage == 3) && t->selector <= 1 && t->mtype <= 2;
}

static void dane_log(const struct job *j, const char *result)
{
	log_ev(LOG_INFO, "dane", {"queue", j->d->msg->id}, {"relay", j->relay},
	       {"result", result});
}

/* dane_policy - what level dane means for this candidate; false when it must
 * not be tried at all (TLSA lookup failed: RFC 7672 2.2, defer). */
static bool dane_policy(struct job *j, const struct candidate *c, enum smtp_tls_policy *p,
			struct smtpc_tlsa *tlsa, size_t *n_tlsa)
{
	const struct dns_tlsa_result *r = &j->tlsa_res;
	*n_tlsa = 0;
	j->dane_used = false;
	if (*p != STLS_DANE)
		return true;
	*p = STLS_MAY; /* every way out but one is opportunistic TLS */
	if (!j->mx_secure || !c->secure) {
		dane_log(j, !j->mx_secure ? "MX records not DNSSEC-validated: opportunistic TLS"
					  : "address records not DNSSEC-validated: opportunistic TLS");
		return true;
	}
	if (r->status == DNS_TLSA_TEMP) {
		snprintf(j->err, sizeof(j->err), "DANE: TLSA lookup for %s failed: %s", j->relay,
			 r->error);
		rg_strlcpy(j->err_dsn, "4.7.5", sizeof(j->err_dsn));
		dane_log(j, j->err);
		report(j, true, "dnssec-invalid", NULL);
		return false;
	}
	if (r->status == DNS_TLSA_NONE || !r->secure) {
		dane_log(j, r->status == DNS_TLSA_NONE ? "no TLSA records: opportunistic TLS"
						       : "TLSA records not DNSSEC-validated: "
							 "opportunistic TLS");
		return true;
	}
	for (size_t i = 0; i < r->n && *n_tlsa < SMTPC_TLSA_MAX; i++)
		if (dane_usable(&r->records[i]))
			tlsa[(*n_tlsa)++] = (struct smtpc_tlsa){r->records[i].usage,
				r->records[i].selector, r->records[i].mtype, r->records[i].data,
				r->records[i].len};
	if (*n_tlsa == 0 && r->n_skipped > 0) { /* an unread record may be the usable one */
		snprintf(j->err, sizeof(j->err), "DANE: TLSA records for %s could not be read",
			 j->relay);
		rg_strlcpy(j->err_dsn, "4.7.5", sizeof(j->err_dsn));
		dane_log(j, j->err);
		report(j, true, "tlsa-invalid", NULL);
		return false;
	}
	*p = *n_tlsa > 0 ? STLS_DANE : STLS_ENCRYPT; /* RFC 7672 2.2: none usable */
	j->dane_used = *n_tlsa > 0;
	dane_log(j, j->dane_used ? "TLSA records validated: DANE required"
				 : "no usable TLSA record: mandatory unauthenticated TLS");
	return true;
}

/* handshake_ran - a failed STARTTLS stage got as far as the TLS handshake
 * (not: STARTTLS missing, as when stripped, or refused by the server). */
static bool handshake_ran(const struct smtp_result *r)
{
	return r->local && strstr(r->text, "TLS is required, but") == NULL;
}

/* dane_failed - the peer did not match the TLSA records, or offered no TLS
 * at all: say which. */
static void dane_failed(struct job *j, const struct smtp_result *r)
{
	char ip[RG_IP_STRLEN];
	candidate_ip(j, ip, sizeof(ip));
	if (!handshake_ran(r)) {
		rg_strlcpy(j->err_dsn, "4.7.5", sizeof(j->err_dsn));
		dane_log(j, j->err);
		report(j, true, "starttls-not-supported", ip);
		return;
	}
	char why[600];
	rg_strlcpy(why, j->err, sizeof(why));
	snprintf(j->err, sizeof(j->err), "DANE: %s did not match its TLSA records: %s", j->relay,
		 why);
	rg_strlcpy(j->err_dsn, "4.7.5", sizeof(j->err_dsn));
	dane_log(j, j->err);
	report(j, true, "validation-failure", ip);
}

static void try_next(struct job *j)
{
	if (j->st->pool->stopping) {
		job_finish(j); /* untried: tried again after the next start */
		return;
	}
	if (j->next_cand == j->n_cand) {
		if (j->conn_failures_only)
			suspend(j);
		outcome_all(j, RCPT_DEFERRED, j->err_dsn[0] ? j->err_dsn : "4.4.1",
			    j->err[0] ? j->err : "no address could be tried");
		job_finish(j);
		return;
	}
	const struct candidate *c = &j->cand[j->next_cand];
	enum smtp_tls_policy policy = tls_policy(j);
	struct smtpc_tlsa tlsa[SMTPC_TLSA_MAX];
	size_t n_tlsa;
	set_relay(j, c);
	if (dane_lookup_needed(j, c, policy))
		return; /* on_tlsa comes back here */
	j->next_cand++;
	if (!dane_policy(j, c, &policy, tlsa, &n_tlsa)) {
		j->conn_failures_only = false;
		try_next(j);
		return;
	}
	open_candidate(j, c, memory_policy(j, sts_policy(j, policy)), tlsa, n_tlsa);
}

/* open_candidate - connect to c under TLS policy p (and TLSA records for dane). */
static void open_candidate(struct job *j, const struct candidate *c, enum smtp_tls_policy p,
			   const struct smtpc_tlsa *tlsa, size_t n_tlsa)
{
	const struct config *cfg = j->st->env.cfg;
	struct sockaddr_storage dst, src;
	socklen_t dlen, slen = 0;
	char user[256], pass[256];
	dlen = ip_to_sockaddr(&c->ip, j->d->route.port, &dst);
	bool have_src = bind_source(cfg, c->ip.family, &src, &slen);
	bool auth = credentials(j, user, sizeof(user), pass, sizeof(pass));
	struct smtp_hop_opts h = {
		.addr = (struct sockaddr *)&dst, .addrlen = dlen,
		.source = have_src ? (struct sockaddr *)&src : NULL, .sourcelen = slen,
		.helo_name = cfg->smtp_helo_name, .server_name = c->name,
		.tls_match_domain = j->d->route.host, .tls = p, .tlsa = tlsa, .n_tlsa = n_tlsa,
		.tls_ctx = j->st->tls_ctx, .sasl_user = auth ? user : NULL,
		.sasl_pass = auth ? pass : NULL, .sasl_plaintext_ok = cfg->smtp_sasl_plaintext_ok,
	};
	fill_timeouts(cfg, &h);
	j->opening = smtp_out_open(j->st->env.base, &h, on_open, j);
	OPENSSL_cleanse(pass, sizeof(pass));
}

/* rcpt_results - per-recipient codes of a transaction that ran to its end. */
static void rcpt_results(struct job *j, const struct smtp_result *r)
{
	for (size_t i = 0; i < j->d->n_rcpt && i < r->n_rcpts; i++) {
		const struct smtp_rcpt_result *rr = &r->rcpts[i];
		char text[700];
		int code = rr->code ? rr->code : 450;
		if (r->kind == SR_DONE || r->stage[0] == '\0')
			snprintf(text, sizeof(text), "%s", rr->text ? rr->text : "");
		else
			snprintf(text, sizeof(text), "%s (%s %s)", rr->text ? rr->text : "",
				 r->local ? "at" : "in reply to", r->stage);
		delivery_outcome(j->d, i, outcome_of(code),
				 rr->enhanced[0] ? rr->enhanced : default_dsn(code), text, j->relay);
		struct queue_rcpt *q = &j->d->msg->rcpts[j->d->rcpt[i]];
		rg_strlcpy(q->tls, j->tls, sizeof(q->tls));
		/* RFC 3461 5.2.2: a next hop without DSN cannot report success */
		q->relayed_no_dsn = j->o != NULL && !smtp_out_caps(j->o)->dsn;
	}
}

/* stale - a reused connection failed before the message went out: the
 * server had closed it or said 421 meanwhile. Not the message's fault. */
static bool stale(const struct job *j, const struct smtp_result *r)
{
	return j->reused && r->kind != SR_DONE && r->try_next_address &&
	       (r->kind == SR_CONN_FAIL || strcmp(r->stage, "RSET") == 0 ||
		strcmp(r->stage, "MAIL") == 0);
}

static void on_sent(struct smtp_out *o, const struct smtp_result *r, void *arg)
{
	struct job *j = arg;
	(void)o;
	if (stale(j, r)) {
		hop_close(j->st->pool, j->o);
		j->o = NULL;
		j->reused = false;
		resolve(j); /* afresh, with a new connection */
		return;
	}
	/* every recipient has its own fate: its RCPT reply, or for those accepted
	 * the reply to DATA or the end of data, or the failure that ended it */
	rcpt_results(j, r);
	job_finish(j);
}

static void start_send(struct job *j)
{
	free(j->rcpts);
	j->rcpts = xcalloc(j->d->n_rcpt, sizeof(*j->rcpts));
	for (size_t i = 0; i < j->d->n_rcpt; i++) {
		const struct queue_rcpt *r = &j->d->msg->rcpts[j->d->rcpt[i]];
		j->rcpts[i] = (struct smtp_out_rcpt){r->orig, r->notify, r->orcpt};
	}
	const struct queue_msg *m = j->d->msg;
	j->msg = (struct smtp_out_msg){
		.sender = m->sender, .rcpts = j->rcpts, .n_rcpts = j->d->n_rcpt,
		.data = j->text->body.data ? j->text->body.data : "", .len = j->text->body.len,
		.eightbit = j->eightbit, .ret = m->dsn_ret, .envid = m->dsn_envid,
	};
	smtp_out_send(j->o, &j->msg, on_sent, j);
}

/* ---- the transport interface ---- */

static void smtp_deliver(struct transport *t, struct delivery *d)
{
	struct smtp_transport *st = (struct smtp_transport *)t;
	struct dest *dest = (struct dest *)hop_dest_get(st->pool, d->route.key);
	if (st->pool->stopping) {
		d->done(d); /* untried: tried again after the next start */
		return;
	}
	if (time(NULL) < dest->suspended_until) {
		delivery_outcome_all(d, RCPT_DEFERRED, "4.4.1", dest->suspended_why, NULL);
		d->done(d);
		return;
	}
	hop_wait(&dest->hop, d);
	dest_kick(st, dest);
}

static bool smtp_idle(const struct transport *t)
{
	return ((const struct smtp_transport *)t)->jobs == NULL;
}

/* smtp_stop - waiting jobs go back untried; cached connections are closed. */
static void smtp_stop(struct transport *t)
{
	hop_pool_stop(((struct smtp_transport *)t)->pool);
}

/* smtp_resume - a flush means "try now": no destination stays suspended. */
static void smtp_resume(struct transport *t)
{
	struct smtp_transport *st = (struct smtp_transport *)t;
	for (struct hop_dest *h = st->pool->dests; h != NULL; h = h->next)
		((struct dest *)h)->suspended_until = 0;
}

static void smtp_free(struct transport *t)
{
	struct smtp_transport *st = (struct smtp_transport *)t;
	st->pool->stopping = true;
	workers_free(st->loader);
	while (st->jobs != NULL) {
		struct job *j = st->jobs;
		smtp_out_abort(j->o);
		smtp_out_abort(j->opening);
		job_free(j); /* the message stays queued */
	}
	hop_pool_free(st->pool);
	SSL_CTX_free(st->tls_ctx);
	tlsmem_free(st->mem);
	sts_free(st->sts);
	tlsrpt_sender_free(st->rpt_sender);
	tlsrpt_free(st->rpt);
	free(st);
}

struct transport *transport_smtp_new(const struct smtp_transport_env *env, char *err,
				     size_t errlen)
{
	const struct config *cfg = env->cfg;
	SSL_CTX *ctx = smtpc_tls_verify_ctx(cfg->smtp_tls_CAfile, cfg->smtp_tls_CApath, err,
					    errlen);
	if (ctx == NULL)
		return NULL;
	struct tlsmem *mem = NULL;
	if (cfg->smtp_tls_memory_lifetime > 0 &&
	    (mem = tlsmem_open(env->base, cfg->queue_directory, err, errlen)) == NULL) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (mem != NULL)
		tlsmem_limit(mem, cfg->smtp_tls_memory_lifetime, 0, time(NULL));
	struct sts *sts = NULL;
	struct sts_opts so = {cfg->queue_directory, cfg->smtp_mta_sts_CAfile,
			      cfg->smtp_mta_sts_https_port,
			      (unsigned)cfg->smtp_mta_sts_recheck_time};
	if (cfg->smtp_mta_sts && (sts = sts_new(env->base, env->dns, &so, err, errlen)) == NULL) {
		tlsmem_free(mem);
		SSL_CTX_free(ctx);
		return NULL;
	}
	struct smtp_transport *st = xcalloc(1, sizeof(*st));
	st->mem = mem;
	st->sts = sts;
	if (cfg->smtp_tls_reporting) {
		st->rpt = tlsrpt_new(time(NULL));
		st->rpt_sender = tlsrpt_sender_new(env->base, env->dns, cfg, st->rpt);
	}
	st->t = (struct transport){"smtp", smtp_deliver, smtp_idle, smtp_stop, smtp_resume,
				   smtp_free};
	st->env = *env;
	st->tls_ctx = ctx;
	st->loader = workers_new(env->base, LOADER_THREADS);
	st->pool = hop_pool_new(env->base, sizeof(struct dest), SIZE_MAX);
	return &st->t;
}
