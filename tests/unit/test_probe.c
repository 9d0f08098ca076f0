/*
 * test_probe.c - the probe's pure decisions, as tables: reply -> verdict,
 * verdicts -> target verdict and exit code, target parsing, names from
 * greetings, templates, and the battery's own consistency.
 */
#include "check.h"
#include "client/smtpc.h"
#include "probe/probe.h"
#include "net/net.h"

#include <stdlib.h>

#define REPLY(role, code, enh) {role, PS_REPLY, code, enh}
#define STATUS(role, st) {role, st, 0, ""}

static void test_judge(void)
{
	static const struct {
		int line;
		enum probe_kind kind;
		struct probe_outcome first;
		bool has_retry;
		struct probe_outcome retry;
		enum probe_verdict want;
	} rows[] = {
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 250, "2.1.5"), false, {0}, V_RELAY_ACCEPTED},
		{__LINE__, PK_AMBIGUOUS, REPLY(ROLE_RCPT, 250, ""), false, {0}, V_ACCEPTED_AMBIGUOUS},
		{__LINE__, PK_LOCAL, REPLY(ROLE_RCPT, 250, ""), false, {0}, V_WARNING},
		{__LINE__, PK_LOCAL, REPLY(ROLE_RCPT, 550, "5.1.1"), false, {0}, V_DENIED},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 554, "5.7.1"), false, {0}, V_DENIED},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 550, ""), false, {0}, V_DENIED},
		{__LINE__, PK_RELAY, REPLY(ROLE_MAIL, 553, "5.1.8"), false, {0}, V_DENIED},
		{__LINE__, PK_RELAY, REPLY(ROLE_HELO, 501, "5.5.2"), false, {0}, V_DENIED},
		/* nmap counts every 4xx as closed; a first 4xx asks for a retry */
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 454, "4.7.1"), false, {0}, V_DEFERRED},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 450, "4.2.0"), false, {0}, V_DEFERRED},
		/* Postfix defer_unauth_destination: same 4xx X.7.1 twice */
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 454, "4.7.1"), true, REPLY(ROLE_RCPT, 454, "4.7.1"),
		 V_DENIED_TEMPORARY},
		/* greylisting: 4xx then 2xx is a relay */
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 450, "4.2.0"), true, REPLY(ROLE_RCPT, 250, "2.1.5"),
		 V_RELAY_ACCEPTED},
		{__LINE__, PK_AMBIGUOUS, REPLY(ROLE_RCPT, 451, "4.7.1"), true, REPLY(ROLE_RCPT, 250, ""),
		 V_ACCEPTED_AMBIGUOUS},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 450, "4.2.0"), true, REPLY(ROLE_RCPT, 550, "5.7.1"),
		 V_DENIED},
		/* persistent 4xx without a policy code: never closed */
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 450, "4.2.0"), true, REPLY(ROLE_RCPT, 450, "4.2.0"),
		 V_INCONCLUSIVE},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 451, ""), true, REPLY(ROLE_RCPT, 451, ""),
		 V_INCONCLUSIVE},
		/* X.7.1 but a different code the second time: not the same answer */
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 450, "4.7.1"), true, REPLY(ROLE_RCPT, 454, "4.7.1"),
		 V_INCONCLUSIVE},
		/* 4.7.10 is not 4.7.1 */
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 454, "4.7.10"), true,
		 REPLY(ROLE_RCPT, 454, "4.7.10"), V_INCONCLUSIVE},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 454, "4.7.1"), true, STATUS(ROLE_RCPT, PS_TIMEOUT),
		 V_TIMEOUT},
		{__LINE__, PK_RELAY, STATUS(ROLE_RCPT, PS_TIMEOUT), false, {0}, V_TIMEOUT},
		{__LINE__, PK_RELAY, STATUS(ROLE_MAIL, PS_CLOSED), false, {0}, V_ERROR},
		{__LINE__, PK_RELAY, STATUS(ROLE_CONNECT, PS_ERROR), false, {0}, V_ERROR},
		/* AUTH before TLS */
		{__LINE__, PK_AUTH_PLAIN, REPLY(ROLE_AUTH, 535, "5.7.8"), false, {0}, V_WARNING},
		{__LINE__, PK_AUTH_PLAIN, REPLY(ROLE_AUTH, 538, "5.7.11"), false, {0}, V_DENIED},
		{__LINE__, PK_AUTH_PLAIN, REPLY(ROLE_AUTH, 503, "5.5.1"), false, {0}, V_DENIED},
		{__LINE__, PK_AUTH_PLAIN, REPLY(ROLE_RCPT, 250, ""), false, {0}, V_RELAY_ACCEPTED},
		/* only a 2xx at RCPT is an acceptance: a 3xx anywhere asks for more */
		{__LINE__, PK_RELAY, REPLY(ROLE_MAIL, 334, ""), false, {0}, V_INCONCLUSIVE},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 354, ""), false, {0}, V_INCONCLUSIVE},
		{__LINE__, PK_AUTH_PLAIN, REPLY(ROLE_AUTH, 334, ""), false, {0}, V_INCONCLUSIVE},
		{__LINE__, PK_AUTH_PLAIN, REPLY(ROLE_AUTH, 235, "2.7.0"), false, {0}, V_INCONCLUSIVE},
		{__LINE__, PK_AMBIGUOUS, REPLY(ROLE_HELO, 250, ""), false, {0}, V_INCONCLUSIVE},
		{__LINE__, PK_RELAY, REPLY(ROLE_RCPT, 450, "4.2.0"), true, REPLY(ROLE_MAIL, 334, ""),
		 V_INCONCLUSIVE},
		/* the --auth positive control */
		{__LINE__, PK_AUTH_RELAY, REPLY(ROLE_RCPT, 250, "2.1.5"), false, {0}, V_AUTH_OK},
		{__LINE__, PK_AUTH_RELAY, REPLY(ROLE_AUTH, 535, "5.7.8"), false, {0}, V_AUTH_FAILED},
		{__LINE__, PK_AUTH_RELAY, REPLY(ROLE_RCPT, 554, "5.7.1"), false, {0}, V_DENIED},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		char note[256];
		enum probe_verdict v = probe_judge(rows[i].kind, &rows[i].first,
						   rows[i].has_retry ? &rows[i].retry : NULL, note,
						   sizeof(note));
		CHECK_STR_AT(rows[i].line, probe_verdict_name(v), probe_verdict_name(rows[i].want),
			     "verdict");
	}
	/* a refused second EHLO (OpenSMTPD 503 "Already identified", Exim 554 "Too many
	 * nonmail commands") is no verdict: the test runs again opening with its name */
	static const struct {
		int line;
		struct probe_outcome o;
		bool repeated, want;
	} redo[] = {
		{__LINE__, REPLY(ROLE_HELO, 503, "5.5.1"), true, true},
		{__LINE__, REPLY(ROLE_HELO, 554, ""), true, true},
		{__LINE__, REPLY(ROLE_HELO, 501, "5.5.2"), false, false}, /* the first EHLO: a verdict */
		{__LINE__, REPLY(ROLE_HELO, 421, "4.7.0"), true, false},  /* lost: retried as such */
		{__LINE__, REPLY(ROLE_HELO, 250, ""), true, false},
		{__LINE__, REPLY(ROLE_RCPT, 503, "5.5.1"), true, false},
		{__LINE__, STATUS(ROLE_HELO, PS_CLOSED), true, false},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(redo); i++)
		CHECK_AT(redo[i].line, probe_redo_with_own_helo(&redo[i].o, redo[i].repeated) ==
			 redo[i].want, "redo with own HELO");
	/* the note of a denied-temporary explains itself */
	struct probe_outcome a = REPLY(ROLE_RCPT, 454, "4.7.1");
	char note[256];
	probe_judge(PK_RELAY, &a, &a, note, sizeof(note));
	CHECK(strstr(note, "defers") != NULL, "note: %s", note);
}

