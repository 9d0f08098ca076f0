/*
 * spf_record.c - the SPF record parser (RFC 7208 4.5, 5, 6, 12).
 *
 * The whole record is parsed before anything is evaluated: a syntax error
 * anywhere is a permerror (4.6), so an evaluator never acts on half a record.
 * Terms point into rec->text; nothing is allocated.
 */
#include "msgauth/spf.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool spf_record_is_spf(const char *text, size_t len)
{
	return len >= 6 && rg_strncasecmp(text, "v=spf1", 6) == 0 && (len == 6 || text[6] == ' ');
}

/* toplabel_ok - RFC 7208 7.1: alphanumerics and inner hyphens, not all digits. */
static bool toplabel_ok(const char *s, size_t n)
{
	bool alpha = false, hyphen = false;
	if (n == 0 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '-')
			hyphen = true;
		else if (is_alpha(s[i]))
			alpha = true;
		else if (!is_digit(s[i]))
			return false;
	}
	return alpha || hyphen;
}

/* macro_syntax - macro-string grammar; *ends_macro: the last token is %{...}.
 * exp: the letters c, r and t are allowed (only in explanations, 7.3). */
static bool macro_syntax(const char *s, size_t len, bool exp, bool *ends_macro)
{
	*ends_macro = false;
	for (size_t i = 0; i < len;) {
		*ends_macro = false;
		if (s[i] != '%') {
			if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
				return false;
			i++;
			continue;
		}
		if (i + 1 >= len)
			return false;
		if (s[i + 1] == '%' || s[i + 1] == '_' || s[i + 1] == '-') {
			i += 2;
			continue;
		}
		if (s[i + 1] != '{' || i + 2 >= len || s[i + 2] == '\0' ||
		    !strchr(exp ? "slodiphcrtvSLODIPHCRTV" : "slodiphvSLODIPHV", s[i + 2]))
			return false;
		size_t j = i + 3;
		while (j < len && is_digit(s[j]))
			j++;
		if (j < len && (s[j] == 'r' || s[j] == 'R'))
			j++;
		while (j < len && strchr(".-+,/_=", s[j]) != NULL && s[j] != '\0')
			j++;
		if (j >= len || s[j] != '}')
			return false;
		i = j + 1;
		*ends_macro = true;
	}
	return true;
}

bool spf_domain_spec_ok(const char *spec, size_t len)
{
	bool ends_macro;
	if (len == 0 || !macro_syntax(spec, len, false, &ends_macro))
		return false;
	if (ends_macro)
		return true;
	if (spec[len - 1] == '.')
		len--;
	size_t dot = len;
	while (dot > 0 && spec[dot - 1] != '.')
		dot--;
	return dot > 0 && toplabel_ok(spec + dot, len - dot);
}

/* cidr_num - "0" or a number without a leading zero, at most max. */
static bool cidr_num(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;
	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return v <= max;
}

/* digits_back - how many digits end s[0..n). */
static size_t digits_back(const char *s, size_t n)
{
	size_t k = 0;
	while (k < n && is_digit(s[n - 1 - k]))
		k++;
	return k;
}

/* take_cidr - strip "/n" (prefix at most max) from the end of arg. */
static bool take_cidr(const char *arg, size_t *n, unsigned max, unsigned *out)
{
	size_t k = digits_back(arg, *n);
	if (k == 0 || *n < k + 1 || arg[*n - k - 1] != '/')
		return true; /* none */
	if (!cidr_num(arg + *n - k, k, max, out))
		return false;
	*n -= k + 1;
	return true;
}

/* take_dual_cidr - strip "[/n][//m]" from the end of an a or mx argument. */
static bool take_dual_cidr(const char *arg, size_t *n, struct spf_term *t)
{
	size_t k = digits_back(arg, *n);
	if (k > 0 && *n >= k + 2 && arg[*n - k - 1] == '/' && arg[*n - k - 2] == '/') {
		if (!cidr_num(arg + *n - k, k, 128, &t->cidr6))
			return false;
		*n -= k + 2;
	}
	if (!take_cidr(arg, n, 32, &t->cidr4))
		return false;
	return *n == 0 || arg[0] == ':';
}

/* parse_ip - ip4:/ip6: network and prefix. */
static bool parse_ip(const char *arg, size_t n, struct spf_term *t)
{
	char buf[64];
	bool v4 = t->mech == SPF_M_IP4;
	if (n < 2 || arg[0] != ':' || !take_cidr(arg, &n, v4 ? 32 : 128, v4 ? &t->cidr4 : &t->cidr6) ||
	    n - 1 >= sizeof(buf))
		return false;
	memcpy(buf, arg + 1, n - 1);
	buf[n - 1] = '\0';
	int fam = v4 ? AF_INET : AF_INET6;
	if (inet_pton(fam, buf, t->ip.addr) != 1)
		return false;
	t->ip.family = fam;
	return true;
}

static const struct {
	const char *name;
	enum spf_mech mech;
} mechs[] = {
	{"all", SPF_M_ALL}, {"include", SPF_M_INCLUDE}, {"a", SPF_M_A}, {"mx", SPF_M_MX},
	{"ptr", SPF_M_PTR}, {"ip4", SPF_M_IP4}, {"ip6", SPF_M_IP6}, {"exists", SPF_M_EXISTS},
};

