/*
 * convert.c - each expanded value into its typed struct config field, as
 * the parameter table (params.def) says, then the checks that involve
 * several parameters (validations[]).
 *
 * Owns: one parse and one free function per parameter type, the
 * restriction names, and the cross-parameter checks.
 * Must not: read files other than the tables a parameter names; every
 * problem is reported through config_error(), never printed.
 */
#include "config/loader.h"
#include "abuse/shared.h"
#include "address/address.h"
#include "qmgr/route.h"
#include "config/aliases.h"
#include "address/expand.h"

#include <libpsl.h>

#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	enum restriction_kind kind;
} restriction_names[] = {
	{"permit_mynetworks", R_PERMIT_MYNETWORKS},
	{"permit_sasl_authenticated", R_PERMIT_SASL_AUTHENTICATED},
	{"reject_unauth_destination", R_REJECT_UNAUTH_DESTINATION},
	{"defer_unauth_destination", R_DEFER_UNAUTH_DESTINATION},
	{"permit_auth_destination", R_PERMIT_AUTH_DESTINATION},
	{"reject_unlisted_recipient", R_REJECT_UNLISTED_RECIPIENT},
	{"reject_non_fqdn_sender", R_REJECT_NON_FQDN_SENDER},
	{"reject_non_fqdn_recipient", R_REJECT_NON_FQDN_RECIPIENT},
	{"reject_non_fqdn_helo_hostname", R_REJECT_NON_FQDN_HELO_HOSTNAME},
	{"reject_invalid_helo_hostname", R_REJECT_INVALID_HELO_HOSTNAME},
	{"check_client_access", R_CHECK_CLIENT_ACCESS},
	{"reject_sender_login_mismatch", R_REJECT_SENDER_LOGIN_MISMATCH},
	{"reject_authenticated_sender_login_mismatch", R_REJECT_AUTH_SENDER_LOGIN_MISMATCH},
	{"reject_unauthenticated_sender_login_mismatch", R_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH},
	{"permit", R_PERMIT},
	{"reject", R_REJECT},
	{"defer", R_DEFER},
	{"reject_spf_fail", R_REJECT_SPF_FAIL},
	{"defer_spf_temperror", R_DEFER_SPF_TEMPERROR},
	{"reject_spf_permerror", R_REJECT_SPF_PERMERROR},
};

const char *config_restriction_name(size_t k)
{
	return k < RG_ARRAY_LEN(restriction_names) ? restriction_names[k].name : NULL;
}

/* split_list - commas and blanks separate items; "{...}" stays one item. */
static char **split_list(const char *s, size_t *count)
{
	char **items = xcalloc(1, sizeof(char *));
	size_t n = 0;
	while (*s) {
		while (*s == ',' || *s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		const char *start = s;
		int depth = 0;
		for (; *s && (depth > 0 || (*s != ',' && *s != ' ' && *s != '\t')); s++) {
			if (*s == '{')
				depth++;
			else if (*s == '}' && depth > 0)
				depth--;
		}
		items = xrealloc(items, (n + 2) * sizeof(char *));
		items[n++] = xstrndup(start, (size_t)(s - start));
		items[n] = NULL;
	}
	if (count)
		*count = n;
	return items;
}

static void free_list(char **items)
{
	for (size_t i = 0; items && items[i]; i++)
		free(items[i]);
	free(items);
}

bool config_hostname_ok(const char *name)
{
	struct address a;
	const char *rest;
	char err[128];
	char path[ADDR_DOMAIN_MAX + 8];
	if (strlen(name) > ADDR_DOMAIN_MAX || name[0] == '[')
		return false;
	snprintf(path, sizeof(path), "<x@%s>", name);
	return address_parse(path, &a, &rest, err, sizeof(err)) == ADDR_OK && !a.literal &&
	       !a.trailing_dot;
}

/* convert_domains - a list of domain names (".parent" only where allowed). */
static char **convert_domains(struct loader *ld, size_t i, bool allow_parent)
{
	char **items = split_list(ld->expanded[i], NULL);
	for (size_t k = 0; items[k]; k++) {
		const char *d = items[k];
		if (allow_parent && d[0] == '.')
			d++;
		size_t n = strlen(d);
		if (n > 1 && d[n - 1] == '.')
			items[k][strlen(items[k]) - 1] = '\0';
		if (!config_hostname_ok(d)) {
			config_error(ld, i, "%s: \"%s\" is not a domain name%s", config_params[i].name,
				  items[k], allow_parent ? "" : " (only relay_domains "
				  "takes \".parent\" patterns)");
		} else if (d != items[k] && psl_is_public_suffix2(psl_builtin(), d,
				PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE)) {
			config_error(ld, i, "%s: \"%s\" would relay for every domain under the public "
				  "suffix \"%s\"; list your own domains", config_params[i].name, items[k], d);
		}
		rg_str_lower(items[k]);
	}
	return items;
}

static void convert_network_list(struct loader *ld, size_t i, struct cidr **out, size_t *nout)
{
	size_t n;
	char **items = split_list(ld->expanded[i], &n);
	*out = xcalloc(n + 1, sizeof(struct cidr));
	*nout = 0;
	for (size_t k = 0; k < n; k++) {
		char why[256];
		if (cidr_parse(items[k], &(*out)[*nout], why, sizeof(why)))
			(*nout)++;
		else
			config_error(ld, i, "%s: %s", config_params[i].name, why);
	}
	free_list(items);
}

static struct map **convert_maps(struct loader *ld, size_t i)
{
	size_t n;
	char **items = split_list(ld->expanded[i], &n);
	struct map **maps = xcalloc(n + 1, sizeof(struct map *));
	size_t m = 0;
	for (size_t k = 0; k < n; k++) {
		char why[1024];
		if (strncmp(items[k], "cidr:", 5) == 0) {
			config_error(ld, i, "%s: a cidr: table cannot list recipients", config_params[i].name);
			continue;
		}
		maps[m] = map_open(items[k], why, sizeof(why));
		if (maps[m] != NULL)
			m++;
		else
			config_error(ld, i, "%s: %s", config_params[i].name, why);
	}
	free_list(items);
	return maps;
}

static const char *closest_restriction(const char *name)
{
	const char *best = NULL;
	size_t best_d = 4;
	for (size_t k = 0; k < RG_ARRAY_LEN(restriction_names); k++) {
		size_t d = config_edit_distance(name, restriction_names[k].name);
		if (d < best_d) {
			best_d = d;
			best = restriction_names[k].name;
		}
	}
	return best;
}

static bool lookup_restriction(const char *name, enum restriction_kind *kind,
			       const char **canonical)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(restriction_names); k++) {
		if (rg_strcasecmp(name, restriction_names[k].name) == 0) {
			*kind = restriction_names[k].kind;
			*canonical = restriction_names[k].name;
			return true;
		}
	}
	return false;
}

