/*
 * spf_macro.c - macro expansion (RFC 7208 7): %{s l o d i p v h c r t},
 * the digit and "r" transformers, delimiters, %% %_ %-, and URL escaping for
 * upper-case letters. Output is bounded by the caller's buffer: anything
 * longer is an error, never a cut that changes which name is looked up.
 */
#include "msgauth/spf.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct out {
	char *buf;
	size_t len, cap;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || n >= o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

/* ip_dotted - %{i}: dotted quad, or 32 dot-separated nibbles for IPv6. */
static void ip_dotted(const struct rg_ip *ip, char *buf, size_t len)
{
	if (ip->family == AF_INET) {
		snprintf(buf, len, "%u.%u.%u.%u", ip->addr[0], ip->addr[1], ip->addr[2], ip->addr[3]);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;
	for (size_t i = 0; i < 16 && k + 4 < len; i++) {
		buf[k++] = hex[ip->addr[i] >> 4];
		buf[k++] = '.';
		buf[k++] = hex[ip->addr[i] & 15];
		buf[k++] = '.';
	}
	buf[k > 0 ? k - 1 : 0] = '\0';
}

/* letter_value - the text a macro letter stands for; NULL when not allowed. */
static const char *letter_value(char l, const struct spf_macro_ctx *c, bool exp, char *tmp,
				size_t tmplen)
{
	switch (l) {
	case 's': return c->sender;
	case 'l': return c->local;
	case 'o': return c->sender_domain;
	case 'd': return c->domain;
	case 'h': return c->helo;
	case 'p': return c->ptr != NULL ? c->ptr : "unknown";
	case 'v': return c->ip->family == AF_INET ? "in-addr" : "ip6";
	case 'i': ip_dotted(c->ip, tmp, tmplen); return tmp;
	case 'c': if (!exp) return NULL; ip_format(c->ip, tmp, tmplen); return tmp;
	case 'r': if (!exp) return NULL; return c->receiver != NULL ? c->receiver : "unknown";
	case 't': if (!exp) return NULL; snprintf(tmp, tmplen, "%lld", c->now); return tmp;
	default: return NULL;
	}
}

/* put_escaped - RFC 3986 unreserved characters as they are, the rest %XX. */
static void put_escaped(struct out *o, const char *s, size_t n, bool escape)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool plain = !escape || (ch < 0x80 && (strchr("-._~", ch) != NULL ||
			     (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')));
		if (plain && ch != '\0') {
			put(o, s + i, 1);
		} else {
			char hex[4];
			snprintf(hex, sizeof(hex), "%%%02X", ch);
			put(o, hex, 3);
		}
	}
}

#define MAX_PARTS (SPF_EXPAND_MAX / 2 + 2)

/* transform - split on delims, reverse if asked, keep the rightmost keep. */
static void transform(struct out *o, const char *v, const char *delims, unsigned keep, bool rev,
		      bool escape)
{
	static const char dot = '.';
	const char *start[MAX_PARTS];
	size_t len[MAX_PARTS], n = 0, vlen = strlen(v);
	for (size_t i = 0, from = 0; i <= vlen && n < MAX_PARTS; i++) {
		if (i == vlen || strchr(delims, v[i]) != NULL) {
			start[n] = v + from;
			len[n++] = i - from;
			from = i + 1;
		}
	}
	size_t first = keep > 0 && keep < n ? n - keep : 0;
	for (size_t k = first; k < n; k++) {
		size_t idx = rev ? n - 1 - k : k; /* the list reversed, then its rightmost */
		if (k > first)
			put(o, &dot, 1);
		put_escaped(o, start[idx], len[idx], escape);
	}
}

/* expand_one - "%{...}" at s (len bytes available); returns its length or 0. */
static size_t expand_one(const char *s, size_t len, const struct spf_macro_ctx *c, bool exp,
			 struct out *o)
{
	char tmp[80], delims[8] = "";
	size_t j = 3, nd = 0;
	unsigned keep = 0;
	bool digits = false, rev = false;
	const char *v = letter_value((char)(s[2] | 0x20), c, exp, tmp, sizeof(tmp));
	if (v == NULL)
		return 0;
	for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
		if (keep <= 1000) /* more parts than any name has: "all of them" */
			keep = keep * 10 + (unsigned)(s[j] - '0');
		digits = true;
	}
	if (digits && keep == 0)
		return 0; /* RFC 7208 7.1: the digit transformer must be nonzero */
	if (j < len && (s[j] | 0x20) == 'r') {
		rev = true;
		j++;
	}
	while (j < len && s[j] != '\0' && strchr(".-+,/_=", s[j]) != NULL)
		if (strchr(delims, s[j++]) == NULL && nd < sizeof(delims) - 1)
			delims[nd++] = s[j - 1];
	if (j >= len || s[j] != '}')
		return 0;
	if (nd == 0)
		delims[0] = '.';
	/* the reversal applies before the cut (7.3: "reversed ... then rightmost") */
	transform(o, v, delims, keep, rev, s[2] >= 'A' && s[2] <= 'Z');
	return j + 1;
}

bool spf_macro_expand(const char *s, size_t len, const struct spf_macro_ctx *ctx, bool exp,
		      char *out, size_t outlen, const char **why)
{
	struct out o = {out, 0, outlen, outlen == 0};
	*why = "bad macro";
	if (outlen > 0)
		out[0] = '\0';
	for (size_t i = 0; i < len;) {
		unsigned char ch = (unsigned char)s[i];
		if (ch != '%') {
			if (ch > 0x7e || ch < (exp ? 0x20 : 0x21))
				return false;
			put(&o, s + i++, 1);
			continue;
		}
		if (i + 1 >= len)
			return false;
		char nx = s[i + 1];
		size_t used = 2;
		if (nx == '%' || nx == '_')
			put(&o, nx == '%' ? "%" : " ", 1);
		else if (nx == '-')
			put(&o, "%20", 3);
		else if (nx != '{' || i + 2 >= len ||
			 (used = expand_one(s + i, len - i, ctx, exp, &o)) == 0)
			return false;
		i += used;
	}
	*why = "macro expansion too long";
	return !o.full;
}

bool spf_macro_uses_p(const char *s, size_t len)
{
	for (size_t i = 0; i + 2 < len; i++)
		if (s[i] == '%' && s[i + 1] == '{' && (s[i + 2] | 0x20) == 'p')
			return true;
	return false;
}

bool spf_domain_truncate(char *name)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		name[--len] = '\0';
	char *p = name;
	while (len > 253) {
		char *dot = strchr(p, '.');
		if (dot == NULL)
			return false;
		len -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	memmove(name, p, len + 1);
	if (len == 0 || name[0] == '.')
		return false;
	for (size_t i = 0, label = 0; i <= len; i++) {
		if (name[i] == '.' || name[i] == '\0') {
			if (label == 0 || label > 63)
				return false;
			label = 0;
		} else {
			label++;
		}
	}
	return true;
}
