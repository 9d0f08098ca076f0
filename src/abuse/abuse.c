/*
 * abuse.c - rate limits, exceptions and the lock-out's control commands
 * (see abuse.h).
 *
 * DESCRIPTION
 *	One rate table holds every counter; a key is the limit's letter and
 *	the client's address key ("c:192.0.2.1", "m:2001:db8::") or the login
 *	("M:alice"), so a login cannot collide with an address. A refused
 *	event is not counted: a client slowing down below the limit passes.
 */
#include "abuse/abuse.h"
#include "abuse/hijack.h"
#include "abuse/hijack_state.h"
#include "metrics/events.h"
#include "abuse/rate.h"
#include "abuse/shared.h"
#include "auth/lockout.h"
#include "config/config.h"
#include "control/control.h"
#include "queue/qctl.h"
#include "util/statefile.h"
#include "util/log.h"
#include "util/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define RATE_MAX_KEYS 200000 /* about 100 bytes each: 20 MB at most */
#define SHARED_KNOWN_TTL (90 * 86400) /* a login's known domains in Redis outlive its silence */
#define LEARNT_SAVE_DELAY 10 /* seconds: learnt domains are saved in batches */

/* One rate limit: what it counts, by what, its parameter and its reply. */
struct limit_def {
	enum abuse_event ev;
	bool per_login;
	char letter;
	const char *param;
	const char *code;  /* of the reply; 421 also names the host, as Postfix does */
	const char *what;  /* "too many WHAT from ..." */
};

static const struct limit_def defs[] = {
	{ABUSE_CONNECTION, false, 'c', "smtpd_client_connection_rate_limit", "421 4.7.0",
	 "connections"},
	{ABUSE_AUTH, false, 'a', "smtpd_client_auth_rate_limit", "454 4.7.0", "AUTH commands"},
	{ABUSE_MESSAGE, false, 'm', "smtpd_client_message_rate_limit", "452 4.7.1", "messages"},
	{ABUSE_MESSAGE, true, 'M', "smtpd_sasl_message_rate_limit", "452 4.7.1", "messages"},
	{ABUSE_RECIPIENT, false, 'r', "smtpd_client_recipient_rate_limit", "452 4.7.1",
	 "recipients"},
	{ABUSE_RECIPIENT, true, 'R', "smtpd_sasl_recipient_rate_limit", "452 4.7.1",
	 "recipients"},
};

struct abuse {
	const struct config *cfg;
	const struct config *exc;       /* the exception lists: cfg's, or a reload's */
	struct lockout *lockout;
	struct rate *rate;
	unsigned limits[RG_ARRAY_LEN(defs)];
	unsigned long refused[ABUSE_EVENTS];
	unsigned long cleared;          /* lock-outs lifted by the operator */
	struct hijack *hijack;          /* NULL: every hijack threshold is 0 */
	unsigned long hijack_tripped, hijack_held, hijack_refused;
	void (*release_fn)(void *arg, const char *id);
	void *release_arg;
	struct shared *shared;          /* NULL: shared_state is empty */
	unsigned long shared_locks;     /* lock-outs that came from the shared count */
	struct statefile *file;         /* hijack-state; NULL: shared_state, or no hold */
	struct event *save_timer;       /* learnt domains wait for it */
	unsigned long learnt_seen;      /* hijack_learnt when last handed to the file */
};

static void state_changed(struct abuse *a, bool now);

