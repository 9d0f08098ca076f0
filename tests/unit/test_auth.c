/*
 * test_auth.c - SMTP AUTH's building blocks: SASL PLAIN/LOGIN decoding, the
 * per-client lock-out after failed logins, and the Dovecot-format passwd-file
 * (loading, checking passwords, re-reading, making hashes).
 *
 * Every table row is one behaviour with its expected values; a failure names
 * the row's line. Passwd-files are written into a fresh mkdtemp directory; in
 * expected error messages "FILE" stands for the file's path. The fixed hashes
 * below were made once with crypt(3) (openssl passwd for $6$/$5$, libxcrypt
 * for $2b$/$y$) so checking does not depend on passwd_hash(); hashing is slow
 * on purpose, so only a handful of yescrypt/bcrypt checks run.
 */
#include "auth/lockout.h"
#include "auth/passwd.h"
#include "auth/sasl.h"
#include "check.h"
#include "files.h"
#include "net/net.h"
#include "util/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ SASL */

static void check_mech(void)
{
	static const struct {
		int line;
		const char *name;
		bool ok;
		enum sasl_mech want;
	} t[] = {
		{__LINE__, "PLAIN", true, SASL_PLAIN},
		{__LINE__, "plain", true, SASL_PLAIN},
		{__LINE__, "Login", true, SASL_LOGIN},
		{__LINE__, "LOGIN", true, SASL_LOGIN},
		/* only the two we implement, spelt exactly */
		{__LINE__, "CRAM-MD5", false, SASL_PLAIN},
		{__LINE__, "XOAUTH2", false, SASL_PLAIN},
		{__LINE__, "PLAINX", false, SASL_PLAIN},
		{__LINE__, "PLAI", false, SASL_PLAIN},
		{__LINE__, " PLAIN", false, SASL_PLAIN},
		{__LINE__, "", false, SASL_PLAIN},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		enum sasl_mech m = (enum sasl_mech)-1;
		bool ok = sasl_mech_parse(t[k].name, &m);
		CHECK_AT(t[k].line, ok == t[k].ok, "sasl_mech_parse(\"%s\") = %d", t[k].name, ok);
		if (ok && t[k].ok) {
			CHECK_AT(t[k].line, m == t[k].want, "sasl_mech_parse(\"%s\") mech %d",
				 t[k].name, (int)m);
			CHECK_STR_AT(t[k].line, sasl_mech_name(m),
				     t[k].want == SASL_PLAIN ? "PLAIN" : "LOGIN", "sasl_mech_name");
		}
	}
}

#define BYTES(s) s, sizeof(s) - 1

static void check_b64(void)
{
	static const struct {
		int line;
		const char *in;
		size_t cap;
		ssize_t want; /* -1: refused */
		const char *out;
		size_t outlen;
	} t[] = {
		/* RFC 4954: "=" is an empty initial response */
		{__LINE__, "=", 64, 0, BYTES("")},
		{__LINE__, "AGFsaWNlAHNlY3JldA==", 64, 13, BYTES("\0alice\0secret")},
		{__LINE__, "YWxpY2VAZXhhbXBsZS5jb20AYWxpY2VAZXhhbXBsZS5jb20AcGFzcw==", 64, 40,
		 BYTES("alice@example.com\0alice@example.com\0pass")},
		{__LINE__, "YQ==", 64, 1, BYTES("a")},
		{__LINE__, "YWI=", 64, 2, BYTES("ab")},
		{__LINE__, "YWJj", 64, 3, BYTES("abc")},
		{__LINE__, "YWJj", 3, 3, BYTES("abc")},
		{__LINE__, "+/+/", 3, 3, BYTES("\xfb\xff\xbf")},
		/* does not fit */
		{__LINE__, "YWJj", 2, -1, BYTES("")},
		{__LINE__, "YWJjZGVm", 5, -1, BYTES("")},
		/* not strict base64 */
		{__LINE__, "", 64, -1, BYTES("")},
		{__LINE__, "==", 64, -1, BYTES("")},
		{__LINE__, "YQ", 64, -1, BYTES("")},      /* padding required */
		{__LINE__, "YWJ", 64, -1, BYTES("")},
		{__LINE__, "Y===", 64, -1, BYTES("")},
		{__LINE__, "YQ=a", 64, -1, BYTES("")},    /* '=' only at the end */
		{__LINE__, "=YWJ", 64, -1, BYTES("")},
		{__LINE__, "YQ==YWJj", 64, -1, BYTES("")}, /* padding in the middle */
		{__LINE__, "YW J", 64, -1, BYTES("")},    /* EVP would skip blanks */
		{__LINE__, "YWJj\r\n", 64, -1, BYTES("")},
		{__LINE__, " YWJj", 64, -1, BYTES("")},
		{__LINE__, "YW-_", 64, -1, BYTES("")},    /* base64url is another alphabet */
		/* bits after the last byte must be zero (found by fuzz_sasl) */
		{__LINE__, "Y3a=", 64, -1, BYTES("")},
		{__LINE__, "Y3Y=", 64, 2, BYTES("cv")},
		{__LINE__, "YR==", 64, -1, BYTES("")},
		{__LINE__, "YW\xc3\xa9", 64, -1, BYTES("")},
		{__LINE__, "*", 64, -1, BYTES("")},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		/* exactly cap bytes on the heap, so an overrun is an ASan report */
		unsigned char *out = xmalloc(t[k].cap ? t[k].cap : 1);
		ssize_t n = sasl_b64_decode(t[k].in, out, t[k].cap);
		CHECK_AT(t[k].line, n == t[k].want, "sasl_b64_decode(\"%s\", cap %zu) = %zd, want %zd",
			 t[k].in, t[k].cap, n, t[k].want);
		if (n == t[k].want && n > 0)
			CHECK_AT(t[k].line, (size_t)n == t[k].outlen && memcmp(out, t[k].out, t[k].outlen) == 0,
				 "sasl_b64_decode(\"%s\"): wrong bytes", t[k].in);
		free(out);
	}
}

#define WHY_FORM "a PLAIN response is authzid NUL user NUL password"
#define WHY_FIELD "a field is too long or contains NUL"
#define WHY_EMPTY "empty username"
#define WHY_AUTHZ "acting for another user (authzid) is not allowed"

/* A PLAIN message of up to three fields of generated lengths; see plain_msg(). */
struct plain_row {
	int line;
	const char *msg;
	size_t len;
	const char *why;  /* NULL: accepted */
	const char *user, *pass;
};

