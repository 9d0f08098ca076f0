/*
 * test_abuse.c - the rate counters (abuse/rate.c), the rate limits and their
 * exceptions (abuse/abuse.c), and the operator's lock-out calls.
 *
 * Each scenario is a table of steps at given times; a failure names the row.
 */
#include "abuse/abuse.h"
#include "abuse/hijack.h"
#include "abuse/hijack_state.h"
#include "abuse/rate.h"
#include "auth/lockout.h"
#include "check.h"
#include "config/config.h"
#include "net/net.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ rate */

struct rate_step {
	int line;
	long now;
	const char *key;
	unsigned n, limit;
	bool want;          /* rate_take's answer */
	unsigned count;     /* the count it decided on */
};

static void run_rate(const char *name, unsigned window, size_t max, const struct rate_step *st,
		     size_t n)
{
	struct rate *r = rate_new(window, max);
	for (size_t k = 0; k < n; k++) {
		unsigned count = 12345;
		bool ok = rate_take(r, st[k].key, st[k].n, st[k].limit, (time_t)st[k].now, &count);
		CHECK_AT(st[k].line, ok == st[k].want, "%s: rate_take(%s, t=%ld) = %d", name,
			 st[k].key, st[k].now, ok);
		CHECK_AT(st[k].line, count == st[k].count, "%s: count %u, want %u", name, count,
			 st[k].count);
	}
	rate_free(r);
}

