/*
 * from - the RFC 5322 From: field value, reduced to its author domains.
 *
 * Owns: a bounded recursive-descent parser over a small lexer (atoms with
 * dots, quoted strings, domain literals, specials; CFWS and nested comments
 * skipped) and the outcome classification (see from.h).
 * Must not: allocate, look anything up, or guess: whatever is not a
 * mailbox-list is FROM_SYNTAX, never "the first thing that looked like an
 * address".
 */
#include "msgauth/from.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum tok_type { T_END, T_ATOM, T_QSTR, T_DLIT, T_SPECIAL, T_ERROR };

struct tok {
	enum tok_type type;
	const char *s; /* first byte (atoms: the text; others: the opening byte) */
	size_t len;
	char c;        /* T_SPECIAL: the character */
};

struct lexer {
	const char *p, *end;
	struct from_result *r;
	bool failed;
	size_t nodomain;
	struct tok local; /* the local part before '@' when it is one word, else T_END */
};

/* fail - record the first syntax problem; later ones add nothing. */
static void fail(struct lexer *lx, const char *why)
{
	if (!lx->failed)
		snprintf(lx->r->detail, sizeof(lx->r->detail), "%s", why);
	lx->failed = true;
}

/* is_ctl - control bytes that may not appear anywhere (HT/CR/LF are FWS). */
static bool is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* is_atext - RFC 5322 atext plus '.' (dot-atom, obs-phrase) and UTF-8
 * bytes (RFC 6532). */
static bool is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

/* skip_comment - past one (possibly nested) comment; lx->p is at '('. */
static void skip_comment(struct lexer *lx)
{
	int depth = 0;
	while (lx->p < lx->end) {
		unsigned char c = (unsigned char)*lx->p++;
		if (is_ctl(c)) {
			fail(lx, "control character in a comment");
			return;
		}
		if (c == '\\' && lx->p < lx->end) {
			lx->p++;
		} else if (c == '(') {
			if (++depth > FROM_COMMENT_DEPTH) {
				fail(lx, "comments nested too deeply");
				return;
			}
		} else if (c == ')' && --depth == 0) {
			return;
		}
	}
	fail(lx, "unterminated comment");
}

/* skip_cfws - white space and comments. */
static void skip_cfws(struct lexer *lx)
{
	while (!lx->failed && lx->p < lx->end) {
		if (is_wsp((unsigned char)*lx->p))
			lx->p++;
		else if (*lx->p == '(')
			skip_comment(lx);
		else
			return;
	}
}

/* scan_delimited - past a quoted string or domain literal ending in close. */
static void scan_delimited(struct lexer *lx, char close, const char *what)
{
	lx->p++;
	while (lx->p < lx->end) {
		unsigned char c = (unsigned char)*lx->p++;
		if (is_ctl(c)) {
			fail(lx, "control character in a quoted string or literal");
			return;
		}
		if (c == '\\' && lx->p < lx->end)
			lx->p++;
		else if (c == (unsigned char)close)
			return;
	}
	fail(lx, what);
}

/* lex_next - the next token after CFWS. */
static struct tok lex_next(struct lexer *lx)
{
	struct tok t = {T_END, NULL, 0, 0};
	skip_cfws(lx);
	if (lx->failed)
		return (struct tok){T_ERROR, NULL, 0, 0};
	if (lx->p >= lx->end)
		return t;
	t.s = lx->p;
	unsigned char c = (unsigned char)*lx->p;
	if (is_atext(c)) {
		while (lx->p < lx->end && is_atext((unsigned char)*lx->p))
			lx->p++;
		t.type = T_ATOM;
	} else if (c == '"') {
		scan_delimited(lx, '"', "unterminated quoted string");
		t.type = T_QSTR;
	} else if (c == '[') {
		scan_delimited(lx, ']', "unterminated domain literal");
		t.type = T_DLIT;
	} else if (strchr("<>@,;:", c) != NULL) {
		lx->p++;
		t.type = T_SPECIAL;
		t.c = (char)c;
	} else {
		fail(lx, is_ctl(c) ? "control character" : "unexpected character");
	}
	if (lx->failed)
		t.type = T_ERROR;
	t.len = (size_t)(lx->p - t.s);
	return t;
}