static void check_plain(void)
{
	static const struct plain_row t[] = {
		{__LINE__, BYTES("\0alice\0secret"), NULL, "alice", "secret"},
		{__LINE__, BYTES("alice\0alice\0secret"), NULL, "alice", "secret"},
		{__LINE__, BYTES("\0alice@example.com\0pass word"), NULL, "alice@example.com",
		 "pass word"},
		/* the length given counts, not a NUL or what follows */
		{__LINE__, "\0alice\0secretXYZ", 13, NULL, "alice", "secret"},
		/* an empty password decodes; the backend refuses it */
		{__LINE__, BYTES("\0alice\0"), NULL, "alice", ""},
		/* nobody may act for somebody else */
		{__LINE__, BYTES("bob\0alice\0secret"), WHY_AUTHZ, NULL, NULL},
		{__LINE__, BYTES("admin\0alice\0secret"), WHY_AUTHZ, NULL, NULL},
		{__LINE__, BYTES("\0\0secret"), WHY_EMPTY, NULL, NULL},
		{__LINE__, BYTES("alice\0\0secret"), WHY_EMPTY, NULL, NULL},
		/* three fields, no more, no fewer */
		{__LINE__, BYTES("\0alice\0sec\0ret"), WHY_FIELD, NULL, NULL},
		{__LINE__, BYTES("\0alice\0secret\0"), WHY_FIELD, NULL, NULL},
		{__LINE__, BYTES("\0alice"), WHY_FORM, NULL, NULL},
		{__LINE__, BYTES("alice secret"), WHY_FORM, NULL, NULL},
		{__LINE__, BYTES(""), WHY_FORM, NULL, NULL},
		{__LINE__, BYTES("\0"), WHY_FORM, NULL, NULL},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		char *user = xmalloc(SASL_FIELD_MAX), *pass = xmalloc(SASL_FIELD_MAX);
		const char *why = NULL;
		/* a heap copy of exactly len bytes: reading past it is an ASan report */
		unsigned char *msg = xmalloc(t[k].len ? t[k].len : 1);
		memcpy(msg, t[k].msg, t[k].len);
		bool ok = sasl_plain_split(msg, t[k].len, user, pass, &why);
		CHECK_AT(t[k].line, ok == (t[k].why == NULL), "sasl_plain_split: %s (%s)",
			 ok ? "accepted" : "refused", why ? why : "");
		if (ok && t[k].why == NULL) {
			CHECK_STR_AT(t[k].line, user, t[k].user, "user");
			CHECK_STR_AT(t[k].line, pass, t[k].pass, "pass");
		} else if (!ok) {
			CHECK_STR_AT(t[k].line, why, t[k].why, "why");
		}
		free(msg);
		free(user);
		free(pass);
	}
}

/* make_plain - "authz NUL user NUL pass" where each field is N copies of a letter. */
static unsigned char *make_plain(size_t na, size_t nu, size_t np, size_t *len)
{
	*len = na + nu + np + 2;
	unsigned char *m = xmalloc(*len);
	memset(m, 'u', *len);
	memset(m + na + 1 + nu + 1, 'p', np);
	m[na] = '\0';
	m[na + 1 + nu] = '\0';
	return m;
}

/* SASL_FIELD_MAX counts the NUL: 255 bytes fit, 256 do not. */
static void check_plain_lengths(void)
{
	const size_t max = SASL_FIELD_MAX - 1;
	static const struct {
		int line;
		size_t authz_eq_user; /* 1: authzid is the user, 0: empty */
		size_t nu, np;
		bool ok;
	} t[] = {
		{__LINE__, 0, SASL_FIELD_MAX - 1, SASL_FIELD_MAX - 1, true},
		{__LINE__, 1, SASL_FIELD_MAX - 1, 1, true},
		{__LINE__, 0, SASL_FIELD_MAX, 1, false},
		{__LINE__, 0, 1, SASL_FIELD_MAX, false},
		{__LINE__, 1, SASL_FIELD_MAX, 1, false},
		{__LINE__, 0, 1, 4000, false},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		size_t len;
		unsigned char *m = make_plain(t[k].authz_eq_user ? t[k].nu : 0, t[k].nu, t[k].np, &len);
		char *user = xmalloc(SASL_FIELD_MAX), *pass = xmalloc(SASL_FIELD_MAX);
		const char *why = NULL;
		bool ok = sasl_plain_split(m, len, user, pass, &why);
		CHECK_AT(t[k].line, ok == t[k].ok, "sasl_plain_split(user %zu, pass %zu bytes) = %d (%s)",
			 t[k].nu, t[k].np, ok, why ? why : "");
		if (ok && t[k].ok)
			CHECK_AT(t[k].line, strlen(user) == t[k].nu && strlen(pass) == t[k].np &&
					    strlen(user) <= max,
				 "lengths %zu/%zu", strlen(user), strlen(pass));
		if (!ok)
			CHECK_STR_AT(t[k].line, why, WHY_FIELD, "why");
		free(user);
		free(pass);
		free(m);
	}
}

static void check_login_field(void)
{
	static const struct {
		int line;
		const char *msg;
		size_t len;
		bool ok;
		const char *want;
	} t[] = {
		{__LINE__, BYTES("alice@example.com"), true, "alice@example.com"},
		{__LINE__, BYTES("pass word"), true, "pass word"},
		{__LINE__, "alice...", 5, true, "alice"},
		{__LINE__, BYTES(""), true, ""},
		{__LINE__, BYTES("ali\0ce"), false, NULL},
		{__LINE__, BYTES("alice\0"), false, NULL},
		{__LINE__, BYTES("\0"), false, NULL},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		char *out = xmalloc(SASL_FIELD_MAX);
		const char *why = NULL;
		bool ok = sasl_login_field((const unsigned char *)t[k].msg, t[k].len, out, &why);
		CHECK_AT(t[k].line, ok == t[k].ok, "sasl_login_field = %d", ok);
		if (ok && t[k].ok)
			CHECK_STR_AT(t[k].line, out, t[k].want, "field");
		if (!ok)
			CHECK_STR_AT(t[k].line, why, "too long or contains NUL", "why");
		free(out);
	}
	/* 255 bytes fit in SASL_FIELD_MAX with the NUL; 256 do not */
	static const struct { int line; size_t n; bool ok; } lens[] = {
		{__LINE__, SASL_FIELD_MAX - 1, true},
		{__LINE__, SASL_FIELD_MAX, false},
		{__LINE__, 100000, false},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(lens); k++) {
		unsigned char *m = xmalloc(lens[k].n);
		memset(m, 'x', lens[k].n);
		char *out = xmalloc(SASL_FIELD_MAX);
		const char *why = NULL;
		bool ok = sasl_login_field(m, lens[k].n, out, &why);
		CHECK_AT(lens[k].line, ok == lens[k].ok, "sasl_login_field(%zu bytes) = %d", lens[k].n,
			 ok);
		if (ok && lens[k].ok)
			CHECK_AT(lens[k].line, strlen(out) == lens[k].n, "length %zu", strlen(out));
		free(out);
		free(m);
	}
}

