/*
 * dkim_canon.c - DKIM canonicalisation (RFC 6376 3.4): header fields whole,
 * the body streamed so that it is never held in memory.
 *
 * Owns: the simple and relaxed algorithms and the l= cut. Must not: hash or
 * sign (the sink does), or read past what it is given.
 */
#include "msgauth/dkim_priv.h"

#include <stdlib.h>
#include <string.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

bool dkim_canon_parse(const char *c, enum dkim_canon *hdr, enum dkim_canon *body)
{
	static const struct {
		const char *text;
		enum dkim_canon h, b;
	} forms[] = {
		{"simple", DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE},
		{"relaxed", DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE},
		{"simple/simple", DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE},
		{"simple/relaxed", DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED},
		{"relaxed/simple", DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE},
		{"relaxed/relaxed", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED},
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		if (strcmp(c, forms[i].text) == 0) {
			*hdr = forms[i].h;
			*body = forms[i].b;
			return true;
		}
	return false;
}

/* canon_simple - the field unchanged, but every line end as CRLF. */
static size_t canon_simple(const char *raw, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = raw[i];
	}
	return o;
}

/* canon_relaxed - lower-case name, unfolded, blanks collapsed and trimmed (3.4.2). */
static size_t canon_relaxed(const char *raw, size_t len, char *out)
{
	size_t o = 0, i = 0;
	for (; i < len && raw[i] != ':'; i++)
		if (!is_wsp(raw[i]))
			out[o++] = (raw[i] >= 'A' && raw[i] <= 'Z') ? (char)(raw[i] + 32) : raw[i];
	out[o++] = ':';
	bool space = false, started = false;
	for (i++; i < len; i++) {
		char c = raw[i];
		if (c == '\r' || c == '\n')
			continue;
		if (is_wsp(c)) {
			space = started;
			continue;
		}
		if (space)
			out[o++] = ' ';
		out[o++] = c;
		space = false;
		started = true;
	}
	return o;
}

size_t dkim_canon_header(enum dkim_canon c, const char *raw, size_t len, bool crlf, char *out)
{
	size_t o = c == DKIM_CANON_SIMPLE ? canon_simple(raw, len, out) : canon_relaxed(raw, len, out);
	if (crlf) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	out[o] = '\0';
	return o;
}

/* tag_is_b - does the tag-spec at s[i..) name exactly "b" (then FWS or '=')? */
static bool tag_is_b(const char *s, size_t len, size_t i)
{
	while (i < len && (is_wsp(s[i]) || s[i] == '\r' || s[i] == '\n'))
		i++;
	if (i >= len || s[i] != 'b')
		return false;
	for (i++; i < len && (is_wsp(s[i]) || s[i] == '\r' || s[i] == '\n'); i++)
		;
	return i < len && s[i] == '=';
}

size_t dkim_strip_b(const char *raw, size_t len, char *out)
{
	const char *colon = memchr(raw, ':', len);
	size_t i = colon ? (size_t)(colon - raw) + 1 : len, o = i;
	memcpy(out, raw, i);
	while (i < len) {
		bool b = tag_is_b(raw, len, i);
		const char *semi = memchr(raw + i, ';', len - i);
		size_t end = semi ? (size_t)(semi - raw) : len;
		size_t keep = b ? (size_t)((const char *)memchr(raw + i, '=', end - i) - raw) + 1 : end;
		memcpy(out + o, raw + i, keep - i);
		o += keep - i;
		if (semi)
			out[o++] = ';';
		i = end + 1;
	}
	out[o] = '\0';
	return o;
}

/* ---- body ---- */

/* flush - hand the buffered canonical bytes to the sink, within the limit. */
static void flush(struct dkim_body_canon *b)
{
	uint64_t before = b->emitted - b->nout, room = 0;
	if (b->limit > before)
		room = b->limit - before;
	size_t n = room < b->nout ? (size_t)room : b->nout;
	if (n > 0)
		b->sink(b->arg, b->out, n);
	b->nout = 0;
}

static void put(struct dkim_body_canon *b, const char *p, size_t n)
{
	while (n > 0) {
		if (b->nout == sizeof(b->out))
			flush(b);
		size_t k = sizeof(b->out) - b->nout < n ? sizeof(b->out) - b->nout : n;
		memcpy(b->out + b->nout, p, k);
		b->nout += k;
		b->emitted += k;
		p += k;
		n -= k;
	}
}

/* plain_run - how many bytes from p on are ordinary content (no CR, LF or blank). */
static size_t plain_run(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && p[i] != '\t')
		i++;
	return i;
}

/* content - one byte of line content: the empty lines and blank before it are real. */
static void content(struct dkim_body_canon *b, char c)
{
	for (; b->pending_crlf > 0; b->pending_crlf--)
		put(b, "\r\n", 2);
	if (b->pending_wsp)
		put(b, " ", 1);
	b->pending_wsp = false;
	put(b, &c, 1);
	b->any = true;
}

/* line_end - a line ended: only content after it makes it count (trailing empty lines go). */
static void line_end(struct dkim_body_canon *b)
{
	b->pending_wsp = false; /* relaxed: blanks at the end of a line go */
	b->pending_crlf++;
}

/* byte - one input byte, CR held back until we know whether LF follows. */
static void byte(struct dkim_body_canon *b, char c)
{
	if (b->saw_cr) {
		b->saw_cr = false;
		if (c == '\n') {
			line_end(b);
			return;
		}
		content(b, '\r');
	}
	if (c == '\r')
		b->saw_cr = true;
	else if (c == '\n')
		line_end(b); /* bare LF: a line end, as the spool may store them */
	else if (b->c == DKIM_CANON_RELAXED && is_wsp(c))
		b->pending_wsp = true;
	else
		content(b, c);
}

void dkim_body_init(struct dkim_body_canon *b, enum dkim_canon c, uint64_t limit,
		    dkim_sink_fn sink, void *arg)
{
	memset(b, 0, sizeof(*b));
	b->c = c;
	b->limit = limit;
	b->sink = sink;
	b->arg = arg;
}

void dkim_body_feed(struct dkim_body_canon *b, const void *chunk, size_t n)
{
	const char *p = chunk;
	for (size_t i = 0; i < n;) {
		size_t run = b->saw_cr ? 0 : plain_run(p + i, n - i);
		if (run > 1) { /* the common case, in bulk: what content() does for each byte */
			content(b, p[i]);
			put(b, p + i + 1, run - 1);
			i += run;
		} else {
			byte(b, p[i++]);
		}
	}
}

uint64_t dkim_body_finish(struct dkim_body_canon *b)
{
	if (b->saw_cr) {
		b->saw_cr = false;
		content(b, '\r');
	}
	/* simple: always one final CRLF (also for an empty body); relaxed: only after content */
	if (b->c == DKIM_CANON_SIMPLE || b->any)
		put(b, "\r\n", 2);
	flush(b);
	return b->emitted;
}
