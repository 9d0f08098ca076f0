/*
 * authres - Authentication-Results (RFC 8601): write ours, read others'.
 *
 * Owns: the pvalue quoting rule, the folding of our field, a bounded
 * recursive-descent parser of field values (strict and relaxed) and the
 * "does it claim our authserv-id" scan.
 * Must not: allocate while parsing, or trust anything it reads.
 */
#include "msgauth/authres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- result keywords (RFC 8601 2.7, RFC 7489 11.2, RFC 8617, BIMI) --------- */

struct method_results {
	const char *method;
	const char *results; /* space separated, with spaces at both ends */
};

static const struct method_results known[] = {
	{"auth", " none pass fail temperror permerror "},
	{"dkim", " none pass fail policy neutral temperror permerror "},
	{"domainkeys", " none pass fail policy neutral temperror permerror "},
	{"spf", " none pass fail softfail policy neutral temperror permerror hardfail "},
	{"sender-id", " none pass fail softfail policy neutral temperror permerror hardfail "},
	{"iprev", " pass fail temperror permerror "},
	{"dmarc", " none pass fail temperror permerror "},
	{"arc", " none pass fail "},
	{"bimi", " none pass fail temperror declined skipped "},
};

/* result_known - is result registered for method? Unknown methods accept
 * any keyword (RFC 8601 2.7.6 lets readers ignore them). */
static bool result_known(const char *method, const char *result)
{
	char word[40];
	if (result[0] == '\0' || strlen(result) > sizeof(word) - 3)
		return false;
	snprintf(word, sizeof(word), " %s ", result);
	for (size_t i = 0; i < RG_ARRAY_LEN(known); i++)
		if (strcmp(known[i].method, method) == 0)
			return strstr(known[i].results, word) != NULL;
	return true;
}

/* ---- writing ---------------------------------------------------------------- */

/* is_tspecial - RFC 2045 tspecials: what a token may not contain. */
static bool is_tspecial(unsigned char c)
{
	return c != 0 && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool is_token_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && !is_tspecial(c);
}

/* is_bare_ok - a token, or [local "@"] domain made of token characters
 * with one '@' (RFC 8601 pvalue), so it can go without quotes. */
static bool is_bare_ok(const char *v, size_t n)
{
	size_t ats = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '@' && ats++ == 0 && i + 1 < n)
			continue;
		if (!is_token_char(c))
			return false;
	}
	return n > 0;
}

void authres_append_value(struct strbuf *out, const char *v)
{
	size_t n = v ? strnlen(v, AUTHRES_VALUE_MAX) : 0;
	if (is_bare_ok(v, n)) {
		strbuf_append(out, v, n);
		return;
	}
	strbuf_append(out, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\')
			strbuf_append(out, "\\", 1);
		char safe = (c < ' ' || c >= 0x7f) ? '?' : (char)c;
		strbuf_append(out, &safe, 1);
	}
	strbuf_append(out, "\"", 1);
}

/* writer - our field being built, with the length of its current line. */
struct writer {
	struct strbuf *out;
	size_t line; /* where the current line starts in out */
};

/* put_prop - " name=value", folded first when the line would pass 78. */
static void put_prop(struct writer *w, const char *name, const char *value)
{
	struct strbuf tmp;
	strbuf_init(&tmp);
	strbuf_printf(&tmp, "%s=", name);
	authres_append_value(&tmp, value);
	if (w->out->len - w->line + 1 + tmp.len > 78) {
		strbuf_puts(w->out, "\r\n\t");
		w->line = w->out->len - 1;
	} else {
		strbuf_puts(w->out, " ");
	}
	strbuf_append(w->out, tmp.data, tmp.len);
	strbuf_free(&tmp);
}

/* put_result - ";" CRLF HT "method=result", each result on its own line. */
static void put_result(struct writer *w, const char *method, const char *result)
{
	strbuf_puts(w->out, ";\r\n\t");
	w->line = w->out->len - 1;
	strbuf_printf(w->out, "%s=%s", method, result);
}