/* --------------------------------------------------------------- lockout */

enum lo_op { LO_END, LO_FAIL, LO_LOCKED, LO_SIZE, LO_BEGIN, LO_END_FAIL, LO_END_OK, LO_FILL };

struct lo_step {
	int line;
	enum lo_op op;
	const char *ip;
	time_t now;
	long want; /* FAIL, END_FAIL: 1 when it locks; LOCKED: the end of the lock-out,
		      0 when free; SIZE: entries; BEGIN: an enum lockout_verdict;
		      FILL: how many distinct /64s under 2001:db8::/32 fail once */
};

#define FAIL(ip, now, locks) {__LINE__, LO_FAIL, ip, now, locks}
#define LOCKED(ip, now, until) {__LINE__, LO_LOCKED, ip, now, until}
#define FREE(ip, now) {__LINE__, LO_LOCKED, ip, now, 0}
#define SIZE(n) {__LINE__, LO_SIZE, NULL, 0, n}
#define BEGIN(ip, now, verdict) {__LINE__, LO_BEGIN, ip, now, verdict}
#define END_FAIL(ip, now, locks) {__LINE__, LO_END_FAIL, ip, now, locks}
#define END_OK(ip, now) {__LINE__, LO_END_OK, ip, now, 0}
#define FILL(now, n) {__LINE__, LO_FILL, NULL, now, n}

struct lo_scenario {
	int line;
	unsigned limit, window, lock_time;
	size_t max;
	struct lo_step steps[24];
};

#define A "192.0.2.1"
#define B "192.0.2.2"
#define C "192.0.2.3"
#define D "192.0.2.4"

static const struct lo_scenario lo_scenarios[] = {
	/* the limit, the lock-out and its end */
	{__LINE__, 3, 60, 300, 100, {
		FAIL(A, 0, 0), FREE(A, 0), FAIL(A, 10, 0), FREE(A, 10),
		FAIL(A, 20, 1), LOCKED(A, 20, 320), LOCKED(A, 319, 320), FREE(A, 320),
		/* other clients are not affected */
		FREE(B, 20), FREE("2001:db8::1", 20), SIZE(1),
		/* after the lock-out the count starts again */
		FAIL(A, 320, 0), FAIL(A, 321, 0), FREE(A, 321), FAIL(A, 322, 1),
		LOCKED(A, 322, 622),
	}},
	/* failures count inside the window only */
	{__LINE__, 3, 60, 300, 100, {
		FAIL(A, 0, 0), FAIL(A, 30, 0), FAIL(A, 60, 0), FREE(A, 60), /* 60 s later: a new window */
		FAIL(A, 61, 0), FAIL(A, 119, 1), LOCKED(A, 119, 419),
		FAIL(B, 0, 0), FAIL(B, 59, 0), FAIL(B, 59, 1), LOCKED(B, 59, 359),
		FAIL(C, 0, 0), FAIL(C, 100, 0), FAIL(C, 200, 0), FAIL(C, 300, 0), FREE(C, 300),
	}},
	/* one client, whatever address family its socket had */
	{__LINE__, 2, 60, 300, 100, {
		FAIL(A, 0, 0), FAIL("::ffff:" A, 1, 1), LOCKED(A, 1, 301), LOCKED("::ffff:" A, 1, 301),
		SIZE(1),
		/* IPv6 counts per /64: one host has a whole /64 to pick addresses from */
		FAIL("2001:db8::1", 0, 0), FREE("2001:db8::1", 0), FAIL("2001:db8::2", 5, 1),
		LOCKED("2001:db8::1", 5, 305), LOCKED("2001:db8::ffff:1", 5, 305),
		FREE("2001:db8:0:1::1", 5), SIZE(2),
	}},
	/* a limit of 0 means 1: every failure locks */
	{__LINE__, 0, 60, 30, 100, {
		FAIL(A, 0, 1), LOCKED(A, 0, 30), FREE(A, 30), FAIL(A, 31, 1), LOCKED(A, 31, 61),
	}},
	/* the table is bounded: a newcomer to a full table is counted all the same;
	 * room is made by an expired entry, else an unlocked one with the fewest
	 * failures, else the one seen least recently */
	{__LINE__, 2, 60, 300, 2, {
		FAIL(A, 0, 0), FAIL(B, 0, 0), SIZE(2),
		FAIL(C, 1, 0), SIZE(2), FAIL(C, 2, 1), LOCKED(C, 2, 302), /* A went */
		FAIL(A, 3, 0), SIZE(2), FAIL(A, 4, 1), LOCKED(A, 4, 304), /* B went, not C */
		LOCKED(C, 4, 302),
		FAIL(D, 5, 0), SIZE(2), FREE(C, 5), LOCKED(A, 5, 304), /* all locked: the oldest */
		/* at 400 A's lock-out and D's window are over */
		FAIL(B, 400, 0), SIZE(2), FAIL(B, 401, 1), LOCKED(B, 401, 701),
	}},
	/* 100,000 /64s fill the table; a fresh address is still counted and locked
	 * out, while the attacker's entries keep coming between its failures */
	{__LINE__, 5, 600, 900, 100000, {
		FILL(0, 100000), SIZE(100000),
		FAIL(A, 1, 0), FILL(1, 1000), FAIL(A, 2, 0), FILL(2, 1000), FAIL(A, 3, 0),
		FILL(3, 1000), FAIL(A, 4, 0), FILL(4, 1000), FAIL(A, 5, 1), LOCKED(A, 5, 905),
		SIZE(100000),
	}},
	/* no room at all still means room for one */
	{__LINE__, 1, 60, 300, 0, {
		FAIL(A, 0, 1), LOCKED(A, 0, 300), SIZE(1),
	}},
	/* attempts in flight count when they start: 45 parallel AUTHs, limit 5 */
	{__LINE__, 5, 60, 300, 100, {
		BEGIN(A, 0, LOCKOUT_GO), BEGIN(A, 0, LOCKOUT_GO), BEGIN(A, 0, LOCKOUT_GO),
		BEGIN(A, 0, LOCKOUT_GO), BEGIN(A, 0, LOCKOUT_GO), BEGIN(A, 0, LOCKOUT_BUSY),
		BEGIN(A, 0, LOCKOUT_BUSY), BEGIN(B, 0, LOCKOUT_GO), END_OK(B, 0),
		END_FAIL(A, 1, 0), END_FAIL(A, 1, 0), END_FAIL(A, 1, 0), END_FAIL(A, 1, 0),
		BEGIN(A, 1, LOCKOUT_BUSY), END_FAIL(A, 1, 1), LOCKED(A, 1, 301),
		BEGIN(A, 2, LOCKOUT_LOCKED), FREE(B, 2),
	}},
	/* a success frees its slot but does not clear the failures */
	{__LINE__, 2, 60, 300, 100, {
		BEGIN(A, 0, LOCKOUT_GO), END_FAIL(A, 0, 0), BEGIN(A, 0, LOCKOUT_GO),
		BEGIN(A, 0, LOCKOUT_BUSY), END_OK(A, 0), BEGIN(A, 0, LOCKOUT_GO),
		END_FAIL(A, 0, 1), BEGIN(A, 1, LOCKOUT_LOCKED),
		/* the window ends: a fresh start */
		BEGIN(B, 0, LOCKOUT_GO), END_FAIL(B, 0, 0), BEGIN(B, 60, LOCKOUT_GO),
		BEGIN(B, 60, LOCKOUT_GO), BEGIN(B, 60, LOCKOUT_BUSY),
	}},
	/* an entry with attempts in flight is never pushed out of a full table */
	{__LINE__, 3, 60, 300, 1, {
		BEGIN(A, 0, LOCKOUT_GO), FAIL(B, 1, 0), SIZE(2), END_FAIL(A, 2, 0),
		FAIL(A, 3, 0), FAIL(A, 4, 1), LOCKED(A, 4, 304),
	}},
};