/* check_access_table - every value must be an action we understand. */
static bool check_access_table(struct loader *ld, size_t i, const struct map *m)
{
	for (size_t k = 0; k < m->n; k++) {
		struct access_result ar;
		if (!map_access_parse(m->entries[k].value, &ar)) {
			config_error(ld, i, "%s: %s: unknown action \"%s\" (use OK, DUNNO, "
				  "REJECT [text], DEFER [text] or a 4xx/5xx code)", config_params[i].name,
				  m->spec, m->entries[k].value);
			return false;
		}
	}
	return true;
}

/* Postfix restrictions relayguard does not implement (README, Known limitations):
 * named as such, not as typos; ARG: a table, domain or service follows. */
static const struct {
	const char *name;
	bool arg;
} postfix_only[] = {
	{"check_sender_access", true}, {"check_recipient_access", true},
	{"check_helo_access", true}, {"check_reverse_client_hostname_access", true},
	{"check_client_a_access", true}, {"check_client_mx_access", true},
	{"check_client_ns_access", true}, {"check_reverse_client_hostname_a_access", true},
	{"check_reverse_client_hostname_mx_access", true},
	{"check_reverse_client_hostname_ns_access", true}, {"check_helo_a_access", true},
	{"check_helo_mx_access", true}, {"check_helo_ns_access", true},
	{"check_sender_a_access", true}, {"check_sender_mx_access", true},
	{"check_sender_ns_access", true}, {"check_recipient_a_access", true},
	{"check_recipient_mx_access", true}, {"check_recipient_ns_access", true},
	{"check_ccert_access", true}, {"check_sasl_access", true},
	{"check_policy_service", true}, {"reject_rbl_client", true},
	{"reject_rhsbl_client", true}, {"reject_rhsbl_reverse_client", true},
	{"reject_rhsbl_sender", true}, {"reject_rhsbl_helo", true},
	{"reject_rhsbl_recipient", true}, {"permit_dnswl_client", true},
	{"permit_rhswl_client", true}, {"sleep", true},
	{"permit_tls_clientcerts", false}, {"permit_tls_all_clientcerts", false},
	{"reject_unknown_client_hostname", false}, {"reject_unknown_client", false},
	{"reject_unknown_reverse_client_hostname", false},
	{"reject_unknown_helo_hostname", false}, {"reject_unknown_hostname", false},
	{"reject_unknown_sender_domain", false}, {"reject_unknown_recipient_domain", false},
	{"reject_unverified_sender", false}, {"reject_unverified_recipient", false},
	{"reject_unlisted_sender", false}, {"reject_known_sender_login_mismatch", false},
	{"reject_unauth_pipelining", false}, {"reject_multi_recipient_bounce", false},
	{"reject_plaintext_session", false}, {"reject_non_fqdn_hostname", false},
	{"reject_invalid_hostname", false}, {"permit_mx_backup", false},
	{"permit_inet_interfaces", false}, {"permit_naked_ip_address", false},
	{"defer_if_permit", false}, {"defer_if_reject", false}, {"warn_if_reject", false},
};

/* postfix_only_index - WORD's row in postfix_only[], or -1. */
static int postfix_only_index(const char *word)
{
	for (size_t j = 0; j < RG_ARRAY_LEN(postfix_only); j++)
		if (rg_strcasecmp(word, postfix_only[j].name) == 0)
			return (int)j;
	return -1;
}

/* is_restriction - a restriction's name, ours or Postfix's (never an argument:
 * a missing argument must not swallow the next restriction). */