static void test_target_verdict(void)
{
	static const struct {
		int line;
		enum probe_verdict v[4];
		size_t n;
		bool reachable;
		enum probe_target_verdict want;
		int exit;
	} rows[] = {
		{__LINE__, {V_DENIED, V_DENIED_TEMPORARY, V_SKIPPED}, 3, true, TV_CLOSED, 0},
		{__LINE__, {V_DENIED, V_RELAY_ACCEPTED}, 2, true, TV_OPEN, 1},
		{__LINE__, {V_ACCEPTED_AMBIGUOUS, V_RELAY_CONFIRMED}, 2, true, TV_OPEN, 1},
		{__LINE__, {V_DENIED, V_ACCEPTED_AMBIGUOUS}, 2, true, TV_SUSPICIOUS, 3},
		{__LINE__, {V_ACCEPTED_AMBIGUOUS, V_TIMEOUT}, 2, true, TV_SUSPICIOUS, 3},
		{__LINE__, {V_DENIED, V_INCONCLUSIVE}, 2, true, TV_INCONCLUSIVE, 2},
		{__LINE__, {V_DENIED, V_ERROR}, 2, true, TV_INCONCLUSIVE, 2},
		{__LINE__, {V_DELIVERED_LOCALLY, V_NOT_RELAYED, V_DENIED}, 3, true, TV_CLOSED, 0},
		{__LINE__, {V_WARNING, V_AUTH_OK, V_DENIED}, 3, true, TV_CLOSED, 0},
		{__LINE__, {V_DENIED}, 1, false, TV_UNREACHABLE, 2},
		/* a smuggled message accepted: vulnerable (4), below an open relay only */
		{__LINE__, {V_DENIED, V_SMUGGLING_ACCEPTED}, 2, true, TV_VULNERABLE, 4},
		{__LINE__, {V_SMUGGLING_ACCEPTED, V_ACCEPTED_AMBIGUOUS, V_TIMEOUT}, 3, true,
		 TV_VULNERABLE, 4},
		{__LINE__, {V_SMUGGLING_ACCEPTED, V_RELAY_ACCEPTED}, 2, true, TV_OPEN, 1},
		{__LINE__, {V_NOT_SMUGGLED, V_WARNING, V_DENIED}, 3, true, TV_CLOSED, 0},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		enum probe_target_verdict tv =
			probe_target_verdict(rows[i].v, rows[i].n, rows[i].reachable);
		CHECK_STR_AT(rows[i].line, probe_target_verdict_name(tv),
			     probe_target_verdict_name(rows[i].want), "target verdict");
		CHECK_AT(rows[i].line, probe_exit_code(tv) == rows[i].exit, "exit %d",
			 probe_exit_code(tv));
	}
	/* worst wins: 1 > 4 > 3 > 2 > 0 */
	CHECK(probe_worse_exit(4, 1) == 1, "4,1");
	CHECK(probe_worse_exit(3, 4) == 4, "3,4");
	CHECK(probe_worse_exit(0, 4) == 4, "0,4");
	CHECK(probe_worse_exit(0, 2) == 2, "0,2");
	CHECK(probe_worse_exit(2, 3) == 3, "2,3");
	CHECK(probe_worse_exit(3, 1) == 1, "3,1");
	CHECK(probe_worse_exit(1, 0) == 1, "1,0");
	CHECK(probe_worse_exit(3, 2) == 3, "3,2");
}