static void check_rate(void)
{
	/* limit 3 per 60 s: the fourth is refused and not counted */
	static const struct rate_step basic[] = {
		{__LINE__, 1000, "c:a", 1, 3, true, 0},
		{__LINE__, 1001, "c:a", 1, 3, true, 1},
		{__LINE__, 1002, "c:a", 1, 3, true, 2},
		{__LINE__, 1003, "c:a", 1, 3, false, 3},
		{__LINE__, 1004, "c:a", 1, 3, false, 3},
		/* another key has its own count */
		{__LINE__, 1004, "c:b", 1, 3, true, 0},
		/* limit 0: no limit, still counted */
		{__LINE__, 1005, "m:a", 5, 0, true, 0},
		{__LINE__, 1006, "m:a", 1, 0, true, 5},
	};
	run_rate("basic", 60, 100, basic, RG_ARRAY_LEN(basic));
	/* windows start at multiples of 60 (1020, 1080, ...); the previous window
	 * counts for the share of it still inside the sliding window, rounded up */
	static const struct rate_step slide[] = {
		{__LINE__, 1070, "k", 6, 6, true, 0},     /* 6 in [1020,1080) */
		{__LINE__, 1079, "k", 1, 6, false, 6},
		{__LINE__, 1080, "k", 1, 6, false, 6},    /* new window: 6 * 60/60 */
		{__LINE__, 1110, "k", 1, 6, true, 3},     /* half-way: 6 * 30/60 */
		{__LINE__, 1111, "k", 3, 6, false, 4},    /* ceil(6*29/60)=3, +1 */
		{__LINE__, 1130, "k", 1, 6, true, 2},     /* ceil(6*10/60)=1, +1 */
		{__LINE__, 1139, "k", 1, 6, true, 3},     /* ceil(6*1/60)=1, +2 */
		{__LINE__, 1140, "k", 1, 6, true, 3},     /* prev 3 weighted fully, cur 0 */
		/* a window with nothing between: both counts forgotten */
		{__LINE__, 1300, "k", 6, 6, true, 0},
	};
	run_rate("slide", 60, 100, slide, RG_ARRAY_LEN(slide));
	/* a full table pushes out the least recently seen key */
	static const struct rate_step evict[] = {
		{__LINE__, 10, "a", 1, 1, true, 0},
		{__LINE__, 11, "b", 1, 1, true, 0},
		{__LINE__, 12, "a", 1, 1, false, 1},      /* a is now the newest */
		{__LINE__, 13, "c", 1, 1, true, 0},       /* b goes */
		{__LINE__, 14, "a", 1, 1, false, 1},
		{__LINE__, 15, "b", 1, 1, true, 0},       /* b starts again; c goes */
		{__LINE__, 16, "c", 1, 1, true, 0},
	};
	run_rate("evict", 60, 2, evict, RG_ARRAY_LEN(evict));

	struct rate *r = rate_new(60, 2);
	for (int k = 0; k < 5; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", k);
		rate_take(r, key, 1, 0, 100, NULL);
	}
	CHECK(rate_size(r) == 2, "bounded: %zu entries", rate_size(r));
	CHECK(rate_evictions(r) == 3, "evictions %lu", rate_evictions(r));
	CHECK(rate_count(r, "k4", 100) == 1, "k4 kept");
	CHECK(rate_count(r, "k0", 100) == 0, "k0 gone");
	CHECK(rate_forget(r, "k4") && !rate_forget(r, "k4"), "forget once");
	/* what other hosts counted raises ours in the same fixed window only */
	CHECK(rate_window_start(r, 130) == 120, "window start");
	rate_take(r, "m", 1, 0, 130, NULL);
	rate_merge(r, "m", 120, 5);
	CHECK(rate_count(r, "m", 130) == 5, "merged: %u", rate_count(r, "m", 130));
	rate_merge(r, "m", 120, 2);
	CHECK(rate_count(r, "m", 130) == 5, "a smaller total changes nothing");
	rate_merge(r, "m", 60, 50);
	CHECK(rate_count(r, "m", 130) == 5, "another window changes nothing");
	rate_merge(r, "unknown", 120, 9);
	CHECK(rate_count(r, "unknown", 130) == 0, "an unknown key is not made");
	CHECK(!rate_take(r, "m", 1, 5, 131, NULL), "the merged count refuses");
	/* an overlong key is cut, not overflowed */
	char long_key[RATE_KEY_MAX * 2];
	memset(long_key, 'x', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	CHECK(rate_take(r, long_key, 1, 1, 100, NULL), "long key counted");
	CHECK(!rate_take(r, long_key, 1, 1, 100, NULL), "long key found again");
	rate_free(r);
}

/* ------------------------------------------------------------- limits */

static struct config *load(const char *text)
{
	char path[] = "/tmp/rg-abuse-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	char *errors = NULL;
	struct config *cfg = config_load(path, &errors);
	CHECK(cfg != NULL, "config: %s", errors ? errors : "");
	free(errors);
	unlink(path);
	return cfg;
}

struct limit_step {
	int line;
	long now;
	enum abuse_event ev;
	const char *ip, *login;
	bool want;
	const char *reply_has; /* a part of the reply when refused */
};

static void run_limits(const char *name, const char *conf, const struct limit_step *st,
		       size_t n)
{
	struct config *cfg = load(conf);
	if (cfg == NULL)
		return;
	struct abuse *a = abuse_new(cfg, NULL);
	for (size_t k = 0; k < n; k++) {
		struct rg_ip ip;
		ip_parse(st[k].ip, &ip);
		struct abuse_client c = {&ip, st[k].ip, st[k].login, "s1"};
		char reply[ABUSE_REPLY_MAX] = "";
		bool ok = abuse_check(a, st[k].ev, &c, (time_t)st[k].now, reply, sizeof(reply));
		CHECK_AT(st[k].line, ok == st[k].want, "%s: abuse_check(%d, %s, %s) = %d", name,
			 (int)st[k].ev, st[k].ip, st[k].login ? st[k].login : "-", ok);
		if (!ok && st[k].reply_has)
			CHECK_AT(st[k].line, strstr(reply, st[k].reply_has) != NULL,
				 "%s: reply \"%s\" lacks \"%s\"", name, reply, st[k].reply_has);
	}
	abuse_free(a);
	config_free(cfg);
}

static void check_limits(void)
{
	static const char conf[] =
		"myhostname = mx.example.com\n"
		"mynetworks = 127.0.0.1/32\n"
		"smtpd_client_connection_rate_limit = 2\n"
		"smtpd_client_message_rate_limit = 2\n"
		"smtpd_client_recipient_rate_limit = 3\n"
		"smtpd_client_auth_rate_limit = 1\n"
		"smtpd_sasl_message_rate_limit = 3\n"
		"smtpd_sasl_recipient_rate_limit = 4\n"
		"smtpd_sasl_lockout_exceptions = 192.0.2.0/24\n";
	static const struct limit_step t[] = {
		{__LINE__, 100, ABUSE_CONNECTION, "198.51.100.7", NULL, true, NULL},
		{__LINE__, 100, ABUSE_CONNECTION, "198.51.100.7", NULL, true, NULL},
		{__LINE__, 100, ABUSE_CONNECTION, "198.51.100.7", NULL, false,
		 "421 4.7.0 mx.example.com Error: too many connections from 198.51.100.7 "
		 "(limit 2 per 60s)"},
		/* mynetworks (smtpd_client_event_limit_exceptions) is never limited */
		{__LINE__, 100, ABUSE_CONNECTION, "127.0.0.1", NULL, true, NULL},
		{__LINE__, 100, ABUSE_CONNECTION, "127.0.0.1", NULL, true, NULL},
		{__LINE__, 100, ABUSE_CONNECTION, "127.0.0.1", NULL, true, NULL},
		/* IPv6: one /64 is one client */
		{__LINE__, 100, ABUSE_CONNECTION, "2001:db8::1", NULL, true, NULL},
		{__LINE__, 100, ABUSE_CONNECTION, "2001:db8::2", NULL, true, NULL},
		{__LINE__, 100, ABUSE_CONNECTION, "2001:db8::3", NULL, false, "too many connections"},
		{__LINE__, 100, ABUSE_CONNECTION, "2001:db8:0:1::1", NULL, true, NULL},
		/* messages: the client's limit (2), then the login's (3) over two clients */
		{__LINE__, 100, ABUSE_MESSAGE, "198.51.100.7", "alice", true, NULL},
		{__LINE__, 100, ABUSE_MESSAGE, "198.51.100.7", "alice", true, NULL},
		{__LINE__, 100, ABUSE_MESSAGE, "198.51.100.7", "alice", false,
		 "452 4.7.1 Error: too many messages from 198.51.100.7 (limit 2 per 60s)"},
		{__LINE__, 100, ABUSE_MESSAGE, "198.51.100.8", "alice", true, NULL},
		{__LINE__, 100, ABUSE_MESSAGE, "198.51.100.9", "alice", false,
		 "452 4.7.1 Error: too many messages from login alice (limit 3 per 60s)"},
		/* the owner's network (smtpd_client_event_limit_exceptions) skips the
		 * login limit too: alice is over it, yet passes from 127.0.0.1 */
		{__LINE__, 100, ABUSE_MESSAGE, "127.0.0.1", "alice", true, NULL},
		{__LINE__, 100, ABUSE_MESSAGE, "127.0.0.1", "alice", true, NULL},
		{__LINE__, 100, ABUSE_MESSAGE, "198.51.100.10", "alice", false, "login alice"},
		/* a window later, the client may send again */
		{__LINE__, 221, ABUSE_MESSAGE, "198.51.100.7", "carol", true, NULL},
		/* recipients */
		{__LINE__, 100, ABUSE_RECIPIENT, "203.0.113.1", NULL, true, NULL},
		{__LINE__, 100, ABUSE_RECIPIENT, "203.0.113.1", NULL, true, NULL},
		{__LINE__, 100, ABUSE_RECIPIENT, "203.0.113.1", NULL, true, NULL},
		{__LINE__, 100, ABUSE_RECIPIENT, "203.0.113.1", NULL, false,
		 "452 4.7.1 Error: too many recipients from 203.0.113.1"},
		/* AUTH: 1 per minute, except smtpd_sasl_lockout_exceptions */
		{__LINE__, 100, ABUSE_AUTH, "203.0.113.1", NULL, true, NULL},
		{__LINE__, 100, ABUSE_AUTH, "203.0.113.1", NULL, false,
		 "454 4.7.0 Error: too many AUTH commands from 203.0.113.1"},
		{__LINE__, 100, ABUSE_AUTH, "192.0.2.5", NULL, true, NULL},
		{__LINE__, 100, ABUSE_AUTH, "192.0.2.5", NULL, true, NULL},
	};
	run_limits("limits", conf, t, RG_ARRAY_LEN(t));
	/* the defaults: every limit off, mynetworks exempt from the lock-out */
	static const struct limit_step off[] = {
		{__LINE__, 100, ABUSE_CONNECTION, "198.51.100.7", NULL, true, NULL},
		{__LINE__, 100, ABUSE_CONNECTION, "198.51.100.7", NULL, true, NULL},
		{__LINE__, 100, ABUSE_MESSAGE, "198.51.100.7", "alice", true, NULL},
		{__LINE__, 100, ABUSE_RECIPIENT, "198.51.100.7", "alice", true, NULL},
		{__LINE__, 100, ABUSE_AUTH, "198.51.100.7", NULL, true, NULL},
	};
	run_limits("defaults", "myhostname = mx.example.com\n", off, RG_ARRAY_LEN(off));

	struct config *cfg = load("myhostname = mx.example.com\nmynetworks = 10.0.0.0/8\n");
	if (cfg == NULL)
		return;
	struct abuse *a = abuse_new(cfg, NULL);
	static const struct {
		int line;
		const char *ip;
		bool exempt;
	} ex[] = {
		{__LINE__, "10.1.2.3", true},
		{__LINE__, "11.1.2.3", false},
		{__LINE__, "127.0.0.1", false},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(ex); k++) {
		struct rg_ip ip;
		ip_parse(ex[k].ip, &ip);
		CHECK_AT(ex[k].line, abuse_lockout_exempt(a, &ip) == ex[k].exempt,
			 "abuse_lockout_exempt(%s)", ex[k].ip);
	}
	abuse_free(a);
	config_free(cfg);
}

/* ------------------------------------------------------------- hijack */

struct hijack_step {
	int line;
	long now;
	const char *login;
	const char *domains;   /* space-separated; "@N:d" = N distinct domains d0.example ... */
	bool hold;
	const char *why_has;
};

/* what is asked of the other hosts: the distinct domains new to the login here */
static void check_unknown(const struct hijack_limits *lim)
{
	struct hijack *h = hijack_new(lim);
	const char *first[] = {"k1.example", "k2.example"};
	const char *mixed[] = {"K1.Example", "n1.example", "N1.EXAMPLE", "k2.example", "n2.example"};
	char why[HIJACK_WHY_MAX];
	size_t idx[5];
	CHECK(hijack_unknown(h, "hal", first, 2, idx) == 2, "a login never seen: all new");
	hijack_message(h, "hal", first, 2, 10, why, sizeof(why));
	size_t k = hijack_unknown(h, "hal", mixed, 5, idx);
	CHECK(k == 2 && idx[0] == 1 && idx[1] == 4,
	      "known ones (any case) left out, repeats once: %zu (%zu %zu)", k, idx[0], idx[1]);
	CHECK(hijack_unknown(h, "other", mixed, 5, idx) == 4, "per login, case-folded repeats once");
	hijack_free(h);
}

/* split_domains - the step's domains as a NULL-terminated array (caller frees). */
static char **split_domains(const char *spec, size_t *n)
{
	char **out = xcalloc(1024, sizeof(char *));
	*n = 0;
	if (spec[0] == '@') {
		unsigned count = (unsigned)atoi(spec + 1);
		const char *base = strchr(spec, ':') + 1;
		for (unsigned k = 0; k < count && *n < 1023; k++)
			out[(*n)++] = xasprintf("%s%u.example", base, k);
		return out;
	}
	char *copy = xstrdup(spec), *save = NULL;
	for (char *t = strtok_r(copy, " ", &save); t && *n < 1023; t = strtok_r(NULL, " ", &save))
		out[(*n)++] = xstrdup(t);
	free(copy);
	return out;
}

static void run_hijack(const char *name, const struct hijack_limits *lim,
		       const struct hijack_step *st, size_t n)
{
	struct hijack *h = hijack_new(lim);
	for (size_t k = 0; k < n; k++) {
		size_t nd;
		char **d = split_domains(st[k].domains, &nd);
		char why[HIJACK_WHY_MAX] = "";
		bool hold = hijack_message(h, st[k].login, (const char *const *)d, nd,
					   (time_t)st[k].now, why, sizeof(why));
		CHECK_AT(st[k].line, hold == st[k].hold, "%s: hijack_message(%s, %s) = %d (%s)",
			 name, st[k].login, st[k].domains, hold, why);
		if (hold && st[k].why_has)
			CHECK_AT(st[k].line, strstr(why, st[k].why_has) != NULL,
				 "%s: why \"%s\" lacks \"%s\"", name, why, st[k].why_has);
		for (size_t i = 0; i < nd; i++)
			free(d[i]);
		free(d);
	}
	hijack_free(h);
}

static void check_hijack(void)
{
	/* 5 new domains in 600 s, 10 messages, or one message to 6+ recipients mostly new */
	const struct hijack_limits lim = {600, 5, 10, 6, 3600, 100, 10};
	static const struct hijack_step spray[] = {
		/* a hijacked account: a few new domains per message add up */
		{__LINE__, 1000, "alice", "a.example b.example", false, NULL},
		{__LINE__, 1010, "alice", "c.example d.example", false, NULL},
		{__LINE__, 1020, "alice", "e.example", true, "5 new recipient domains in 600s"},
		/* suspended: every later message is held, even to known domains */
		{__LINE__, 1030, "alice", "a.example", true, "5 new recipient domains"},
		{__LINE__, 4619, "alice", "a.example", true, NULL},
		/* another login is not affected */
		{__LINE__, 1030, "bob", "a.example", false, NULL},
		/* the suspension ends after suspend_time; windows have moved on */
		{__LINE__, 4621, "alice", "f.example", false, NULL},
	};
	run_hijack("spray", &lim, spray, RG_ARRAY_LEN(spray));
	static const struct hijack_step newsletter[] = {
		/* a newsletter list built up over weeks: 4 domains a day, all learnt */
		{__LINE__, 0, "news", "@4:w1-", false, NULL},
		{__LINE__, 86400, "news", "@4:w2-", false, NULL},
		{__LINE__, 172800, "news", "@4:w3-", false, NULL},
		/* then the burst: 12 domains, one message each, all known (repeats, case) */
		{__LINE__, 200000, "news", "w1-0.example", false, NULL},
		{__LINE__, 200001, "news", "W1-1.EXAMPLE", false, NULL},
		{__LINE__, 200002, "news", "w1-2.example w1-3.example", false, NULL},
		{__LINE__, 200003, "news", "@4:w2-", false, NULL},
		{__LINE__, 200004, "news", "@4:w3-", false, NULL},
		/* ... but the same wide message to strangers trips */
		{__LINE__, 200005, "other", "@8:x-", true, "8 new recipient domains"},
	};
	run_hijack("newsletter", &lim, newsletter, RG_ARRAY_LEN(newsletter));
	/* one wide message, mostly new domains, trips even under the domain count */
	const struct hijack_limits wide = {600, 0, 0, 6, 3600, 100, 10};
	static const struct hijack_step bcc[] = {
		{__LINE__, 10, "carol", "k.example", false, NULL},
		/* 6 recipients, 3 of them in new domains: half is enough */
		{__LINE__, 20, "carol", "k.example k.example k.example n1.example n2.example n3.example",
		 true, "one message to 6 recipients, 3 in new domains"},
		/* 6 recipients, 2 new: not */
		{__LINE__, 30, "dave", "k.example", false, NULL},
		{__LINE__, 40, "dave", "k.example k.example k.example k.example n1.example n2.example",
		 false, NULL},
	};
	run_hijack("wide", &wide, bcc, RG_ARRAY_LEN(bcc));
	/* messages per window */
	const struct hijack_limits msgs = {600, 0, 3, 0, 3600, 100, 10};
	static const struct hijack_step many[] = {
		{__LINE__, 10, "erin", "k1.example", false, NULL},
		{__LINE__, 11, "erin", "k2.example", false, NULL},
		{__LINE__, 12, "erin", "k3.example k1.example", true, "3 messages in 600s"},
		/* a newsletter: many messages, each to one known domain, never counts */
		{__LINE__, 10, "fred", "k1.example", false, NULL},
		{__LINE__, 11, "fred", "k1.example", false, NULL},
		{__LINE__, 12, "fred", "k1.example", false, NULL},
		{__LINE__, 13, "fred", "K1.example", false, NULL},
		/* ... only messages with a new domain do (the first one counted) */
		{__LINE__, 14, "fred", "k1.example k2.example", false, NULL},
		{__LINE__, 15, "fred", "k3.example", true, "3 messages in 600s"},
	};
	run_hijack("messages", &msgs, many, RG_ARRAY_LEN(many));

	/* held mail does not teach its domains; clearing keeps what was learnt */
	struct hijack *h = hijack_new(&lim);
	const char *six[] = {"s1.example", "s2.example", "s3.example", "s4.example",
			     "s5.example", "s6.example"};
	char why[HIJACK_WHY_MAX];
	time_t until = 0;
	CHECK(hijack_message(h, "frank", six, 6, 100, why, sizeof(why)), "trips");
	CHECK(hijack_suspended(h, "frank", 101, why, sizeof(why), &until) && until == 3700,
	      "suspended until %lld", (long long)until);
	CHECK(hijack_clear(h, "frank") && !hijack_suspended(h, "frank", 102, NULL, 0, NULL),
	      "cleared");
	CHECK(!hijack_clear(h, "frank") && !hijack_clear(h, "nobody"), "clear once");
	CHECK(hijack_message(h, "frank", six, 6, 103, why, sizeof(why)),
	      "the spray's domains were not learnt: trips again");
	/* the login table is bounded; a suspended login is kept over idle ones */
	for (int k = 0; k < 30; k++) {
		char login[16];
		snprintf(login, sizeof(login), "u%d", k);
		hijack_message(h, login, six, 1, 200 + k, why, sizeof(why));
	}
	CHECK(hijack_suspended(h, "frank", 300, NULL, 0, NULL), "suspended login kept");
	/* another host's suspension: taken, a shorter one does not shorten it */
	hijack_suspend(h, "gina", 400, 1000, "3 new recipient domains in 600s");
	hijack_suspend(h, "gina", 400, 500, "x");
	CHECK(hijack_suspended(h, "gina", 999, why, sizeof(why), &until) && until == 1000 &&
	      strcmp(why, "3 new recipient domains in 600s") == 0, "gina: %s until %lld", why,
	      (long long)until);
	CHECK(hijack_message(h, "gina", six, 1, 998, why, sizeof(why)), "held while suspended");
	hijack_free(h);
	check_unknown(&lim);
}

/* ------------------------------------------------------ hijack-state */

/* lines of queue_directory/hijack-state, read at t=1000 (suspensions at most 600 s more) */
static const struct {
	int line;
	const char *text;
	bool good;
	const char *login; /* suspended after it (NULL: nobody) */
	long until;
	const char *why;
} state_lines[] = {
	{__LINE__, "# relayguard hijack-state 1", true, NULL, 0, NULL},
	{__LINE__, "", true, NULL, 0, NULL},
	{__LINE__, "suspended al 1500 3 new recipient domains in 600s", true, "al", 1500,
	 "3 new recipient domains in 600s"},
	{__LINE__, "suspended bo 999 over while we were down", true, NULL, 0, NULL},
	{__LINE__, "suspended cy 99999 clamped to our own suspend time", true, "cy", 1600, NULL},
	{__LINE__, "suspended di 1500 bad\001byte", true, "di", 1500, NULL},
	{__LINE__, "suspended di\177 1500 x", false, NULL, 0, NULL},
	{__LINE__, "suspended ed -5 x", false, NULL, 0, NULL},
	{__LINE__, "suspended ed", false, NULL, 0, NULL},
	{__LINE__, "suspended ed 12x34 y", false, NULL, 0, NULL},
	{__LINE__, "known fy 00000000000000ff 1", true, NULL, 0, NULL},
	{__LINE__, "known fy", false, NULL, 0, NULL},
	{__LINE__, "known fy zz", false, NULL, 0, NULL},
	{__LINE__, "known fy 1  2", false, NULL, 0, NULL},
	{__LINE__, "known fy 00000000000000001", false, NULL, 0, NULL}, /* 17 digits */
	{__LINE__, "known fy 1 ", false, NULL, 0, NULL},
	{__LINE__, "learnt fy 1", false, NULL, 0, NULL},
};

static void check_state_lines(void)
{
	const struct hijack_limits lim = {600, 5, 0, 0, 600, 100, 10};
	for (size_t i = 0; i < RG_ARRAY_LEN(state_lines); i++) {
		struct hijack *h = hijack_new(&lim);
		char why[HIJACK_WHY_MAX] = "";
		const char *text = state_lines[i].text;
		bool good = hijack_state_line(h, text, 1000, 600);
		CHECK_AT(state_lines[i].line, good == state_lines[i].good, "line read as %s",
			 good ? "good" : "bad");
		time_t until = 0;
		const char *who = state_lines[i].login;
		if (who != NULL) {
			CHECK_AT(state_lines[i].line,
				 hijack_suspended(h, who, 1000, why, sizeof(why), &until) &&
				 until == state_lines[i].until, "%s until %lld", who, (long long)until);
			CHECK_AT(state_lines[i].line, state_lines[i].why == NULL ||
				 strcmp(why, state_lines[i].why) == 0, "why %s", why);
			CHECK_AT(state_lines[i].line, strspn(why, "abcdefghijklmnopqrstuvwxyz0123456789 ?") ==
				 strlen(why), "printable why: %s", why);
		}
		hijack_free(h);
	}
}

static void name_login(const char *login, time_t until, const char *why, const uint64_t *known,
		       size_t n, void *arg)
{
	(void)why;
	(void)known;
	strbuf_printf(arg, "%s%s+%zu ", login, until ? "(s)" : "", n);
}

/* queue_directory/hijack-state as bytes on disk, read at t=1000: a damaged
 * line is one bad line, and the good line after it still counts */
static void check_state_file(void)
{
	static const char long_line[] = "known x 0000000000000000000000000000000000000000000000000"
		"00000000000000000000000000000000000000000000000000000000000000000000000000000000";
	static const struct {
		int line;
		const char *bytes;
		size_t len;
		size_t bad;
		bool al; /* al suspended after it */
	} rows[] = {
		{__LINE__, "suspended al 1500 y\n", 20, 0, true},
		{__LINE__, "suspended al 1500 y", 19, 0, true}, /* no newline at the end */
		{__LINE__, "suspended bo\0junk\nsuspended al 1500 y\n", 38, 1, true},
		{__LINE__, "\0\nsuspended al 1500 y\n", 22, 1, true},
		{__LINE__, "suspended al 1500 y\0\n", 21, 1, false},
		{__LINE__, "suspended al\0 1500 y\n", 21, 1, false},
		{__LINE__, NULL, 0, 1, true}, /* an over-long line, then al */
	};
	char dir[] = "/tmp/rg-test-hijack-state-XXXXXX";
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	char *path = xasprintf("%s/%s", dir, HIJACK_STATE_FILE);
	const struct hijack_limits lim = {600, 5, 0, 0, 600, 100, 10};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		FILE *f = fopen(path, "w");
		if (rows[i].bytes != NULL) {
			fwrite(rows[i].bytes, 1, rows[i].len, f);
		} else {
			for (int k = 0; k < 20; k++)
				fputs(long_line, f);
			fputs("\nsuspended al 1500 y\n", f);
		}
		fclose(f);
		struct hijack *h = hijack_new(&lim);
		size_t bad = 99;
		char err[200] = "";
		bool ok = hijack_state_load(h, dir, 1000, 600, &bad, err, sizeof(err));
		CHECK_AT(rows[i].line, ok && bad == rows[i].bad, "ok %d, %zu bad lines %s", ok, bad,
			 err);
		CHECK_AT(rows[i].line, hijack_suspended(h, "al", 1000, NULL, 0, NULL) == rows[i].al,
			 "al suspended: %d", !rows[i].al);
		hijack_free(h);
	}
	/* a FIFO in its place (mail_owner owns the directory): root's offline
	 * release must not wait for a writer for ever, holding the queue lock */
	unlink(path);
	CHECK(mkfifo(path, 0600) == 0, "mkfifo");
	struct hijack *h = hijack_new(&lim);
	size_t bad;
	char err[200] = "";
	alarm(10); /* blocked: SIGALRM ends the test, failed */
	CHECK(!hijack_state_load(h, dir, 1000, 600, &bad, err, sizeof(err)) &&
	      strstr(err, "not a regular file") != NULL, "FIFO read: %s", err);
	alarm(0);
	hijack_free(h);
	unlink(path);
	rmdir(dir);
	free(path);
}