static bool is_restriction(const char *word)
{
	enum restriction_kind kind;
	const char *name;
	return word != NULL && (lookup_restriction(word, &kind, &name) ||
				postfix_only_index(word) >= 0);
}

/* unsupported_restriction - a Postfix restriction we lack: one error for it and
 * its argument (skipped: *k moves past it); false when it is not one. */
static bool unsupported_restriction(struct loader *ld, size_t i, char **items, size_t *k)
{
	int j = postfix_only_index(items[*k]);
	if (j < 0)
		return false;
	config_error(ld, i, "%s: \"%s\" is a Postfix restriction relayguard does not support "
		  "yet (see README, Known limitations)", config_params[i].name,
		  postfix_only[j].name);
	if (postfix_only[j].arg && items[*k + 1] != NULL && !is_restriction(items[*k + 1]))
		++*k;
	return true;
}

/* client_access_table - check_client_access reads only cidr: tables; another
 * table after it is part of the one error, not a restriction of its own. */
static bool client_access_table(struct loader *ld, size_t i, char **items, size_t *k)
{
	const char *next = items[*k + 1];
	if (next != NULL && strncmp(next, "cidr:", 5) == 0)
		return true;
	if (next != NULL && strchr(next, ':') != NULL && !is_restriction(next)) {
		config_error(ld, i, "%s: check_client_access needs a cidr:/path table after it "
			  "(\"%s\": relayguard reads no other access table yet, see README, Known "
			  "limitations)", config_params[i].name, next);
		++*k;
	} else {
		config_error(ld, i, "%s: check_client_access needs a cidr:/path table after it",
			  config_params[i].name);
	}
	return false;
}

static void convert_restrictions(struct loader *ld, size_t i, struct restriction_list *rl)
{
	size_t n;
	char **items = split_list(ld->expanded[i], &n);
	rl->param = config_params[i].name;
	rl->items = xcalloc(n + 1, sizeof(struct restriction));
	for (size_t k = 0; k < n; k++) {
		struct restriction *r = &rl->items[rl->n];
		if (!lookup_restriction(items[k], &r->kind, &r->name)) {
			if (unsupported_restriction(ld, i, items, &k))
				continue;
			const char *hint = closest_restriction(items[k]);
			config_error(ld, i, "%s: unknown restriction \"%s\"%s%s%s", config_params[i].name,
				  items[k], hint ? " (did you mean \"" : "", hint ? hint : "",
				  hint ? "\"?)" : "");
			continue;
		}
		if (r->kind == R_CHECK_CLIENT_ACCESS) {
			char why[1024];
			if (!client_access_table(ld, i, items, &k))
				continue;
			r->table = map_open(items[++k], why, sizeof(why));
			if (r->table == NULL) {
				config_error(ld, i, "%s: %s", config_params[i].name, why);
				continue;
			}
			if (!check_access_table(ld, i, r->table)) {
				map_free(r->table);
				continue;
			}
		}
		rl->n++;
	}
	free_list(items);
}

/* parse_listen - "127.0.0.1:25", "[::1]:25", "*:25", ":25". */
static bool parse_listen(const char *s, struct listen_addr *la)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;
	struct rg_ip ip;
	if (colon == NULL || !rg_parse_u64(colon + 1, &port) || port == 0 || port > 65535)
		return false;
	size_t n = (size_t)(colon - s);
	bool bracketed = n >= 2 && s[0] == '[' && s[n - 1] == ']';
	if (bracketed) {
		s++;
		n -= 2;
	}
	if (n >= sizeof(la->host) || (n == 0 && bracketed)) /* "[]:25" is a typo */
		return false;
	memcpy(la->host, s, n);
	la->host[n] = '\0';
	if (n == 0)
		rg_strlcpy(la->host, "*", sizeof(la->host));
	else if (strcmp(la->host, "*") != 0 && !ip_parse(la->host, &ip))
		return false;
	la->port = (unsigned)port;
	return true;
}

/* sasl_plaintext_ok - Postfix's security options: without "noplaintext",
 * PLAIN/LOGIN may be sent where there is no TLS. Unknown words are errors. */
static bool sasl_plaintext_ok(struct loader *ld, size_t i)
{
	static const char *const known[] = {"noplaintext", "noanonymous", "noactive",
					    "nodictionary", "mutual_auth"};
	char **items = split_list(ld->expanded[i], NULL);
	bool plaintext = true;
	for (size_t k = 0; items[k]; k++) {
		bool ok = false;
		for (size_t j = 0; j < RG_ARRAY_LEN(known); j++)
			ok |= rg_strcasecmp(items[k], known[j]) == 0;
		if (!ok)
			config_error(ld, i, "%s: \"%s\" is not a SASL security option (noplaintext, "
				  "noanonymous, ...)", config_params[i].name, items[k]);
		if (rg_strcasecmp(items[k], "noplaintext") == 0)
			plaintext = false;
	}
	free_list(items);
	return plaintext;
}

/* field - where row i is stored in cfg. */
static void *field(struct config *cfg, size_t i)
{
	return (char *)cfg + config_params[i].off;
}

/* store_number - v into row i's field, whatever its width (uint64_t,
 * unsigned or an enum, bool); range checks were made before. */
