/*
 * session_msgauth.c - SPF, DKIM and DMARC for each message (see
 * session_msgauth.h).
 *
 * DESCRIPTION
 *	One struct ma_tx per transaction (session_tx_set_data) carries the
 *	results from MAIL to the end of DATA:
 *	    MAIL       spf_check_start() on the loop; tx->spf for the policy
 *	    stage 1    (worker) the header block: msg_headers_parse, the DKIM
 *	               signatures, the From: field; then (loop) the key TXT
 *	               records and the DMARC record via c-ares
 *	    stage 2    (worker) the body through DKIM verification (and signing
 *	               for trusted clients: a login only for a From: domain it
 *	               owns), dmarc_evaluate, the header fields and the
 *	               disposition
 *	The text is read from memory, or streamed from the spool file for a
 *	large message (msgauth_text.c), never held whole.
 */
#include "smtp/session_msgauth.h"
#include "smtp/session_priv.h"
#include "smtp/msgauth_text.h"
#include "smtp/server.h"
#include "address/address.h"
#include "dns/dns.h"
#include "msgauth/authres.h"
#include "msgauth/dkim.h"
#include "msgauth/dmarc.h"
#include "msgauth/from.h"
#include "msgauth/header.h"
#include "msgauth/spf.h"
#include "msgauth/spf_dns.h"
#include "policy/policy.h"
#include "util/log.h"
#include "util/util.h"

#include <openssl/evp.h>

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MA_SPF_TIMEOUT_MS 20000 /* MAIL waits at most this long for SPF */
#define MA_MAX_SIGN 2           /* RSA + Ed25519 */

/* A signing table and the transactions that use it: a reload puts a new one
 * in place, and the old one is freed when its last transaction ends. The
 * count is touched on the loop only (MAIL and the end of a transaction). */
struct msgauth_signing {
	struct dkim_signing_table *table; /* NULL: no dkim_signing_table */
	char *path;                       /* the dkim_signing_table value */
	struct stat st;                   /* the table file as it was loaded */
	size_t refs;
};

/* What the hooks share: set on the loop at start-up (the table also by a
 * reload, session_msgauth_apply). */
static struct {
	struct dns *dns;
	struct msgauth_signing *signing;
	char authserv_id[256];
	bool active;
} ma;

struct ma_key {
	struct ma_tx *t;
	size_t i;
	struct dns_query *q;
};

struct ma_tx {
	struct session *s;
	const struct config *cfg;          /* the session's (it outlives the transaction) */
	const struct addr_domains *domains; /* ours, for smtpd_sender_login_maps */
	struct msgauth_signing *signing;   /* held until the transaction ends */
	bool authenticated, trusted, enforce;
	bool checked;                      /* SPF, DKIM verification, DMARC (ma_checks) */
	bool pickup, pickup_any;           /* a local user on the pickup socket; root */
	char myhostname[256];
	/* SPF, at MAIL */
	struct spf_check *spf_check;
	bool spf_starting, spf_known;
	struct spf_outcome spf;
	/* the end of data */
	struct session_eod *e;
	bool h_ok;
	struct msg_headers h;
	struct dkim_verify *v;
	struct ma_key *keys;
	size_t nkeys, pending;
	bool lookups_starting;
	size_t from_fields;
	struct from_result from;
	struct dmarc_lookup *dl;
	bool dmarc_asked, disc_done;
	struct dmarc_discovery disc;
	const char *skip; /* why the checks at the end of data did not run */
};

/* ---- the signing table ---- */

static void signing_unref(struct msgauth_signing *g)
{
	if (g == NULL || --g->refs > 0)
		return;
	dkim_signing_table_free(g->table);
	free(g->path);
	free(g);
}

static struct msgauth_signing *signing_ref(struct msgauth_signing *g)
{
	if (g != NULL)
		g->refs++;
	return g;
}

/* signing_load - the table at path (keys included), or one without keys for
 * an empty path. NULL with err ("file:line: ...") when a line is broken. */
