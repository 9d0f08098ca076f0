/*
 * header.c - split a message header block into fields (see header.h).
 */
#include "msgauth/header.h"

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* line_end - length of the line at p (without its end) and of its end (0 at end of input). */
static size_t line_end(const char *p, size_t avail, size_t *eol)
{
	const char *lf = memchr(p, '\n', avail);
	if (lf == NULL) {
		*eol = 0;
		return avail;
	}
	size_t n = (size_t)(lf - p);
	if (n > 0 && p[n - 1] == '\r') {
		*eol = 2;
		return n - 1;
	}
	*eol = 1; /* bare LF: tolerated as a line end */
	return n;
}

/* name_len - length of the field name on a first line, or 0 when it is not a field line. */
static size_t name_len(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] != ':' && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127)
		i++;
	size_t name = i;
	while (i < n && (p[i] == ' ' || p[i] == '\t')) /* obsolete "Name :" */
		i++;
	return (name > 0 && i < n && p[i] == ':') ? name : 0;
}

/* unfold - the value after the colon: line ends removed, outer blanks trimmed. */
static char *unfold(const char *raw, size_t len)
{
	const char *colon = memchr(raw, ':', len);
	size_t start = (size_t)(colon - raw) + 1;
	char *v = xmalloc(len - start + 1);
	size_t o = 0;
	for (size_t i = start; i < len; i++)
		if (raw[i] != '\r' && raw[i] != '\n')
			v[o++] = raw[i];
	v[o] = '\0';
	char *t = rg_str_trim(v);
	memmove(v, t, strlen(t) + 1);
	return v;
}

/* add_field - append the field raw[0..len) to h. */
static void add_field(struct msg_headers *h, const char *raw, size_t len, size_t nlen)
{
	if (h->n % 32 == 0)
		h->f = xrealloc(h->f, (h->n + 32) * sizeof(*h->f));
	struct msg_field *f = &h->f[h->n++];
	f->name = xstrndup(raw, nlen);
	f->raw = raw;
	f->raw_len = len;
	f->value = unfold(raw, len);
}

/* field_extent - from a first line at off, the raw length of the field (all its continuation lines). */
static size_t field_extent(const char *buf, size_t len, size_t off, size_t *next)
{
	size_t eol, end = off;
	for (;;) {
		size_t n = line_end(buf + end, len - end, &eol);
		size_t raw_end = end + n;
		end = raw_end + eol;
		if (eol == 0 || end >= len || (buf[end] != ' ' && buf[end] != '\t')) {
			*next = end;
			return raw_end - off;
		}
	}
}

/* parse_fields - the loop of msg_headers_parse over the copy. */
static enum msg_hdr_status parse_fields(struct msg_headers *h, size_t len)
{
	const char *buf = h->copy;
	size_t off = 0;
	while (off < len) {
		size_t eol, n = line_end(buf + off, len - off, &eol);
		if (n == 0 && eol > 0) { /* the empty line: the body follows */
			h->body_offset = off + eol;
			h->has_body = true;
			return MSG_HDR_OK;
		}
		size_t nl = name_len(buf + off, n), next;
		if (nl == 0)
			return MSG_HDR_MALFORMED;
		size_t raw = field_extent(buf, len, off, &next);
		if (raw > MSG_HDR_MAX_FIELD)
			return MSG_HDR_TOO_LONG;
		if (h->n >= MSG_HDR_MAX_FIELDS)
			return MSG_HDR_TOO_MANY;
		add_field(h, buf + off, raw, nl);
		off = next;
	}
	h->body_offset = len;
	return MSG_HDR_OK;
}

/* header_block_len - bytes up to and including the empty line (or all of buf). */
static size_t header_block_len(const char *buf, size_t len)
{
	size_t off = 0, eol;
	while (off < len) {
		size_t n = line_end(buf + off, len - off, &eol);
		if (n == 0 && eol > 0)
			return off + eol;
		off += n + eol;
	}
	return len;
}

enum msg_hdr_status msg_headers_parse(const char *buf, size_t len, struct msg_headers *h)
{
	memset(h, 0, sizeof(*h));
	size_t block = header_block_len(buf, len);
	if (memchr(buf, '\0', block) != NULL)
		return MSG_HDR_MALFORMED; /* a NUL would cut a value short, differently per reader */
	h->copy = xmalloc(block + 1);
	memcpy(h->copy, buf, block);
	h->copy[block] = '\0';
	enum msg_hdr_status st = parse_fields(h, block);
	if (st != MSG_HDR_OK)
		msg_headers_free(h);
	return st;
}

void msg_headers_free(struct msg_headers *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->f[i].name);
		free(h->f[i].value);
	}
	free(h->f);
	free(h->copy);
	memset(h, 0, sizeof(*h));
}

long msg_headers_prev(const struct msg_headers *h, const char *name, long before)
{
	if (before > (long)h->n)
		before = (long)h->n;
	for (long i = before - 1; i >= 0; i--)
		if (rg_strcasecmp(h->f[i].name, name) == 0)
			return i;
	return -1;
}

long msg_headers_next(const struct msg_headers *h, const char *name, long after)
{
	for (long i = after + 1; i < (long)h->n; i++)
		if (rg_strcasecmp(h->f[i].name, name) == 0)
			return i;
	return -1;
}

size_t msg_headers_count(const struct msg_headers *h, const char *name)
{
	size_t c = 0;
	for (size_t i = 0; i < h->n; i++)
		c += rg_strcasecmp(h->f[i].name, name) == 0;
	return c;
}

const char *msg_hdr_status_text(enum msg_hdr_status st)
{
	switch (st) {
	case MSG_HDR_OK:
		return "ok";
	case MSG_HDR_TOO_MANY:
		return "too many header fields";
	case MSG_HDR_TOO_LONG:
		return "a header field is too long";
	case MSG_HDR_MALFORMED:
		return "a header line is not a field";
	}
	return "?";
}