static void store_number(struct config *cfg, size_t i, uint64_t v)
{
	size_t size = config_params[i].size;
	if (size == sizeof(uint64_t)) {
		memcpy(field(cfg, i), &v, size);
	} else if (size == sizeof(unsigned)) {
		unsigned u = (unsigned)v;
		memcpy(field(cfg, i), &u, size);
	} else if (size == sizeof(bool)) {
		bool b = v != 0;
		memcpy(field(cfg, i), &b, size);
	}
}

static void store_pointer(struct config *cfg, size_t i, void *p)
{
	memcpy(field(cfg, i), &p, sizeof(p));
}

/* parse_text - the one-word types: text, host name, directory, IP address. */
static void parse_text(struct loader *ld, size_t i)
{
	const char *v = ld->expanded[i], *name = config_params[i].name;
	struct rg_ip ip;
	switch (config_params[i].type) {
	case PT_HOSTNAME:
		if (!config_hostname_ok(v))
			config_error(ld, i, "%s: \"%s\" is not a valid host or domain name", name, v);
		break;
	case PT_PATH:
		if (v[0] == '\0')
			config_error(ld, i, "%s: a directory is needed", name);
		break;
	case PT_IPV4:
	case PT_IPV6: {
		int family = config_params[i].type == PT_IPV4 ? AF_INET : AF_INET6;
		if (v[0] != '\0' && (!ip_parse(v, &ip) || ip.family != family))
			config_error(ld, i, "%s: \"%s\" is not an %s address", name, v,
				     family == AF_INET ? "IPv4" : "IPv6");
		break;
	}
	default:
		if (strpbrk(v, "\r\n") != NULL)
			config_error(ld, i, "%s: value contains a line break", name);
	}
	char *copy = xstrdup(v);
	if (config_params[i].type == PT_HOSTNAME)
		rg_str_lower(copy);
	store_pointer(ld->cfg, i, copy);
}

static void parse_bool(struct loader *ld, size_t i)
{
	const char *v = ld->expanded[i];
	bool yes = rg_strcasecmp(v, "yes") == 0 || rg_strcasecmp(v, "true") == 0;
	if (!yes && rg_strcasecmp(v, "no") != 0 && rg_strcasecmp(v, "false") != 0)
		config_error(ld, i, "%s: \"%s\" is not yes or no", config_params[i].name, v);
	store_number(ld->cfg, i, yes);
}

/* parse_number - a count, a size or a time, within the row's range. */
static void parse_number(struct loader *ld, size_t i)
{
	const struct param_def *p = &config_params[i];
	const char *v = ld->expanded[i];
	uint64_t n;
	bool ok = p->type == PT_DURATION ? rg_parse_duration(v, &n) : rg_parse_u64(v, &n);
	if (!ok) {
		config_error(ld, i, "%s: \"%s\" is not %s", p->name, v,
			     p->type == PT_DURATION ? "a time (e.g. 300s, 5m, 1h)"
						    : "a whole number");
		return;
	}
	if (n < p->min || n > p->max)
		config_error(ld, i, "%s: %s is out of range (%llu..%llu)", p->name, v,
			     (unsigned long long)p->min, (unsigned long long)p->max);
	else
		store_number(ld->cfg, i, n);
}

/* parse_choice - one word of the row's list (case does not matter). */
static void parse_choice(struct loader *ld, size_t i)
{
	const struct param_choice *c = config_params[i].choices;
	for (size_t k = 0; c[k].name; k++) {
		if (rg_strcasecmp(ld->expanded[i], c[k].name) == 0) {
			store_number(ld->cfg, i, (uint64_t)c[k].value);
			return;
		}
	}
	struct strbuf list;
	strbuf_init(&list);
	for (size_t k = 0; c[k].name; k++)
		strbuf_printf(&list, "%s%s", k ? (c[k + 1].name ? ", " : " or ") : "", c[k].name);
	config_error(ld, i, "%s: \"%s\" is not %s", config_params[i].name, ld->expanded[i],
		     list.data);
	strbuf_free(&list);
	store_number(ld->cfg, i, (uint64_t)c[0].value);
}

static void parse_domains(struct loader *ld, size_t i)
{
	store_pointer(ld->cfg, i,
		      convert_domains(ld, i, config_params[i].type == PT_PARENT_DOMAINS));
}

/* parse_networks - a network list; one that is just $mynetworks (a default)
 * is a copy, so a bad mynetworks entry is reported once, not once per list. */
static void parse_networks(struct loader *ld, size_t i)
{
	struct config *cfg = ld->cfg;
	struct cidr *list;
	size_t n;
	if (i <= PARAM_mynetworks ||
	    strcmp(ld->expanded[i], ld->expanded[PARAM_mynetworks]) != 0) {
		convert_network_list(ld, i, &list, &n);
	} else {
		list = xcalloc(cfg->n_mynetworks + 1, sizeof(struct cidr));
		if (cfg->n_mynetworks > 0)
			memcpy(list, cfg->mynetworks, cfg->n_mynetworks * sizeof(struct cidr));
		n = cfg->n_mynetworks;
	}
	store_pointer(cfg, i, list);
	memcpy((char *)cfg + config_params[i].count_off, &n, sizeof(n));
}