/* only the MAX most recently seen logins' domains are kept; every suspension is */
static void check_state_cut(void)
{
	const struct hijack_limits lim = {600, 0, 0, 0, 600, 10, 10};
	struct hijack *h = hijack_new(&lim);
	const char *d[] = {"x.example"};
	char why[HIJACK_WHY_MAX];
	hijack_message(h, "old", d, 1, 100, why, sizeof(why));
	hijack_suspend(h, "sus0", 100, 900, "why"); /* knows nothing */
	hijack_message(h, "sus", d, 1, 101, why, sizeof(why));
	hijack_suspend(h, "sus", 101, 900, "why");
	hijack_message(h, "mid", d, 1, 102, why, sizeof(why));
	hijack_message(h, "new", d, 1, 103, why, sizeof(why));
	hijack_message(h, "newest", d, 1, 104, why, sizeof(why));
	/* a suspended login older than the cut keeps its suspension, not its
	 * domains: the copy the loop makes stays within MAX lists (10,000
	 * suspended logins with full lists were 40 MB) */
	static const struct {
		int line;
		size_t max;
		const char *want;
	} rows[] = {
		{__LINE__, 0, "old+1 sus0(s)+0 sus(s)+1 mid+1 new+1 newest+1 "},
		{__LINE__, 2, "sus0(s)+0 sus(s)+0 new+1 newest+1 "},
		{__LINE__, 1, "sus0(s)+0 sus(s)+0 newest+1 "},
		{__LINE__, 4, "sus0(s)+0 sus(s)+1 mid+1 new+1 newest+1 "},
		{__LINE__, 5, "old+1 sus0(s)+0 sus(s)+1 mid+1 new+1 newest+1 "},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		struct strbuf out;
		strbuf_init(&out);
		hijack_each_login(h, 200, rows[i].max, name_login, &out);
		CHECK_AT(rows[i].line, out.data && strcmp(out.data, rows[i].want) == 0, "got %s",
			 out.data ? out.data : "(none)");
		strbuf_free(&out);
	}
	hijack_free(h);
}

