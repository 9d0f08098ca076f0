/*
 * address.c - RFC 5321 path parsing and destination resolution.
 *
 * DESCRIPTION
 *	The grammar is RFC 5321 section 4.1.2, with two deliberate leniencies,
 *	both of which end up flagged as routing rather than rejected, because a
 *	client that sends them is either broken or probing for a relay:
 *	an unquoted local part may contain further '@' (user@other@domain), and
 *	a source route may precede the mailbox. Everything else is strict.
 *
 *	address_resolve() undoes routing the way Postfix does with its default
 *	allow_percent_hack = yes and swap_bangpath = yes: when the domain is ours
 *	(or absent), a local part carrying '@', '!' or '%' names another address,
 *	which is resolved in turn. The result carries routed = true whatever the
 *	final destination, and the policy never treats a routed address as an
 *	authorised destination.
 */
#include "address/address.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define ERR(...) snprintf(err, errlen, __VA_ARGS__)

static bool is_atext(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_let_dig(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool has_non_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* find_path_end - the '>' closing the path, skipping quoted strings. */
static const char *find_path_end(const char *p)
{
	bool in_quotes = false;
	for (; *p; p++) {
		if (in_quotes && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			in_quotes = !in_quotes;
		else if (*p == '>' && !in_quotes)
			return p;
	}
	return NULL;
}

/* valid_hostname - RFC 5321 Domain: LDH labels of 1..63, not all numeric TLD check here. */
static bool valid_hostname(const char *d, size_t n)
{
	size_t label = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = d[i];
		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_let_dig(c) && !(c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && d[n - 1] != '-';
}

/* parse_literal - "[192.0.2.1]" or "[IPv6:2001:db8::1]" into a. */
static bool parse_literal(const char *d, size_t n, struct address *a)
{
	char inner[ADDR_DOMAIN_MAX + 1];
	if (n < 3 || d[0] != '[' || d[n - 1] != ']' || n - 2 >= sizeof(inner))
		return false;
	memcpy(inner, d + 1, n - 2);
	inner[n - 2] = '\0';
	if (rg_str_has_prefix_ci(inner, "IPv6:")) {
		if (inet_pton(AF_INET6, inner + 5, a->literal_ip.addr) != 1)
			return false;
		a->literal_ip.family = AF_INET6;
		ip_parse(inner + 5, &a->literal_ip); /* folds v4-mapped */
	} else {
		if (inet_pton(AF_INET, inner, a->literal_ip.addr) != 1)
			return false;
		a->literal_ip.family = AF_INET;
	}
	a->literal = true;
	return true;
}

/* parse_domain - the part after the last '@'. */
static enum addr_error parse_domain(const char *d, size_t n, struct address *a,
				    char *err, size_t errlen)
{
	if (n == 0) {
		ERR("nothing after '@' (an address needs a domain)");
		return ADDR_ERR_SYNTAX;
	}
	if (n > ADDR_DOMAIN_MAX) {
		ERR("domain longer than %d octets", ADDR_DOMAIN_MAX);
		return ADDR_ERR_TOO_LONG;
	}
	if (d[0] == '[') {
		if (!parse_literal(d, n, a)) {
			ERR("invalid address literal (use [192.0.2.1] or [IPv6:2001:db8::1])");
			return ADDR_ERR_SYNTAX;
		}
	} else {
		if (n > 1 && d[n - 1] == '.') {
			a->trailing_dot = true;
			n--;
		}
		if (!valid_hostname(d, n)) {
			ERR("invalid domain name");
			return ADDR_ERR_SYNTAX;
		}
	}
	memcpy(a->domain, d, n);
	a->domain[n] = '\0';
	rg_str_lower(a->domain);
	return ADDR_OK;
}

/* parse_quoted - a Quoted-string at *p; decoded into a->local. */
static enum addr_error parse_quoted(const char **pp, const char *end, struct address *a,
				    char *err, size_t errlen)
{
	const char *p = *pp + 1;
	size_t n = 0;
	for (; p < end && *p != '"'; p++) {
		if (*p == '\\') {
			if (p + 1 >= end || p[1] < 32 || p[1] > 126) {
				ERR("invalid escape in quoted local part");
				return ADDR_ERR_SYNTAX;
			}
			p++;
		} else if (*p < 32 || *p > 126) {
			ERR("invalid character in quoted local part");
			return ADDR_ERR_SYNTAX;
		}
		if (n >= ADDR_LOCAL_MAX) {
			ERR("local part longer than %d octets", ADDR_LOCAL_MAX);
			return ADDR_ERR_TOO_LONG;
		}
		a->local[n++] = *p;
	}
	if (p >= end) {
		ERR("unterminated quoted local part");
		return ADDR_ERR_SYNTAX;
	}
	a->local[n] = '\0';
	a->quoted = true;
	*pp = p + 1;
	return ADDR_OK;
}

/* valid_dot_string - Atom *("." Atom), with '@' tolerated between atoms. */
static bool valid_dot_string(const char *s, size_t n)
{
	bool need_atext = true;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.' || s[i] == '@') {
			if (need_atext)
				return false;
			need_atext = true;
		} else if (is_atext((unsigned char)s[i])) {
			need_atext = false;
		} else {
			return false;
		}
	}
	return !need_atext;
}

/* parse_mailbox - Local-part ["@" Domain] between p and end. */
static enum addr_error parse_mailbox(const char *p, const char *end, struct address *a,
				     char *err, size_t errlen)
{
	const char *at;
	if (*p == '"') {
		enum addr_error e = parse_quoted(&p, end, a, err, errlen);
		if (e != ADDR_OK)
			return e;
		if (p < end && *p != '@') {
			ERR("unexpected text after quoted local part");
			return ADDR_ERR_SYNTAX;
		}
		at = p < end ? p : NULL;
	} else {
		at = NULL;
		for (const char *q = p; q < end; q++)
			if (*q == '@')
				at = q;
		size_t n = (size_t)((at ? at : end) - p);
		if (n == 0) {
			ERR("empty local part");
			return ADDR_ERR_SYNTAX;
		}
		if (n > ADDR_LOCAL_MAX) {
			ERR("local part longer than %d octets", ADDR_LOCAL_MAX);
			return ADDR_ERR_TOO_LONG;
		}
		if (!valid_dot_string(p, n)) {
			ERR("invalid character or dot in local part");
			return ADDR_ERR_SYNTAX;
		}
		memcpy(a->local, p, n);
		a->local[n] = '\0';
	}
	if (strchr(a->local, '@') != NULL)
		a->routing |= ROUTE_AT;
	if (strchr(a->local, '%') != NULL)
		a->routing |= ROUTE_PERCENT;
	if (strchr(a->local, '!') != NULL)
		a->routing |= ROUTE_BANG;
	if (at == NULL)
		return ADDR_OK;
	return parse_domain(at + 1, (size_t)(end - at - 1), a, err, errlen);
}

/* parse_source_route - "@one,@two:" at p; returns the mailbox start or NULL. */
static const char *parse_source_route(const char *p, const char *end)
{
	while (p < end && *p == '@') {
		const char *q = p + 1;
		while (q < end && *q != ',' && *q != ':')
			q++;
		if (q >= end || !valid_hostname(p + 1, (size_t)(q - p - 1)))
			return NULL;
		if (*q == ':')
			return q + 1;
		p = q + 1;
	}
	return NULL;
}

enum addr_error address_parse(const char *arg, struct address *a, const char **params,
			      char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	while (*arg == ' ')
		arg++;
	if (*arg != '<') {
		ERR("the address must be enclosed in <>");
		return ADDR_ERR_SYNTAX;
	}
	const char *start = arg + 1, *end = find_path_end(start);
	if (end == NULL) {
		ERR("missing '>' at the end of the address");
		return ADDR_ERR_SYNTAX;
	}
	size_t n = (size_t)(end - start);
	if (n + 2 > ADDR_PATH_MAX) {
		ERR("path longer than %d octets", ADDR_PATH_MAX);
		return ADDR_ERR_TOO_LONG;
	}
	if (has_non_ascii(start, n)) {
		ERR("non-ASCII address, and SMTPUTF8 is not offered");
		return ADDR_ERR_NON_ASCII;
	}
	memcpy(a->text, start, n);
	a->text[n] = '\0';
	if (end[1] != '\0' && end[1] != ' ') {
		ERR("unexpected text after '>'");
		return ADDR_ERR_SYNTAX;
	}
	*params = end + 1;
	while (**params == ' ')
		(*params)++;
	if (n == 0) {
		a->null = true;
		return ADDR_OK;
	}
	const char *p = start;
	if (*p == '@') {
		p = parse_source_route(start, end);
		if (p == NULL) {
			ERR("malformed source route (RFC 5321 form is <@relay:user@domain>)");
			return ADDR_ERR_SYNTAX;
		}
		a->routing |= ROUTE_SOURCE;
		if (p >= end) {
			ERR("source route without a mailbox");
			return ADDR_ERR_SYNTAX;
		}
	}
	return parse_mailbox(p, end, a, err, errlen);
}

bool address_domain_listed(const char *domain, const char *const *list)
{
	size_t dn = strlen(domain);
	for (; list != NULL && *list != NULL; list++) {
		const char *e = *list;
		if (e[0] == '.') {
			size_t en = strlen(e);
			if (dn > en && rg_strcasecmp(domain + dn - en, e) == 0)
				return true;
		} else if (rg_strcasecmp(domain, e) == 0) {
			return true;
		}
	}
	return false;
}

/* is_local_domain - mydestination, a hosted domain, or a literal of one of
 * our addresses. */
static bool is_local_domain(const char *domain, const struct addr_domains *d)
{
	if (domain[0] == '[') {
		struct address tmp;
		memset(&tmp, 0, sizeof(tmp));
		if (!parse_literal(domain, strlen(domain), &tmp))
			return false;
		for (size_t i = 0; i < d->n_local_ips; i++)
			if (ip_equal(&tmp.literal_ip, &d->local_ips[i]))
				return true;
		return false;
	}
	return address_domain_listed(domain, d->mydestination) ||
	       address_domain_listed(domain, d->virtual_alias_domains) ||
	       address_domain_listed(domain, d->virtual_mailbox_domains);
}

/* split_route - undo one level of routing in local; false when none left. */
static bool split_route(char *local, char *domain, size_t domlen, bool *bad)
{
	char *sep = strrchr(local, '@');
	if (sep == NULL && (sep = strchr(local, '!')) != NULL) {
		/* host!user: the host comes first */
		*sep = '\0';
		rg_strlcpy(domain, local, domlen);
		memmove(local, sep + 1, strlen(sep + 1) + 1);
	} else {
		if (sep == NULL && (sep = strrchr(local, '%')) == NULL)
			return false;
		*sep = '\0';
		rg_strlcpy(domain, sep + 1, domlen);
	}
	size_t n = strlen(domain);
	if (n > 1 && domain[n - 1] == '.')
		domain[n - 1] = '\0';
	struct address lit;
	memset(&lit, 0, sizeof(lit));
	if (local[0] == '\0' || domain[0] == '\0')
		*bad = true;
	else if (domain[0] == '[' ? !parse_literal(domain, strlen(domain), &lit)
				  : !valid_hostname(domain, strlen(domain)))
		*bad = true;
	rg_str_lower(domain);
	return true;
}

/* classify - the class of a final, unrouted domain. */
static enum addr_class classify(const char *domain, const struct addr_domains *d)
{
	if (is_local_domain(domain, d))
		return ADDR_CLASS_LOCAL;
	if (domain[0] != '[' && address_domain_listed(domain, d->relay_domains))
		return ADDR_CLASS_RELAY;
	return ADDR_CLASS_REMOTE;
}

void address_resolve(const struct address *a, const struct addr_domains *d,
		     struct addr_resolution *r)
{
	memset(r, 0, sizeof(*r));
	r->routed = a->routing != 0;
	r->unqualified = a->domain[0] == '\0';
	rg_strlcpy(r->local, a->local, sizeof(r->local));
	rg_strlcpy(r->domain, r->unqualified ? d->myorigin : a->domain, sizeof(r->domain));
	/* RFC 5321 4.5.1: a bare <postmaster> must reach our postmaster */
	if (r->unqualified && !r->routed && rg_strcasecmp(a->local, "postmaster") == 0 &&
	    d->mydestination != NULL && d->mydestination[0] != NULL)
		rg_strlcpy(r->domain, d->mydestination[0], sizeof(r->domain));
	bool bad = false;
	/* routing inside the local part is honoured only where we are the destination */
	for (int depth = 0; depth < 8 && !bad; depth++) {
		if (!r->unqualified && !is_local_domain(r->domain, d))
			break;
		if (!split_route(r->local, r->domain, sizeof(r->domain), &bad))
			break;
		r->unqualified = false;
	}
	rg_str_lower(r->local);
	if (bad || (strpbrk(r->local, "@%!") != NULL && is_local_domain(r->domain, d))) {
		r->cls = ADDR_CLASS_INVALID;
		return;
	}
	r->cls = classify(r->domain, d);
	/* [our address] is another name for our first domain: one mailbox, not two */
	if (r->cls == ADDR_CLASS_LOCAL && r->domain[0] == '[' && d->mydestination != NULL &&
	    d->mydestination[0] != NULL)
		rg_strlcpy(r->domain, d->mydestination[0], sizeof(r->domain));
}

const char *address_class_name(enum addr_class cls)
{
	switch (cls) {
	case ADDR_CLASS_LOCAL: return "local";
	case ADDR_CLASS_RELAY: return "relay";
	case ADDR_CLASS_REMOTE: return "remote";
	case ADDR_CLASS_INVALID: return "invalid";
	}
	return "?";
}

void address_routing_names(unsigned routing, char *buf, size_t len)
{
	static const struct { unsigned flag; const char *name; } names[] = {
		{ROUTE_SOURCE, "source-route"}, {ROUTE_AT, "at-in-local-part"},
		{ROUTE_PERCENT, "percent-hack"}, {ROUTE_BANG, "bang-path"},
	};
	buf[0] = '\0';
	for (size_t i = 0; i < RG_ARRAY_LEN(names); i++) {
		if (!(routing & names[i].flag))
			continue;
		if (buf[0] != '\0')
			strncat(buf, ",", len - strlen(buf) - 1);
		strncat(buf, names[i].name, len - strlen(buf) - 1);
	}
	if (buf[0] == '\0')
		rg_strlcpy(buf, "none", len);
}
