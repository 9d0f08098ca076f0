/*
 * answer.c - pure decisions on DNS answers (see answer.h).
 */
#include "dns/answer.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define T_CNAME_ 5
#define T_SOA_ 6

unsigned dns_rand(unsigned bound)
{
	return arc4random_uniform(bound);
}

static int cmp_pref(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name); /* a stable start for the shuffle */
}

/* shuffle - Fisher-Yates over n elements of size sz. */
static void shuffle(void *base, size_t n, size_t sz, dns_rand_fn rnd)
{
	unsigned char tmp[sizeof(struct rg_ip) > sizeof(struct dns_mx) ? sizeof(struct rg_ip)
									  : sizeof(struct dns_mx)];
	unsigned char *p = base;
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd((unsigned)i);
		memcpy(tmp, p + (i - 1) * sz, sz);
		memmove(p + (i - 1) * sz, p + j * sz, sz);
		memcpy(p + j * sz, tmp, sz);
	}
}

void mx_order(struct dns_mx *mx, size_t n, dns_rand_fn rnd)
{
	qsort(mx, n, sizeof(*mx), cmp_pref);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && mx[j].pref == mx[i].pref)
			j++;
		shuffle(mx + i, j - i, sizeof(*mx), rnd);
		i = j;
	}
}

bool mx_is_null(const struct dns_mx *mx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (mx[i].name[0] != '\0')
			return false;
	return n > 0;
}

static bool label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

bool dns_name_valid(const char *name)
{
	size_t len = strlen(name), label = 0;
	if (len == 0 || len > 253)
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (!label_char((unsigned char)*p) || ++label > 63) {
			return false;
		}
	}
	return label > 0;
}

bool dns_literal(const char *s, struct rg_ip *ip)
{
	char buf[64];
	size_t len = strlen(s);
	if (len < 2 || s[0] != '[' || s[len - 1] != ']')
		return ip_parse(s, ip);
	if (len - 2 >= sizeof(buf))
		return false;
	memcpy(buf, s + 1, len - 2);
	buf[len - 2] = '\0';
	const char *a = buf;
	if (strncasecmp(a, "IPv6:", 5) == 0)
		a += 5; /* RFC 5321 address literal */
	return ip_parse(a, ip);
}

/* take - append up to n of src to out[*k] (at most max). */
static void take(struct rg_ip *out, size_t *k, size_t max, const struct rg_ip *src, size_t n)
{
	for (size_t i = 0; i < n && *k < max; i++)
		out[(*k)++] = src[i];
}

size_t addr_order(struct rg_ip *v4, size_t n4, struct rg_ip *v6, size_t n6, int prefer,
		  dns_rand_fn rnd, struct rg_ip *out, size_t max)
{
	shuffle(v4, n4, sizeof(*v4), rnd);
	shuffle(v6, n6, sizeof(*v6), rnd);
	bool v6_first = prefer == AF_INET6 || (prefer != AF_INET && rnd(2) == 1);
	size_t k = 0;
	take(out, &k, max, v6_first ? v6 : v4, v6_first ? n6 : n4);
	take(out, &k, max, v6_first ? v4 : v6, v6_first ? n4 : n6);
	return k;
}

/* ---- reading a DNS message ---- */