/* put_dkim - one dkim= result per signature. */
static void put_dkim(struct writer *w, const struct authres_dkim *d)
{
	put_result(w, "dkim", d->result);
	if (d->reason != NULL)
		put_prop(w, "reason", d->reason);
	if (d->domain != NULL)
		put_prop(w, "header.d", d->domain);
	if (d->selector != NULL)
		put_prop(w, "header.s", d->selector);
	if (d->b != NULL) {
		char b8[9];
		rg_strlcpy(b8, d->b, sizeof(b8));
		put_prop(w, "header.b", b8);
	}
}

/* results_valid - every keyword given is registered for its method. */
static bool results_valid(const struct authres_fields *f)
{
	if (f->spf_result && !result_known("spf", f->spf_result))
		return false;
	if (f->dmarc_result && !result_known("dmarc", f->dmarc_result))
		return false;
	for (size_t i = 0; i < f->ndkim; i++)
		if (f->dkim[i].result == NULL || !result_known("dkim", f->dkim[i].result))
			return false;
	return f->authserv_id != NULL && f->authserv_id[0] != '\0';
}

bool authres_format(const struct authres_fields *f, struct strbuf *out)
{
	if (!results_valid(f))
		return false;
	struct writer w = {out, out->len};
	strbuf_puts(out, "Authentication-Results: ");
	authres_append_value(out, f->authserv_id);
	if (f->auth_identity != NULL) {
		put_result(&w, "auth", "pass");
		put_prop(&w, "smtp.auth", f->auth_identity);
	}
	if (f->spf_result != NULL) {
		put_result(&w, "spf", f->spf_result);
		if (f->spf_mailfrom != NULL)
			put_prop(&w, "smtp.mailfrom", f->spf_mailfrom);
		if (f->spf_helo != NULL)
			put_prop(&w, "smtp.helo", f->spf_helo);
	}
	if (f->ndkim == 0)
		put_result(&w, "dkim", "none");
	for (size_t i = 0; i < f->ndkim; i++)
		put_dkim(&w, &f->dkim[i]);
	if (f->dmarc_result != NULL) {
		put_result(&w, "dmarc", f->dmarc_result);
		if (f->dmarc_reason != NULL)
			put_prop(&w, "reason", f->dmarc_reason);
		if (f->dmarc_from != NULL && f->dmarc_from[0] != '\0')
			put_prop(&w, "header.from", f->dmarc_from);
	}
	strbuf_puts(out, "\r\n");
	return true;
}

/* ---- reading ------------------------------------------------------------------ */

struct cur {
	const char *base, *p, *end;
	bool relaxed;
	bool failed;
	struct authres_parsed *out;
};

/* fail - the first error wins; returns false for "return fail(...)". */
static bool fail(struct cur *c, const char *why)
{
	if (!c->failed)
		snprintf(c->out->error, sizeof(c->out->error), "%s at offset %zu", why,
			 (size_t)(c->p - c->base));
	c->failed = true;
	return false;
}

static bool at_end(const struct cur *c)
{
	return c->p >= c->end;
}

static char peek(const struct cur *c)
{
	return at_end(c) ? '\0' : *c->p;
}

/* skip_comment - past a nested comment; false if it never closes. */
static bool skip_comment(struct cur *c)
{
	int depth = 0;
	while (!at_end(c)) {
		char ch = *c->p++;
		if (ch == '\\' && !at_end(c))
			c->p++;
		else if (ch == '(' && ++depth > 32)
			return fail(c, "comments nested too deeply");
		else if (ch == ')' && --depth == 0)
			return true;
	}
	return fail(c, "unterminated comment");
}

/* skip_cfws - white space (folding included) and comments. */
static bool skip_cfws(struct cur *c)
{
	while (!at_end(c)) {
		char ch = *c->p;
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
			c->p++;
		else if (ch == '(') {
			if (!skip_comment(c))
				return false;
		} else if (ch == ')')
			return fail(c, "unbalanced ')'");
		else
			break;
	}
	return true;
}

/* copy_lower - bounded copy, optionally folded to lower case. */
static void copy_text(char *dst, size_t size, const char *s, size_t n, bool lower)
{
	size_t k = n < size ? n : size - 1;
	for (size_t i = 0; i < k; i++)
		dst[i] = (lower && s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] | 0x20) : s[i];
	dst[k] = '\0';
}