static struct msgauth_signing *signing_load(const char *path, char *err, size_t errlen)
{
	struct msgauth_signing *g = xcalloc(1, sizeof(*g));
	g->path = xstrdup(path);
	g->refs = 1;
	if (path[0] == '\0')
		return g;
	/* stat first: a change after it is seen by the next reload */
	if (stat(path, &g->st) != 0)
		memset(&g->st, 0, sizeof(g->st));
	g->table = dkim_signing_table_load(path, err, errlen);
	if (g->table == NULL) {
		signing_unref(g);
		return NULL;
	}
	return g;
}

/* signing_changed - does path name another table than the running one, or
 * has its file changed (inode, size, modification time) since it was read? */
static bool signing_changed(const struct msgauth_signing *run, const char *path)
{
	if (run == NULL || strcmp(run->path, path) != 0)
		return true;
	struct stat st;
	if (path[0] == '\0')
		return false;
	if (stat(path, &st) != 0)
		return true; /* gone: loading it says why */
	return st.st_dev != run->st.st_dev || st.st_ino != run->st.st_ino ||
	       st.st_size != run->st.st_size || st.st_mtim.tv_sec != run->st.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != run->st.st_mtim.tv_nsec;
}

/* ---- the transaction's data ---- */

static void ma_tx_free(void *data)
{
	struct ma_tx *t = data;
	signing_unref(t->signing);
	if (t->spf_check != NULL)
		spf_check_cancel(t->spf_check);
	for (size_t i = 0; i < t->nkeys; i++)
		if (t->keys[i].q != NULL)
			dns_cancel(t->keys[i].q);
	if (t->dl != NULL)
		dmarc_lookup_cancel(t->dl);
	free(t->keys);
	dkim_verify_free(t->v);
	if (t->h_ok)
		msg_headers_free(&t->h);
	free(t);
}

/* ma_checks - loopback clients are not checked unless DNS servers are named
 * (as for their names: tests and local tools must not query the world). */
static bool ma_checks(const struct session *s)
{
	return !(ip_is_loopback(&s->client.ip) && s->cfg->dns_servers[0] == '\0');
}

/* ma_concerns - does the transaction need our data: checks, or signing, which
 * asks no DNS (a webmail or the pickup socket on loopback is signed too)? */
static bool ma_concerns(const struct session *s, bool trusted)
{
	if (!ma.active || !s->cfg->smtpd_message_authentication)
		return false;
	return ma_checks(s) || (trusted && ma.signing != NULL && ma.signing->table != NULL);
}

/* ---- SPF at MAIL ---- */

static void spf_log(const struct ma_tx *t)
{
	log_ev(LOG_INFO, "spf", {"session", t->s->id}, {"client", t->s->ip_text},
	       {"result", spf_result_name(t->spf.result)}, {"identity", t->spf.identity},
	       {"domain", t->spf.domain}, {"problem", t->spf.problem});
}

static void spf_done(void *arg, const struct spf_outcome *o)
{
	struct ma_tx *t = arg;
	t->spf = *o;
	t->spf_known = true;
	t->spf_check = NULL;
	t->s->tx->spf = o->result;
	spf_log(t);
	if (!t->spf_starting)
		session_resume_mail(t->s);
}

/* spf_cancel - the client left (the transaction goes with it), or MAIL
 * waited too long: then the result is temperror, as RFC 7208 4.4 says. */
static void spf_cancel(void *arg, bool timed_out)
{
	struct ma_tx *t = arg;
	if (t->spf_check != NULL)
		spf_check_cancel(t->spf_check);
	t->spf_check = NULL;
	if (!timed_out)
		return;
	t->spf.result = SPF_TEMPERROR;
	rg_strlcpy(t->spf.problem, "DNS timeout", sizeof(t->spf.problem));
	t->spf_known = true;
	t->s->tx->spf = SPF_TEMPERROR;
	spf_log(t);
}

/* spf_defaults - what Received-SPF names when the check never answers. */
static void spf_defaults(struct ma_tx *t, const struct session_mail_facts *f)
{
	const char *at = strrchr(f->sender, '@');
	bool helo = f->sender[0] == '\0';
	rg_strlcpy(t->spf.identity, helo ? "helo" : "mailfrom", sizeof(t->spf.identity));
	rg_strlcpy(t->spf.domain, helo ? f->helo : at ? at + 1 : f->sender, sizeof(t->spf.domain));
	rg_strlcpy(t->spf.client_ip, f->ip_text, sizeof(t->spf.client_ip));
	rg_strlcpy(t->spf.envelope_from, f->sender, sizeof(t->spf.envelope_from));
	rg_strlcpy(t->spf.helo, f->helo, sizeof(t->spf.helo));
	rg_strlcpy(t->spf.receiver, t->myhostname, sizeof(t->spf.receiver));
}