/* what hijack_state_format writes reads back the same, a wrapped ring included */
static void check_state_round_trip(void)
{
	const struct hijack_limits lim = {600, 0, 0, 0, 600, 40, 10}; /* thresholds off: learns */
	struct hijack *h = hijack_new(&lim);
	char why[HIJACK_WHY_MAX], d[50][24];
	const char *doms[50];
	for (int k = 0; k < 50; k++) {
		snprintf(d[k], sizeof(d[k]), "d%d.example", k);
		doms[k] = d[k];
	}
	unsigned long before = hijack_learnt(h);
	hijack_message(h, "old", doms, 3, 100, why, sizeof(why));
	hijack_message(h, "wrap", doms, 50, 101, why, sizeof(why)); /* 50 into a ring of 40 */
	CHECK(hijack_learnt(h) == before + 53, "learnt %lu", hijack_learnt(h) - before);
	hijack_suspend(h, "sus", 102, 500, "one message to 60 recipients, 40 in new domains");
	struct strbuf a, b;
	strbuf_init(&a);
	strbuf_init(&b);
	hijack_state_format(h, 200, &a);
	struct hijack *back = hijack_new(&lim);
	char *copy = xstrdup(a.data), *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		CHECK(hijack_state_line(back, l, 200, 600), "bad line written: %s", l);
	free(copy);
	hijack_state_format(back, 200, &b);
	CHECK(a.len > 0 && b.len == a.len && memcmp(a.data, b.data, a.len) == 0,
	      "read back differs:\n%s---\n%s", a.data, b.data);
	size_t idx[50];
	CHECK(hijack_unknown(back, "wrap", doms, 50, idx) == 10 && idx[0] == 0 && idx[9] == 9,
	      "the ring's 40 newest are known, the 10 oldest were pushed out");
	CHECK(hijack_unknown(back, "old", doms, 4, idx) == 1 && idx[0] == 3, "old knows 3");
	CHECK(hijack_suspended(back, "sus", 300, why, sizeof(why), NULL) &&
	      strcmp(why, "one message to 60 recipients, 40 in new domains") == 0, "why: %s", why);
	CHECK(strstr(a.data, "d1.example") == NULL, "hashes, not names");
	strbuf_free(&a);
	strbuf_free(&b);
	hijack_free(back);
	hijack_free(h);
}