static bool is_kw_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '_';
}

/* lex_keyword - a keyword (Ldh-str, '_' tolerated) into buf, lower case. */
static bool lex_keyword(struct cur *c, char *buf, size_t size)
{
	const char *s = c->p;
	while (!at_end(c) && is_kw_char(*c->p))
		c->p++;
	copy_text(buf, size, s, (size_t)(c->p - s), true);
	return c->p > s;
}

/* lex_quoted - a quoted-string, unescaped into buf. */
static bool lex_quoted(struct cur *c, char *buf, size_t size)
{
	size_t k = 0;
	c->p++;
	while (!at_end(c)) {
		char ch = *c->p++;
		if (ch == '"') {
			buf[k] = '\0';
			return true;
		}
		if (ch == '\\' && !at_end(c))
			ch = *c->p++;
		if (k + 1 < size)
			buf[k++] = ch;
	}
	buf[k] = '\0';
	return fail(c, "unterminated quoted string");
}

/* bare_char - may ch be part of an unquoted value? Strict: token characters
 * and '@' (local@domain); relaxed: anything but separators. */
static bool bare_char(const struct cur *c, unsigned char ch)
{
	if (c->relaxed)
		return ch > ' ' && ch != ';' && ch != '(' && ch != ')' && ch != '"';
	return is_token_char(ch) || ch == '@';
}

/* lex_value - a quoted-string or a bare value into buf; a strict bare value
 * followed by a character that could not end it is an error. */
static bool lex_value(struct cur *c, char *buf, size_t size)
{
	if (peek(c) == '"')
		return lex_quoted(c, buf, size);
	const char *s = c->p;
	while (!at_end(c) && bare_char(c, (unsigned char)*c->p))
		c->p++;
	copy_text(buf, size, s, (size_t)(c->p - s), false);
	char next = peek(c);
	bool ends = at_end(c) || next == ' ' || next == '\t' || next == '\r' || next == '\n' ||
		    next == ';' || next == '(';
	if (!ends)
		return fail(c, "bad character in a value (quote it)");
	return c->p > s || c->relaxed ? true : fail(c, "missing value");
}

/* skip_element - relaxed recovery: on to the next top-level ';'. */
static bool skip_element(struct cur *c)
{
	while (!at_end(c) && *c->p != ';') {
		if (*c->p == '(') {
			if (!skip_comment(c))
				return false;
		} else if (*c->p == '"') {
			char junk[8];
			if (!lex_quoted(c, junk, sizeof(junk)))
				return false;
		} else {
			c->p++;
		}
	}
	return true;
}

/* junk - strict: an error; relaxed: skip to the next ';'. */
static bool junk(struct cur *c, const char *why)
{
	return c->relaxed ? skip_element(c) : fail(c, why);
}

/* current - the result being filled, or a scratch one past the maximum. */
static struct authres_result *current(struct cur *c, struct authres_result *scratch)
{
	struct authres_parsed *p = c->out;
	return p->nresults > 0 && p->extra == 0 ? &p->res[p->nresults - 1] : scratch;
}

static bool ptype_known(const char *t)
{
	return strcmp(t, "smtp") == 0 || strcmp(t, "header") == 0 || strcmp(t, "body") == 0 ||
	       strcmp(t, "policy") == 0;
}

/* parse_prop - "ptype.property=pvalue", "reason=value", or relaxed
 * "name=value"; c is at the first keyword. */