/* mech_args - the part after the mechanism name. */
static bool mech_args(const char *arg, size_t n, struct spf_term *t)
{
	switch (t->mech) {
	case SPF_M_ALL:
		return n == 0;
	case SPF_M_IP4:
	case SPF_M_IP6:
		return parse_ip(arg, n, t);
	case SPF_M_A:
	case SPF_M_MX:
		if (!take_dual_cidr(arg, &n, t))
			return false;
		break;
	default:
		break;
	}
	if (n == 0)
		return t->mech == SPF_M_A || t->mech == SPF_M_MX || t->mech == SPF_M_PTR;
	if (arg[0] != ':' || !spf_domain_spec_ok(arg + 1, n - 1))
		return false;
	t->spec = arg + 1;
	t->spec_len = n - 1;
	return true;
}

static bool parse_mechanism(const char *s, size_t n, struct spf_term *t)
{
	memset(t, 0, sizeof(*t));
	t->qual = '+';
	t->cidr4 = 32;
	t->cidr6 = 128;
	if (n > 0 && strchr("+-~?", s[0]) != NULL) {
		t->qual = s[0];
		s++;
		n--;
	}
	size_t name = 0;
	while (name < n && s[name] != ':' && s[name] != '/')
		name++;
	for (size_t i = 0; i < RG_ARRAY_LEN(mechs); i++) {
		if (strlen(mechs[i].name) == name && rg_strncasecmp(s, mechs[i].name, name) == 0) {
			t->mech = mechs[i].mech;
			return mech_args(s + name, n - name, t);
		}
	}
	return false;
}

/* modifier_name - length of a modifier name followed by '=', or 0. */
static size_t modifier_name(const char *s, size_t n)
{
	size_t i = 0;
	if (n == 0 || !is_alpha(s[0]))
		return 0;
	while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
		i++;
	return i < n && s[i] == '=' ? i : 0;
}

static bool parse_modifier(struct spf_record *rec, const char *s, size_t name, size_t n,
			   const char **why)
{
	const char *v = s + name + 1;
	size_t vlen = n - name - 1;
	bool ends;
	const char **slot = NULL;
	size_t *slot_len = NULL;
	if (name == 8 && rg_strncasecmp(s, "redirect", 8) == 0) {
		slot = &rec->redirect;
		slot_len = &rec->redirect_len;
	} else if (name == 3 && rg_strncasecmp(s, "exp", 3) == 0) {
		slot = &rec->exp;
		slot_len = &rec->exp_len;
	}
	if (slot == NULL) {
		*why = "bad unknown modifier";
		return macro_syntax(v, vlen, true, &ends);
	}
	*why = *slot != NULL ? "modifier given twice" : "bad domain-spec in modifier";
	if (*slot != NULL || !spf_domain_spec_ok(v, vlen))
		return false;
	*slot = v;
	*slot_len = vlen;
	return true;
}

/* parse_term - one term of length n at s. */
static bool parse_term(struct spf_record *rec, const char *s, size_t n, const char **why)
{
	size_t name = modifier_name(s, n);
	if (name > 0)
		return parse_modifier(rec, s, name, n, why);
	*why = rec->n >= SPF_MAX_TERMS ? "too many terms" : "bad mechanism";
	if (rec->n >= SPF_MAX_TERMS || !parse_mechanism(s, n, &rec->terms[rec->n]))
		return false;
	rec->terms[rec->n].text = s;
	rec->terms[rec->n].text_len = n;
	rec->has_all |= rec->terms[rec->n].mech == SPF_M_ALL;
	rec->n++;
	return true;
}

/* fail - the term (cut) and the reason into err. */
static bool fail(char *err, size_t errlen, const char *why, const char *term, size_t n)
{
	snprintf(err, errlen, "%s: \"%.*s\"", why, (int)(n > 60 ? 60 : n), term);
	return false;
}

bool spf_record_parse(const char *text, size_t len, struct spf_record *rec, char *err,
		      size_t errlen)
{
	memset(rec, 0, offsetof(struct spf_record, terms));
	rec->n = 0;
	rec->redirect = rec->exp = NULL;
	rec->has_all = false;
	if (len > SPF_RECORD_MAX)
		return fail(err, errlen, "record too long", "", 0);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
			return fail(err, errlen, "control or non-ASCII byte in record", "", 0);
	if (!spf_record_is_spf(text, len))
		return fail(err, errlen, "not an SPF record", "", 0);
	memcpy(rec->text, text, len);
	rec->text[len] = '\0';
	for (size_t i = 6; i < len;) {
		if (rec->text[i] == ' ') {
			i++;
			continue;
		}
		size_t j = i;
		while (j < len && rec->text[j] != ' ')
			j++;
		const char *why = "bad term";
		if (!parse_term(rec, rec->text + i, j - i, &why))
			return fail(err, errlen, why, rec->text + i, j - i);
		i = j;
	}
	return true;
}