/* the owner's network (smtpd_sasl_lockout_exceptions) is never held or suspended */
static void check_owner_hold(void)
{
	struct config *cfg = load("myhostname = mx.example.com\nmynetworks = 127.0.0.1/32\n"
				  "smtpd_sasl_hijack_threshold = 2\n");
	if (cfg == NULL)
		return;
	struct abuse *a = abuse_new(cfg, NULL);
	struct rg_ip own, other;
	ip_parse("127.0.0.1", &own);
	ip_parse("198.51.100.7", &other);
	struct abuse_client in = {&own, "127.0.0.1", "alice", "s1"};
	struct abuse_client out = {&other, "198.51.100.7", "alice", "s2"};
	const char *spray[] = {"a.example", "b.example", "c.example"};
	char reply[ABUSE_REPLY_MAX] = "";
	CHECK(!abuse_hold(a, &in, spray, 3, 100), "held from the owner's network");
	CHECK(abuse_hold(a, &out, spray, 3, 101), "not held from elsewhere");
	CHECK(!abuse_check(a, ABUSE_MESSAGE, &out, 102, reply, sizeof(reply)) &&
	      strstr(reply, "454 4.7.0 Error: login alice is suspended"), "refused: %s", reply);
	CHECK(abuse_check(a, ABUSE_MESSAGE, &in, 103, reply, sizeof(reply)),
	      "the owner's network refused: %s", reply);
	CHECK(!abuse_hold(a, &in, spray, 1, 104), "held from the owner's network while suspended");
	abuse_free(a);
	config_free(cfg);
}