/* mail_check - the MAIL hook: SPF of the sender (not for authenticated
 * submissions: their "auth" is what Authentication-Results records). */
static bool mail_check(struct session *s, const struct session_mail_facts *f,
		       struct session_wait *wait, void *arg)
{
	(void)arg;
	bool trusted = f->authenticated || config_in_mynetworks(s->cfg, f->ip);
	if (!ma_concerns(s, trusted))
		return false; /* no data: the stages are skipped (stages_need_data) */
	struct ma_tx *t = xcalloc(1, sizeof(*t));
	t->s = s;
	t->cfg = s->cfg;
	t->domains = s->domains;
	t->signing = signing_ref(ma.signing);
	t->pickup = s->client.pickup;
	t->pickup_any = s->client.pickup_any_sender;
	t->authenticated = f->authenticated;
	t->trusted = trusted;
	t->checked = ma_checks(s);
	t->enforce = !t->trusted && s->cfg->smtpd_dmarc_enforce;
	rg_strlcpy(t->myhostname, s->cfg->myhostname, sizeof(t->myhostname));
	session_tx_set_data(s, t, ma_tx_free);
	if (f->authenticated || !t->checked)
		return false;
	spf_defaults(t, f);
	t->spf_starting = true;
	t->spf_check = spf_check_start(&spf_dns_resolver, ma.dns, f->ip, f->sender, f->helo,
				       t->myhostname, spf_done, t);
	t->spf_starting = false;
	if (t->spf_check == NULL)
		return false; /* known at once (spf_done ran) */
	*wait = (struct session_wait){spf_cancel, t, MA_SPF_TIMEOUT_MS};
	return true;
}

/* ---- stage 1: the header block, then the DNS lookups on the loop ---- */

/* from_field - the From: field(s): how many, and the first one parsed. */
static void from_field(struct ma_tx *t)
{
	t->from_fields = msg_headers_count(&t->h, "From");
	long i = msg_headers_next(&t->h, "From", -1);
	memset(&t->from, 0, sizeof(t->from));
	t->from.status = FROM_EMPTY;
	if (i >= 0)
		from_parse(t->h.f[i].value, strlen(t->h.f[i].value), &t->from);
}

/* refuse_unparsed - a header we cannot parse has no author domain DMARC can
 * check, yet the reader's mail program still shows its From: (a line that is
 * no field ends the header for it): refused where DMARC would be enforced. */
static void refuse_unparsed(const struct ma_tx *t, struct session_eod *e)
{
	log_ev(LOG_INFO, "dmarc", {"session", e->msg->session}, {"client", e->client_ip},
	       {"result", "permerror"}, {"action", t->enforce ? "reject" : "none"},
	       {"reason", t->skip});
	if (t->enforce)
		snprintf(e->reply, sizeof(e->reply),
			 "550 5.7.1 Message rejected: the header cannot be parsed (%s), so its "
			 "author domain cannot be checked (DMARC)", t->skip);
}

static void stage_headers(struct session_eod *e, void *arg)
{
	(void)arg;
	struct ma_tx *t = e->tx_data;
	if (t == NULL)
		return;
	t->e = e;
	char why[128];
	struct strbuf head;
	strbuf_init(&head);
	if (!msgauth_text_header(e, &head, why, sizeof(why))) {
		t->skip = "the message could not be read";
		log_ev(LOG_WARNING, "msgauth-skipped", {"session", e->msg->session},
		       {"reason", why});
		strbuf_free(&head);
		return;
	}
	enum msg_hdr_status st = msg_headers_parse(head.data, head.len, &t->h);
	strbuf_free(&head);
	if (st != MSG_HDR_OK) {
		t->skip = msg_hdr_status_text(st);
		if (t->checked)
			refuse_unparsed(t, e);
		return;
	}
	t->h_ok = true;
	if (t->checked) /* else the header is parsed for signing only */
		t->v = dkim_verify_new(&t->h, DKIM_MAX_SIGS_DEFAULT, time(NULL));
	from_field(t);
}