static unsigned clamp(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

struct abuse *abuse_new(const struct config *cfg, struct lockout *lo)
{
	struct abuse *a = xcalloc(1, sizeof(*a));
	const uint64_t values[] = {
		cfg->smtpd_client_connection_rate_limit, cfg->smtpd_client_auth_rate_limit,
		cfg->smtpd_client_message_rate_limit, cfg->smtpd_sasl_message_rate_limit,
		cfg->smtpd_client_recipient_rate_limit, cfg->smtpd_sasl_recipient_rate_limit,
	};
	_Static_assert(RG_ARRAY_LEN(values) == RG_ARRAY_LEN(defs), "one value per limit");
	for (size_t i = 0; i < RG_ARRAY_LEN(defs); i++)
		a->limits[i] = clamp(values[i]);
	a->cfg = cfg;
	a->exc = cfg;
	a->lockout = lo;
	a->rate = rate_new((unsigned)cfg->anvil_rate_time_unit, RATE_MAX_KEYS);
	struct hijack_limits hl = {
		clamp(cfg->smtpd_sasl_hijack_window), clamp(cfg->smtpd_sasl_hijack_threshold),
		clamp(cfg->smtpd_sasl_hijack_message_threshold),
		clamp(cfg->smtpd_sasl_hijack_wide_message),
		clamp(cfg->smtpd_sasl_hijack_suspend_time), HIJACK_KNOWN_DOMAINS, HIJACK_MAX_LOGINS,
	};
	if (hl.new_domains || hl.messages || hl.wide_message)
		a->hijack = hijack_new(&hl);
	return a;
}

void abuse_free(struct abuse *a)
{
	if (a == NULL)
		return;
	shared_free(a->shared); /* first: pending answers come back to us (-1) */
	if (a->save_timer != NULL && evtimer_pending(a->save_timer, NULL))
		statefile_changed(a->file); /* learnt since the last save */
	if (a->save_timer != NULL)
		event_free(a->save_timer);
	statefile_free(a->file); /* waits for a write in flight, saves what changed */
	rate_free(a->rate);
	hijack_free(a->hijack);
	free(a);
}

/* key_of - the rate key of DEF for C; false when DEF does not apply (no login). */
static bool key_of(const struct limit_def *def, const struct abuse_client *c, char *key,
		   size_t len)
{
	if (def->per_login) {
		if (c->login == NULL || c->login[0] == '\0')
			return false;
		snprintf(key, len, "%c:%s", def->letter, c->login);
		return true;
	}
	char text[RG_IP_STRLEN];
	struct rg_ip k = ip_client_key(c->ip);
	ip_format(&k, text, sizeof(text));
	snprintf(key, len, "%c:%s", def->letter, text);
	return true;
}

/* client_exempt - the client limits skip smtpd_client_event_limit_exceptions;
 * the AUTH rate also skips smtpd_sasl_lockout_exceptions (the owner's own). */
static bool client_exempt(const struct abuse *a, enum abuse_event ev, const struct rg_ip *ip)
{
	const struct config *cfg = a->exc;
	if (config_in_networks(cfg->smtpd_client_event_limit_exceptions,
			       cfg->n_smtpd_client_event_limit_exceptions, ip))
		return true;
	return ev == ABUSE_AUTH && abuse_lockout_exempt(a, ip);
}

/* refuse - the reply, the log line and the counter for one refusal. */
static void refuse(struct abuse *a, const struct limit_def *def, const struct abuse_client *c,
		   unsigned count, char *reply, size_t len)
{
	unsigned limit = a->limits[def - defs], window = (unsigned)a->cfg->anvil_rate_time_unit;
	bool host = def->ev == ABUSE_CONNECTION;
	snprintf(reply, len, "%s%s%s Error: too many %s from %s%s (limit %u per %us); "
		 "try again later", def->code, host ? " " : "", host ? a->cfg->myhostname : "",
		 def->what, def->per_login ? "login " : "",
		 def->per_login ? c->login : c->ip_text, limit, window);
	char n[24], l[24];
	snprintf(n, sizeof(n), "%u", count);
	snprintf(l, sizeof(l), "%u/%us", limit, window);
	mev_rate_limited(def->param);
	log_ev(LOG_WARNING, "rate-limit", {"client", c->ip_text}, {"user", c->login},
	       {"limit", def->param}, {"rate", l}, {"count", n}, {"reply", reply},
	       {"session", c->session});
	a->refused[def->ev]++;
}

/* suspended - a MAIL from a login suspended as hijacked: 454, logged, counted. */
static bool suspended(struct abuse *a, const struct abuse_client *c, time_t now, char *reply,
		      size_t len)
{
	char why[HIJACK_WHY_MAX];
	if (a->hijack == NULL || c->login == NULL || c->login[0] == '\0' ||
	    !hijack_suspended(a->hijack, c->login, now, why, sizeof(why), NULL))
		return false;
	snprintf(reply, len, "454 4.7.0 Error: login %s is suspended: its mail looked like a "
		 "hijacked account's (%s); contact your postmaster", c->login, why);
	log_ev(LOG_WARNING, "hijack-refused", {"client", c->ip_text}, {"user", c->login},
	       {"reason", why}, {"reply", reply}, {"session", c->session});
	a->hijack_refused++;
	mev_hijack("refused");
	return true;
}

static void share_event(struct abuse *a, const char *key, time_t now);

bool abuse_check(struct abuse *a, enum abuse_event ev, const struct abuse_client *c,
		 time_t now, char *reply, size_t len)
{
	if (ev == ABUSE_MESSAGE && !abuse_lockout_exempt(a, c->ip) &&
	    suspended(a, c, now, reply, len))
		return false;
	/* an exempt client skips the login limits too: the owner's own network */
	bool exempt = client_exempt(a, ev, c->ip);
	for (size_t i = 0; i < RG_ARRAY_LEN(defs); i++) {
		char key[RATE_KEY_MAX + 1];
		unsigned count;
		if (defs[i].ev != ev || a->limits[i] == 0 || exempt ||
		    !key_of(&defs[i], c, key, sizeof(key)))
			continue;
		if (!rate_take(a->rate, key, 1, a->limits[i], now, &count)) {
			refuse(a, &defs[i], c, count, reply, len);
			return false;
		}
		share_event(a, key, now);
	}
	return true;
}

/* announce_suspension - LOGIN just tripped (WHY, SOURCE: this host's or
 * every host's count): logged, counted, told to every host. */
static void announce_suspension(struct abuse *a, const char *ip_text, const char *login,
				const char *why, const char *source, const char *session)
{
	char until[24];
	snprintf(until, sizeof(until), "%llus",
		 (unsigned long long)a->cfg->smtpd_sasl_hijack_suspend_time);
	log_ev(LOG_WARNING, "hijack-suspended", {"client", ip_text}, {"user", login},
	       {"reason", why}, {"for", until}, {"source", source},
	       {"action", "mail held; new mail refused; relayguard queue release|delete --login"},
	       {"session", session});
	a->hijack_tripped++;
	mev_hijack("suspended");
	state_changed(a, true);
	if (a->shared)
		shared_suspend(a->shared, login, (unsigned)a->cfg->smtpd_sasl_hijack_suspend_time,
			       why);
}

static void share_hijack(struct abuse *a, const struct abuse_client *c,
			 const char *const *domains, size_t n, time_t now);

bool abuse_hold(struct abuse *a, const struct abuse_client *c, const char *const *domains,
		size_t n, time_t now)
{
	char why[HIJACK_WHY_MAX];
	if (a->hijack == NULL || c->login == NULL || c->login[0] == '\0' ||
	    abuse_lockout_exempt(a, c->ip)) /* the owner's network is never suspended */
		return false;
	bool was = hijack_suspended(a->hijack, c->login, now, NULL, 0, NULL);
	if (!was)
		share_hijack(a, c, domains, n, now); /* before hijack_message learns them */
	if (!hijack_message(a->hijack, c->login, domains, n, now, why, sizeof(why))) {
		state_changed(a, false); /* what it learnt, if anything */
		return false;
	}
	if (!was)
		announce_suspension(a, c->ip_text, c->login, why, "local", c->session);
	log_ev(LOG_WARNING, "hijack-hold", {"client", c->ip_text}, {"user", c->login},
	       {"reason", why}, {"session", c->session});
	a->hijack_held++;
	mev_hijack("held");
	return true;
}

/* ---- shared state ---- */

/* ip_key_text - IP's lock-out key as text (IPv6: the /64 address). */
static void ip_key_text(const struct rg_ip *ip, char *text, size_t len)
{
	struct rg_ip k = ip_client_key(ip);
	ip_format(&k, text, len);
}

/* at_most - SECONDS from Redis, never longer than our own setting LIMIT. */
static unsigned at_most(unsigned seconds, uint64_t limit)
{
	return seconds > limit ? (unsigned)limit : seconds;
}

/* token_ok - T is 1..MAX printable ASCII characters, no space (a login from Redis). */
static bool token_ok(const char *t, size_t max)
{
	size_t n = 0;
	for (; t[n]; n++)
		if (n >= max || (unsigned char)t[n] <= 0x20 || (unsigned char)t[n] >= 0x7f)
			return false;
	return n > 0;
}

/* clean_text - T (from Redis) into OUT, printable ASCII only: anything else,
 * CR and LF included, becomes '?', so it cannot add a line to a reply or log. */
static void clean_text(const char *t, char *out, size_t len)
{
	size_t n = 0;
	for (; t[n] && n + 1 < len; n++)
		out[n] = (unsigned char)t[n] < 0x20 || (unsigned char)t[n] >= 0x7f ? '?' : t[n];
	out[n] = '\0';
}

/* on_shared_lock - a host locked IP out (SECONDS) or lifted it (0). */
static void on_shared_lock(const char *ip_text, unsigned seconds, void *arg)
{
	struct abuse *a = arg;
	struct rg_ip ip;
	if (a->lockout == NULL || !ip_parse(ip_text, &ip) || abuse_lockout_exempt(a, &ip))
		return;
	seconds = at_most(seconds, a->cfg->smtpd_sasl_lockout_time);
	time_t now = time(NULL);
	if (seconds == 0) {
		lockout_clear(a->lockout, &ip);
		return;
	}
	if (lockout_is_locked(a->lockout, &ip, now, NULL))
		return; /* ours, coming back, or known already */
	char for_text[24];
	snprintf(for_text, sizeof(for_text), "%us", seconds);
	lockout_lock(a->lockout, &ip, now, now + (time_t)seconds);
	log_ev(LOG_WARNING, "auth-lockout", {"client", ip_text}, {"for", for_text},
	       {"source", "shared"});
}

/* on_shared_suspend - a host suspended LOGIN as hijacked (SECONDS) or lifted it (0). */
static void on_shared_suspend(const char *login, unsigned seconds, const char *raw_why,
			      void *arg)
{
	struct abuse *a = arg;
	char why[HIJACK_WHY_MAX];
	if (a->hijack == NULL || !token_ok(login, 255))
		return;
	clean_text(raw_why, why, sizeof(why));
	seconds = at_most(seconds, a->cfg->smtpd_sasl_hijack_suspend_time);
	time_t now = time(NULL);
	if (seconds == 0) {
		hijack_clear(a->hijack, login);
		return;
	}
	if (hijack_suspended(a->hijack, login, now, NULL, 0, NULL))
		return; /* ours, coming back */
	char for_text[24];
	snprintf(for_text, sizeof(for_text), "%us", seconds);
	hijack_suspend(a->hijack, login, now, now + (time_t)seconds, why);
	log_ev(LOG_WARNING, "hijack-suspended", {"user", login}, {"reason", why},
	       {"for", for_text}, {"source", "shared"});
}

bool abuse_share(struct abuse *a, struct event_base *base, char *err, size_t errlen)
{
	if (a->cfg->shared_state[0] == '\0')
		return true;
	a->shared = shared_new(base, a->cfg->shared_state, on_shared_lock, on_shared_suspend, a,
			       err, errlen);
	return a->shared != NULL;
}

void abuse_share_tls(struct abuse *a, void (*heard)(const char *text, void *arg), void *arg)
{
	if (a != NULL && a->shared != NULL)
		shared_set_tls(a->shared, heard, arg);
}

void abuse_tls_raised(struct abuse *a, const char *domain, const char *level, unsigned ttl)
{
	if (a != NULL && a->shared != NULL)
		shared_tls(a->shared, domain, level, ttl);
}

/* An event counted in Redis, waiting for every host's total. */
struct shared_event {
	struct abuse *a;
	time_t start;
	char key[];
};

/* on_event_total - what all hosts counted for the key: ours becomes at least that. */
static void on_event_total(long long count, void *arg)
{
	struct shared_event *e = arg;
	if (count > 0)
		rate_merge(e->a->rate, e->key, e->start,
			   count > UINT32_MAX ? UINT32_MAX : (unsigned)count);
	free(e);
}

/* share_event - count an event for every host: rg:rate:KEY:START, as the local
 * table's fixed window. The decision already made stands; the total informs
 * the next one when it arrives. Each host decides on its local count merged
 * with the Redis answers that have arrived so far, so a burst (pipelining,
 * parallel connections) can pass up to the limit on each host before the
 * shared count arrives. */
static void share_event(struct abuse *a, const char *key, time_t now)
{
	if (a->shared == NULL)
		return;
	size_t klen = strlen(key) + 1;
	struct shared_event *e = xcalloc(1, sizeof(*e) + klen);
	e->a = a;
	e->start = rate_window_start(a->rate, now);
	memcpy(e->key, key, klen);
	char rkey[RATE_KEY_MAX + 48];
	snprintf(rkey, sizeof(rkey), "rg:rate:%s:%lld", key, (long long)e->start);
	shared_incr(a->shared, rkey, 2 * (unsigned)a->cfg->anvil_rate_time_unit, on_event_total, e);
}

/* A failure counted in Redis, waiting for the total. */
struct failure {
	struct abuse *a;
	struct rg_ip ip;
};

/* on_failures - the hosts' total for a client; at the limit, lock it out everywhere. */
static void on_failures(long long count, void *arg)
{
	struct failure *f = arg;
	struct abuse *a = f->a;
	time_t now = time(NULL);
	if (count >= (long long)a->cfg->smtpd_sasl_failure_limit && a->lockout &&
	    !lockout_is_locked(a->lockout, &f->ip, now, NULL)) {
		char text[RG_IP_STRLEN], n[24];
		ip_key_text(&f->ip, text, sizeof(text));
		snprintf(n, sizeof(n), "%lld", count);
		lockout_lock(a->lockout, &f->ip, now, now + (time_t)a->cfg->smtpd_sasl_lockout_time);
		shared_lock(a->shared, text, (unsigned)a->cfg->smtpd_sasl_lockout_time);
		log_ev(LOG_WARNING, "auth-lockout", {"client", text}, {"failures", n},
		       {"source", "shared count"});
		a->shared_locks++;
	}
	free(f);
}

void abuse_auth_failed(struct abuse *a, const struct rg_ip *ip, bool locked, time_t now)
{
	(void)now;
	if (a->shared == NULL || abuse_lockout_exempt(a, ip))
		return;
	char text[RG_IP_STRLEN], key[RG_IP_STRLEN + 16];
	ip_key_text(ip, text, sizeof(text));
	if (locked) { /* our own count reached the limit: tell the others */
		shared_lock(a->shared, text, (unsigned)a->cfg->smtpd_sasl_lockout_time);
		return;
	}
	snprintf(key, sizeof(key), "rg:authfail:%s", text);
	struct failure *f = xcalloc(1, sizeof(*f));
	f->a = a;
	f->ip = *ip;
	shared_incr(a->shared, key, (unsigned)a->cfg->smtpd_sasl_failure_window, on_failures, f);
}

size_t abuse_shared_pending(const struct abuse *a)
{
	return a->shared ? shared_pending(a->shared) : 0;
}

void abuse_set_release(struct abuse *a, void (*fn)(void *arg, const char *id), void *arg)
{
	a->release_fn = fn;
	a->release_arg = arg;
}

bool abuse_lockout_exempt(const struct abuse *a, const struct rg_ip *ip)
{
	return config_in_networks(a->exc->smtpd_sasl_lockout_exceptions,
				  a->exc->n_smtpd_sasl_lockout_exceptions, ip);
}

void abuse_set_exceptions(struct abuse *a, const struct config *cfg)
{
	a->exc = cfg;
}

unsigned long abuse_refused(const struct abuse *a, enum abuse_event ev)
{
	return ev < ABUSE_EVENTS ? a->refused[ev] : 0;
}

/* ---- the control commands ---- */

struct list_ctx {
	struct strbuf *out;
	time_t now;
};

static void list_one(const struct rg_ip *key, time_t until, void *arg)
{
	struct list_ctx *ctx = arg;
	char text[RG_IP_STRLEN];
	ip_format(key, text, sizeof(text));
	strbuf_printf(ctx->out, "%s%s locked out for %llds more\n", text,
		      key->family == AF_INET6 ? "/64" : "", (long long)(until - ctx->now));
}

static void list_login(const char *login, time_t until, const char *why, void *arg)
{
	struct list_ctx *ctx = arg;
	strbuf_printf(ctx->out, "login %s suspended for %llds more: %s\n", login,
		      (long long)(until - ctx->now), why);
}

static bool ctl_lockout_list(void *arg, struct strbuf *out)
{
	struct abuse *a = arg;
	struct list_ctx ctx = {out, time(NULL)};
	size_t n = a->lockout ? lockout_each(a->lockout, ctx.now, list_one, &ctx) : 0;
	strbuf_printf(out, "%zu client%s locked out\n", n, n == 1 ? "" : "s");
	if (a->hijack) {
		n = hijack_each(a->hijack, ctx.now, list_login, &ctx);
		strbuf_printf(out, "%zu login%s suspended\n", n, n == 1 ? "" : "s");
	}
	return true;
}

/* forget_rates - the client's own counters go too: the operator vouches for it. */
static void forget_rates(struct abuse *a, const struct rg_ip *ip)
{
	struct abuse_client c = {ip, "", NULL, NULL};
	for (size_t i = 0; i < RG_ARRAY_LEN(defs); i++) {
		char key[RATE_KEY_MAX + 1];
		if (key_of(&defs[i], &c, key, sizeof(key)))
			rate_forget(a->rate, key);
	}
}

static bool ctl_lockout_clear(void *arg, const char *ip_text, struct strbuf *out)
{
	struct abuse *a = arg;
	struct rg_ip ip;
	if (!ip_parse(ip_text, &ip)) {
		strbuf_printf(out, "not an IP address: %s", ip_text);
		return false;
	}
	bool had = a->lockout && lockout_clear(a->lockout, &ip);
	forget_rates(a, &ip);
	if (a->shared) {
		char key[RG_IP_STRLEN];
		ip_key_text(&ip, key, sizeof(key));
		shared_lock(a->shared, key, 0); /* every host forgets it */
	}
	a->cleared += had;
	log_ev(LOG_INFO, "lockout-cleared", {"client", ip_text}, {"was", had ? "locked or counted"
								     : "not known"});
	strbuf_printf(out, had ? "%s: lock-out lifted, failures and rates forgotten\n"
			       : "%s: was not locked out; rates forgotten\n", ip_text);
	return true;
}

static bool ctl_stats(void *arg, struct strbuf *out)
{
	static const char *const names[] = {"connection", "message", "recipient", "auth"};
	struct abuse *a = arg;
	for (size_t ev = 0; ev < ABUSE_EVENTS; ev++)
		strbuf_printf(out, "rate_limited_%s %lu\n", names[ev], a->refused[ev]);
	strbuf_printf(out, "rate_keys %zu\nrate_evictions %lu\n", rate_size(a->rate),
		      rate_evictions(a->rate));
	if (a->lockout)
		strbuf_printf(out, "lockout_entries %zu\nlockout_evictions %lu\n",
			      lockout_size(a->lockout), lockout_evictions(a->lockout));
	strbuf_printf(out, "lockout_cleared %lu\n", a->cleared);
	strbuf_printf(out, "hijack_suspended %lu\nhijack_held %lu\nhijack_refused %lu\n",
		      a->hijack_tripped, a->hijack_held, a->hijack_refused);
	if (a->shared)
		strbuf_printf(out, "shared_state %s\nshared_failures %lu\nshared_lockouts %lu\n",
			      shared_up(a->shared) ? "up" : "down", shared_failures(a->shared),
			      a->shared_locks);
	return true;
}

static void released(void *arg, const char *id)
{
	struct abuse *a = arg;
	if (a->release_fn)
		a->release_fn(a->release_arg, id);
}

/* ctl_by_login - the operator has looked: the held mail goes (or is deleted)
 * and the login may submit again. */
static bool ctl_by_login(void *arg, const char *login, bool release, struct strbuf *out)
{
	struct abuse *a = arg;
	struct qctl q = {.dir = a->cfg->queue_directory, .offline = false};
	if (!qctl_held_by_login(&q, login, release, out, released, a))
		return false;
	bool was = a->hijack && hijack_clear(a->hijack, login);
	state_changed(a, true);
	if (a->shared)
		shared_suspend(a->shared, login, 0, "");
	log_ev(LOG_INFO, "hijack-cleared", {"user", login},
	       {"held", release ? "released" : "deleted"}, {"was", was ? "suspended" : "not suspended"});
	strbuf_printf(out, "login %s: %s\n", login,
		      was ? "suspension lifted" : "was not suspended");
	return true;
}

const struct control_abuse_ops abuse_control_ops = {
	.lockout_list = ctl_lockout_list,
	.lockout_clear = ctl_lockout_clear,
	.stats = ctl_stats,
	.by_login = ctl_by_login,
};

/* ---- the hijack windows of every host ---- */

/* A message's new domains counted in Redis, waiting for every host's totals. */
struct hijack_share {
	struct abuse *a;
	char login[256], ip_text[RG_IP_STRLEN], session[32];
};

/* shared_verdict - WHY, when every host's counts D and M trip a threshold. */
static bool shared_verdict(const struct config *cfg, long long d, long long m, char *why,
			   size_t len)
{
	uint64_t td = cfg->smtpd_sasl_hijack_threshold, tm = cfg->smtpd_sasl_hijack_message_threshold;
	unsigned w = clamp(cfg->smtpd_sasl_hijack_window);
	if (td && (uint64_t)d >= td)
		snprintf(why, len, "%lld new recipient domains in %us, over all hosts", d, w);
	else if (tm && (uint64_t)m >= tm)
		snprintf(why, len, "%lld messages in %us, over all hosts", m, w);
	else
		return false;
	return true;
}

/* on_hijack_counts - every host's counts for the login: trip it here if they say so. */
static void on_hijack_counts(long long d, long long m, void *arg)
{
	struct hijack_share *hs = arg;
	struct abuse *a = hs->a;
	char why[HIJACK_WHY_MAX];
	time_t now = time(NULL);
	if (d >= 0 && a->hijack != NULL && shared_verdict(a->cfg, d, m, why, sizeof(why)) &&
	    !hijack_suspended(a->hijack, hs->login, now, NULL, 0, NULL)) {
		hijack_suspend(a->hijack, hs->login, now,
			       now + (time_t)a->cfg->smtpd_sasl_hijack_suspend_time, why);
		announce_suspension(a, hs->ip_text, hs->login, why, "shared", hs->session);
	}
	free(hs);
}

/* lower_copy - D in lower case (domains arrive as the client wrote them). */
static char *lower_copy(const char *d)
{
	char *s = xstrdup(d);
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

/* share_hijack - count the domains this host does not know as the login's
 * in every host's windows; the answer may trip the login (for its next mail). */
static void share_hijack(struct abuse *a, const struct abuse_client *c,
			 const char *const *domains, size_t n, time_t now)
{
	static unsigned long serial;
	if (a->shared == NULL || n == 0 || strlen(c->login) > 255)
		return;
	size_t *idx = xcalloc(n, sizeof(*idx));
	size_t k = hijack_unknown(a->hijack, c->login, domains, n, idx);
	char **fresh = xcalloc(k + 1, sizeof(*fresh)), id[96];
	for (size_t i = 0; i < k; i++)
		fresh[i] = lower_copy(domains[idx[i]]);
	snprintf(id, sizeof(id), "%s:%ld:%lu:%lld", a->cfg->myhostname, (long)getpid(), ++serial,
		 (long long)now);
	struct hijack_share *hs = xcalloc(1, sizeof(*hs));
	hs->a = a;
	snprintf(hs->login, sizeof(hs->login), "%s", c->login);
	snprintf(hs->ip_text, sizeof(hs->ip_text), "%s", c->ip_text ? c->ip_text : "");
	snprintf(hs->session, sizeof(hs->session), "%s", c->session ? c->session : "");
	struct shared_hijack_msg m = {
		c->login, id, (const char *const *)fresh, k, now,
		clamp(a->cfg->smtpd_sasl_hijack_window), clamp(a->cfg->smtpd_sasl_hijack_threshold),
		clamp(a->cfg->smtpd_sasl_hijack_message_threshold), HIJACK_KNOWN_DOMAINS,
		SHARED_KNOWN_TTL,
	};
	if (k > 0)
		shared_hijack(a->shared, &m, on_hijack_counts, hs);
	else
		free(hs); /* nothing new here: nothing to count */
	for (size_t i = 0; i < k; i++)
		free(fresh[i]);
	free(fresh);
	free(idx);
}

/* ---- what a restart keeps without shared_state (hijack_state.h) ---- */

static void count_one(const char *login, time_t until, const char *why, void *arg)
{
	(void)login;
	(void)until;
	(void)why;
	(void)arg;
}

static void snapshot(void *arg, struct strbuf *out)
{
	struct abuse *a = arg;
	hijack_state_snapshot(a->hijack, time(NULL), out); /* a copy; text on the worker */
}

static void on_save_timer(evutil_socket_t fd, short what, void *arg)
{
	struct abuse *a = arg;
	(void)fd;
	(void)what;
	statefile_changed(a->file);
}

/* state_changed - save soon: a suspension or its lifting at once (NOW), new
 * learnt domains within LEARNT_SAVE_DELAY (a busy login learns in bursts:
 * one write for many). Written on a worker (statefile.h), never here. */
static void state_changed(struct abuse *a, bool now)
{
	if (a->file == NULL)
		return;
	if (now) {
		statefile_changed(a->file);
		a->learnt_seen = hijack_learnt(a->hijack);
		return;
	}
	if (hijack_learnt(a->hijack) == a->learnt_seen || evtimer_pending(a->save_timer, NULL))
		return;
	a->learnt_seen = hijack_learnt(a->hijack);
	struct timeval tv = {LEARNT_SAVE_DELAY, 0};
	evtimer_add(a->save_timer, &tv);
}

bool abuse_persist(struct abuse *a, struct event_base *base, char *err, size_t errlen)
{
	if (a->hijack == NULL || a->cfg->shared_state[0] != '\0')
		return true; /* no hold, or Redis keeps it (rg:susp:, rg:hjk:) */
	size_t bad;
	if (!hijack_state_load(a->hijack, a->cfg->queue_directory, time(NULL),
			       clamp(a->cfg->smtpd_sasl_hijack_suspend_time), &bad, err, errlen))
		return false;
	char n[24], s[24], k[24];
	size_t susp = hijack_each(a->hijack, time(NULL), count_one, NULL);
	a->learnt_seen = hijack_learnt(a->hijack);
	snprintf(n, sizeof(n), "%zu", bad);
	snprintf(s, sizeof(s), "%zu", susp);
	snprintf(k, sizeof(k), "%lu", a->learnt_seen);
	if (susp > 0 || a->learnt_seen > 0 || bad > 0) /* nothing kept: nothing to say */
		log_ev(bad ? LOG_WARNING : LOG_INFO, "hijack-state-loaded", {"suspended", s},
		       {"known_domains", k}, {"bad_lines", n});
	a->file = statefile_new(base, a->cfg->queue_directory, HIJACK_STATE_FILE, snapshot, a);
	statefile_set_render(a->file, hijack_state_render);
	a->save_timer = evtimer_new(base, on_save_timer, a);
	return true;
}

/* ---- a login's known domains from every host (shared_state) ---- */

struct known_fetch {
	struct abuse *a;
	char login[256];
};

/* domain_ok - D from Redis may be learnt: 1..253 printable characters, no space. */
static bool domain_ok(const char *d)
{
	return token_ok(d, 253);
}

/* on_known - what every host learnt for the login: known here too. */
static void on_known(const char *const *items, size_t n, void *arg)
{
	struct known_fetch *kf = arg;
	const char **good = xcalloc(n + 1, sizeof(*good));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (domain_ok(items[i]))
			good[k++] = items[i];
	if (k > 0 && kf->a->hijack != NULL)
		hijack_learn(kf->a->hijack, kf->login, good, k, time(NULL));
	free(good);
	free(kf);
}

void abuse_logged_in(struct abuse *a, const struct abuse_client *c, time_t now)
{
	(void)now;
	if (a->shared == NULL || a->hijack == NULL || c->login == NULL || c->login[0] == '\0' ||
	    strlen(c->login) > 255 || abuse_lockout_exempt(a, c->ip))
		return;
	struct known_fetch *kf = xcalloc(1, sizeof(*kf));
	kf->a = a;
	snprintf(kf->login, sizeof(kf->login), "%s", c->login);
	shared_known(a->shared, c->login, HIJACK_KNOWN_DOMAINS, on_known, kf);
}