static bool parse_prop(struct cur *c, struct authres_result *r)
{
	char name[32], prop[32];
	if (!lex_keyword(c, name, sizeof(name)))
		return junk(c, "expected a property");
	if (!skip_cfws(c))
		return false;
	prop[0] = '\0';
	if (peek(c) == '.') {
		c->p++;
		if (!skip_cfws(c) || !lex_keyword(c, prop, sizeof(prop)) || !skip_cfws(c))
			return c->failed ? false : junk(c, "expected a property name after '.'");
		if (!c->relaxed && !ptype_known(name))
			return fail(c, "unknown ptype");
	} else if (strcmp(name, "reason") != 0 && !c->relaxed) {
		return fail(c, "expected ptype.property");
	}
	if (peek(c) != '=')
		return junk(c, "expected '='");
	c->p++;
	if (!skip_cfws(c))
		return false;
	char value[AUTHRES_TEXT_MAX];
	if (!lex_value(c, value, sizeof(value)))
		return false;
	if (prop[0] == '\0' && strcmp(name, "reason") == 0)
		return rg_strlcpy(r->reason, value, sizeof(r->reason)), true;
	if (r->nprops == AUTHRES_MAX_PROPS)
		return true; /* read, not kept */
	struct authres_prop *pp = &r->props[r->nprops++];
	rg_strlcpy(pp->ptype, prop[0] ? name : "", sizeof(pp->ptype));
	rg_strlcpy(pp->property, prop[0] ? prop : name, sizeof(pp->property));
	rg_strlcpy(pp->value, value, sizeof(pp->value));
	return true;
}

/* bare_element - relaxed: an element without '=' (Outlook writes its
 * authserv-id as one, after the results); c is at its start. */
static bool bare_element(struct cur *c)
{
	char word[256];
	if (!lex_value(c, word, sizeof(word)) || !skip_cfws(c))
		return false;
	if (c->out->authserv_id[0] == '\0' && (at_end(c) || peek(c) == ';'))
		rg_strlcpy(c->out->authserv_id, word, sizeof(c->out->authserv_id));
	return skip_element(c);
}

/* is_method_start - does a "method [/ version] =" start at c? Looks ahead
 * on a copy; c does not move. */
static bool is_method_start(const struct cur *c)
{
	struct cur look = *c;
	char kw[32];
	if (!lex_keyword(&look, kw, sizeof(kw)) || !skip_cfws(&look))
		return false;
	if (peek(&look) == '/') {
		look.p++;
		if (!skip_cfws(&look) || !lex_keyword(&look, kw, sizeof(kw)) || !skip_cfws(&look))
			return false;
	}
	return peek(&look) == '=';
}

/* new_result - a stored result (or the scratch one once the table is full). */
static struct authres_result *new_result(struct cur *c, struct authres_result *scratch)
{
	struct authres_parsed *p = c->out;
	if (p->nresults < AUTHRES_MAX_RESULTS && p->extra == 0)
		p->nresults++;
	else
		p->extra++;
	struct authres_result *r = current(c, scratch);
	memset(r, 0, sizeof(*r));
	r->version = 1;
	return r;
}

/* parse_method - [CFWS] method [/ version] "=" result; c->p at method. */
static bool parse_method(struct cur *c, struct authres_result *r)
{
	if (!lex_keyword(c, r->method, sizeof(r->method)))
		return junk(c, "expected a method");
	if (!skip_cfws(c))
		return false;
	if (peek(c) == '/') {
		c->p++;
		char v[8];
		if (!skip_cfws(c) || !lex_keyword(c, v, sizeof(v)) || !skip_cfws(c))
			return c->failed ? false : junk(c, "expected a method version");
		r->version = (unsigned)strtoul(v, NULL, 10);
	}
	if (peek(c) != '=')
		return fail(c, "expected '=' after the method");
	c->p++;
	if (!skip_cfws(c))
		return false;
	if (!lex_keyword(c, r->result, sizeof(r->result)) && !c->relaxed)
		return fail(c, "expected a result");
	if (!c->relaxed && !result_known(r->method, r->result))
		return fail(c, "result not registered for this method");
	return true;
}

/* parse_resinfo - one result with its reason and properties. */
static bool parse_resinfo(struct cur *c)
{
	struct authres_result scratch;
	char word[8];
	const char *save = c->p;
	if (lex_keyword(c, word, sizeof(word)) && strcmp(word, "none") == 0 && skip_cfws(c) &&
	    (at_end(c) || peek(c) == ';'))
		return true; /* no-result */
	if (c->failed)
		return false;
	c->p = save;
	if (c->relaxed && !is_method_start(c))
		return bare_element(c);
	struct authres_result *r = new_result(c, &scratch);
	if (!parse_method(c, r))
		return false;
	while (skip_cfws(c) && !at_end(c) && peek(c) != ';')
		if (!parse_prop(c, r))
			return false;
	return !c->failed;
}