/* lookup_done - one DNS answer is in: the next stage when it was the last. */
static void lookup_done(struct ma_tx *t)
{
	if (--t->pending == 0 && !t->lookups_starting)
		session_eod_resume(t->e);
}

/* pick_key - of several TXT records, the one that looks like a DKIM key. */
static const char *pick_key(const struct dns_lookup_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (strstr(r->names[i], "p=") != NULL)
			return r->names[i];
	return r->n > 0 ? r->names[0] : NULL;
}

static void on_key(void *arg, const struct dns_lookup_result *r)
{
	struct ma_key *k = arg;
	k->q = NULL;
	const char *txt = r->status == DNS_LOOKUP_OK ? pick_key(r) : NULL;
	enum dkim_key_lookup st = txt != NULL ? DKIM_KEY_LOOKUP_OK
				  : r->status == DNS_LOOKUP_SERVFAIL || r->status == DNS_LOOKUP_TIMEOUT
					  ? DKIM_KEY_LOOKUP_TEMP : DKIM_KEY_LOOKUP_NONE;
	dkim_verify_set_key(k->t->v, k->i, txt, st);
	lookup_done(k->t);
}

/* The DMARC module's TXT lookups, on dns_lookup (cached by TTL, rcode kept). */
struct ma_txt {
	dmarc_txt_cb cb;
	void *arg;
	struct dns_query *q;
};

static void on_dmarc_txt(void *arg, const struct dns_lookup_result *r)
{
	struct ma_txt *w = arg;
	size_t lens[128];
	size_t n = r->status == DNS_LOOKUP_OK ? (r->n < 128 ? r->n : 128) : 0;
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(r->names[i]);
	enum dmarc_dns st = r->status == DNS_LOOKUP_OK || r->status == DNS_LOOKUP_NODATA
				    ? DMARC_DNS_OK
			    : r->status == DNS_LOOKUP_NXDOMAIN ? DMARC_DNS_NXDOMAIN : DMARC_DNS_TEMPFAIL;
	dmarc_txt_cb cb = w->cb;
	void *cb_arg = w->arg;
	free(w);
	cb(cb_arg, st, r->names, lens, n);
}

static void *dmarc_txt_start(void *ctx, const char *name, dmarc_txt_cb cb, void *arg)
{
	struct ma_txt *w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	w->q = dns_lookup(ctx, DNS_LOOKUP_TXT, name, on_dmarc_txt, w);
	return w;
}

static void dmarc_txt_cancel(void *ctx, void *handle)
{
	struct ma_txt *w = handle;
	(void)ctx;
	dns_cancel(w->q);
	free(w);
}

static void on_discovered(void *arg, const struct dmarc_discovery *d)
{
	struct ma_tx *t = arg;
	t->disc = *d;
	t->disc_done = true;
	t->dl = NULL;
	lookup_done(t);
}

/* start_dmarc - the policy of the author domain (not for authenticated
 * submissions: without SPF their DMARC verdict would be noise). */
static void start_dmarc(struct ma_tx *t, const struct dmarc_resolver *res)
{
	if (t->authenticated || t->from.status != FROM_OK || t->from_fields != 1)
		return;
	t->dmarc_asked = true;
	t->pending++;
	t->dl = dmarc_lookup_start(res, t->from.domain[0], on_discovered, t);
}

static bool loop_lookups(struct session_eod *e, void *arg)
{
	(void)arg;
	struct ma_tx *t = e->tx_data;
	if (t == NULL || !t->h_ok || !t->checked)
		return false;
	static struct dmarc_resolver res = {dmarc_txt_start, dmarc_txt_cancel, NULL};
	res.ctx = ma.dns;
	t->lookups_starting = true;
	t->nkeys = dkim_verify_nkeys(t->v);
	t->keys = xcalloc(t->nkeys + 1, sizeof(*t->keys));
	t->pending = t->nkeys;
	for (size_t i = 0; i < t->nkeys; i++) {
		t->keys[i] = (struct ma_key){t, i, NULL};
		t->keys[i].q = dns_lookup(ma.dns, DNS_LOOKUP_TXT, dkim_verify_key_name(t->v, i),
					  on_key, &t->keys[i]);
	}
	start_dmarc(t, &res);
	t->lookups_starting = false;
	return t->pending > 0;
}