static void test_parse_target(void)
{
	static const struct {
		int line;
		const char *in;
		bool ok;
		const char *host;
		int port;
	} rows[] = {
		{__LINE__, "mx.example.org", true, "mx.example.org", 25},
		{__LINE__, "mx.example.org:587", true, "mx.example.org", 587},
		{__LINE__, "127.0.0.1:2525", true, "127.0.0.1", 2525},
		{__LINE__, "[::1]:465", true, "::1", 465},
		{__LINE__, "[2001:db8::1]", true, "2001:db8::1", 25},
		{__LINE__, "2001:db8::1", true, "2001:db8::1", 25},
		{__LINE__, "host:0", false, NULL, 0},
		{__LINE__, "host:65536", false, NULL, 0},
		{__LINE__, "host:25x", false, NULL, 0},
		{__LINE__, "host:", false, NULL, 0},
		{__LINE__, ":25", false, NULL, 0},
		{__LINE__, "[::1", false, NULL, 0},
		{__LINE__, "[::1]x", false, NULL, 0},
		{__LINE__, "bad host", false, NULL, 0},
		{__LINE__, "evil\r\nhost", false, NULL, 0},
		{__LINE__, "", false, NULL, 0},
		/* a host with ':' is an IPv6 address or nothing (never a DNS name) */
		{__LINE__, "1.2.3.4:25:", false, NULL, 0},
		{__LINE__, "host:25:26", false, NULL, 0},
		{__LINE__, "[host:1]:25", false, NULL, 0},
		{__LINE__, "[1.2.3.4]:25", true, "1.2.3.4", 25},
		{__LINE__, "::ffff:1.2.3.4", true, "::ffff:1.2.3.4", 25},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		char host[PROBE_NAME_MAX], err[256];
		int port = -1;
		bool ok = probe_parse_target(rows[i].in, 25, host, sizeof(host), &port, err,
					     sizeof(err));
		CHECK_AT(rows[i].line, ok == rows[i].ok, "\"%s\": ok=%d (%s)", rows[i].in, ok,
			 ok ? "" : err);
		if (ok && rows[i].ok) {
			CHECK_STR_AT(rows[i].line, host, rows[i].host, "host");
			CHECK_AT(rows[i].line, port == rows[i].port, "port %d", port);
		}
	}
}