/* lex_id - an authserv-id: a quoted-string or a token (RFC 2045), in
 * relaxed mode with UTF-8 bytes too; what stops it is the caller's to judge. */
static bool lex_id(struct cur *c, char *buf, size_t size)
{
	if (peek(c) == '"')
		return lex_quoted(c, buf, size);
	const char *s = c->p;
	while (!at_end(c) && (is_token_char((unsigned char)*c->p) ||
			      (c->relaxed && (unsigned char)*c->p >= 0x80)))
		c->p++;
	copy_text(buf, size, s, (size_t)(c->p - s), false);
	return true;
}

/* parse_authserv_id - the authserv-id and optional version; relaxed allows
 * it to be missing (the value starts with a result) and junk after it. */
static bool parse_authserv_id(struct cur *c)
{
	const char *save = c->p;
	struct authres_parsed *p = c->out;
	if (!lex_id(c, p->authserv_id, sizeof(p->authserv_id)) || !skip_cfws(c))
		return false;
	if (p->authserv_id[0] == '\0' || peek(c) == '=' || peek(c) == '.' || peek(c) == '/') {
		p->authserv_id[0] = '\0';
		c->p = save;
		return c->relaxed ? true : fail(c, "missing authserv-id");
	}
	if (peek(c) >= '0' && peek(c) <= '9') {
		char v[12];
		lex_keyword(c, v, sizeof(v));
		p->version = (unsigned)strtoul(v, NULL, 10);
		if (!skip_cfws(c))
			return false;
	}
	if (!at_end(c) && peek(c) != ';')
		return junk(c, "expected ';' after the authserv-id");
	return true;
}

bool authres_parse(const char *value, size_t len, unsigned flags, struct authres_parsed *p)
{
	memset(p, 0, sizeof(*p));
	p->version = 1;
	struct cur c = {value, value, value + len, (flags & AUTHRES_RELAXED) != 0, false, p};
	if (len > AUTHRES_INPUT_MAX || memchr(value, '\0', len) != NULL)
		return fail(&c, "value too long or with NUL");
	if (!skip_cfws(&c))
		return false;
	const char *first = c.p;
	if (!parse_authserv_id(&c))
		return false;
	bool any = false, none = false;
	/* c is at a ';' unless a relaxed value began without an authserv-id */
	bool at_sep = p->authserv_id[0] != '\0' || c.p != first;
	while (!c.failed && !at_end(&c)) {
		if (at_sep) {
			c.p++; /* the ';' */
			if (!skip_cfws(&c))
				return false;
		}
		at_sep = true;
		if (at_end(&c) || peek(&c) == ';') {
			if (!c.relaxed)
				return fail(&c, "empty result (a stray ';')");
			continue;
		}
		size_t before = p->nresults + p->extra;
		if (!parse_resinfo(&c))
			return false;
		none = none || p->nresults + p->extra == before;
		any = true;
	}
	if (!c.relaxed && (!any || (none && p->nresults + p->extra > 0)))
		return fail(&c, "no result (\"; none\" is needed)");
	return !c.failed;
}

/* ---- our authserv-id ---------------------------------------------------------- */

/* same_id - equal ignoring ASCII case and one trailing dot on either side. */
static bool same_id(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	if (an > 0 && a[an - 1] == '.')
		an--;
	if (bn > 0 && b[bn - 1] == '.')
		bn--;
	return an == bn && an > 0 && rg_strncasecmp(a, b, an) == 0;
}

static bool is_host_char(char ch)
{
	return is_kw_char(ch) || ch == '.';
}

/* element_is - the first value of the element at c (after comments and
 * white space) equals id. Fail closed: our name followed by any byte that
 * cannot continue a host name (a quote, '/', ',', a UTF-8 no-break space)
 * counts too, as another reader may end the authserv-id there. */
static bool element_is(struct cur *c, const char *id)
{
	char word[256];
	if (!skip_cfws(c))
		return false;
	const char *s = c->p;
	while (!at_end(c) && is_host_char(*c->p))
		c->p++;
	if (same_id(s, (size_t)(c->p - s), id))
		return true;
	c->p = s;
	if (!lex_value(c, word, sizeof(word)))
		return false;
	return same_id(word, strlen(word), id);
}