/* fill - N distinct IPv6 /64s fail once each at NOW. */
static void fill(struct lockout *lo, time_t now, long n)
{
	static unsigned long next;
	for (long i = 0; i < n; i++, next++) {
		struct rg_ip ip;
		char text[64];
		snprintf(text, sizeof(text), "2001:db8:%lx:%lx::1", (next >> 16) & 0xffff,
			 next & 0xffff);
		if (ip_parse(text, &ip))
			lockout_fail(lo, &ip, now);
	}
}

static void run_lockout(const struct lo_scenario *s)
{
	struct lockout *lo = lockout_new(s->limit, s->window, s->lock_time, s->max);
	for (const struct lo_step *st = s->steps; st->op != LO_END; st++) {
		struct rg_ip ip;
		if (st->ip != NULL && !ip_parse(st->ip, &ip)) {
			CHECK_AT(st->line, false, "ip_parse(%s)", st->ip);
			continue;
		}
		switch (st->op) {
		case LO_FAIL: {
			bool locks = lockout_fail(lo, &ip, st->now);
			CHECK_AT(st->line, locks == (st->want != 0), "lockout_fail(%s, t=%ld) = %d",
				 st->ip, (long)st->now, locks);
			break;
		}
		case LO_LOCKED: {
			time_t until = -1;
			bool locked = lockout_is_locked(lo, &ip, st->now, &until);
			CHECK_AT(st->line, locked == (st->want != 0),
				 "lockout_is_locked(%s, t=%ld) = %d", st->ip, (long)st->now, locked);
			if (locked && st->want != 0)
				CHECK_AT(st->line, until == st->want, "locked until %ld, want %ld",
					 (long)until, st->want);
			/* a NULL until is allowed */
			CHECK_AT(st->line, lockout_is_locked(lo, &ip, st->now, NULL) == locked,
				 "lockout_is_locked(until NULL)");
			break;
		}
		case LO_BEGIN: {
			enum lockout_verdict v = lockout_begin(lo, &ip, st->now);
			CHECK_AT(st->line, v == (enum lockout_verdict)st->want,
				 "lockout_begin(%s, t=%ld) = %d, want %ld", st->ip, (long)st->now,
				 (int)v, st->want);
			break;
		}
		case LO_END_FAIL:
		case LO_END_OK: {
			bool locks = lockout_end(lo, &ip, st->now, st->op == LO_END_FAIL);
			CHECK_AT(st->line, locks == (st->want != 0), "lockout_end(%s, t=%ld) = %d",
				 st->ip, (long)st->now, locks);
			break;
		}
		case LO_FILL:
			fill(lo, st->now, st->want);
			break;
		case LO_SIZE:
			CHECK_AT(st->line, lockout_size(lo) == (size_t)st->want, "lockout_size = %zu, want %ld",
				 lockout_size(lo), st->want);
			break;
		case LO_END:
			break;
		}
	}
	lockout_free(lo);
}

static void check_lockout(void)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(lo_scenarios); k++)
		run_lockout(&lo_scenarios[k]);
	lockout_free(NULL);
}

/* ---------------------------------------------------------------- passwd */

/* Fixed hashes (see the top): the password is the user's name with "-pw". */
#define H_ALICE "$6$rgtestsalt0001$Wu9AoipP4F5qfgGvSshKJZsGupwMy96gf4/tuZxc/QrF/nfmtYY5uPHh" \
		"4krsCV7xDFuFeMOq5WUIwoJoJk6rT0" /* "alice secret" */
#define H_DAVE "$6$rgtestsalt0003$7wO7RcKvrootAEZAQZoIZFPJQeK0JKlAQjxsZWufVOV9ThyoWta78VVN" \
	       "29DqRxAP4LhND4PbIOBZSMGKCfWtn."
#define H_ERIN "$5$rgtestsalt0002$a8js3.kjY8eSLbTJFhSurVeYdwEEoLEQMcPZiRkKyE/"
#define H_FRANK "$2b$04$akTqWVjlbUDwXAzyXVLyGOP6qj2971qLWQTYsupn/EavsfScB9IsW"
/* yescrypt at cost 1 ($y$j75$), not the default j9T: every unknown-user check of
 * this file runs the stand-in (one of these), and j9T made this test 15 s */
#define H_GINA "$y$j75$mJ4PVZrNp3aQYp0RZB5RV.$3YLSfjeahS6z5/jpS6pEBLOZFQYIJ0FsnuqX6XikQDB"
#define H_HANK "$y$j75$mJ4PVZrNp3aQYp0RZB5RV.$scf7x8nErZK1HDhLHZ7lQRM.obwf3gCcwz17WFYgmsA"
#define H_MD5 "$1$abc$mi5SzeIxMV6oln4fIbzar." /* "md5pw" */

