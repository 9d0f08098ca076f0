/*
 * spf_header.c - the Received-SPF header field (RFC 7208 9.1).
 *
 * Every value a client chose (its HELO, its MAIL FROM) is written as a
 * dot-atom when it is one and as a quoted-string otherwise, with bytes
 * outside printable ASCII replaced by '?': no CR, LF or other control byte
 * from a client ever reaches the header, so it cannot start a new field.
 */
#include "msgauth/spf.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

#define FOLD_AT 78

struct hdr {
	char *buf;
	size_t len, cap, line; /* line: bytes since the last line break */
};

static bool atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* dot_atom - RFC 5322 3.2.3. */
static bool dot_atom(const char *s)
{
	if (s[0] == '\0' || s[0] == '.')
		return false;
	for (size_t i = 0; s[i] != '\0'; i++)
		if (!(atext((unsigned char)s[i]) || (s[i] == '.' && s[i + 1] != '.' && s[i + 1] != '\0')))
			return false;
	return true;
}

/* quote_value - v as a dot-atom or a quoted-string (printable ASCII only). */
static void quote_value(const char *v, char *out, size_t len)
{
	size_t k = 0;
	if (dot_atom(v)) {
		rg_strlcpy(out, v, len);
		return;
	}
	out[k++] = '"';
	for (size_t i = 0; v[i] != '\0' && k + 4 < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\')
			out[k++] = '\\';
		out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[k++] = '"';
	out[k] = '\0';
}

/* comment_text - printable ASCII without parentheses or backslashes. */
static void comment_text(const char *v, char *out, size_t len)
{
	size_t k = 0;
	for (size_t i = 0; v[i] != '\0' && k + 1 < len; i++) {
		unsigned char c = (unsigned char)v[i];
		out[k++] = c >= 0x20 && c < 0x7f && c != '(' && c != ')' && c != '\\' ? (char)c : '?';
	}
	out[k] = '\0';
}

/* add - one piece; a line break (CRLF TAB) first when the line would be long. */
static void add(struct hdr *h, const char *piece, bool may_fold)
{
	size_t n = strlen(piece);
	if (h->len + n + 4 >= h->cap)
		return; /* truncated at a pair boundary */
	if (may_fold && h->line + n + 1 > FOLD_AT && h->len + 3 < h->cap) {
		memcpy(h->buf + h->len, "\r\n\t", 3);
		h->len += 3;
		h->line = 1;
	} else if (may_fold && h->len + 1 < h->cap) {
		h->buf[h->len++] = ' ';
		h->line++;
	}
	memcpy(h->buf + h->len, piece, n);
	h->len += n;
	h->line += n;
	h->buf[h->len] = '\0';
}

static void pair(struct hdr *h, const char *key, const char *value, bool last)
{
	char q[SPF_TEXT_MAX * 2 + 4], piece[SPF_TEXT_MAX * 2 + 40];
	quote_value(value, q, sizeof(q));
	snprintf(piece, sizeof(piece), "%s=%s%s", key, q, last ? "" : ";");
	add(h, piece, true);
}

size_t spf_received_header(const struct spf_outcome *o, char *buf, size_t len)
{
	struct hdr h = {buf, 0, len, 0};
	char piece[SPF_TEXT_MAX * 2], who[SPF_TEXT_MAX], rcv[SPF_DOMAIN_MAX];
	if (len == 0)
		return 0;
	buf[0] = '\0';
	snprintf(piece, sizeof(piece), "Received-SPF: %s", spf_result_name(o->result));
	add(&h, piece, false);
	comment_text(o->identity[0] == 'h' || o->envelope_from[0] == '\0' ?
		     o->domain : o->envelope_from, who, sizeof(who));
	comment_text(o->receiver[0] ? o->receiver : "unknown", rcv, sizeof(rcv));
	snprintf(piece, sizeof(piece), "(%s: %s of %s %s %s)", rcv,
		 o->identity[0] == 'h' ? "helo" : "domain", who,
		 o->result == SPF_PASS ? "designates" : "does not designate", o->client_ip);
	if (o->result == SPF_NONE || o->result >= SPF_TEMPERROR || o->result == SPF_NEUTRAL)
		snprintf(piece, sizeof(piece), "(%s: %s of %s: %s)", rcv,
			 o->identity[0] == 'h' ? "helo" : "domain", who, spf_result_name(o->result));
	add(&h, piece, true);
	pair(&h, "client-ip", o->client_ip, false);
	pair(&h, "envelope-from", o->envelope_from, false);
	pair(&h, "helo", o->helo, false);
	if (o->result >= SPF_TEMPERROR && o->problem[0] != '\0')
		pair(&h, "problem", o->problem, false);
	pair(&h, "receiver", o->receiver[0] ? o->receiver : "unknown", false);
	pair(&h, "identity", o->identity, true);
	return h.len;
}