/* ---- stage 2: the body, the verdicts, the header fields ---- */

struct body_sinks {
	struct dkim_verify *v;
	struct dkim_sign *sign[MA_MAX_SIGN];
	size_t nsign;
};

static void feed(void *arg, const char *p, size_t n)
{
	struct body_sinks *b = arg;
	if (b->v != NULL)
		dkim_verify_body(b->v, p, n);
	for (size_t i = 0; i < b->nsign; i++)
		dkim_sign_body(b->sign[i], p, n);
}

/* signing_author - the address whose domain is signed: From:'s (its local
 * part when it names one mailbox), else the envelope sender's. The domain, or
 * NULL; local is "" when unknown. */
static const char *signing_author(const struct ma_tx *t, const struct session_eod *e,
				  char *local, size_t size)
{
	local[0] = '\0';
	if (t->from.status == FROM_OK && t->from_fields == 1) {
		if (t->from.mailboxes == 1)
			rg_strlcpy(local, t->from.local, size);
		return t->from.domain[0];
	}
	const char *at = strrchr(e->msg->sender, '@');
	if (at == NULL)
		return NULL;
	size_t n = (size_t)(at - e->msg->sender);
	if (n < size) {
		memcpy(local, e->msg->sender, n);
		local[n] = '\0';
	}
	return at + 1;
}

/* login_domain - the domain a login is named in (alice@a.example: a.example);
 * a local user's on the pickup socket is myorigin, as sendmail gives it
 * user@myorigin; a bare SASL login has none. */
static const char *login_domain(const struct ma_tx *t, const char *login)
{
	const char *at = strrchr(login, '@');
	if (at != NULL && at[1] != '\0')
		return at + 1;
	return t->pickup ? t->cfg->myorigin : NULL;
}

/* login_owns - does LOGIN own the author local@domain: its own domain, or an
 * address smtpd_sender_login_maps gives it (the rule of
 * reject_sender_login_mismatch, policy_login_owns, on the resolved address)? */
static bool login_owns(const struct ma_tx *t, const char *login, const char *local,
		       const char *domain)
{
	const char *own = login_domain(t, login);
	if (own != NULL && rg_strcasecmp(own, domain) == 0)
		return true;
	char path[ADDR_PATH_MAX + 8], err[128];
	if (local[0] == '\0' ||
	    (size_t)snprintf(path, sizeof(path), "<%s@%s>", local, domain) >= sizeof(path))
		return false;
	struct address a;
	const char *params = NULL;
	if (address_parse(path, &a, &params, err, sizeof(err)) != ADDR_OK || params[0] != '\0')
		return false;
	struct addr_resolution r;
	address_resolve(&a, t->domains, &r);
	return !r.routed && rg_strcasecmp(r.domain, domain) == 0 &&
	       policy_login_owns(t->cfg, login, r.local, r.domain, r.cls == ADDR_CLASS_LOCAL);
}

/* may_sign - may this client have mail signed for the author's domain? A
 * mynetworks host may for any (a trusted host, like rspamd's sign_networks);
 * a login (SASL, or a local user on the pickup socket) only for a domain it
 * owns, as rspamd does unless allow_username_mismatch: on a host of several
 * domains a user of a.example must not get b.example's signature. root on the
 * pickup socket may use any sender, so any domain. */
static bool may_sign(const struct ma_tx *t, const struct session_eod *e, const char *local,
		     const char *domain)
{
	if (!t->authenticated || t->pickup_any || t->cfg->dkim_sign_any_from_domain)
		return true;
	if (e->login != NULL && login_owns(t, e->login, local, domain))
		return true;
	log_ev(LOG_INFO, "dkim-not-signed", {"session", e->msg->session}, {"id", e->msg->id},
	       {"login", e->login != NULL ? e->login : ""}, {"domain", domain},
	       {"reason", "the login does not own the From: domain"});
	return false;
}