bool config_table_differs(const struct config *a, const struct config *b, size_t i)
{
	if (i >= PARAM_COUNT ||
	    (config_params[i].type != PT_MAPS && config_params[i].type != PT_ALIASES))
		return false;
	struct map **x, **y;
	memcpy(&x, (const char *)a + config_params[i].off, sizeof(x));
	memcpy(&y, (const char *)b + config_params[i].off, sizeof(y));
	size_t k = 0;
	for (; x != NULL && y != NULL && x[k] != NULL && y[k] != NULL; k++)
		if (!map_equal(x[k], y[k]))
			return true;
	return (x != NULL && x[k] != NULL) || (y != NULL && y[k] != NULL);
}

/* pinned_maps - on a reload, a table only a restart changes is the running
 * one, copied: its file is not read again, or new sessions would take mail
 * for a line added since the start that delivery, on the table it read
 * then, bounces. NULL when the table is read as usual. */
static struct map **pinned_maps(const struct loader *ld, size_t i)
{
	const struct config *run = ld->running;
	if (run == NULL || config_params[i].reloads)
		return NULL;
	struct map **from;
	memcpy(&from, (const char *)run + config_params[i].off, sizeof(from));
	size_t n = 0;
	while (from != NULL && from[n] != NULL)
		n++;
	struct map **maps = xcalloc(n + 1, sizeof(struct map *));
	for (size_t k = 0; k < n; k++)
		maps[k] = map_dup(from[k]);
	return maps;
}

static void parse_maps(struct loader *ld, size_t i)
{
	struct map **maps = pinned_maps(ld, i);
	store_pointer(ld->cfg, i, maps ? maps : convert_maps(ld, i));
}

/* parse_aliases - alias_maps: aliases(5) files, not "key value" tables. */
static void parse_aliases(struct loader *ld, size_t i)
{
	struct map **pinned = pinned_maps(ld, i);
	if (pinned != NULL) {
		store_pointer(ld->cfg, i, pinned);
		return;
	}
	size_t n, m = 0;
	char **items = split_list(ld->expanded[i], &n);
	struct map **maps = xcalloc(n + 1, sizeof(struct map *));
	for (size_t k = 0; k < n; k++) {
		char why[1024];
		if ((maps[m] = aliases_open(items[k], why, sizeof(why))) != NULL)
			m++;
		else
			config_error(ld, i, "%s: %s", config_params[i].name, why);
	}
	free_list(items);
	store_pointer(ld->cfg, i, maps);
}

static void parse_restrictions(struct loader *ld, size_t i)
{
	convert_restrictions(ld, i, field(ld->cfg, i));
}

/* parse_listeners - one listener role's addresses, appended to cfg->listen. */
static void parse_listeners(struct loader *ld, size_t i)
{
	size_t n;
	char **items = split_list(ld->expanded[i], &n);
	struct config *cfg = ld->cfg;
	cfg->listen = xrealloc(cfg->listen, (cfg->n_listen + n + 1) * sizeof(struct listen_addr));
	for (size_t k = 0; k < n; k++) {
		struct listen_addr *la = &cfg->listen[cfg->n_listen];
		memset(la, 0, sizeof(*la));
		rg_strlcpy(la->text, items[k], sizeof(la->text));
		la->role = (enum listen_role)config_params[i].role;
		if (parse_listen(items[k], la))
			cfg->n_listen++;
		else
			config_error(ld, i, "%s: \"%s\" is not address:port (e.g. 127.0.0.1:25, "
				     "[::1]:25, *:25)", config_params[i].name, items[k]);
	}
	free_list(items);
}

static void parse_sasl_options(struct loader *ld, size_t i)
{
	store_number(ld->cfg, i, sasl_plaintext_ok(ld, i));
}

/* Freeing a field; it is left NULL, so rows sharing one (listen) free it once. */
static void free_pointer(void *f)
{
	void *p;
	memcpy(&p, f, sizeof(p));
	free(p);
	memset(f, 0, sizeof(p));
}

static void free_domains(void *f)
{
	char **items;
	memcpy(&items, f, sizeof(items));
	free_list(items);
	memset(f, 0, sizeof(items));
}

static void free_maps(void *f)
{
	struct map **maps;
	memcpy(&maps, f, sizeof(maps));
	for (size_t k = 0; maps && maps[k]; k++)
		map_free(maps[k]);
	free(maps);
	memset(f, 0, sizeof(maps));
}

static void free_restrictions(void *f)
{
	struct restriction_list *rl = f;
	for (size_t k = 0; k < rl->n; k++)
		map_free(rl->items[k].table);
	free(rl->items);
	rl->items = NULL;
	rl->n = 0;
}