static void test_names(void)
{
	static const struct {
		int line;
		const char *reply;
		const char *name;
		const char *cand[2];
	} rows[] = {
		{__LINE__, "220 mx.lab.test ESMTP Postfix", "mx.lab.test", {"mx.lab.test", "lab.test"}},
		{__LINE__, "220 MX.Lab.Test", "mx.lab.test", {"mx.lab.test", "lab.test"}},
		{__LINE__, "250-mail.example.org Hello\n250 SIZE 1000", "mail.example.org",
		 {"mail.example.org", "example.org"}},
		{__LINE__, "220 lab.test ESMTP", "lab.test", {"lab.test", NULL}},
		{__LINE__, "220 localhost ESMTP", "", {NULL, NULL}},
		{__LINE__, "220 [127.0.0.1] ESMTP", "", {NULL, NULL}},
		{__LINE__, "220 127.0.0.1 ESMTP", "", {NULL, NULL}},
		{__LINE__, "220 ESMTP ready", "", {NULL, NULL}},
		{__LINE__, "220", "", {NULL, NULL}},
		{__LINE__, "220 bad\x01name.test", "", {NULL, NULL}},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		char name[PROBE_NAME_MAX], cand[2][PROBE_NAME_MAX];
		probe_reply_name(rows[i].reply, name, sizeof(name));
		CHECK_STR_AT(rows[i].line, name, rows[i].name, "name");
		size_t n = probe_domain_candidates(name, cand, 2);
		size_t want = (rows[i].cand[0] != NULL) + (rows[i].cand[1] != NULL);
		CHECK_AT(rows[i].line, n == want, "%zu candidates, want %zu", n, want);
		for (size_t k = 0; k < n && k < want; k++)
			CHECK_STR_AT(rows[i].line, cand[k], rows[i].cand[k], "candidate");
	}
}

static const struct probe_vars vars = {
	.victim_local = "relaytest", .victim_domain = "example.net", .domain = "lab.test",
	.server = "mx.lab.test", .ip = "192.0.2.25", .user = "nosuchuser-1",
	.sender_local = "relayprobe", .helo = "probe.example.org",
};

static void test_expand(void)
{
	static const struct {
		int line;
		const char *tmpl;
		const char *want;
	} rows[] = {
		{__LINE__, "{vl}@{vd}", "relaytest@example.net"},
		{__LINE__, "{vl}%{vd}@[{ip}]", "relaytest%example.net@[192.0.2.25]"},
		{__LINE__, "\"{vl}@{vd}\"@{d}", "\"relaytest@example.net\"@lab.test"},
		{__LINE__, "@{s}:{vl}@{vd}", "@mx.lab.test:relaytest@example.net"},
		{__LINE__, "{vd}!{vl}@{s}", "example.net!relaytest@mx.lab.test"},
		{__LINE__, "{V}", "ReLaYtEsT@ExAmPlE.NeT"},
		{__LINE__, "{u}@{d}", "nosuchuser-1@lab.test"},
		{__LINE__, "{nope}{", "{nope}{"},
		{__LINE__, "", ""},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		char out[PROBE_NAME_MAX];
		CHECK_AT(rows[i].line, probe_expand(rows[i].tmpl, &vars, out, sizeof(out)), "fits");
		CHECK_STR_AT(rows[i].line, out, rows[i].want, "expansion");
	}
	char tiny[8];
	CHECK(!probe_expand("{vl}@{vd}", &vars, tiny, sizeof(tiny)), "too long is reported");
}