/* ------------------------------------------------------ lock-out admin */

static void count_one(const struct rg_ip *key, time_t until, void *arg)
{
	(void)key;
	(void)until;
	(*(int *)arg)++;
}

static void check_lockout_admin(void)
{
	struct lockout *lo = lockout_new(2, 600, 900, 100);
	struct rg_ip a, b, c;
	ip_parse("198.51.100.1", &a);
	ip_parse("2001:db8::1", &b);
	ip_parse("2001:db8::99", &c); /* the same /64 as b */
	lockout_fail(lo, &a, 100);
	CHECK(lockout_fail(lo, &a, 101), "a locked");
	lockout_fail(lo, &b, 100);
	CHECK(lockout_fail(lo, &b, 101), "b locked");
	int n = 0;
	CHECK(lockout_each(lo, 200, count_one, &n) == 2 && n == 2, "two listed, %d", n);
	n = 0;
	CHECK(lockout_each(lo, 1001, count_one, &n) == 0 && n == 0, "none after the lock time");
	CHECK(lockout_clear(lo, &c), "clearing the /64 by another address of it");
	CHECK(!lockout_is_locked(lo, &b, 200, NULL), "b no longer locked");
	CHECK(lockout_is_locked(lo, &a, 200, NULL), "a still locked");
	CHECK(!lockout_clear(lo, &c), "nothing left to clear");
	/* an attempt in flight keeps its entry: its lockout_end still finds it */
	CHECK(lockout_begin(lo, &b, 300) == LOCKOUT_GO, "begin");
	CHECK(!lockout_clear(lo, &b), "no failures yet");
	CHECK(!lockout_end(lo, &b, 301, true), "one failure, below 2");
	CHECK(lockout_fail(lo, &b, 302), "second failure locks");
	lockout_free(lo);
}

int main(void)
{
	check_rate();
	check_limits();
	check_hijack();
	check_owner_hold();
	check_state_lines();
	check_state_round_trip();
	check_state_cut();
	check_state_file();
	check_lockout_admin();
	return check_summary("abuse");
}