/* What each type does; size: the field it needs (0: any of 8, 4 or 1 bytes). */
static const struct {
	void (*parse)(struct loader *ld, size_t i);
	void (*release)(void *field);
	size_t size;
} types[PT_COUNT_TYPES] = {
	[PT_STRING] = {parse_text, free_pointer, sizeof(char *)},
	[PT_HOSTNAME] = {parse_text, free_pointer, sizeof(char *)},
	[PT_PATH] = {parse_text, free_pointer, sizeof(char *)},
	[PT_IPV4] = {parse_text, free_pointer, sizeof(char *)},
	[PT_IPV6] = {parse_text, free_pointer, sizeof(char *)},
	[PT_BOOL] = {parse_bool, NULL, sizeof(bool)},
	[PT_COUNT] = {parse_number, NULL, 0},
	[PT_SIZE] = {parse_number, NULL, sizeof(uint64_t)},
	[PT_DURATION] = {parse_number, NULL, sizeof(uint64_t)},
	[PT_CHOICE] = {parse_choice, NULL, 0},
	[PT_DOMAINS] = {parse_domains, free_domains, sizeof(char **)},
	[PT_PARENT_DOMAINS] = {parse_domains, free_domains, sizeof(char **)},
	[PT_NETWORKS] = {parse_networks, free_pointer, sizeof(struct cidr *)},
	[PT_MAPS] = {parse_maps, free_maps, sizeof(struct map **)},
	[PT_ALIASES] = {parse_aliases, free_maps, sizeof(struct map **)},
	[PT_RESTRICTIONS] = {parse_restrictions, free_restrictions,
			     sizeof(struct restriction_list)},
	[PT_LISTEN] = {parse_listeners, free_pointer, sizeof(struct listen_addr *)},
	[PT_SASL_OPTIONS] = {parse_sasl_options, NULL, sizeof(bool)},
};

/* row_problem - why row i cannot be used as it is written, or NULL. */
static const char *row_problem(const struct param_def *p)
{
	size_t want = types[p->type].size;
	if (p->meaning == NULL || p->meaning[0] == '\0')
		return "no meaning";
	if (p->example == NULL || p->postfix == PF_UNSET)
		return "no example, or no SAME/LIKE/OWN";
	if (p->def == NULL && p->def_doc == NULL)
		return "a computed default without COMPUTED(...)";
	if (p->size == 0 || (want != 0 && p->size != want))
		return "its field does not have the size its type stores";
	if (want == 0 && p->size != sizeof(uint64_t) && p->size != sizeof(unsigned) &&
	    p->size != sizeof(bool))
		return "its field is not a number";
	if ((p->type == PT_COUNT || p->type == PT_SIZE || p->type == PT_DURATION) &&
	    (p->min > p->max || (p->size < sizeof(uint64_t) && p->max > UINT32_MAX)))
		return "its RANGE does not fit";
	if (p->type == PT_CHOICE && (p->choices == NULL || p->choices[0].name == NULL))
		return "no CHOICES";
	return NULL;
}

const char *config_table_problem(void)
{
	static char why[256];
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const char *p = row_problem(&config_params[i]);
		if (p != NULL) {
			snprintf(why, sizeof(why), "params.def: %s: %s", config_params[i].name, p);
			return why;
		}
	}
	return NULL;
}

void config_free_fields(struct config *cfg)
{
	for (size_t i = 0; i < PARAM_COUNT; i++)
		if (types[config_params[i].type].release != NULL)
			types[config_params[i].type].release(field(cfg, i));
}

/* check_dns_servers - "ip", "ip:port" or "[v6]:port", as c-ares takes them. */
static void check_dns_servers(struct loader *ld, size_t i)
{
	char **items = split_list(ld->expanded[i], NULL);
	for (size_t k = 0; items[k]; k++) {
		struct listen_addr la;
		struct rg_ip ip;
		if (ip_parse(items[k], &ip))
			continue;
		if (!parse_listen(items[k], &la) || strcmp(la.host, "*") == 0)
			config_error(ld, i, "%s: \"%s\" is not ip or ip:port (e.g. 127.0.0.1:53, "
				  "[::1]:53)", config_params[i].name, items[k]);
	}
	free_list(items);
}

/* check_sasl_path - Dovecot's socket: a path, or inet:IP:PORT (no names: no DNS). */
static void check_sasl_path(struct loader *ld, size_t i)
{
	struct listen_addr la;
	const char *v = ld->expanded[i];
	if (ld->cfg->smtpd_sasl_type != SASL_DOVECOT || strncmp(v, "inet:", 5) != 0)
		return;
	if (!parse_listen(v + 5, &la) || strcmp(la.host, "*") == 0)
		config_error(ld, i, "%s: \"%s\" is not inet:IP:PORT (e.g. inet:127.0.0.1:12345, "
			  "inet:[::1]:12345; host names are not resolved)", config_params[i].name, v);
}

bool config_smtp_tls_level(const char *name, enum smtp_tls_level *out)
{
	const struct param_choice *c = config_params[PARAM_smtp_tls_security_level].choices;
	for (size_t k = 0; c[k].name; k++) {
		if (rg_strcasecmp(name, c[k].name) == 0) {
			*out = (enum smtp_tls_level)c[k].value;
			return true;
		}
	}
	return false;
}

/* check_tls_policy_maps - every value must be a TLS level (first word). */
static void check_tls_policy_maps(struct loader *ld, size_t i)
{
	for (size_t k = 0; ld->cfg->smtp_tls_policy_maps[k]; k++) {
		const struct map *m = ld->cfg->smtp_tls_policy_maps[k];
		for (size_t e = 0; e < m->n; e++) {
			enum smtp_tls_level lvl;
			char word[32];
			rg_strlcpy(word, m->entries[e].value, sizeof(word));
			word[strcspn(word, " \t")] = '\0';
			if (!config_smtp_tls_level(word, &lvl))
				config_error(ld, i, "%s: %s: \"%s\" for %s is not a TLS level (none, may, "
					  "encrypt, verify, secure, dane)", config_params[i].name, m->spec,
					  m->entries[e].value, m->entries[e].key);
		}
	}
}