/* start_signing - a signer per key of the author's domain (trusted clients). */
static void start_signing(struct ma_tx *t, struct session_eod *e, struct body_sinks *b)
{
	char local[FROM_LOCAL_MAX + 1];
	const char *domain = signing_author(t, e, local, sizeof(local));
	if (!t->trusted || t->signing == NULL || t->signing->table == NULL || domain == NULL)
		return;
	const struct dkim_signing_entry *ent[MA_MAX_SIGN];
	size_t n = dkim_signing_table_find(t->signing->table, domain, ent, MA_MAX_SIGN);
	if (n == 0 || !may_sign(t, e, local, domain))
		return;
	for (size_t i = 0; i < n; i++) {
		/* "*.example.com" signs as example.com: one key for every subdomain */
		const char *d = strncmp(ent[i]->domain, "*.", 2) == 0 ? ent[i]->domain + 2
								       : ent[i]->domain;
		b->sign[b->nsign++] = dkim_sign_new(ent[i]->key, d, ent[i]->selector, &t->h,
						    time(NULL));
	}
}

/* finish_signing - the DKIM-Signature fields go on top. */
static void finish_signing(struct session_eod *e, struct body_sinks *b)
{
	for (size_t i = 0; i < b->nsign; i++) {
		char why[256];
		char *field = dkim_sign_finish(b->sign[i], why, sizeof(why));
		if (field == NULL) {
			log_ev(LOG_WARNING, "dkim-sign-failed", {"session", e->msg->session},
			       {"reason", why});
			continue;
		}
		strbuf_append(&e->prepend, field, strlen(field));
		log_ev(LOG_INFO, "dkim-signed", {"session", e->msg->session}, {"id", e->msg->id});
		free(field);
	}
}

/* sample - DMARC pct= sampling from the queue id: stable per message. */
static unsigned sample(const char *id)
{
	uint32_t h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % 100;
}

static void dmarc_verdict(const struct ma_tx *t, const struct session_eod *e,
			  struct dmarc_verdict *out)
{
	struct dmarc_dkim_sig sigs[DKIM_MAX_SIGS_DEFAULT];
	size_t n = 0;
	for (size_t i = 0; t->v != NULL && i < dkim_verify_nresults(t->v) && n < RG_ARRAY_LEN(sigs);
	     i++) {
		const struct dkim_sig_result *r = dkim_verify_result(t->v, i);
		sigs[n++] = (struct dmarc_dkim_sig){r->d, r->result == DKIM_PASS};
	}
	struct dmarc_input in = {&t->from, t->from_fields, t->spf.domain,
				 t->spf_known && t->spf.result == SPF_PASS, sigs, n,
				 sample(e->msg->id)};
	dmarc_evaluate(&in, t->disc_done ? &t->disc : NULL, out);
}

/* authres - our Authentication-Results field. */
static void authres(const struct ma_tx *t, const struct session_eod *e,
		    const struct dmarc_verdict *dv, bool dmarc, struct strbuf *out)
{
	struct authres_dkim dk[DKIM_MAX_SIGS_DEFAULT];
	size_t n = 0;
	for (size_t i = 0; t->v != NULL && i < dkim_verify_nresults(t->v) && n < RG_ARRAY_LEN(dk);
	     i++) {
		const struct dkim_sig_result *r = dkim_verify_result(t->v, i);
		dk[n++] = (struct authres_dkim){dkim_result_name(r->result), r->d[0] ? r->d : NULL,
						r->s[0] ? r->s : NULL, r->b[0] ? r->b : NULL,
						r->reason[0] ? r->reason : NULL};
	}
	char reason[64] = "";
	if (dmarc && dv->policy != DMARC_P_UNSET)
		snprintf(reason, sizeof(reason), "%s=%s", dv->policy_tag,
			 dmarc_policy_name(dv->policy));
	bool helo = t->spf.identity[0] == 'h';
	struct authres_fields f = {
		t->myhostname, e->login,
		t->spf_known ? spf_result_name(t->spf.result) : NULL,
		t->spf_known && !helo && e->msg->sender[0] ? e->msg->sender : NULL,
		t->spf_known && helo ? t->spf.domain : NULL,
		dk, n,
		dmarc ? dmarc_result_name(dv->result) : NULL,
		dmarc && dv->header_from[0] ? dv->header_from : NULL,
		reason[0] ? reason : NULL,
	};
	if (!authres_format(&f, out))
		log_ev(LOG_ERROR, "bug", {"reason", "Authentication-Results not formatted"});
}