/* Every row's kind agrees with what its address says, and nmap's 16 tests are all there. */
static void test_battery(void)
{
	const char *own[] = {vars.domain, vars.server, NULL};
	unsigned nmap_seen[17] = {0};
	for (size_t i = 0; i < probe_battery_len; i++) {
		const struct probe_test *t = &probe_battery[i];
		CHECK(probe_find_test(t->id) == t, "id %s is unique", t->id);
		CHECK(t->fix != NULL && t->source != NULL && t->name != NULL, "%s documented", t->id);
		char rcpt[PROBE_NAME_MAX];
		probe_expand(t->rcpt, &vars, rcpt, sizeof(rcpt));
		if (t->kind == PK_RELAY || t->kind == PK_AMBIGUOUS || t->kind == PK_LOCAL) {
			enum probe_kind k = probe_classify_rcpt(rcpt, own, vars.ip);
			CHECK(k == t->kind, "%s: <%s> classified %d, table says %d", t->id, rcpt, k,
			      t->kind);
		}
		const char *p = strstr(t->source, "smtp-open-relay #");
		if (p != NULL) {
			int n = atoi(p + strlen("smtp-open-relay #"));
			if (n >= 1 && n <= 16)
				nmap_seen[n]++;
		}
	}
	for (int n = 1; n <= 16; n++)
		CHECK(nmap_seen[n] == 1, "nmap test #%d covered by exactly one test (%u)", n,
		      nmap_seen[n]);
	/* classification of forms outside the table */
	static const struct {
		int line;
		const char *rcpt;
		enum probe_kind want;
	} rows[] = {
		{__LINE__, "postmaster@lab.test", PK_LOCAL},
		{__LINE__, "postmaster@[192.0.2.25]", PK_LOCAL},
		{__LINE__, "u%example.net@[192.0.2.25]", PK_AMBIGUOUS},
		{__LINE__, "u%example.net@[192.0.2.26]", PK_RELAY},
		{__LINE__, "u@example.net", PK_RELAY},
		{__LINE__, "@lab.test:u@example.net", PK_RELAY},
		{__LINE__, "u@EXAMPLE.net", PK_RELAY},
		{__LINE__, "u@Lab.Test", PK_LOCAL},
		{__LINE__, "example.net!u", PK_AMBIGUOUS},
		{__LINE__, "@@@", PK_AMBIGUOUS},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++)
		CHECK_AT(rows[i].line, probe_classify_rcpt(rows[i].rcpt, own, vars.ip) == rows[i].want,
			 "<%s>", rows[i].rcpt);
}

static void test_reply_parsing(void)
{
	static const struct {
		int line;
		const char *in;
		bool ok;
		int code;
		bool last;
	} rows[] = {
		{__LINE__, "250 ok", true, 250, true},
		{__LINE__, "250-first", true, 250, false},
		{__LINE__, "250", true, 250, true},
		{__LINE__, "550 5.7.1 no", true, 550, true},
		{__LINE__, "25", false, 0, false},
		{__LINE__, "2500 x", false, 0, false},
		{__LINE__, "abc def", false, 0, false},
		{__LINE__, "199 x", false, 0, false},
		{__LINE__, "600 x", false, 0, false},
		{__LINE__, "250_x", false, 0, false},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		int code = 0;
		bool last = false;
		bool ok = smtpc_parse_line(rows[i].in, &code, &last);
		CHECK_AT(rows[i].line, ok == rows[i].ok, "\"%s\" ok=%d", rows[i].in, ok);
		if (ok && rows[i].ok)
			CHECK_AT(rows[i].line, code == rows[i].code && last == rows[i].last,
				 "code %d last %d", code, last);
	}
	static const struct {
		int line;
		int code;
		const char *text;
		const char *want;
	} enh[] = {
		{__LINE__, 554, "5.7.1 <x>: Relay access denied", "5.7.1"},
		{__LINE__, 454, "4.7.1 <x>: Relay access denied", "4.7.1"},
		{__LINE__, 250, "2.1.5 Ok", "2.1.5"},
		{__LINE__, 250, "2.0.0", "2.0.0"},
		{__LINE__, 550, "4.7.1 wrong class", ""},
		{__LINE__, 550, "Relay denied 5.7.1", ""},
		{__LINE__, 550, "5.7 no detail", ""},
		{__LINE__, 550, "5.7.1234 too long", ""},
		{__LINE__, 530, "5.7.0x", ""},
		{__LINE__, 421, "", ""},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(enh); i++) {
		char out[16];
		smtpc_parse_enhanced(enh[i].code, enh[i].text, out, sizeof(out));
		CHECK_STR_AT(enh[i].line, out, enh[i].want, "enhanced code");
	}
}

