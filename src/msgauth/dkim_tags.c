/*
 * dkim_tags.c - the DKIM tag=value list (RFC 6376 3.2), bounded.
 *
 * Owns: splitting a signature or key record into tags. Must not: know what a
 * tag means (dkim_verify.c, dkim_key.c do).
 */
#include "msgauth/dkim_priv.h"

#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_name_char(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* trim - s[0..*n) without outer FWS; returns the new start. */
static char *trim(char *s, size_t *n)
{
	while (*n > 0 && is_fws(s[0])) {
		s++;
		(*n)--;
	}
	while (*n > 0 && is_fws(s[*n - 1]))
		(*n)--;
	return s;
}

/* value_ok - tag-value: visible characters but ';', with folding inside. */
static bool value_ok(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x21 && !is_fws((char)c))
			return false;
		if (c == 0x7f)
			return false;
	}
	return true;
}

/* one_spec - parse "name = value" in s[0..n) (NUL-terminating it in place) into t. */
static bool one_spec(struct dkim_tags *t, char *s, size_t n, char *why, size_t whylen)
{
	char *eq = memchr(s, '=', n);
	if (eq == NULL) {
		snprintf(why, whylen, "tag without '='");
		return false;
	}
	size_t nn = (size_t)(eq - s), vn = n - nn - 1;
	char *name = trim(s, &nn), *value = trim(eq + 1, &vn);
	if (nn == 0 || !is_alpha(name[0]) || !value_ok(value, vn)) {
		snprintf(why, whylen, "malformed tag");
		return false;
	}
	for (size_t i = 1; i < nn; i++)
		if (!is_name_char(name[i])) {
			snprintf(why, whylen, "malformed tag name");
			return false;
		}
	name[nn] = '\0';
	value[vn] = '\0';
	if (dkim_tags_get(t, name) != NULL) {
		snprintf(why, whylen, "duplicate tag %s=", name);
		return false;
	}
	if (t->n == DKIM_TAGS_MAX) {
		snprintf(why, whylen, "more than %d tags", DKIM_TAGS_MAX);
		return false;
	}
	t->tag[t->n].name = name;
	t->tag[t->n++].value = value;
	return true;
}

bool dkim_tags_parse(const char *s, size_t len, struct dkim_tags *t, char *why, size_t whylen)
{
	memset(t, 0, sizeof(*t));
	if (len > DKIM_TAGLIST_MAX) {
		snprintf(why, whylen, "tag list longer than %d bytes", DKIM_TAGLIST_MAX);
		return false;
	}
	t->buf = xmalloc(len + 1);
	memcpy(t->buf, s, len);
	t->buf[len] = '\0';
	char *p = t->buf, *end = t->buf + len;
	while (p < end) {
		char *semi = memchr(p, ';', (size_t)(end - p));
		size_t n = (size_t)((semi ? semi : end) - p), tn = n;
		trim(p, &tn);
		bool last = semi == NULL || semi + 1 == end;
		if (!(tn == 0 && semi == NULL) && !one_spec(t, p, n, why, whylen)) {
			dkim_tags_free(t);
			return false;
		}
		if (last && semi != NULL)
			break;
		p = semi ? semi + 1 : end;
	}
	return true;
}

void dkim_tags_free(struct dkim_tags *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

const char *dkim_tags_get(const struct dkim_tags *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->tag[i].name, name) == 0)
			return t->tag[i].value;
	return NULL;
}