static const char passwd_text[] =
	"# relayguard test users\n"
	"\n"
	"alice@example.com:{SHA512-CRYPT}" H_ALICE ":1000:1000::/home/alice::\n"
	"Bob@Example.COM:{PLAIN}bob-pw\n"
	"carol@example.com:{CLEAR}carol-pw::::::userdb_quota_rule=*:storage=1G\n"
	"  dave@example.com:" H_DAVE "  \n" /* a bare crypt(3) hash; blanks around the line */
	"erin@example.com:{SHA256-CRYPT}" H_ERIN "\n"
	"frank@example.com:{BLF-CRYPT}" H_FRANK "\n"
	"gina@example.com:{CRYPT}" H_GINA "\n"
	"hank@example.com:{crypt}" H_HANK "\n" /* scheme names in any case */
	"ivan@example.com:{PLAIN}ivan-pw\r\n"
	"judy:{CLEARTEXT}judy-pw\n"
	"\t# an indented comment\n"
	"nopw@example.com:\n"
	"nopw2@example.com:{PLAIN}\n"
	"nopw3@example.com:{SHA512-CRYPT}\n"
	"ken@example.com:{CRYPT}" H_MD5 "\n";

struct verify_row {
	int line;
	const char *user, *pass;
	enum auth_status want;
	const char *canon;  /* on AUTH_OK */
	const char *reason; /* on AUTH_FAILED */
};

#define OK_AS(user, pass, canon) {__LINE__, user, pass, AUTH_OK, canon, NULL}
#define WRONG(user, pass) {__LINE__, user, pass, AUTH_FAILED, NULL, "wrong password"}
#define UNKNOWN(user, pass) {__LINE__, user, pass, AUTH_FAILED, NULL, "unknown user"}

static const struct verify_row verify_rows[] = {
	OK_AS("alice@example.com", "alice secret", "alice@example.com"),
	/* user names in any case; the canonical name is the file's, in lower case */
	OK_AS("ALICE@Example.Com", "alice secret", "alice@example.com"),
	WRONG("alice@example.com", "Alice secret"),
	WRONG("alice@example.com", "alice secret "),
	WRONG("alice@example.com", "alice"),
	WRONG("alice@example.com", ""),
	OK_AS("bob@example.com", "bob-pw", "bob@example.com"),
	OK_AS("BOB@EXAMPLE.COM", "bob-pw", "bob@example.com"),
	WRONG("bob@example.com", "BOB-PW"),
	WRONG("bob@example.com", "bob-pw "),
	WRONG("bob@example.com", "bob-p"),
	OK_AS("carol@example.com", "carol-pw", "carol@example.com"),
	WRONG("carol@example.com", "carol-pw::::::userdb_quota_rule=*:storage=1G"),
	OK_AS("dave@example.com", "dave-pw", "dave@example.com"),
	WRONG("dave@example.com", "alice secret"),
	OK_AS("erin@example.com", "erin-pw", "erin@example.com"),
	WRONG("erin@example.com", "erin-PW"),
	OK_AS("frank@example.com", "frank-pw", "frank@example.com"),
	WRONG("frank@example.com", "frank-pw!"),
	OK_AS("gina@example.com", "gina-pw", "gina@example.com"),
	WRONG("gina@example.com", "hank-pw"),
	OK_AS("Hank@example.com", "hank-pw", "hank@example.com"),
	/* CRLF line ends are not part of the password */
	OK_AS("ivan@example.com", "ivan-pw", "ivan@example.com"),
	WRONG("ivan@example.com", "ivan-pw\r"),
	OK_AS("judy", "judy-pw", "judy"),
	UNKNOWN("judy@example.com", "judy-pw"),
	/* {CRYPT} takes any hash crypt(3) can check */
	OK_AS("ken@example.com", "md5pw", "ken@example.com"),
	/* an empty password: the account cannot log in, with any password */
	WRONG("nopw@example.com", ""),
	WRONG("nopw@example.com", "x"),
	WRONG("nopw2@example.com", ""),
	WRONG("nopw3@example.com", ""),
	/* unknown users get the same answer (see also check_stand_in()) */
	UNKNOWN("zed@example.com", "alice secret"),
	UNKNOWN("zed@example.com", ""),
	UNKNOWN("alice@example.co", "alice secret"),
	UNKNOWN("alice", "alice secret"),
	UNKNOWN("", ""),
	UNKNOWN("alice@example.com:{PLAIN}x", "x"),
};

static char *write_file(const char *dir, const char *name, const char *text, size_t len)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL, "cannot create %s", path);
	if (f != NULL) {
		fwrite(text, 1, len, f);
		fclose(f);
	}
	return path;
}

static void verify_at(int line, struct passwd_db *db, const char *user, const char *pass,
		      enum auth_status want, const char *canon, const char *reason)
{
	char got_canon[300] = "(unset)", got_reason[100] = "(unset)";
	enum auth_status st = passwd_db_verify(db, user, pass, got_canon, sizeof(got_canon),
					       got_reason, sizeof(got_reason));
	CHECK_AT(line, st == want, "passwd_db_verify(\"%s\", \"%s\") = %d, want %d (%s)", user,
		 pass, (int)st, (int)want, got_reason);
	if (st == want && want == AUTH_OK)
		CHECK_STR_AT(line, got_canon, canon, "canonical user");
	if (st == want && want != AUTH_OK) {
		CHECK_STR_AT(line, got_reason, reason, "reason");
		/* a refused login says nothing about the user */
		CHECK_STR_AT(line, got_canon, "(unset)", "canonical user on failure");
	}
}

/*
 * Unknown users and accounts without a password are checked against a stand-in
 * hash, so they cost what a real check does. The stand-in may be a real user's
 * hash: whichever it is, that user's password opens neither.
 */
static void check_stand_in(struct passwd_db *db)
{
	static const char *const known[] = {
		"alice secret", "dave-pw", "erin-pw", "frank-pw", "gina-pw", "hank-pw", "md5pw",
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(known); k++) {
		verify_at(__LINE__, db, "zed@example.com", known[k], AUTH_FAILED, NULL, "unknown user");
		verify_at(__LINE__, db, "nopw@example.com", known[k], AUTH_FAILED, NULL,
			  "wrong password");
	}
}