static void test_json(void)
{
	struct strbuf sb;
	strbuf_init(&sb);
	probe_json_string(&sb, "a\"b\\c\nd\x01\x7f\xc3\xa9");
	CHECK_STR_AT(__LINE__, sb.data, "\"a\\\"b\\\\c\\nd\\u0001\\u007f\\u00c3\\u00a9\"", "json");
	strbuf_free(&sb);
}

/* a canary token counts only as a whole word: test 1's is not test 10's */
static void test_tokens(void)
{
	static const struct {
		int line;
		const char *buf, *token;
		bool want;
	} rows[] = {
		{__LINE__, "Token: rgprobe-ab-000000-01\r\n", "rgprobe-ab-000000-01", true},
		{__LINE__, "X-Relayguard-Probe: rgprobe-ab-000000-10", "rgprobe-ab-000000-1", false},
		{__LINE__, "<rgprobe-ab-000000-01@relayguard.invalid>", "rgprobe-ab-000000-01", true},
		{__LINE__, "xrgprobe-ab-000000-01", "rgprobe-ab-000000-01", false},
		{__LINE__, "rgprobe-ab-000000-012 rgprobe-ab-000000-01.", "rgprobe-ab-000000-01", true},
		{__LINE__, "rgprobe-ab-000000-0", "rgprobe-ab-000000-01", false},
		{__LINE__, "", "rgprobe-ab-000000-01", false},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++)
		CHECK_AT(rows[i].line, probe_token_in(rows[i].buf, strlen(rows[i].buf),
						      rows[i].token) == rows[i].want, "token %s",
			 rows[i].token);
}

/* The replies a smuggling payload drew decide; nothing else does. */
static void test_judge_smuggle(void)
{
	static const struct {
		int line;
		int codes[8];
		size_t n;
		enum probe_status end;
		enum probe_verdict want;
	} rows[] = {
		/* Postfix 3.7 defaults: <LF>.<LF> ends DATA, the smuggled transaction is taken */
		{__LINE__, {250, 250, 250, 354, 250}, 5, PS_TIMEOUT, V_SMUGGLING_ACCEPTED},
		/* the server hung up after taking it: still taken */
		{__LINE__, {250, 250, 250, 354, 250}, 5, PS_CLOSED, V_SMUGGLING_ACCEPTED},
		/* the carrier refused, the smuggled one taken: smuggling all the same */
		{__LINE__, {550, 250, 250, 354, 250}, 5, PS_TIMEOUT, V_SMUGGLING_ACCEPTED},
		/* reject_unauth_pipelining: split, but DATA refused (503, then 221) */
		{__LINE__, {250, 250, 250, 503, 221}, 5, PS_CLOSED, V_WARNING},
		/* split, smuggled DATA accepted but its end refused */
		{__LINE__, {250, 250, 250, 354, 550}, 5, PS_TIMEOUT, V_WARNING},
		/* a 2xx before the 354 is no acceptance of the smuggled message */
		{__LINE__, {250, 250, 250, 354}, 4, PS_TIMEOUT, V_WARNING},
		{__LINE__, {250, 250}, 2, PS_CLOSED, V_WARNING},
		/* a 354 as the first reply is no smuggled DATA */
		{__LINE__, {354, 250}, 2, PS_TIMEOUT, V_WARNING},
		/* one message: the smuggled commands stayed in its body */
		{__LINE__, {250}, 1, PS_TIMEOUT, V_NOT_SMUGGLED},
		{__LINE__, {250}, 1, PS_CLOSED, V_NOT_SMUGGLED},
		/* relayguard: a bare <CR> or <LF> refuses the message */
		{__LINE__, {550}, 1, PS_TIMEOUT, V_DENIED},
		/* OpenSMTPD 6.8: "500 5.5.1 Invalid command: Pipelining not supported", hang-up */
		{__LINE__, {500}, 1, PS_CLOSED, V_DENIED},
		{__LINE__, {451}, 1, PS_TIMEOUT, V_DENIED},
		{__LINE__, {0}, 0, PS_TIMEOUT, V_TIMEOUT},
		{__LINE__, {0}, 0, PS_CLOSED, V_ERROR},
		{__LINE__, {0}, 0, PS_ERROR, V_ERROR},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		char note[256];
		enum probe_verdict v = probe_judge_smuggle(rows[i].codes, rows[i].n, rows[i].end,
							   note, sizeof(note));
		CHECK_AT(rows[i].line, v == rows[i].want, "smuggle verdict %s, want %s (%s)",
			 probe_verdict_name(v), probe_verdict_name(rows[i].want), note);
		CHECK_AT(rows[i].line, note[0] != '\0', "a note says why");
	}
	char note[256];
	int many[PROBE_SMUGGLE_REPLIES];
	for (size_t i = 0; i < RG_ARRAY_LEN(many); i++)
		many[i] = 500;
	CHECK(probe_judge_smuggle(many, RG_ARRAY_LEN(many), PS_REPLY, note, sizeof(note)) ==
		      V_WARNING, "a flood of errors is a split, refused");
}