/* check_routes - every transport_maps value and relayhost parse (route.h). */
static void check_routes(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	char err[512], host[ROUTE_HOST_MAX];
	unsigned port;
	bool mx;
	for (size_t k = 0; cfg->transport_maps[k]; k++) {
		const struct map *m = cfg->transport_maps[k];
		for (size_t e = 0; e < m->n; e++) {
			struct route r;
			if (!route_parse_transport(m->entries[e].value, "example.com", 25, &r, err,
						   sizeof(err)))
				config_error(ld, PARAM_transport_maps, "transport_maps: %s: %s: %s",
					  m->spec, m->entries[e].key, err);
		}
	}
	struct route r;
	if (!route_parse_transport(cfg->default_transport, "example.com", 25, &r, err,
				   sizeof(err)))
		config_error(ld, PARAM_default_transport, "default_transport: %s", err);
	if (cfg->relayhost[0] != '\0' &&
	    !route_parse_nexthop(cfg->relayhost, 25, host, sizeof(host), &port, &mx))
		config_error(ld, PARAM_relayhost, "relayhost: \"%s\" is not a next hop ([host]:port, "
			  "host:port, host or domain)", cfg->relayhost);
}

/* can_deny_destination - a reachable restriction that can refuse a destination
 * (anything after an unconditional permit is never reached). */
static bool can_deny_destination(const struct restriction_list *rl)
{
	for (size_t k = 0; k < rl->n && rl->items[k].kind != R_PERMIT; k++) {
		switch (rl->items[k].kind) {
		case R_REJECT_UNAUTH_DESTINATION:
		case R_DEFER_UNAUTH_DESTINATION:
		case R_REJECT:
		case R_DEFER:
			return true;
		default:
			break;
		}
	}
	return false;
}

/* check_relay_safety - refuse a server that could never deny a relay (as Postfix does). */
static void check_relay_safety(struct loader *ld)
{
	if (can_deny_destination(&ld->cfg->relay) || can_deny_destination(&ld->cfg->recipient))
		return;
	size_t i = PARAM_smtpd_relay_restrictions;
	if (ld->origin[i].file == NULL)
		i = PARAM_smtpd_recipient_restrictions;
	config_error(ld, i, "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions "
		  "can refuse an unauthorised destination, so this server would be an open "
		  "relay; add reject_unauth_destination (default: %s)", config_params[PARAM_smtpd_relay_restrictions].def);
}


/* check_listeners - at least one listener of any role. */
static void check_listeners(struct loader *ld)
{
	if (ld->cfg->n_listen == 0)
		config_error(ld, PARAM_smtpd_listen, "smtpd_listen: at least one address:port is "
			     "needed (in smtpd_listen, submission_listen or submissions_listen)");
}

static void check_dns(struct loader *ld)
{
	check_dns_servers(ld, PARAM_dns_servers);
}

/* check_tls_sasl - the inbound TLS and AUTH parameters that go together. */
static void check_tls_sasl(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	if (cfg->smtpd_tls_cert_file[0] == '\0' && cfg->smtpd_tls_key_file[0] != '\0')
		config_error(ld, PARAM_smtpd_tls_key_file, "smtpd_tls_key_file is set but "
			     "smtpd_tls_cert_file is not");
	if (cfg->smtpd_sasl_auth_enable && cfg->smtpd_sasl_path[0] == '\0')
		config_error(ld, PARAM_smtpd_sasl_auth_enable, "smtpd_sasl_auth_enable = yes needs "
			     "smtpd_sasl_path (a passwd-file, or Dovecot's auth socket with "
			     "smtpd_sasl_type = dovecot)");
	check_sasl_path(ld, PARAM_smtpd_sasl_path);
}

/* check_outbound - outbound parameters that go together. */
static void check_outbound(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	check_tls_policy_maps(ld, PARAM_smtp_tls_policy_maps);
	if (cfg->minimal_backoff_time > cfg->maximal_backoff_time)
		config_error(ld, PARAM_minimal_backoff_time, "minimal_backoff_time is larger than "
			     "maximal_backoff_time");
	check_routes(ld);
	if (cfg->smtp_sasl_auth_enable && cfg->smtp_sasl_password_maps[0] == NULL)
		config_error(ld, PARAM_smtp_sasl_auth_enable, "smtp_sasl_auth_enable = yes needs "
			     "smtp_sasl_password_maps (next hop -> user:password)");
}

static void check_shared_state(struct loader *ld)
{
	const char *url = ld->cfg->shared_state;
	if (url[0] != '\0' && !shared_url_valid(url))
		config_error(ld, PARAM_shared_state, "shared_state: not redis://[[USER]:PASSWORD@]"
			     "IP:PORT/DB or unix:/PATH (host names are not looked up)");
}