static void check_passwd_verify(const char *dir)
{
	char *path = write_file(dir, "users", passwd_text, sizeof(passwd_text) - 1);
	char err[1024] = "";
	struct passwd_db *db = passwd_db_load(path, err, sizeof(err));
	CHECK(db != NULL, "passwd_db_load: %s", err);
	if (db != NULL) {
		for (size_t k = 0; k < RG_ARRAY_LEN(verify_rows); k++) {
			const struct verify_row *r = &verify_rows[k];
			verify_at(r->line, db, r->user, r->pass, r->want, r->canon, r->reason);
		}
		check_stand_in(db);
		/* a name far longer than any user may be */
		char *longname = xmalloc(1000);
		memset(longname, 'a', 999);
		longname[999] = '\0';
		verify_at(__LINE__, db, longname, "x", AUTH_FAILED, NULL, "unknown user");
		free(longname);
		/* a short canonical buffer is truncated, not overrun (ASan) */
		char small[6], reason[4];
		CHECK(passwd_db_verify(db, "bob@example.com", "bob-pw", small, sizeof(small), reason,
				       sizeof(reason)) == AUTH_OK &&
			      strcmp(small, "bob@e") == 0,
		      "short canon buffer: \"%s\"", small);
		CHECK(passwd_db_verify(db, "bob@example.com", "x", small, sizeof(small), reason,
				       sizeof(reason)) == AUTH_FAILED &&
			      strcmp(reason, "wro") == 0,
		      "short reason buffer: \"%s\"", reason);
	}
	passwd_db_free(db);
	unlink(path);
	free(path);
}

/* A file that must not load: each of want[] is one line of the report, in order. */
struct load_err_row {
	int line;
	const char *text;
	size_t len;
	const char *want[3];
};

#define LOAD_ERR(text, ...) {__LINE__, text, sizeof(text) - 1, {__VA_ARGS__}}

#define E_SCHEME "unsupported password scheme (use CRYPT, SHA512-CRYPT, SHA256-CRYPT, " \
		 "BLF-CRYPT or PLAIN)"
#define E_MISMATCH "the hash does not match its {SCHEME}"
#define E_NOHASH "not a crypt(3) hash this system can check"

static const struct load_err_row load_err_rows[] = {
	LOAD_ERR("alice@example.com:{MD5}" H_MD5 "\n", "FILE:1: " E_SCHEME),
	LOAD_ERR("alice@example.com:{SSHA}abc\n", "FILE:1: " E_SCHEME),
	LOAD_ERR("alice@example.com:{}abc\n", "FILE:1: " E_SCHEME),
	LOAD_ERR("alice@example.com:{PLAIN\n", "FILE:1: missing '}' after the password scheme"),
	/* a hash must be what its scheme says */
	LOAD_ERR("alice@example.com:{SHA512-CRYPT}" H_ERIN "\n", "FILE:1: " E_MISMATCH),
	LOAD_ERR("alice@example.com:{SHA256-CRYPT}" H_ALICE "\n", "FILE:1: " E_MISMATCH),
	LOAD_ERR("alice@example.com:{BLF-CRYPT}" H_GINA "\n", "FILE:1: " E_MISMATCH),
	LOAD_ERR("alice@example.com:{SHA512-CRYPT}alice-pw\n", "FILE:1: " E_MISMATCH),
	/* a bare or {CRYPT} field must be a crypt(3) hash, not a password */
	LOAD_ERR("alice@example.com:alice-pw\n", "FILE:1: " E_NOHASH),
	LOAD_ERR("alice@example.com:{CRYPT}alice-pw\n", "FILE:1: " E_NOHASH),
	LOAD_ERR("alice@example.com:abJnggxhB/yWI\n", "FILE:1: " E_NOHASH), /* DES */
	LOAD_ERR("alice@example.com:$9$nonsense\n", "FILE:1: " E_NOHASH),
	/* user names */
	LOAD_ERR("alice@example.com\n", "FILE:1: expected user:password"),
	LOAD_ERR(":{PLAIN}x\n", "FILE:1: bad user name"),
	LOAD_ERR("al ice:{PLAIN}x\n", "FILE:1: bad user name"),
	LOAD_ERR("alice\x01:{PLAIN}x\n", "FILE:1: bad user name"),
	LOAD_ERR("j\xc3\xbcrgen@example.com:{PLAIN}x\n", "FILE:1: bad user name"),
	LOAD_ERR("alice@example.com:{PLAIN}a\0b\n", "FILE:1: NUL byte in file"),
	/* every problem, each with its line (comments and blank lines count) */
	LOAD_ERR("# users\n\nalice@example.com:{MD5}x\nbob@example.com:{PLAIN}ok\n"
		 "carol@example.com:carol-pw\nno colon\n",
		 "FILE:3: " E_SCHEME, "FILE:5: " E_NOHASH, "FILE:6: expected user:password"),
	/* the same user twice, in any case */
	LOAD_ERR("alice@example.com:{PLAIN}a\nbob@example.com:{PLAIN}b\n"
		 "ALICE@example.com:{PLAIN}c\n",
		 "FILE:3: user alice@example.com is already listed on line 1"),
};

/* expand_file - TEMPLATE with "FILE" replaced by PATH. */
static char *expand_file(const char *template, const char *path)
{
	const char *p = strstr(template, "FILE");
	if (p == NULL)
		return xstrdup(template);
	return xasprintf("%.*s%s%s", (int)(p - template), template, path, p + 4);
}

static void check_load_errors(const char *dir)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(load_err_rows); k++) {
		const struct load_err_row *r = &load_err_rows[k];
		char *path = write_file(dir, "bad-users", r->text, r->len);
		char err[2048] = "";
		struct passwd_db *db = passwd_db_load(path, err, sizeof(err));
		CHECK_AT(r->line, db == NULL, "the file loaded");
		passwd_db_free(db);
		/* the report: one line per want[], each starting with it */
		char *rest = err;
		size_t n = 0;
		for (; n < RG_ARRAY_LEN(r->want) && r->want[n] != NULL; n++) {
			char *want = expand_file(r->want[n], path);
			size_t len = strcspn(rest, "\n");
			CHECK_AT(r->line, strncmp(rest, want, strlen(want)) == 0 && len >= strlen(want),
				 "error line %zu: \"%.*s\", want \"%s...\"", n + 1, (int)len, rest,
				 want);
			free(want);
			rest += len + (rest[len] == '\n');
		}
		CHECK_AT(r->line, *rest == '\0', "more errors than expected: \"%s\"", rest);
		unlink(path);
		free(path);
	}
	/* a missing file */
	char *missing = xasprintf("%s/no-such-file", dir), err[512] = "";
	CHECK(passwd_db_load(missing, err, sizeof(err)) == NULL, "a missing file loaded");
	char *want = xasprintf("%s: cannot open: No such file or directory", missing);
	CHECK_STR_AT(__LINE__, err, want, "missing file");
	free(want);
	/* a short error buffer is truncated, not overrun (ASan) */
	char small[8];
	CHECK(passwd_db_load(missing, small, sizeof(small)) == NULL && strlen(small) == 7,
	      "short error buffer: \"%s\"", small);
	free(missing);
}

