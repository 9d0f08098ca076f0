/*
 * test_dns.c - the pure parts of mail routing: MX order and null MX, names
 * and literals, address order, reading DNS messages, and the answer cache
 * with the clock injected: for routing and for the lookups SPF, DKIM and
 * DMARC make (what is remembered, for how long, and what never is).
 */
#include "check.h"
#include "dns/answer.h"
#include "dns/cache.h"
#include "dns/dns_priv.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Deterministic "random" choices for the tables. */
static unsigned rnd_low(unsigned bound)
{
	(void)bound;
	return 0;
}

static unsigned rnd_high(unsigned bound)
{
	return bound - 1;
}

/* parse_mx - "10:a 10:b 20:c" into mx[] (names owned by the caller). */
static size_t parse_mx(const char *spec, struct dns_mx *mx, size_t max)
{
	char *copy = xstrdup(spec), *save = NULL;
	size_t n = 0;
	for (char *t = strtok_r(copy, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save)) {
		char *colon = strchr(t, ':');
		*colon = '\0';
		mx[n].pref = (unsigned)atoi(t);
		mx[n++].name = xstrdup(strcmp(colon + 1, ".") == 0 ? "" : colon + 1);
	}
	free(copy);
	return n;
}

static void format_mx(const struct dns_mx *mx, size_t n, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t used = strlen(out);
		snprintf(out + used, len - used, "%s%u:%s", i ? " " : "", mx[i].pref,
			 mx[i].name[0] ? mx[i].name : ".");
	}
}

static void free_mx(struct dns_mx *mx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(mx[i].name);
}

static void test_mx_order(void)
{
	static const struct {
		int line;
		const char *in;
		dns_rand_fn rnd;
		const char *want;
		bool null_mx;
	} rows[] = {
		{__LINE__, "20:c 10:a", rnd_low, "10:a 20:c", false},
		{__LINE__, "10:b 10:a 5:z", rnd_high, "5:z 10:a 10:b", false},
		/* Fisher-Yates swapping with the first: the equal pair comes reversed */
		{__LINE__, "10:b 10:a 5:z", rnd_low, "5:z 10:b 10:a", false},
		{__LINE__, "30:x 10:a 10:b 10:c 20:y", rnd_high, "10:a 10:b 10:c 20:y 30:x", false},
		{__LINE__, "0:.", rnd_low, "0:.", true},
		{__LINE__, "0:. 0:.", rnd_low, "0:. 0:.", true},
		{__LINE__, "0:. 10:mx", rnd_low, "0:. 10:mx", false}, /* not a null MX domain */
		{__LINE__, "", rnd_low, "", false},                  /* no records at all */
		{__LINE__, "65535:far 0:near", rnd_low, "0:near 65535:far", false},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct dns_mx mx[16];
		char got[256];
		size_t n = parse_mx(rows[i].in, mx, 16);
		CHECK_AT(rows[i].line, mx_is_null(mx, n) == rows[i].null_mx, "mx_is_null(%s)",
			 rows[i].in);
		mx_order(mx, n, rows[i].rnd);
		format_mx(mx, n, got, sizeof(got));
		CHECK_STR_AT(rows[i].line, got, rows[i].want, "mx_order");
		free_mx(mx, n);
	}
}

/* Over many shuffles with the real generator, every order of three equal
 * records turns up, and the worse preference always stays last. */
static void test_mx_shuffle_real(void)
{
	const char *seen[6] = {0};
	size_t nseen = 0;
	bool last_ok = true;
	for (int round = 0; round < 300; round++) {
		struct dns_mx mx[4];
		char got[128];
		size_t n = parse_mx("20:z 10:a 10:b 10:c", mx, 4);
		mx_order(mx, n, dns_rand);
		last_ok &= strcmp(mx[3].name, "z") == 0;
		format_mx(mx, 3, got, sizeof(got));
		bool known = false;
		for (size_t k = 0; k < nseen; k++)
			known |= strcmp(seen[k], got) == 0;
		if (!known && nseen < 6)
			seen[nseen++] = xstrdup(got);
		free_mx(mx, n);
	}
	CHECK(nseen == 6, "orders of three equal MX seen in 300 shuffles: %zu, want 6", nseen);
	CHECK(last_ok, "the preference-20 record was not always last");
	for (size_t k = 0; k < nseen; k++)
		free((void *)seen[k]);
}