/* lex_peek - the next token without consuming it. */
static struct tok lex_peek(struct lexer *lx)
{
	const char *save = lx->p;
	struct tok t = lex_next(lx);
	lx->p = save;
	return t;
}

static bool is_special(struct tok t, char c)
{
	return t.type == T_SPECIAL && t.c == c;
}

/* domain_ok - a DNS name: labels of 1-63 letters, digits, '-', '_' or UTF-8
 * bytes, at most FROM_DOMAIN_MAX in all, no empty label. */
static bool domain_ok(const char *s, size_t len)
{
	if (len == 0 || len > FROM_DOMAIN_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		bool ok = c >= 0x80 || c == '-' || c == '_' || (c >= '0' && c <= '9') ||
			  ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
		if (!ok || ++label > 63)
			return false;
	}
	return label > 0;
}

/* add_domain - count a mailbox in domain s[0..len), keeping distinct ones. */
static void add_domain(struct lexer *lx, const char *s, size_t len)
{
	struct from_result *r = lx->r;
	char d[FROM_DOMAIN_MAX + 1];
	for (size_t i = 0; i < len; i++)
		d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] | 0x20) : s[i];
	d[len] = '\0';
	if (r->mailboxes++ == 0 && lx->local.type != T_END && lx->local.len <= FROM_LOCAL_MAX) {
		memcpy(r->local, lx->local.s, lx->local.len);
		r->local[lx->local.len] = '\0';
	}
	size_t kept = r->ndomains < FROM_DOMAINS_MAX ? r->ndomains : FROM_DOMAINS_MAX;
	for (size_t i = 0; i < kept; i++)
		if (strcmp(r->domain[i], d) == 0)
			return;
	if (r->ndomains < FROM_DOMAINS_MAX)
		memcpy(r->domain[r->ndomains], d, len + 1);
	r->ndomains++; /* past the array only counted; equality there unknown,
			* but two distinct ones already make MULTIPLE */
}

/* no_domain - a mailbox that names no DNS domain. */
static void no_domain(struct lexer *lx, const char *why)
{
	lx->r->mailboxes++;
	if (lx->nodomain++ == 0 && !lx->failed)
		snprintf(lx->r->detail, sizeof(lx->r->detail), "%s", why);
}

/* join_obs_domain - the atoms of an obs-domain ("example . com", CFWS
 * around the dots) into buf; false if it would not fit. */
static bool join_obs_domain(struct lexer *lx, struct tok first, char *buf, size_t *len)
{
	if (first.len > FROM_DOMAIN_MAX)
		return false;
	memcpy(buf, first.s, first.len);
	*len = first.len;
	for (;;) {
		struct tok t = lex_peek(lx);
		if (t.type != T_ATOM || (buf[*len - 1] != '.' && t.s[0] != '.'))
			return true;
		if (*len + t.len > FROM_DOMAIN_MAX)
			return false;
		lex_next(lx);
		memcpy(buf + *len, t.s, t.len);
		*len += t.len;
	}
}

/* parse_domain - the part after '@'. */
static void parse_domain(struct lexer *lx)
{
	char d[FROM_DOMAIN_MAX + 1];
	size_t n = 0;
	struct tok t = lex_next(lx);
	if (t.type == T_DLIT)
		no_domain(lx, "address literal as author domain");
	else if (t.type == T_ATOM && join_obs_domain(lx, t, d, &n) && domain_ok(d, n))
		add_domain(lx, d, n);
	else if (t.type == T_ATOM)
		no_domain(lx, "invalid author domain");
	else if (t.type != T_ERROR)
		fail(lx, "missing domain after '@'");
}

/* skip_local_part - words of a local part; false if there were none. */
static bool skip_local_part(struct lexer *lx)
{
	size_t words = 0;
	for (;;) {
		struct tok t = lex_peek(lx);
		if (t.type != T_ATOM && t.type != T_QSTR)
			return words > 0;
		lex_next(lx);
		lx->local = words++ == 0 ? t : (struct tok){T_END, NULL, 0, 0};
	}
}

/* skip_route - an obsolete source route "@a,@b:" inside angle brackets. */
static void skip_route(struct lexer *lx)
{
	for (;;) {
		struct tok t = lex_next(lx);
		if (is_special(t, ':') || t.type == T_ERROR)
			return;
		if (!is_special(t, '@') && !is_special(t, ',') && t.type != T_ATOM &&
		    t.type != T_DLIT) {
			fail(lx, "bad route in angle address");
			return;
		}
	}
}