/* Where the two tokens arrived: one file with both was not split. */
static void test_smuggle_arrival(void)
{
	static const char outer[] = "rgprobe-ab-000000-41", smug[] = "rgprobe-ab-000000-41-s";
	static const struct {
		int line;
		const char *buf;
		enum probe_arrival want;
	} rows[] = {
		{__LINE__, "Subject: rgprobe-ab-000000-41\r\n\r\nToken: rgprobe-ab-000000-41\n.\n"
			   "MAIL FROM:<a@example.net>\r\nToken: rgprobe-ab-000000-41-s\r\n", ARR_WHOLE},
		{__LINE__, "Subject: relayguard probe rgprobe-ab-000000-41\r\n\r\nbody\r\n", ARR_OUTER},
		{__LINE__, "Subject: relayguard probe rgprobe-ab-000000-41-s (smuggled)\r\n",
		 ARR_SMUGGLED},
		{__LINE__, "X-Relayguard-Probe: rgprobe-ab-000000-4\r\n", ARR_NONE},
		{__LINE__, "rgprobe-ab-000000-41-s2 rgprobe-ab-000000-411", ARR_NONE},
		{__LINE__, "", ARR_NONE},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++)
		CHECK_AT(rows[i].line, probe_smuggle_arrival(rows[i].buf, strlen(rows[i].buf), outer,
							     smug) == rows[i].want, "arrival");
}

static void test_eod_names(void)
{
	static const struct {
		int line;
		const char *eod;
		size_t len;
		const char *want;
	} rows[] = {
		{__LINE__, "\n.\n", 3, "<LF>.<LF>"},
		{__LINE__, "\r\n\0.\r\n", 6, "<CR><LF><NUL>.<CR><LF>"},
		{__LINE__, "\r.\r\n", 4, "<CR>.<CR><LF>"},
		{__LINE__, "\t\x7f.", 3, "\\x09\\x7f."},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		char out[64];
		probe_eod_name(rows[i].eod, rows[i].len, out, sizeof(out));
		CHECK_STR_AT(rows[i].line, out, rows[i].want, "eod name");
	}
	/* every smuggling row: a fake end-of-data that is not the real one, named so */
	size_t n = 0;
	for (size_t i = 0; i < probe_battery_len; i++) {
		const struct probe_test *t = &probe_battery[i];
		if (t->kind != PK_SMUGGLE) {
			CHECK(t->eod == NULL && !(t->flags & PF_SMUGGLE), "%s: no eod", t->id);
			continue;
		}
		n++;
		char name[64];
		probe_eod_name(t->eod, t->eod_len, name, sizeof(name));
		CHECK(t->eod_len >= 3 && memchr(t->eod, '.', t->eod_len) != NULL, "%s: a dot", t->id);
		CHECK(!(t->eod_len == 5 && memcmp(t->eod, "\r\n.\r\n", 5) == 0), "%s: not real",
		      t->id);
		CHECK(strstr(t->name, name) != NULL, "%s: the name says %s", t->id, name);
		CHECK((t->flags & (PF_SMUGGLE | PF_FRESH)) == (PF_SMUGGLE | PF_FRESH), "%s: flags",
		      t->id);
	}
	CHECK(n == 11, "11 smuggling variants (%zu)", n);
}