static void test_names(void)
{
	static const struct {
		int line;
		const char *name;
		bool valid;
	} rows[] = {
		{__LINE__, "example.test", true},
		{__LINE__, "mx-1.example.test", true},
		{__LINE__, "_srv.example.test", true},
		{__LINE__, "localhost", true},
		{__LINE__, "", false},
		{__LINE__, "example.test.", false}, /* the caller strips one trailing dot */
		{__LINE__, ".example.test", false},
		{__LINE__, "a..b", false},
		{__LINE__, "ex ample.test", false},
		{__LINE__, "ex\\.ample.test", false}, /* c-ares' escape of a dot in a label */
		{__LINE__, "caf\xc3\xa9.test", false},
		{__LINE__, "a\nb.test", false},
		{__LINE__, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", true},
		{__LINE__, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", false},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		CHECK_AT(rows[i].line, dns_name_valid(rows[i].name) == rows[i].valid,
			 "dns_name_valid(\"%s\") != %d", rows[i].name, rows[i].valid);

	char long_name[300];
	memset(long_name, 0, sizeof(long_name));
	for (size_t i = 0; i < 254; i++)
		long_name[i] = i % 50 == 49 ? '.' : 'a';
	CHECK(!dns_name_valid(long_name), "a 254-byte name is too long");
	long_name[253] = '\0';
	CHECK(dns_name_valid(long_name), "a 253-byte name is fine");
}

static void test_literals(void)
{
	static const struct {
		int line;
		const char *in;
		const char *want; /* NULL: a name, not a literal */
	} rows[] = {
		{__LINE__, "127.0.0.5", "127.0.0.5"},
		{__LINE__, "[127.0.0.5]", "127.0.0.5"},
		{__LINE__, "[::1]", "::1"},
		{__LINE__, "[IPv6:::1]", "::1"},
		{__LINE__, "[ipv6:2001:db8::1]", "2001:db8::1"},
		{__LINE__, "::1", "::1"},
		{__LINE__, "[IPv6:127.0.0.1]", "127.0.0.1"}, /* lenient: ip_parse decides */
		{__LINE__, "mx.example.test", NULL},
		{__LINE__, "[mx.example.test]", NULL},
		{__LINE__, "[127.0.0.5", NULL},
		{__LINE__, "[]", NULL},
		{__LINE__, "[1.2.3.4.5]", NULL},
		{__LINE__, "127.0.0.5]", NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rg_ip ip;
		char got[64] = "";
		if (dns_literal(rows[i].in, &ip))
			ip_format(&ip, got, sizeof(got));
		CHECK_STR_AT(rows[i].line, got[0] ? got : NULL, rows[i].want, rows[i].in);
	}
}

static struct rg_ip ip_of(const char *s)
{
	struct rg_ip ip;
	if (!ip_parse(s, &ip))
		abort();
	return ip;
}

static void test_addr_order(void)
{
	static const struct {
		int line;
		int prefer;
		dns_rand_fn rnd;
		size_t max;
		const char *want;
	} rows[] = {
		{__LINE__, AF_INET6, rnd_high, 8, "::1 ::2 127.0.0.1 127.0.0.2"},
		{__LINE__, AF_INET, rnd_high, 8, "127.0.0.1 127.0.0.2 ::1 ::2"},
		{__LINE__, AF_UNSPEC, rnd_high, 8, "::1 ::2 127.0.0.1 127.0.0.2"}, /* coin says v6 */
		{__LINE__, AF_UNSPEC, rnd_low, 8, "127.0.0.2 127.0.0.1 ::2 ::1"},  /* v4, swapped */
		{__LINE__, AF_INET, rnd_high, 3, "127.0.0.1 127.0.0.2 ::1"},       /* the bound */
		{__LINE__, AF_INET6, rnd_high, 1, "::1"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rg_ip v4[2] = {ip_of("127.0.0.1"), ip_of("127.0.0.2")};
		struct rg_ip v6[2] = {ip_of("::1"), ip_of("::2")}, out[8];
		size_t n = addr_order(v4, 2, v6, 2, rows[i].prefer, rows[i].rnd, out, rows[i].max);
		char got[256] = "";
		for (size_t k = 0; k < n; k++) {
			char one[64];
			ip_format(&out[k], one, sizeof(one));
			size_t used = strlen(got);
			snprintf(got + used, sizeof(got) - used, "%s%s", k ? " " : "", one);
		}
		CHECK_STR_AT(rows[i].line, got, rows[i].want, "addr_order");
	}
	struct rg_ip v6only[1] = {ip_of("::1")}, out[8];
	CHECK(addr_order(NULL, 0, v6only, 1, AF_INET, rnd_low, out, 8) == 1 &&
		      out[0].family == AF_INET6,
	      "preferring IPv4 still yields the IPv6 address when that is all there is");
}

/* ---- DNS messages, as bytes ---- */

/* Header id 0x1234, flags with rcode, counts. */
#define HDR(rcode, qd, an, ns) 0x12, 0x34, 0x81, 0x80 | (rcode), 0, qd, 0, an, 0, ns, 0, 0
/* Question "ex.test" type MX class IN. */
#define QUESTION 2, 'e', 'x', 4, 't', 'e', 's', 't', 0, 0, 15, 0, 1
/* A record header: name = pointer to offset 12 (the question's name). */
#define RR(type, ttl, rdlen) 0xc0, 12, 0, type, 0, 1, (ttl) >> 24 & 0xff, (ttl) >> 16 & 0xff, \
	(ttl) >> 8 & 0xff, (ttl) & 0xff, 0, rdlen

static const unsigned char msg_mx[] = {HDR(0, 1, 2, 0), QUESTION,
	RR(15, 300, 4), 0, 10, 0xc0, 12,            /* MX 10 ex.test */
	RR(15, 100, 4), 0, 20, 0xc0, 12};           /* MX 20 ex.test, TTL 100 */
static const unsigned char msg_cname[] = {HDR(0, 1, 2, 0), QUESTION,
	RR(5, 50, 2), 0xc0, 12,                     /* CNAME, TTL 50 */
	RR(15, 600, 4), 0, 10, 0xc0, 12};
static const unsigned char msg_nx_soa[] = {HDR(3, 1, 0, 1), QUESTION,
	RR(6, 3600, 24), 0xc0, 12, 0xc0, 12,        /* SOA mname, rname (pointers) */
	0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 45}; /* ... minimum 45 */
static const unsigned char msg_soa_low_ttl[] = {HDR(3, 1, 0, 1), QUESTION,
	RR(6, 20, 24), 0xc0, 12, 0xc0, 12,
	0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 45};
static const unsigned char msg_truncated_rr[] = {HDR(0, 1, 1, 0), QUESTION, RR(15, 300, 4), 0, 10};
static const unsigned char msg_bad_label[] = {HDR(0, 1, 0, 0), 0x80, 'x', 0, 0, 15, 0, 1};
static const unsigned char msg_label_past_end[] = {HDR(0, 1, 0, 0), 60, 'x', 'y'};
static const unsigned char msg_high_ttl[] = {HDR(0, 1, 1, 0), QUESTION,
	RR(15, 0x80000000u, 4), 0, 10, 0xc0, 12};   /* RFC 2181: treated as 0 */

static void test_msg_scan(void)
{
	static const struct {
		int line;
		const unsigned char *msg;
		size_t len;
		bool ok;
		unsigned rcode, answers, min_ttl;
		bool cname, soa;
		unsigned neg_ttl;
	} rows[] = {
		{__LINE__, msg_mx, sizeof(msg_mx), true, 0, 2, 100, false, false, 0},
		{__LINE__, msg_cname, sizeof(msg_cname), true, 0, 2, 50, true, false, 0},
		{__LINE__, msg_nx_soa, sizeof(msg_nx_soa), true, 3, 0, 0, false, true, 45},
		{__LINE__, msg_soa_low_ttl, sizeof(msg_soa_low_ttl), true, 3, 0, 0, false, true, 20},
		{__LINE__, msg_high_ttl, sizeof(msg_high_ttl), true, 0, 1, 0, false, false, 0},
		{__LINE__, msg_truncated_rr, sizeof(msg_truncated_rr), false, 0, 0, 0, false, false, 0},
		{__LINE__, msg_bad_label, sizeof(msg_bad_label), false, 0, 0, 0, false, false, 0},
		{__LINE__, msg_label_past_end, sizeof(msg_label_past_end), false, 0, 0, 0, false,
		 false, 0},
		{__LINE__, msg_mx, 11, false, 0, 0, 0, false, false, 0},  /* shorter than a header */
		{__LINE__, msg_mx, sizeof(msg_mx) - 1, false, 0, 0, 0, false, false, 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct dns_msg_info info;
		bool ok = dns_msg_scan(rows[i].msg, rows[i].len, &info);
		int line = rows[i].line;
		CHECK_AT(line, ok == rows[i].ok, "dns_msg_scan returned %d", ok);
		if (!ok || !rows[i].ok)
			continue;
		CHECK_AT(line, info.rcode == rows[i].rcode, "rcode %u", info.rcode);
		CHECK_AT(line, info.answers == rows[i].answers, "answers %u", info.answers);
		CHECK_AT(line, info.min_ttl == rows[i].min_ttl, "min_ttl %u", info.min_ttl);
		CHECK_AT(line, info.cname == rows[i].cname, "cname %d", info.cname);
		CHECK_AT(line, info.soa == rows[i].soa, "soa %d", info.soa);
		CHECK_AT(line, info.neg_ttl == rows[i].neg_ttl, "neg_ttl %u", info.neg_ttl);
	}
}

/* ---- the cache, with time as a number ---- */

static struct dns_answer addr_answer(const char *ip)
{
	struct dns_answer a = {.kind = DNS_ANS_DATA, .n = 1};
	a.addrs = xcalloc(1, sizeof(*a.addrs));
	a.addrs[0] = ip_of(ip);
	return a;
}

/* cached - the address cached for (1, name) at now, "nx", "nodata", or NULL. */
static const char *cached(struct dns_cache *c, const char *name, uint64_t now)
{
	static char buf[64];
	const struct dns_answer *a = dns_cache_get(c, 1, name, now);
	if (a == NULL)
		return NULL;
	if (a->kind != DNS_ANS_DATA)
		return a->kind == DNS_ANS_NXDOMAIN ? "nx" : "nodata";
	ip_format(&a->addrs[0], buf, sizeof(buf));
	return buf;
}

static void test_cache(void)
{
	struct dns_cache *c = dns_cache_new(3, 300, 60);
	struct dns_answer a = addr_answer("127.0.0.1"), b = addr_answer("127.0.0.2");
	struct dns_answer nx = {.kind = DNS_ANS_NXDOMAIN};
	dns_cache_put(c, 1, "a.test", &a, 10, 1000);
	dns_cache_put(c, 1, "long.test", &b, 86400, 1000); /* capped at 300 */
	dns_cache_put(c, 1, "nx.test", &nx, 3600, 1000);   /* negative: capped at 60 */
	dns_cache_put(c, 1, "zero.test", &a, 0, 1000);     /* TTL 0: not kept */
	static const struct {
		int line;
		const char *name;
		uint64_t now;
		const char *want;
	} rows[] = {
		{__LINE__, "a.test", 1000, "127.0.0.1"},
		{__LINE__, "A.TEST", 1009, "127.0.0.1"}, /* names match without case */
		{__LINE__, "zero.test", 1000, NULL},
		{__LINE__, "nx.test", 1059, "nx"},
		{__LINE__, "nx.test", 1060, NULL},
		{__LINE__, "a.test", 1010, NULL},        /* expired exactly at its TTL */
		{__LINE__, "long.test", 1299, "127.0.0.2"},
		{__LINE__, "long.test", 1300, NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		CHECK_STR_AT(rows[i].line, cached(c, rows[i].name, rows[i].now), rows[i].want,
			     rows[i].name);
	CHECK(dns_cache_get(c, 28, "a.test", 1000) == NULL, "the type is part of the key");
	CHECK(dns_cache_count(c) == 0, "expired entries are dropped when met: %zu left",
	      dns_cache_count(c));

	/* Full: the entry closest to expiry makes room; a same key replaces. */
	dns_cache_put(c, 1, "one.test", &a, 100, 2000);
	dns_cache_put(c, 1, "two.test", &a, 50, 2000);
	dns_cache_put(c, 1, "three.test", &a, 200, 2000);
	dns_cache_put(c, 1, "four.test", &b, 150, 2001);
	CHECK(cached(c, "two.test", 2002) == NULL, "two.test (expiring first) was evicted");
	CHECK_STR_AT(__LINE__, cached(c, "four.test", 2002), "127.0.0.2", "four.test");
	CHECK(cached(c, "one.test", 2002) && cached(c, "three.test", 2002), "others stay");
	dns_cache_put(c, 1, "one.test", &b, 100, 2003);
	CHECK_STR_AT(__LINE__, cached(c, "one.test", 2004), "127.0.0.2", "replaced");
	CHECK(dns_cache_count(c) == 3, "bounded: %zu entries", dns_cache_count(c));

	/* An MX answer comes back as a deep copy, and survives the original. */
	struct dns_mx mx[2] = {{10, xstrdup("mx1.test")}, {20, xstrdup("mx2.test")}};
	struct dns_answer m = {.kind = DNS_ANS_DATA, .mx = mx, .n = 2};
	dns_cache_put(c, 15, "mx.test", &m, 60, 3000);
	free_mx(mx, 2);
	const struct dns_answer *got = dns_cache_get(c, 15, "mx.test", 3001);
	CHECK(got && got->n == 2 && strcmp(got->mx[1].name, "mx2.test") == 0 &&
		      got->mx[1].pref == 20,
	      "MX records cached");
	dns_answer_clear(&a);
	dns_answer_clear(&b);
	dns_cache_free(c);
}

/* ---- dns_lookup()'s answers in the cache ---- */

/* recalled - what the cache gives for TXT name at now: "txt:<first record>/<n_total>",
 * "nx", "nodata", or NULL. */
static const char *recalled(struct dns_cache *c, const char *name, uint64_t now)
{
	static char buf[128];
	const struct dns_answer *a = dns_cache_get(c, 16, name, now);
	if (a == NULL)
		return NULL;
	if (a->kind != DNS_ANS_DATA)
		return a->kind == DNS_ANS_NXDOMAIN ? "nx" : "nodata";
	snprintf(buf, sizeof(buf), "txt:%s/%zu", a->n ? a->names[0] : "", a->n_total);
	return buf;
}

static void test_lookup_cache(void)
{
	static const char *const txt[] = {"v=spf1 -all", "google-site-verification=x"};
	static const struct {
		int line;
		enum dns_lookup_status status;
		bool reply;          /* a reply was read (dns_msg_scan) */
		unsigned min_ttl;    /* of the answer records */
		unsigned answers;    /* records in the answer section (a CNAME for a negative) */
		bool soa;            /* negative: with an SOA (its neg_ttl 20) */
		uint64_t at;         /* asked again at (remembered at 1000) */
		const char *want;
	} rows[] = {
		{__LINE__, DNS_LOOKUP_OK, true, 60, 1, false, 1059, "txt:v=spf1 -all/2"},
		{__LINE__, DNS_LOOKUP_OK, true, 60, 1, false, 1060, NULL},   /* the TTL ran out */
		{__LINE__, DNS_LOOKUP_OK, true, 86400, 1, false, 1299, "txt:v=spf1 -all/2"},
		{__LINE__, DNS_LOOKUP_OK, true, 86400, 1, false, 1300, NULL}, /* capped at 300 */
		{__LINE__, DNS_LOOKUP_OK, true, 0, 1, false, 1000, NULL},    /* TTL 0: not kept */
		{__LINE__, DNS_LOOKUP_NXDOMAIN, true, 0, 0, true, 1019, "nx"},
		{__LINE__, DNS_LOOKUP_NXDOMAIN, true, 0, 0, true, 1020, NULL},  /* SOA's 20 s */
		{__LINE__, DNS_LOOKUP_NODATA, true, 0, 0, false, 1029, "nodata"}, /* no SOA: 30 s */
		{__LINE__, DNS_LOOKUP_NODATA, true, 0, 0, false, 1030, NULL},
		{__LINE__, DNS_LOOKUP_SERVFAIL, true, 60, 0, false, 1000, NULL}, /* never */
		{__LINE__, DNS_LOOKUP_TIMEOUT, false, 0, 0, false, 1000, NULL},
		{__LINE__, DNS_LOOKUP_NXDOMAIN, false, 0, 0, false, 1000, NULL}, /* no reply: a bad name */
		/* NXDOMAIN or NODATA at the end of a CNAME: the alias's TTL bounds the
		 * absence too (RFC 2308 5); a TTL 0 alias is not remembered at all */
		{__LINE__, DNS_LOOKUP_NXDOMAIN, true, 5, 1, true, 1004, "nx"},
		{__LINE__, DNS_LOOKUP_NXDOMAIN, true, 5, 1, true, 1005, NULL},
		{__LINE__, DNS_LOOKUP_NODATA, true, 0, 1, false, 1000, NULL},
		{__LINE__, DNS_LOOKUP_NODATA, true, 0, 1, true, 1000, NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct dns_cache *c = dns_cache_new(8, 300, 60);
		bool ok = rows[i].status == DNS_LOOKUP_OK;
		struct dns_lookup_result r = {.status = rows[i].status, .names = txt,
					      .n = ok ? 1 : 0, .n_total = ok ? 2 : 0};
		struct dns_msg_info info = {.min_ttl = rows[i].min_ttl, .answers = rows[i].answers,
					    .soa = rows[i].soa, .neg_ttl = 20};
		dns_lookup_remember(c, DNS_LOOKUP_TXT, "Spf.Example", &r, rows[i].reply ? &info : NULL,
				    1000);
		CHECK_STR_AT(rows[i].line, recalled(c, "spf.example", rows[i].at), rows[i].want,
			     "recalled");
		dns_cache_free(c);
	}

	/* bounded: a record too large to hold is asked for again */
	char *big = xmalloc(20000);
	memset(big, 'a', 19999);
	big[19999] = '\0';
	const char *names[] = {big};
	struct dns_cache *c = dns_cache_new(8, 300, 60);
	struct dns_lookup_result r = {.status = DNS_LOOKUP_OK, .names = names, .n = 1, .n_total = 1};
	struct dns_msg_info info = {.min_ttl = 60};
	dns_lookup_remember(c, DNS_LOOKUP_TXT, "big.example", &r, &info, 1000);
	CHECK(recalled(c, "big.example", 1001) == NULL, "20 KB of TXT is not cached");
	/* addresses are kept as addresses; the type is part of the key */
	struct rg_ip ip = ip_of("192.0.2.7");
	r = (struct dns_lookup_result){.status = DNS_LOOKUP_OK, .addrs = &ip, .n = 1, .n_total = 1};
	dns_lookup_remember(c, DNS_LOOKUP_A, "a.example", &r, &info, 1000);
	const struct dns_answer *a = dns_cache_get(c, 1, "A.EXAMPLE", 1001);
	CHECK(a && a->n == 1 && a->names == NULL && ip_equal(&a->addrs[0], &ip), "A cached");
	CHECK(recalled(c, "a.example", 1001) == NULL, "not as TXT");
	dns_cache_free(c);
	free(big);
}

int main(void)
{
	test_mx_order();
	test_mx_shuffle_real();
	test_names();
	test_literals();
	test_addr_order();
	test_msg_scan();
	test_cache();
	test_lookup_cache();
	return check_summary("test_dns");
}