/* unsure - did a check that could have passed the message fail only for now: an
 * SPF or DKIM temperror (a DNS failure) on a domain aligned with the author's?
 * Then a reject would refuse mail that may be genuine (forwarded mail relies on
 * DKIM): it is deferred instead, and the sender tries again. */
static bool unsure(const struct ma_tx *t, const struct dmarc_verdict *dv)
{
	if (t->spf_known && t->spf.result == SPF_TEMPERROR &&
	    dmarc_aligned(t->spf.domain, dv->header_from, DMARC_ALIGN_RELAXED))
		return true;
	for (size_t i = 0; t->v != NULL && i < dkim_verify_nresults(t->v); i++) {
		const struct dkim_sig_result *r = dkim_verify_result(t->v, i);
		if (r->result == DKIM_TEMPERROR &&
		    dmarc_aligned(r->d, dv->header_from, DMARC_ALIGN_RELAXED))
			return true;
	}
	return false;
}

/* dispose - what DMARC's disposition does to the message, and the log line. */
static void dispose(const struct ma_tx *t, struct session_eod *e, const struct dmarc_verdict *dv)
{
	const char *action = "none";
	if (t->from_fields == 0 && dv->disposition != DMARC_DISP_NONE) {
		/* no author to impersonate: recorded (dmarc=fail), not refused; a broken
		 * or doubled From: is refused (the CVE-2019-16378 class) */
		action = "none (no From: field)";
	} else if (dv->disposition == DMARC_DISP_REJECT && t->enforce && !dv->header_from[0]) {
		action = "reject";
		snprintf(e->reply, sizeof(e->reply),
			 "550 5.7.1 Message rejected: the From: header field does not name "
			 "exactly one author domain (DMARC)");
	} else if (dv->disposition == DMARC_DISP_REJECT && t->enforce && unsure(t, dv)) {
		action = "defer (a DNS lookup failed)";
		snprintf(e->reply, sizeof(e->reply),
			 "451 4.7.5 Message deferred: the DMARC policy of %s says p=reject and a "
			 "DNS lookup that could have passed it failed; try again later",
			 dv->header_from);
	} else if (dv->disposition == DMARC_DISP_REJECT && t->enforce) {
		action = "reject";
		snprintf(e->reply, sizeof(e->reply),
			 "550 5.7.1 Message rejected: the DMARC policy of %s says p=reject "
			 "and the message fails DMARC", dv->header_from);
	} else if (dv->disposition == DMARC_DISP_QUARANTINE && t->enforce) {
		action = "quarantine";
		e->junk = true;
	} else if (dv->disposition != DMARC_DISP_NONE) {
		action = t->trusted ? "none (trusted client)" : "none (smtpd_dmarc_enforce = no)";
	}
	log_ev(LOG_INFO, "dmarc", {"session", e->msg->session}, {"client", e->client_ip},
	       {"from", dv->header_from}, {"result", dmarc_result_name(dv->result)},
	       {"disposition", dmarc_disposition_name(dv->disposition)}, {"action", action},
	       {"reason", dv->reason});
}

static void log_dkim(const struct ma_tx *t, const struct session_eod *e)
{
	for (size_t i = 0; t->v != NULL && i < dkim_verify_nresults(t->v); i++) {
		const struct dkim_sig_result *r = dkim_verify_result(t->v, i);
		log_ev(LOG_INFO, "dkim", {"session", e->msg->session},
		       {"result", dkim_result_name(r->result)}, {"d", r->d}, {"s", r->s},
		       {"reason", r->reason});
	}
}