/* parse_angle - "<" [route] addr-spec ">", the '<' already consumed. */
static void parse_angle(struct lexer *lx)
{
	if (is_special(lex_peek(lx), '@'))
		skip_route(lx);
	if (is_special(lex_peek(lx), '>')) {
		lex_next(lx);
		no_domain(lx, "empty angle address");
		return;
	}
	if (!skip_local_part(lx)) {
		fail(lx, "missing local part in angle address");
		return;
	}
	struct tok t = lex_next(lx);
	if (is_special(t, '>')) {
		no_domain(lx, "angle address without a domain");
		return;
	}
	if (!is_special(t, '@')) {
		fail(lx, "expected '@' in angle address");
		return;
	}
	parse_domain(lx);
	if (!lx->failed && !is_special(lex_next(lx), '>'))
		fail(lx, "expected '>' after the address");
}

static void parse_list(struct lexer *lx, bool in_group);

/* parse_address - a mailbox (name-addr or addr-spec) or a group. */
static void parse_address(struct lexer *lx, bool in_group)
{
	size_t words = 0;
	struct tok t;
	while ((t = lex_peek(lx)).type == T_ATOM || t.type == T_QSTR) {
		lex_next(lx);
		lx->local = words++ == 0 ? t : (struct tok){T_END, NULL, 0, 0};
	}
	if (t.type == T_ERROR)
		return;
	if (is_special(t, '<')) {
		lex_next(lx);
		parse_angle(lx);
	} else if (is_special(t, '@') && words > 0) {
		lex_next(lx);
		parse_domain(lx);
	} else if (is_special(t, ':') && !in_group) {
		lex_next(lx);
		parse_list(lx, true);
	} else if (words > 0 && (t.type == T_END || is_special(t, ',') || is_special(t, ';'))) {
		no_domain(lx, "mailbox without a domain");
	} else {
		fail(lx, "expected a mailbox");
	}
}

/* parse_list - mailbox-list / address-list, tolerating empty elements
 * (obs-mbox-list) and a group left open at the end of the field. */
static void parse_list(struct lexer *lx, bool in_group)
{
	while (!lx->failed) {
		struct tok t = lex_peek(lx);
		if (t.type == T_END || t.type == T_ERROR)
			return;
		if (is_special(t, ',')) {
			lex_next(lx);
			continue;
		}
		if (is_special(t, ';')) {
			if (!in_group)
				fail(lx, "';' outside a group");
			lex_next(lx);
			return;
		}
		parse_address(lx, in_group);
		t = lex_peek(lx);
		if (!lx->failed && t.type != T_END && !is_special(t, ',') && !is_special(t, ';'))
			fail(lx, "expected ',' between addresses");
	}
}

/* classify - the one outcome, strongest problem first. */
static enum from_status classify(const struct lexer *lx)
{
	const struct from_result *r = lx->r;
	if (lx->failed)
		return FROM_SYNTAX;
	if (lx->nodomain > 0)
		return FROM_NO_DOMAIN;
	if (r->mailboxes == 0)
		return FROM_EMPTY;
	return r->ndomains > 1 ? FROM_MULTIPLE_DOMAINS : FROM_OK;
}

enum from_status from_parse(const char *value, size_t len, struct from_result *r)
{
	memset(r, 0, sizeof(*r));
	struct lexer lx = {value, value + len, r, false, 0, {T_END, NULL, 0, 0}};
	if (len > FROM_VALUE_MAX)
		fail(&lx, "From: field too long");
	else
		parse_list(&lx, false);
	r->status = classify(&lx);
	if (r->status == FROM_EMPTY)
		snprintf(r->detail, sizeof(r->detail), "no author address");
	else if (r->status == FROM_MULTIPLE_DOMAINS)
		snprintf(r->detail, sizeof(r->detail), "%zu author domains", r->ndomains);
	return r->status;
}

const char *from_status_name(enum from_status s)
{
	switch (s) {
	case FROM_OK: return "ok";
	case FROM_EMPTY: return "empty";
	case FROM_MULTIPLE_DOMAINS: return "multiple-domains";
	case FROM_NO_DOMAIN: return "no-domain";
	case FROM_SYNTAX: return "syntax";
	}
	return "?";
}