/* User names of 255 bytes are allowed; a longer login is nobody, even when
 * its first 255 bytes name a user. */
static void check_long_user(const char *dir)
{
	char name[300];
	memset(name, 'a', sizeof(name));
	name[255] = '\0';
	char *text = xasprintf("%s:{PLAIN}long-pw\n", name);
	char *path = write_file(dir, "long-users", text, strlen(text));
	char err[512] = "";
	struct passwd_db *db = passwd_db_load(path, err, sizeof(err));
	CHECK(db != NULL, "a 255-byte user name does not load: %s", err);
	if (db != NULL) {
		verify_at(__LINE__, db, name, "long-pw", AUTH_OK, name, NULL);
		name[255] = 'a';
		name[256] = '\0';
		verify_at(__LINE__, db, name, "long-pw", AUTH_FAILED, NULL, "unknown user");
		name[256] = 'A';
		name[260] = '\0';
		verify_at(__LINE__, db, name, "long-pw", AUTH_FAILED, NULL, "unknown user");
	}
	passwd_db_free(db);
	free(text);
	free(path);
	/* 256 bytes: refused when the file is read */
	memset(name, 'a', sizeof(name));
	name[256] = '\0';
	text = xasprintf("%s:{PLAIN}long-pw\n", name);
	path = write_file(dir, "long-users", text, strlen(text));
	CHECK(passwd_db_load(path, err, sizeof(err)) == NULL, "a 256-byte user name loaded");
	char *want = xasprintf("%s:1: bad user name", path);
	CHECK(strncmp(err, want, strlen(want)) == 0, "error \"%s\", want \"%s...\"", err, want);
	free(want);
	unlink(path);
	free(text);
	free(path);
}

/* Files that load, however little they hold. */
static void check_load_ok(const char *dir)
{
	static const struct {
		int line;
		const char *text;
		const char *user, *pass;
		enum auth_status want;
	} t[] = {
		/* nobody: every login is an unknown user (a dummy yescrypt hash is made) */
		{__LINE__, "", "alice@example.com", "x", AUTH_FAILED},
		{__LINE__, "# nobody yet\n\n   \n", "alice@example.com", "x", AUTH_FAILED},
		/* no newline at the end */
		{__LINE__, "alice@example.com:{PLAIN}a-pw", "alice@example.com", "a-pw", AUTH_OK},
		/* only accounts without a password */
		{__LINE__, "alice@example.com:\n", "alice@example.com", "", AUTH_FAILED},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		char *path = write_file(dir, "users-ok", t[k].text, strlen(t[k].text));
		char err[512] = "";
		struct passwd_db *db = passwd_db_load(path, err, sizeof(err));
		CHECK_AT(t[k].line, db != NULL, "passwd_db_load: %s", err);
		if (db != NULL) {
			char canon[300] = "", reason[100] = "";
			enum auth_status st = passwd_db_verify(db, t[k].user, t[k].pass, canon,
							       sizeof(canon), reason, sizeof(reason));
			CHECK_AT(t[k].line, st == t[k].want, "passwd_db_verify = %d (%s)", (int)st,
				 reason);
		}
		passwd_db_free(db);
		unlink(path);
		free(path);
	}
}

/* set_mtime - give PATH a fixed modification time, so a rewrite of the same
 * size in the same clock tick can be told apart (or not) on purpose. */
static void set_mtime(const char *path, time_t sec)
{
	struct timespec ts[2] = {{sec, 0}, {sec, 0}};
	CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat(%s)", path);
}

/* A step of the reload story: rewrite the file (how), then check a login. */
enum rewrite { RW_NONE, RW_WRITE, RW_RENAME, RW_REMOVE };