static void stage_verify(struct session_eod *e, void *arg)
{
	(void)arg;
	struct ma_tx *t = e->tx_data;
	if (t == NULL)
		return;
	struct body_sinks b = {t->v, {NULL}, 0};
	if (t->h_ok) {
		start_signing(t, e, &b);
		char why[128];
		if (!msgauth_text_body(e, t->h.body_offset, feed, &b, why, sizeof(why))) {
			log_ev(LOG_WARNING, "msgauth-body-unreadable", {"session", e->msg->session},
			       {"reason", why});
			for (size_t i = 0; i < b.nsign; i++)
				dkim_sign_free(b.sign[i]);
			b.nsign = 0;
		}
		if (t->v != NULL)
			dkim_verify_finish(t->v);
		finish_signing(e, &b);
		log_dkim(t, e);
	}
	if (!t->checked)
		return; /* signed only: no results to record */
	struct dmarc_verdict dv = {0};
	bool dmarc = t->h_ok && !t->authenticated;
	if (dmarc) {
		dmarc_verdict(t, e, &dv);
		dispose(t, e, &dv);
	}
	authres(t, e, &dv, dmarc, &e->prepend);
	if (t->spf_known) {
		char field[2048];
		size_t n = spf_received_header(&t->spf, field, sizeof(field));
		strbuf_append(&e->prepend, field, n);
		strbuf_append(&e->prepend, "\r\n", 2);
	}
}

/* ---- forged Authentication-Results ---- */

/* drop_forged - a field that claims our authserv-id did not come from us
 * (RFC 8601 5; the OpenDMARC CVE-2020-12272 class). The session hands over
 * the whole field, so a claim on a continuation line counts; a field too long
 * to hold whole is dropped when it is an Authentication-Results field at all
 * (authres_field_forged). Received-SPF: and ARC fields are left alone: ours
 * goes on top, and ARC sets are a chain another host sealed. */
static bool drop_forged(const struct session *s, const char *field, size_t n, bool whole,
			void *arg)
{
	(void)arg;
	if (!s->cfg->smtpd_message_authentication)
		return false;
	bool forged = authres_field_forged(field, n, whole, ma.authserv_id);
	if (forged)
		log_ev(LOG_INFO, "authres-forged-dropped", {"session", s->id},
		       {"authserv-id", ma.authserv_id}, {"whole", whole ? "yes" : "no"});
	return forged;
}

/* ---- start and stop ---- */

static const struct session_stage stages[] = {
	{"msgauth-headers", stage_headers, NULL, loop_lookups},
	{"msgauth-verify", stage_verify, NULL, NULL},
};
static const struct session_hooks hooks = {mail_check, NULL, stages, RG_ARRAY_LEN(stages),
					   drop_forged, NULL, true};

bool session_msgauth_load(const struct config *cfg, char *err, size_t errlen)
{
	const char *path = cfg->dkim_signing_table != NULL ? cfg->dkim_signing_table : "";
	struct msgauth_signing *g = signing_load(path, err, errlen);
	if (g == NULL)
		return false;
	signing_unref(ma.signing);
	ma.signing = g;
	return true;
}

bool session_msgauth_prepare(const struct config *next, struct msgauth_signing **out, char *err,
			     size_t errlen)
{
	const char *path = next->dkim_signing_table != NULL ? next->dkim_signing_table : "";
	*out = NULL;
	if (!signing_changed(ma.signing, path))
		return true; /* the running table stays: its keys are not read again */
	*out = signing_load(path, err, errlen);
	return *out != NULL;
}

void session_msgauth_apply(struct msgauth_signing *next)
{
	if (next == NULL)
		return;
	signing_unref(ma.signing); /* transactions still signing with it keep it */
	ma.signing = next;
	log_ev(LOG_INFO, "dkim-signing-table-loaded",
	       {"table", next->path[0] ? next->path : "(none)"});
}

void session_msgauth_discard(struct msgauth_signing *next)
{
	signing_unref(next);
}

/* session_msgauth_start - the hooks are registered whatever
 * smtpd_message_authentication says: each session reads it from its own
 * configuration, so a reload can turn the checks on or off. */
void session_msgauth_start(const struct config *cfg, struct dns *dns)
{
	const struct session_hooks *now = session_hooks();
	if (now->mail_check != NULL || now->header_drop != NULL)
		return; /* hooks of someone else's (a test's) are registered */
	ma.dns = dns;
	/* myhostname is kept across reloads (server.c keep_running): so is this */
	rg_strlcpy(ma.authserv_id, cfg->myhostname, sizeof(ma.authserv_id));
	ma.active = true;
	session_hooks_set(&hooks);
}

void session_msgauth_stop(void)
{
	if (ma.active)
		session_hooks_set(NULL);
	ma.active = false;
	signing_unref(ma.signing);
	ma.signing = NULL;
	dkim_cleanup(); /* the workers are gone: nothing verifies or signs now */
}