static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* skip_name - past a (possibly compressed) name at off; 0 when malformed. */
static size_t skip_name(const unsigned char *msg, size_t len, size_t off)
{
	for (unsigned labels = 0; off < len && labels < 128; labels++) {
		unsigned c = msg[off];
		if (c == 0)
			return off + 1;
		if ((c & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : 0; /* a pointer ends the name */
		if ((c & 0xc0) != 0)
			return 0;
		off += 1 + c;
	}
	return 0;
}

/* ttl_of - a TTL with the top bit set is 0 (RFC 2181 8). */
static unsigned ttl_of(uint32_t t)
{
	return t > 0x7fffffffu ? 0 : (unsigned)t;
}

/* scan_rr - one resource record at *off in section sec (1 answer, 2 authority). */
static bool scan_rr(const unsigned char *msg, size_t len, size_t *off, int sec,
		    struct dns_msg_info *info)
{
	size_t p = skip_name(msg, len, *off);
	if (p == 0 || p + 10 > len)
		return false;
	unsigned type = get16(msg + p), ttl = ttl_of(get32(msg + p + 4));
	size_t rdlen = get16(msg + p + 8), rdata = p + 10;
	if (rdata + rdlen > len)
		return false;
	if (sec == 1) {
		if (info->answers++ == 0 || ttl < info->min_ttl)
			info->min_ttl = ttl;
		info->cname |= type == T_CNAME_;
	} else if (sec == 2 && type == T_SOA_ && rdlen >= 22 && !info->soa) {
		unsigned minimum = ttl_of(get32(msg + rdata + rdlen - 4)); /* the last field */
		info->soa = true;
		info->neg_ttl = minimum < ttl ? minimum : ttl;
	}
	*off = rdata + rdlen;
	return true;
}

bool dns_msg_scan(const unsigned char *msg, size_t len, struct dns_msg_info *info)
{
	memset(info, 0, sizeof(*info));
	if (msg == NULL || len < 12)
		return false;
	info->rcode = msg[3] & 0x0f;
	info->ad = (msg[3] & 0x20) != 0;
	unsigned qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8);
	size_t off = 12;
	for (unsigned i = 0; i < qd; i++) {
		off = skip_name(msg, len, off);
		if (off == 0 || (off += 4) > len)
			return false;
	}
	for (unsigned i = 0; i < an + ns; i++)
		if (!scan_rr(msg, len, &off, i < an ? 1 : 2, info))
			return false;
	return true;
}

#define T_TLSA_ 52

/* tlsa_take - the rdata of one TLSA record into t; false when unusable. */
static bool tlsa_take(const unsigned char *rdata, size_t rdlen, struct dns_tlsa *t)
{
	if (rdlen < 4 || rdlen - 3 > DNS_TLSA_DATA_MAX)
		return false;
	t->usage = rdata[0];
	t->selector = rdata[1];
	t->mtype = rdata[2];
	t->len = rdlen - 3;
	t->data = xmalloc(t->len);
	memcpy(t->data, rdata + 3, t->len);
	return true;
}

/* rr_take - called for each answer record of type; true when kept. */
typedef bool (*rr_take_fn)(const unsigned char *rdata, size_t rdlen, void *out, size_t i);

/* walk_answers - each answer record of type to take (at most max kept). */
static size_t walk_answers(const unsigned char *msg, size_t len, unsigned type, rr_take_fn keep,
			   void *out, size_t max, size_t *skipped)
{
	*skipped = 0;
	if (msg == NULL || len < 12)
		return 0;
	unsigned qd = get16(msg + 4), an = get16(msg + 6);
	size_t off = 12, n = 0;
	for (unsigned i = 0; i < qd; i++) {
		off = skip_name(msg, len, off);
		if (off == 0 || (off += 4) > len)
			return 0;
	}
	for (unsigned i = 0; i < an; i++) {
		size_t p = skip_name(msg, len, off);
		if (p == 0 || p + 10 > len)
			return n;
		size_t rdlen = get16(msg + p + 8), rdata = p + 10;
		if (rdata + rdlen > len)
			return n;
		if (get16(msg + p) == type) {
			if (n < max && keep(msg + rdata, rdlen, out, n))
				n++;
			else
				(*skipped)++;
		}
		off = rdata + rdlen;
	}
	return n;
}

static bool take_tlsa(const unsigned char *rdata, size_t rdlen, void *out, size_t i)
{
	return tlsa_take(rdata, rdlen, &((struct dns_tlsa *)out)[i]);
}

size_t dns_tlsa_parse(const unsigned char *msg, size_t len, struct dns_tlsa *out, size_t max,
		      size_t *skipped)
{
	return walk_answers(msg, len, T_TLSA_, take_tlsa, out, max, skipped);
}

void dns_tlsa_free(struct dns_tlsa *t, size_t n)
{
	for (size_t i = 0; t != NULL && i < n; i++)
		free(t[i].data);
}

/* take_txt - the character-strings of one TXT record, joined. */
static bool take_txt(const unsigned char *rdata, size_t rdlen, void *out, size_t i)
{
	char *dst = ((char (*)[DNS_TXT_LEN])out)[i];
	size_t used = 0;
	for (size_t p = 0; p < rdlen;) {
		size_t n = rdata[p++];
		if (p + n > rdlen || used + n >= DNS_TXT_LEN)
			return false;
		for (size_t k = 0; k < n; k++)
			if (rdata[p + k] < 0x20 || rdata[p + k] == 0x7f)
				return false;
		memcpy(dst + used, rdata + p, n);
		used += n;
		p += n;
	}
	dst[used] = '\0';
	return true;
}

size_t dns_txt_parse(const unsigned char *msg, size_t len, char (*out)[DNS_TXT_LEN], size_t max,
		     size_t *skipped)
{
	return walk_answers(msg, len, 16, take_txt, out, max, skipped);
}