static void check_reload(const char *dir)
{
	static const struct {
		int line;
		enum rewrite how;
		const char *text;
		time_t mtime; /* set after writing; 0: leave it */
		const char *user, *pass;
		enum auth_status want;
	} t[] = {
		{__LINE__, RW_NONE, NULL, 0, "alice@example.com", "old-pw", AUTH_OK},
		/* a new password, a longer file */
		{__LINE__, RW_WRITE, "alice@example.com:{PLAIN}new-pw-1\n", 1000000000,
		 "alice@example.com", "new-pw-1", AUTH_OK},
		{__LINE__, RW_NONE, NULL, 0, "alice@example.com", "old-pw", AUTH_FAILED},
		/* the same size, another modification time */
		{__LINE__, RW_WRITE, "alice@example.com:{PLAIN}new-pw-2\n", 1000000100,
		 "alice@example.com", "new-pw-2", AUTH_OK},
		{__LINE__, RW_NONE, NULL, 0, "alice@example.com", "new-pw-1", AUTH_FAILED},
		/* the same size and time, another file renamed into place (a new inode) */
		{__LINE__, RW_RENAME, "alice@example.com:{PLAIN}new-pw-3\n", 1000000100,
		 "alice@example.com", "new-pw-3", AUTH_OK},
		{__LINE__, RW_NONE, NULL, 0, "alice@example.com", "new-pw-2", AUTH_FAILED},
		/* a user added */
		{__LINE__, RW_WRITE, "alice@example.com:{PLAIN}new-pw-3\nbob@example.com:{PLAIN}b\n",
		 1000000200, "bob@example.com", "b", AUTH_OK},
		/* a broken file: the users read before stay */
		{__LINE__, RW_WRITE, "alice@example.com:{MD5}x\nmallory@example.com:{PLAIN}m\n",
		 1000000300, "alice@example.com", "new-pw-3", AUTH_OK},
		{__LINE__, RW_NONE, NULL, 0, "mallory@example.com", "m", AUTH_FAILED},
		{__LINE__, RW_NONE, NULL, 0, "bob@example.com", "b", AUTH_OK},
		{__LINE__, RW_WRITE, "alice@example.com:{PLAIN}dup\nALICE@example.com:{PLAIN}dup\n",
		 1000000400, "alice@example.com", "dup", AUTH_FAILED},
		{__LINE__, RW_NONE, NULL, 0, "alice@example.com", "new-pw-3", AUTH_OK},
		/* ... until it is fixed */
		{__LINE__, RW_WRITE, "alice@example.com:{PLAIN}fixed\n", 1000000500,
		 "alice@example.com", "fixed", AUTH_OK},
		{__LINE__, RW_NONE, NULL, 0, "bob@example.com", "b", AUTH_FAILED},
		/* a file that went away: the users read before stay */
		{__LINE__, RW_REMOVE, NULL, 0, "alice@example.com", "fixed", AUTH_OK},
		{__LINE__, RW_WRITE, "carol@example.com:{PLAIN}c\n", 1000000600,
		 "alice@example.com", "fixed", AUTH_FAILED},
		{__LINE__, RW_NONE, NULL, 0, "carol@example.com", "c", AUTH_OK},
	};
	static const char first[] = "alice@example.com:{PLAIN}old-pw\n";
	char *path = write_file(dir, "reload", first, sizeof(first) - 1);
	set_mtime(path, 999999000);
	char *tmp = xasprintf("%s/reload.new", dir);
	char err[512] = "";
	struct passwd_db *db = passwd_db_load(path, err, sizeof(err));
	CHECK(db != NULL, "passwd_db_load: %s", err);
	for (size_t k = 0; db != NULL && k < RG_ARRAY_LEN(t); k++) {
		switch (t[k].how) {
		case RW_NONE:
			break;
		case RW_WRITE:
			free(write_file(dir, "reload", t[k].text, strlen(t[k].text)));
			break;
		case RW_RENAME:
			free(write_file(dir, "reload.new", t[k].text, strlen(t[k].text)));
			set_mtime(tmp, t[k].mtime);
			CHECK_AT(t[k].line, rename(tmp, path) == 0, "rename");
			break;
		case RW_REMOVE:
			unlink(path);
			break;
		}
		if (t[k].mtime != 0)
			set_mtime(path, t[k].mtime);
		char canon[300], reason[100] = "";
		enum auth_status st = passwd_db_verify(db, t[k].user, t[k].pass, canon,
						       sizeof(canon), reason, sizeof(reason));
		CHECK_AT(t[k].line, st == t[k].want, "after step: %s/%s = %d, want %d (%s)",
			 t[k].user, t[k].pass, (int)st, (int)t[k].want, reason);
	}
	passwd_db_free(db);
	unlink(path);
	free(path);
	free(tmp);
}

/* passwd_hash: what "relayguard passwd" writes, read back by the backend. */
static void check_hash(const char *dir)
{
	static const struct {
		int line;
		const char *scheme;
		const char *prefix; /* NULL: refused */
		const char *err;    /* the start of the error */
	} t[] = {
		{__LINE__, NULL, "{CRYPT}$y$", NULL},
		{__LINE__, "CRYPT", "{CRYPT}$y$", NULL},
		{__LINE__, "yescrypt", "{CRYPT}$y$", NULL},
		{__LINE__, "SHA512-CRYPT", "{SHA512-CRYPT}$6$", NULL},
		{__LINE__, "sha256-crypt", "{SHA256-CRYPT}$5$", NULL},
		{__LINE__, "BLF-CRYPT", "{BLF-CRYPT}$2y$", NULL},
		{__LINE__, "MD5", NULL, "unknown scheme \"MD5\""},
		{__LINE__, "PLAIN", NULL, "unknown scheme \"PLAIN\""},
		{__LINE__, "", NULL, "unknown scheme \"\""},
		{__LINE__, "SHA512", NULL, "unknown scheme \"SHA512\""},
	};
	struct strbuf file;
	strbuf_init(&file);
	char *hashes[RG_ARRAY_LEN(t)] = {NULL};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		char err[256] = "";
		char *h = passwd_hash(t[k].scheme, "round trip: pw", err, sizeof(err));
		hashes[k] = h;
		if (t[k].prefix == NULL) {
			CHECK_AT(t[k].line, h == NULL, "passwd_hash(%s) = %s, want NULL", t[k].scheme,
				 h ? h : "");
			CHECK_AT(t[k].line, strncmp(err, t[k].err, strlen(t[k].err)) == 0,
				 "error \"%s\", want \"%s...\"", err, t[k].err);
			continue;
		}
		CHECK_AT(t[k].line, h != NULL && strncmp(h, t[k].prefix, strlen(t[k].prefix)) == 0,
			 "passwd_hash(%s) = %s, want %s...", t[k].scheme ? t[k].scheme : "NULL",
			 h ? h : err, t[k].prefix);
		if (h != NULL)
			strbuf_printf(&file, "user%zu@example.com:%s\n", k, h);
	}
	/* a new salt every time */
	char err[256] = "";
	char *again = passwd_hash("SHA512-CRYPT", "round trip: pw", err, sizeof(err));
	CHECK(again != NULL && hashes[3] != NULL && strcmp(again, hashes[3]) != 0,
	      "two hashes of one password are equal: %s", again ? again : err);
	free(again);
	/* every hash made loads and checks: the right password only */
	char *path = write_file(dir, "hashed", file.data ? file.data : "", file.len);
	struct passwd_db *db = passwd_db_load(path, err, sizeof(err));
	CHECK(db != NULL, "the hashes made do not load: %s", err);
	for (size_t k = 0; db != NULL && k < RG_ARRAY_LEN(t); k++) {
		if (t[k].prefix == NULL || hashes[k] == NULL)
			continue;
		char *user = xasprintf("user%zu@example.com", k);
		verify_at(t[k].line, db, user, "round trip: pw", AUTH_OK, user, NULL);
		verify_at(t[k].line, db, user, "round trip: PW", AUTH_FAILED, NULL, "wrong password");
		free(user);
	}
	passwd_db_free(db);
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++)
		free(hashes[k]);
	unlink(path);
	free(path);
	strbuf_free(&file);
}

int main(void)
{
	check_mech();
	check_b64();
	check_plain();
	check_plain_lengths();
	check_login_field();
	check_lockout();
	char dir[] = "/tmp/rg-test-auth-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		CHECK(false, "mkdtemp failed");
	} else {
		check_passwd_verify(dir);
		check_load_errors(dir);
		check_long_user(dir);
		check_load_ok(dir);
		check_reload(dir);
		check_hash(dir);
		remove_tree(dir);
	}
	return check_summary("auth");
}