/* The advice when even the plain case relays: first, that the server trusts
 * the probe's address (plainly so from loopback) and how to test as a
 * stranger; the routed forms are not blamed then, as the plain case says it
 * all; a relay is still reported. */
static const struct advice_row {
	int line;
	const char *source, *target; /* --source (NULL: none), the target's address */
	enum probe_verdict plain, percent, local;
	const char *first;  /* the first advice line begins so */
	const char *has, *lacks; /* ... somewhere / nowhere in the advice (NULL: no check) */
} advice_rows[] = {
	{__LINE__, NULL, "127.0.0.1", V_RELAY_ACCEPTED, V_ACCEPTED_AMBIGUOUS, V_WARNING,
	 "the probe connected from a loopback address", "relayed to relaytest@example.net in 1 test",
	 "sender-specified routing"},
	{__LINE__, "127.0.0.9", "127.0.0.1", V_RELAY_ACCEPTED, V_ACCEPTED_AMBIGUOUS, V_WARNING,
	 "the probe connected from 127.0.0.9, a loopback address", "--source ADDR", "backscatter"},
	{__LINE__, NULL, "::1", V_RELAY_CONFIRMED, V_DENIED, V_DENIED,
	 "the probe connected from a loopback address", "not what a stranger", NULL},
	/* not loopback: it may be open to all, or trust this address; say both */
	{__LINE__, "192.0.2.1", "192.0.2.25", V_RELAY_ACCEPTED, V_ACCEPTED_AMBIGUOUS, V_DENIED,
	 "even the plain case", "--source ADDR", "routed form"},
	/* the plain case refused: the routing forms are what relays, blame them */
	{__LINE__, NULL, "127.0.0.1", V_DENIED, V_ACCEPTED_AMBIGUOUS, V_DENIED,
	 "sender-specified routing", "routed form", "loopback"},
	{__LINE__, "192.0.2.1", "192.0.2.25", V_DENIED, V_DENIED, V_DENIED,
	 "no test relayed", NULL, "trusts"},
};

static void test_advice(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(advice_rows); i++) {
		const struct advice_row *row = &advice_rows[i];
		struct probe_result res[3] = {
			{.test = probe_find_test("plain"), .verdict = row->plain},
			{.test = probe_find_test("percent-domain"), .verdict = row->percent},
			{.test = probe_find_test("backscatter"), .verdict = row->local},
		};
		struct probe_target t = {.results = res, .n_results = 3, .reachable = true};
		struct rg_ip ip;
		CHECK_AT(row->line, ip_parse(row->target, &ip), "target address");
		t.addrlen = ip_to_sockaddr(&ip, 25, &t.addr);
		strbuf_init(&t.advice);
		enum probe_verdict v[3] = {row->plain, row->percent, row->local};
		t.verdict = probe_target_verdict(v, 3, true);
		struct probe_options o = {.source = row->source, .victim = "relaytest@example.net"};
		probe_build_advice(&t, &o);
		const char *a = t.advice.data ? t.advice.data : "";
		CHECK_AT(row->line, strncmp(a, row->first, strlen(row->first)) == 0,
			 "first line: %.200s", a);
		if (row->has)
			CHECK_AT(row->line, strstr(a, row->has) != NULL, "has \"%s\": %s", row->has, a);
		if (row->lacks)
			CHECK_AT(row->line, strstr(a, row->lacks) == NULL, "lacks \"%s\": %s",
				 row->lacks, a);
		CHECK_AT(row->line, t.loopback_trusted == (strstr(row->first, "loopback") != NULL),
			 "loopback_trusted %d", t.loopback_trusted);
		CHECK_AT(row->line, (row->plain == V_RELAY_ACCEPTED || row->plain == V_RELAY_CONFIRMED) ==
			 (t.verdict == TV_OPEN && probe_exit_code(t.verdict) == 1), "still open, exit 1");
		strbuf_free(&t.advice);
	}
}

int main(void)
{
	test_advice();
	test_judge_smuggle();
	test_smuggle_arrival();
	test_eod_names();
	test_tokens();
	test_judge();
	test_target_verdict();
	test_parse_target();
	test_names();
	test_expand();
	test_battery();
	test_reply_parsing();
	test_json();
	return check_summary("test_probe");
}