bool authres_claims_id(const char *value, size_t len, const char *authserv_id)
{
	struct authres_parsed scratch;
	if (len > AUTHRES_INPUT_MAX)
		len = AUTHRES_INPUT_MAX;
	struct cur c = {value, value, value + len, true, false, &scratch};
	if (element_is(&c, authserv_id))
		return true;
	/* Outlook form: the id as a bare element after the results */
	while (!at_end(&c)) {
		c.failed = false;
		if (!skip_element(&c))
			return false;
		if (at_end(&c))
			break;
		c.p++;
		const char *save = c.p;
		if (element_is(&c, authserv_id) && skip_cfws(&c) && (at_end(&c) || peek(&c) == ';'))
			return true;
		c.p = save;
	}
	return false;
}

/* only_cfws - the text is white space and comments (an unclosed one too). */
static bool only_cfws(const char *p, size_t n)
{
	size_t depth = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' && depth > 0)
			i++;
		else if (p[i] == '(')
			depth++;
		else if (p[i] == ')' && depth > 0)
			depth--;
		else if (depth == 0 && p[i] != ' ' && p[i] != '\t')
			return false;
	}
	return true;
}

/* unfold - the value without its line breaks (RFC 5322 2.2.3): a CRLF in a
 * held field is always followed by white space, so removing CR and LF is
 * unfolding; a stray CR or LF goes too (the session refuses those anyway).
 * Any other control byte and every non-ASCII byte becomes a space: readers
 * differ on what white space is (Perl's \s and Python's split() take \f and
 * \v, Unicode-aware ones U+00A0 and U+3000), and our id behind one of them
 * must still be seen. */
static size_t unfold(const char *p, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch != '\r' && ch != '\n')
			out[k++] = (ch < 0x20 && ch != '\t') || ch >= 0x7f ? ' ' : (char)ch;
	}
	return k;
}

/* encoded_before_id_ends - an RFC 2047 encoded word ("=?") before the first
 * ';' outside quotes and comments, or in them: a reader that decodes the field
 * (Python's email package does, for a field it does not know) may find our id
 * in it, and no authserv-id is written that way. */
static bool encoded_before_id_ends(const char *p, size_t n)
{
	size_t depth = 0;
	bool quoted = false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '=' && i + 1 < n && p[i + 1] == '?')
			return true;
		if (p[i] == '\\' && (quoted || depth > 0))
			i++;
		else if (p[i] == '"' && depth == 0)
			quoted = !quoted;
		else if (p[i] == '(' && !quoted)
			depth++;
		else if (p[i] == ')' && !quoted && depth > 0)
			depth--;
		else if (p[i] == ';' && !quoted && depth == 0)
			return false;
	}
	return false;
}

bool authres_field_forged(const char *field, size_t n, bool whole, const char *authserv_id)
{
	static const char name[] = "Authentication-Results";
	size_t k = sizeof(name) - 1;
	if (n < k || rg_strncasecmp(field, name, k) != 0)
		return false;
	/* the obsolete "Name :" (RFC 5322 4.5), the colon even on a continuation
	 * line: a reader that unfolds first sees "Name :" there too */
	while (k < n && (field[k] == ' ' || field[k] == '\t' || field[k] == '\r' || field[k] == '\n'))
		k++;
	if (k == n)
		return !whole; /* the colon (and a claim) may be in what we did not see */
	if (field[k] != ':')
		return false;
	k++;
	if (!whole || n - k > AUTHRES_INPUT_MAX)
		return true; /* the claim may be in what we did not see */
	char value[AUTHRES_INPUT_MAX];
	size_t len = unfold(field + k, n - k, value);
	if (only_cfws(value, len))
		return true; /* nothing but a comment: a reader may take what follows as ours */
	if (encoded_before_id_ends(value, len))
		return true;
	size_t lead = 0;
	while (lead < len && (value[lead] == ' ' || value[lead] == '\t'))
		lead++;
	return authres_claims_id(value + lead, len - lead, authserv_id);
}