/* check_metrics - metrics_listen: empty (no metrics served) or one address:port. */
static void check_metrics(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	const char *v = cfg->metrics_listen_text;
	if (v[0] == '\0')
		return;
	rg_strlcpy(cfg->metrics_listen.text, v, sizeof(cfg->metrics_listen.text));
	if (strlen(v) < sizeof(cfg->metrics_listen.text) && parse_listen(v, &cfg->metrics_listen))
		cfg->metrics_enabled = true;
	else
		config_error(ld, PARAM_metrics_listen, "metrics_listen: \"%s\" is not address:port "
			     "(e.g. 127.0.0.1:9525, [::1]:9525)", v);
}

/* check_lmtp - each mailbox transport must parse (route.h). */
static void check_lmtp(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	char err[512];
	struct route r;
	if (!route_for_mailbox(cfg->mailbox_transport, "", "example.com", 25, &r, err, sizeof(err)))
		config_error(ld, PARAM_mailbox_transport, "mailbox_transport: %s", err);
	if (!route_for_mailbox(cfg->virtual_transport, "", "example.com", 25, &r, err, sizeof(err)))
		config_error(ld, PARAM_virtual_transport, "virtual_transport: %s", err);
}

/* ---- aliases and hosted domains (issue 12) ---- */

/* check_alias_values - every address of every alias is one (a typo stops the
 * start, not the mail of the user it belongs to). */
static void check_alias_values(struct loader *ld, size_t i, struct map **maps, bool alias)
{
	for (size_t k = 0; maps[k]; k++) {
		for (size_t e = 0; e < maps[k]->n; e++) {
			char why[512];
			const struct map_entry *me = &maps[k]->entries[e];
			if (!expand_value_ok(me->key, me->value, alias, why, sizeof(why)))
				config_error(ld, i, "%s: %s: %s: %s", config_params[i].name,
					     maps[k]->spec, me->key, why);
		}
	}
}

/* check_mailbox_values - every virtual_mailbox_maps value is "dir/user/". */
static void check_mailbox_values(struct loader *ld, struct map **maps)
{
	for (size_t k = 0; maps[k]; k++) {
		for (size_t e = 0; e < maps[k]->n; e++) {
			char why[512];
			if (!expand_mailbox_value_ok(maps[k]->entries[e].value, why, sizeof(why)))
				config_error(ld, PARAM_virtual_mailbox_maps,
					     "virtual_mailbox_maps: %s: %s: %s", maps[k]->spec,
					     maps[k]->entries[e].key, why);
		}
	}
}

/* check_domain_overlap - a domain is one kind of destination only (Postfix:
 * "do not list domain in BOTH mydestination and virtual_*_domains"). */
static void check_domain_overlap(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	const char *const *va = (const char *const *)cfg->virtual_alias_domains;
	const char *const *vm = (const char *const *)cfg->virtual_mailbox_domains;
	for (size_t k = 0; vm[k]; k++)
		if (address_domain_listed(vm[k], va))
			config_error(ld, PARAM_virtual_mailbox_domains, "%s is listed in both "
				     "virtual_alias_domains and virtual_mailbox_domains", vm[k]);
	const char *const *lists[] = {va, vm};
	for (size_t l = 0; l < 2; l++)
		for (size_t k = 0; lists[l][k]; k++)
			if (address_domain_listed(lists[l][k],
						  (const char *const *)cfg->mydestination) ||
			    address_domain_listed(lists[l][k],
						  (const char *const *)cfg->relay_domains))
				config_error(ld, l ? PARAM_virtual_mailbox_domains
						   : PARAM_virtual_alias_domains,
					     "%s is also in mydestination or relay_domains; list each "
					     "domain in one of them only", lists[l][k]);
}

static void check_hosted(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	/* handed to LMTP (Dovecot keeps the mailboxes) the values are not used,
	 * only the keys, as in Postfix ("OK" will do); transport_maps could still
	 * route a hosted domain to our Maildirs, so with it they are checked */
	if (cfg->virtual_transport[0] == '\0' || cfg->transport_maps[0] != NULL)
		check_mailbox_values(ld, cfg->virtual_mailbox_maps);
	check_alias_values(ld, PARAM_alias_maps, cfg->alias_maps, true);
	check_alias_values(ld, PARAM_virtual_alias_maps, cfg->virtual_alias_maps, false);
	if (strpbrk(cfg->recipient_delimiter, "@\"<>()[],;: \t") != NULL)
		config_error(ld, PARAM_recipient_delimiter, "recipient_delimiter: \"%s\" may not "
			     "contain address syntax characters", cfg->recipient_delimiter);
	check_domain_overlap(ld);
}

/* default_dane - Postfix: with DNSSEC support, DANE is the default TLS level. */
static void default_dane(struct loader *ld)
{
	if (ld->cfg->smtp_dns_support_dnssec &&
	    ld->origin[PARAM_smtp_tls_security_level].file == NULL)
		ld->cfg->smtp_tls_security_level = SMTP_TLS_DANE;
}

/* Checks that involve several parameters (or more than a type can say), in order. */
static void (*const validations[])(struct loader *ld) = {
	check_listeners, check_dns, check_tls_sasl, check_outbound, check_shared_state,
	check_metrics, check_lmtp, check_hosted, default_dane, check_relay_safety,
};

void config_convert(struct loader *ld)
{
	for (size_t i = 0; i < PARAM_COUNT; i++)
		types[config_params[i].type].parse(ld, i);
	for (size_t k = 0; k < RG_ARRAY_LEN(validations); k++)
		validations[k](ld);
}
