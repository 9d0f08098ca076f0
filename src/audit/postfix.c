/*
 * postfix.c - a Postfix main.cf + master.cf as an audit model (see audit.h).
 *
 * DESCRIPTION
 *	Reads DIR/main.cf and DIR/master.cf (the only file I/O of the audit),
 *	expands $name, ${name}, $(name), ${name?value} and ${name:value} (bounded
 *	at 64 KiB, loops found: such a parameter is undecided), expands
 *	restriction classes where a list names them, applies each smtpd
 *	service's -o overrides, and Postfix's defaults for the parameters that decide relaying
 *	(those that changed with compatibility_level: smtpd_relay_restrictions,
 *	relay_domains, mynetworks_style: host, subnet or class). Tables are read from their source files
 *	(hash:/x reads /x as postmap does; inline:, cidr:, texthash: as they are);
 *	a table type that cannot be read (pcre:, ldap:, mysql:, ...) makes the
 *	restriction that names it undecided, never safe.
 *	Postfix matches subdomains of relay_domains (parent_domain_matches_subdomains),
 *	so each entry is also listed as ".domain".
 */
#include "audit/audit.h"
#include "config/maps.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPANSION_MAX 65536 /* as config.c: a $name bomb stops here */
#define EXPAND_DEPTH_MAX 32
#define SERVICES_MAX 1024 /* beyond: not audited, and said (each costs a battery run) */

struct kv {
	char *name, *value;
};

/* name = value pairs, grown geometrically (no entry is ever dropped). */
struct kvs {
	struct kv *kv;
	size_t n, cap;
};

struct pf_service {
	char *name, *type;
	struct kvs over;
};

struct reader {
	struct audit_model *m;
	const char *dir;
	struct kvs main;
	const struct pf_service *svc; /* overrides in effect, or NULL */
	double compat;
	struct audit_finding *findings;
	size_t n_findings;
};

/* ---- main.cf and master.cf syntax ---- */

static void free_lines_n(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

/* read_logical_lines - a file's lines, continuation lines (leading blank) joined. */
static char **read_logical_lines(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char **lines = NULL, *line = NULL;
	size_t cap = 0;
	*n = 0;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		char *t = rg_str_trim(line);
		if (*t == '\0' || *t == '#')
			continue;
		if (isspace((unsigned char)line[0]) && *n > 0) {
			char *joined = xasprintf("%s %s", lines[*n - 1], t);
			free(lines[*n - 1]);
			lines[*n - 1] = joined;
			continue;
		}
		lines = xrealloc(lines, (*n + 2) * sizeof(char *));
		lines[(*n)++] = xstrdup(t);
	}
	free(line);
	int failed = ferror(f) ? errno : 0; /* a directory: EISDIR */
	fclose(f);
	if (failed) {
		free_lines_n(lines, *n);
		errno = failed;
		return NULL;
	}
	if (lines == NULL)
		lines = xcalloc(1, sizeof(char *));
	lines[*n] = NULL;
	return lines;
}

/* free_lines - what read_logical_lines returned. */
static void free_lines(char **lines, size_t n)
{
	free_lines_n(lines, n);
}

/* set_kv - name = value, the later one winning (as in Postfix). */
static void set_kv(struct kvs *l, const char *name, const char *value)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->kv[i].name, name) == 0) {
			free(l->kv[i].value);
			l->kv[i].value = xstrdup(value);
			return;
		}
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->kv = xrealloc(l->kv, l->cap * sizeof(struct kv));
	}
	l->kv[l->n++] = (struct kv){xstrdup(name), xstrdup(value)};
}

/* free_kv - the parameters of main.cf or of one service. */
static void free_kv(struct kvs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->kv[i].name);
		free(l->kv[i].value);
	}
	free(l->kv);
	*l = (struct kvs){0};
}

/* parse_assignment - "name = value" into its parts (in place). */
static bool parse_assignment(char *line, char **name, char **value)
{
	char *eq = strchr(line, '=');
	if (eq == NULL)
		return false;
	*eq = '\0';
	*name = rg_str_trim(line);
	*value = rg_str_trim(eq + 1);
	return **name != '\0';
}

/* read_main - DIR/main.cf into rd->main; false when it cannot be read (any
 * error: only master.cf may be missing). */
static bool read_main(struct reader *rd, char *err, size_t errlen)
{
	char *path = xasprintf("%s/main.cf", rd->dir);
	size_t n;
	char **lines = read_logical_lines(path, &n);
	if (lines == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		free(path);
		return false;
	}
	free(path);
	for (size_t i = 0; i < n; i++) {
		char *name, *value;
		if (parse_assignment(lines[i], &name, &value))
			set_kv(&rd->main, name, value);
	}
	free_lines(lines, n);
	return true;
}

/* ---- parameters: overrides, defaults, expansion ---- */

struct pf_default {
	const char *name;
	const char *value;     /* compatibility_level >= 2 (or always) */
	const char *old_value; /* compatibility_level < 2, when it differs */
};

static const struct pf_default defaults[] = {
	{"myorigin", "$myhostname", NULL},
	{"mydestination", "$myhostname, localhost.$mydomain, localhost", NULL},
	{"relay_domains", "", "$mydestination"},
	{"mynetworks_style", "host", "subnet"},
	{"smtpd_relay_restrictions",
	 "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination", NULL},
	{"smtpd_recipient_restrictions", "", NULL},
	{"smtpd_client_restrictions", "", NULL},
	{"smtpd_helo_restrictions", "", NULL},
	{"smtpd_sender_restrictions", "", NULL},
	{"virtual_alias_maps", "$virtual_maps", NULL},
	{"virtual_alias_domains", "$virtual_alias_maps", NULL},
	{"virtual_mailbox_domains", "$virtual_mailbox_maps", NULL},
	{"local_recipient_maps", "proxy:unix:passwd.byname $alias_maps", NULL},
	{"alias_maps", "hash:/etc/aliases", NULL},
	{"smtpd_sasl_auth_enable", "no", NULL},
	{"allow_untrusted_routing", "no", NULL},
	{"inet_interfaces", "all", NULL},
};

/* raw_kv - one parameter of a list, or NULL. */
static const char *raw_kv(const struct kvs *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->kv[i].name, name) == 0)
			return l->kv[i].value;
	return NULL;
}

/* raw - the value as written: a service override, main.cf, or Postfix's default. */
static const char *raw(const struct reader *rd, const char *name)
{
	const char *v = rd->svc ? raw_kv(&rd->svc->over, name) : NULL;
	if (v == NULL)
		v = raw_kv(&rd->main, name);
	if (v != NULL)
		return v;
	if (strcmp(name, "config_directory") == 0)
		return rd->dir;
	if (strcmp(name, "smtpd_relay_restrictions") == 0 && rd->compat < 1)
		return ""; /* Postfix < 2.10 behaviour: the recipient list decides */
	for (size_t i = 0; i < RG_ARRAY_LEN(defaults); i++)
		if (strcmp(defaults[i].name, name) == 0)
			return rd->compat < 2 && defaults[i].old_value ? defaults[i].old_value
								       : defaults[i].value;
	return NULL;
}

/* One expansion: where it writes, the names being expanded (a cycle), and
 * why it failed (a cycle, too deep, too long, syntax the audit does not
 * evaluate). */
struct expansion {
	const struct reader *rd;
	const char *stack[EXPAND_DEPTH_MAX];
	int depth;
	const char *failed; /* static reason, or NULL */
};

static void expand_into(struct expansion *x, const char *s, size_t len, struct strbuf *out);

/* matching - the closing bracket of the one at s (nested ones counted), or NULL. */
static const char *matching(const char *s, const char *end)
{
	char open = *s, close = open == '{' ? '}' : ')';
	int depth = 0;
	for (; s < end; s++) {
		depth += *s == open ? 1 : *s == close ? -1 : 0;
		if (depth == 0)
			return s;
	}
	return NULL;
}

/* lookup - a parameter's value as written (NULL: not set). */
static const char *lookup(const struct reader *rd, const char *name)
{
	const char *v = raw(rd, name);
	if (v == NULL && strcmp(name, "myhostname") == 0)
		v = rd->m->cfg.myhostname;
	if (v == NULL && strcmp(name, "mydomain") == 0)
		v = rd->m->cfg.mydomain;
	return v;
}

/* expand_name - the value of NAME, expanded; cycles and depth stop it. */
static void expand_name(struct expansion *x, const char *name, struct strbuf *out)
{
	const char *v = lookup(x->rd, name);
	if (v == NULL)
		return; /* an unset parameter is empty, as in Postfix */
	for (int i = 0; i < x->depth; i++)
		if (strcmp(x->stack[i], name) == 0) {
			x->failed = "a $name reference loop";
			return;
		}
	if (x->depth == EXPAND_DEPTH_MAX) {
		x->failed = "$name references nested too deep";
		return;
	}
	x->stack[x->depth++] = name;
	expand_into(x, v, strlen(v), out);
	x->depth--;
}

/* expand_cond - ${name?value} (value when $name is not empty), ${name:value}
 * (value when it is), and Postfix 3's ${name?{value}:{other}}. */
static void expand_cond(struct expansion *x, const char *name, char op, const char *v,
			const char *end, struct strbuf *out)
{
	struct strbuf nv;
	strbuf_init(&nv);
	expand_name(x, name, &nv);
	bool empty = nv.len == 0;
	strbuf_free(&nv);
	const char *yes = v, *yes_end = end, *no = NULL, *no_end = NULL;
	if (*v == '{') {
		const char *c = matching(v, end);
		if (c == NULL) {
			x->failed = "an unbalanced ${...} in a parameter";
			return;
		}
		yes = v + 1, yes_end = c;
		const char *rest = c + 1;
		while (rest < end && (*rest == ' ' || *rest == '\t'))
			rest++;
		if (rest < end && *rest == ':' && rest + 1 < end && rest[1] == '{') {
			const char *c2 = matching(rest + 1, end);
			if (c2 == NULL) {
				x->failed = "an unbalanced ${...} in a parameter";
				return;
			}
			no = rest + 2, no_end = c2;
		}
	}
	bool take = op == '?' ? !empty : empty;
	if (take)
		expand_into(x, yes, (size_t)(yes_end - yes), out);
	else if (no != NULL)
		expand_into(x, no, (size_t)(no_end - no), out);
}

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

/* expand_ref - one $name / ${name...} / $(name...) at s; returns what it used. */
static size_t expand_ref(struct expansion *x, const char *s, const char *end, struct strbuf *out)
{
	char name[128];
	if (s[1] != '{' && s[1] != '(') {
		size_t n = strspn(s + 1, NAME_CHARS);
		n = s + 1 + n > end ? (size_t)(end - s - 1) : n;
		if (n == 0) {
			strbuf_append(out, s, 1); /* a lone $ stays */
			return 1;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(n < 127 ? n : 127), s + 1);
		expand_name(x, name, out);
		return n + 1;
	}
	const char *close = matching(s + 1, end);
	if (close == NULL) {
		x->failed = "an unbalanced ${...} in a parameter";
		return (size_t)(end - s);
	}
	const char *in = s + 2;
	size_t n = strspn(in, NAME_CHARS);
	if (in + n > close)
		n = (size_t)(close - in);
	snprintf(name, sizeof(name), "%.*s", (int)(n < 127 ? n : 127), in);
	if (n == 0)
		x->failed = "a ${...} expression (comparison) the audit does not evaluate";
	else if (in + n == close)
		expand_name(x, name, out);
	else if (in[n] == '?' || in[n] == ':')
		expand_cond(x, name, in[n], in + n + 1, close, out);
	else
		x->failed = "a ${...} expression the audit does not evaluate";
	return (size_t)(close - s) + 1;
}

static void expand_into(struct expansion *x, const char *s, size_t len, struct strbuf *out)
{
	const char *end = s + len;
	while (s < end && x->failed == NULL) {
		if (out->len > EXPANSION_MAX) {
			x->failed = "a $name expansion longer than 64 KiB";
			return;
		}
		if (*s == '$' && s + 1 < end) {
			s += expand_ref(x, s, end, out);
		} else {
			strbuf_append(out, s, 1);
			s++;
		}
	}
}

/* param - the expanded value (owned by the model); one that cannot be expanded
 * is empty, and said (undecided). */
static const char *param(struct reader *rd, const char *name)
{
	const char *v = raw(rd, name);
	struct strbuf sb;
	strbuf_init(&sb);
	struct expansion x = {.rd = rd, .stack = {name}, .depth = 1};
	expand_into(&x, v ? v : "", v ? strlen(v) : 0, &sb);
	if (x.failed != NULL) {
		audit_add_finding(&rd->findings, &rd->n_findings, "unreadable", SEV_UNDECIDED,
				  NULL, "write the parameter out", "%s%s%s: %s: not audited", name,
				  rd->svc ? " in master.cf " : "", rd->svc ? rd->svc->name : "",
				  x.failed);
		strbuf_free(&sb);
		return audit_strdup(rd->m, "");
	}
	return audit_keep(rd->m, sb.data ? strbuf_steal(&sb) : xstrdup(""));
}

/* param_yes - a boolean parameter. */
static bool param_yes(struct reader *rd, const char *name)
{
	return rg_strcasecmp(param(rd, name), "yes") == 0;
}

/* split_by - words separated by SEPS; { } groups. */
static char **split_by(struct audit_model *m, const char *s, const char *seps, size_t *count)
{
	char **out = audit_keep(m, xcalloc(strlen(s) / 2 + 2, sizeof(char *)));
	size_t n = 0;
	while (*s) {
		s += strspn(s, seps);
		if (*s == '\0')
			break;
		const char *start = s;
		int depth = 0;
		while (*s && (depth > 0 || !strchr(seps, *s))) {
			depth += *s == '{' ? 1 : *s == '}' ? -1 : 0;
			s++;
		}
		out[n++] = audit_keep(m, xstrndup(start, (size_t)(s - start)));
	}
	if (count)
		*count = n;
	return out;
}

/* split - Postfix list words: commas and blanks separate. */
static char **split(struct audit_model *m, const char *s, size_t *count)
{
	return split_by(m, s, ", \t", count);
}

/* ---- tables ---- */

/* open_table - a table we can read; NULL with why when we cannot. */
static const struct map *open_table(struct reader *rd, const char *spec, const char **why)
{
	const char *s = spec;
	if (strncmp(s, "proxy:", 6) == 0)
		s += 6;
	char *sp = NULL;
	if (s[0] == '/' || strncmp(s, "texthash:", 9) == 0 || strncmp(s, "inline:", 7) == 0 ||
	    strncmp(s, "cidr:", 5) == 0)
		sp = xstrdup(s);
	else
		for (const char *t = "hash:\0btree:\0lmdb:\0dbm:\0cdb:\0"; *t; t += strlen(t) + 1)
			if (strncmp(s, t, strlen(t)) == 0)
				sp = xasprintf("texthash:%s", s + strlen(t)); /* postmap's source */
	if (sp == NULL) {
		*why = audit_keep(rd->m, xasprintf("%s: this table type is not read by the audit",
						    spec));
		return NULL;
	}
	char err[512];
	struct map *map = map_open(sp, err, sizeof(err));
	free(sp);
	if (map == NULL) {
		*why = audit_keep(rd->m, xasprintf("%s: unreadable (%s)", spec, err));
		return NULL;
	}
	return audit_keep_map(rd->m, map);
}

/* table_permits - does any entry say OK/PERMIT (or something we do not understand)? */
static bool table_permits(const struct map *t)
{
	for (size_t k = 0; k < t->n; k++) {
		struct access_result ar;
		if (!audit_access_parse(t->entries[k].value, &ar) || ar.action == ACCESS_OK)
			return true;
	}
	return false;
}

/* table_unknown - the first value that is no action we evaluate (a restriction
 * class, FILTER, HOLD...), or NULL. */
static const char *table_unknown(const struct map *t)
{
	for (size_t k = 0; k < t->n; k++) {
		struct access_result ar;
		if (!audit_access_parse(t->entries[k].value, &ar))
			return t->entries[k].value;
	}
	return NULL;
}

/* ---- restriction lists ---- */

struct native_word {
	const char *word;
	enum restriction_kind kind;
	const char *name;
};

static const struct native_word natives[] = {
	{"permit_mynetworks", R_PERMIT_MYNETWORKS, "permit_mynetworks"},
	{"permit_sasl_authenticated", R_PERMIT_SASL_AUTHENTICATED, "permit_sasl_authenticated"},
	{"reject_unauth_destination", R_REJECT_UNAUTH_DESTINATION, "reject_unauth_destination"},
	{"defer_unauth_destination", R_DEFER_UNAUTH_DESTINATION, "defer_unauth_destination"},
	{"permit_auth_destination", R_PERMIT_AUTH_DESTINATION, "permit_auth_destination"},
	{"reject_unlisted_recipient", R_REJECT_UNLISTED_RECIPIENT, "reject_unlisted_recipient"},
	{"check_recipient_maps", R_REJECT_UNLISTED_RECIPIENT, "reject_unlisted_recipient"},
	{"reject_non_fqdn_sender", R_REJECT_NON_FQDN_SENDER, "reject_non_fqdn_sender"},
	{"reject_non_fqdn_recipient", R_REJECT_NON_FQDN_RECIPIENT, "reject_non_fqdn_recipient"},
	{"reject_non_fqdn_helo_hostname", R_REJECT_NON_FQDN_HELO_HOSTNAME,
	 "reject_non_fqdn_helo_hostname"},
	{"reject_non_fqdn_hostname", R_REJECT_NON_FQDN_HELO_HOSTNAME, "reject_non_fqdn_helo_hostname"},
	{"reject_invalid_helo_hostname", R_REJECT_INVALID_HELO_HOSTNAME,
	 "reject_invalid_helo_hostname"},
	{"reject_invalid_hostname", R_REJECT_INVALID_HELO_HOSTNAME, "reject_invalid_helo_hostname"},
	{"reject_sender_login_mismatch", R_REJECT_SENDER_LOGIN_MISMATCH,
	 "reject_sender_login_mismatch"},
	{"reject_authenticated_sender_login_mismatch", R_REJECT_AUTH_SENDER_LOGIN_MISMATCH,
	 "reject_authenticated_sender_login_mismatch"},
	{"reject_unauthenticated_sender_login_mismatch", R_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH,
	 "reject_unauthenticated_sender_login_mismatch"},
	{"permit", R_PERMIT, "permit"},
	{"reject", R_REJECT, "reject"},
	{"defer", R_DEFER, "defer"},
};

/* Restrictions that take one argument, and what they are to the audit. */
struct arg_word {
	const char *word;
	enum audit_item_kind kind; /* AI_ACCESS: read the table; AI_PASS/AI_UNDECIDED */
	enum audit_subject subject;
};

static const struct arg_word with_arg[] = {
	{"check_client_access", AI_ACCESS, AS_CLIENT},
	{"check_helo_access", AI_ACCESS, AS_HELO},
	{"check_sender_access", AI_ACCESS, AS_SENDER},
	{"check_recipient_access", AI_ACCESS, AS_RECIPIENT},
	{"check_policy_service", AI_UNDECIDED, AS_CLIENT},
	{"reject_rbl_client", AI_PASS, AS_CLIENT},
	{"reject_rhsbl_client", AI_PASS, AS_CLIENT},
	{"reject_rhsbl_reverse_client", AI_PASS, AS_CLIENT},
	{"reject_rhsbl_sender", AI_PASS, AS_SENDER},
	{"reject_rhsbl_helo", AI_PASS, AS_HELO},
	{"reject_rhsbl_recipient", AI_PASS, AS_RECIPIENT},
	{"permit_dnswl_client", AI_UNDECIDED, AS_CLIENT},
	{"permit_rhswl_client", AI_UNDECIDED, AS_CLIENT},
	{"sleep", AI_PASS, AS_CLIENT},
};

/* Other table checks (by MX, NS, A record, certificate, SASL name): pass
 * when their table cannot permit, undecided otherwise. */
static bool is_other_table_check(const char *w)
{
	return strncmp(w, "check_", 6) == 0 && strstr(w, "_access") != NULL;
}

/* Restrictions without argument that can only refuse, or only permit clients
 * a stranger is not (a listed certificate, our own interfaces). */
static bool is_pass_word(const char *w)
{
	return strncmp(w, "reject_", 7) == 0 || strcmp(w, "check_sasl_access") == 0 || strncmp(w, "warn_if_reject", 14) == 0 ||
	       strcmp(w, "defer_if_permit") == 0 || strcmp(w, "defer_if_reject") == 0 ||
	       strcmp(w, "permit_tls_clientcerts") == 0 || strcmp(w, "permit_inet_interfaces") == 0 ||
	       strcmp(w, "dunno") == 0;
}

/* add_item - append, growing geometrically. */
static void add_item(struct audit_list *l, size_t *cap, struct audit_item it)
{
	if (l->n + 1 >= *cap) {
		*cap = *cap ? *cap * 2 : 16;
		l->items = xrealloc(l->items, *cap * sizeof(struct audit_item));
	}
	l->items[l->n++] = it;
}

#define CLASS_DEPTH_MAX 8

/* is_class - is WORD one of smtpd_restriction_classes (with a definition)? */
static bool is_class(struct reader *rd, const char *word)
{
	size_t n;
	char **w = split(rd->m, param(rd, "smtpd_restriction_classes"), &n);
	for (size_t k = 0; k < n; k++)
		if (strcmp(w[k], word) == 0)
			return raw(rd, word) != NULL;
	return false;
}

/* table_item - check_*_access TABLE. */
static struct audit_item table_item(struct reader *rd, const struct arg_word *aw,
				    const char *text, const char *spec)
{
	const char *why = NULL;
	const struct map *t = spec ? open_table(rd, spec, &why) : NULL;
	if (spec == NULL)
		why = "a table check without its table";
	if (t == NULL)
		return (struct audit_item){.kind = AI_UNDECIDED, .text = text, .why = why};
	if (aw == NULL) /* check_*_mx_access and friends: we cannot look them up */
		return table_permits(t) ? (struct audit_item){.kind = AI_UNDECIDED, .text = text,
			.why = audit_keep(rd->m, xasprintf("%s looks up DNS records; its table "
							   "can permit", text))}
					: (struct audit_item){.kind = AI_PASS, .text = text};
	const char *unknown = table_unknown(t);
	return (struct audit_item){.kind = AI_ACCESS, .subject = aw->subject, .table = t,
		.text = text, .why = unknown == NULL ? NULL : audit_keep(rd->m, xasprintf(
			"%s: the action \"%s\" (a restriction class?) is not evaluated by the "
			"audit", text, unknown))};
}

/* word_item - one restriction word (and its argument, *k advanced past it). */
static struct audit_item word_item(struct reader *rd, char **w, size_t n, size_t *k)
{
	const char *word = w[*k];
	for (size_t i = 0; i < RG_ARRAY_LEN(natives); i++)
		if (rg_strcasecmp(word, natives[i].word) == 0)
			return (struct audit_item){.kind = AI_NATIVE, .text = natives[i].name,
				.native = {natives[i].kind, natives[i].name, NULL}};
	const struct arg_word *aw = NULL;
	for (size_t i = 0; i < RG_ARRAY_LEN(with_arg); i++)
		if (rg_strcasecmp(word, with_arg[i].word) == 0)
			aw = &with_arg[i];
	if (rg_strcasecmp(word, "check_sasl_access") == 0 && *k + 1 < n) {
		/* keyed by the login: strangers never match, users may relay anyway */
		++*k;
		return (struct audit_item){.kind = AI_PASS, .text = word};
	}
	bool other_table = aw == NULL && is_other_table_check(word);
	const char *arg = (aw || other_table) && *k + 1 < n ? w[++*k] : NULL;
	const char *text = arg ? audit_keep(rd->m, xasprintf("%s %s", word, arg)) : word;
	if (other_table || (aw && aw->kind == AI_ACCESS))
		return table_item(rd, other_table ? NULL : aw, text, arg);
	if (aw && aw->kind == AI_PASS)
		return (struct audit_item){.kind = AI_PASS, .text = text};
	if (aw)
		return (struct audit_item){.kind = AI_UNDECIDED, .text = text,
			.why = audit_keep(rd->m, xasprintf("%s: its answer is not known offline", text))};
	if (is_pass_word(word))
		return (struct audit_item){.kind = AI_PASS, .text = word};
	return (struct audit_item){.kind = AI_UNDECIDED, .text = word,
		.why = audit_keep(rd->m, xasprintf("%s: a restriction (or restriction class) the "
						   "audit does not evaluate", word))};
}

static struct audit_item word_item(struct reader *rd, char **w, size_t n, size_t *k);

/* read_words - the restrictions of VALUE into l; a restriction class is
 * evaluated where it is named, so its restrictions stand in its place. */
static void read_words(struct reader *rd, const char *value, struct audit_list *l, size_t *cap,
		       int depth)
{
	size_t n;
	char **w = split(rd->m, value, &n);
	for (size_t k = 0; k < n; k++) {
		if (rg_strcasecmp(w[k], "warn_if_reject") == 0 && k + 1 < n) {
			/* the next restriction only logs: it can never refuse */
			add_item(l, cap, (struct audit_item){.kind = AI_PASS,
				.text = audit_keep(rd->m, xasprintf("warn_if_reject %s", w[++k]))});
			continue;
		}
		if (is_class(rd, w[k])) {
			if (depth < CLASS_DEPTH_MAX)
				read_words(rd, param(rd, w[k]), l, cap, depth + 1);
			else
				add_item(l, cap, (struct audit_item){.kind = AI_UNDECIDED, .text = w[k],
					.why = "restriction classes nested too deep (a loop?)"});
			continue;
		}
		add_item(l, cap, word_item(rd, w, n, &k));
	}
}

/* read_list - one restriction list of the service in effect. */
static struct audit_list read_list(struct reader *rd, const char *name)
{
	struct audit_list l = {name, NULL, 0};
	size_t cap = 0;
	read_words(rd, param(rd, name), &l, &cap, 0);
	if (l.items == NULL)
		l.items = xcalloc(1, sizeof(struct audit_item));
	audit_keep(rd->m, l.items);
	return l;
}

/* deny_in_words - Postfix's smtpd will not run (fatal: "specify at least one
 * working instance of ...") when neither list holds one of these before a bare
 * permit: clients get no SMTP service at all. 1: one comes first, 0: a bare
 * permit does, -1: neither is there. */
static int deny_in_words(struct reader *rd, const char *value, int depth)
{
	static const char *deny[] = {"reject_unauth_destination", "defer_unauth_destination",
				     "reject", "defer", "defer_if_permit", "check_relay_domains"};
	size_t n;
	char **w = split(rd->m, value, &n);
	for (size_t k = 0; k < n; k++) {
		if (strcmp(w[k], "warn_if_reject") == 0) {
			k++;
			continue;
		}
		if (strcmp(w[k], "permit") == 0)
			return 0; /* Postfix's has_required() stops at a bare permit */
		if (depth < CLASS_DEPTH_MAX && is_class(rd, w[k])) {
			int r = deny_in_words(rd, param(rd, w[k]), depth + 1);
			if (r >= 0)
				return r; /* a permit or a refusal inside the class decides */
			continue;
		}
		for (size_t i = 0; i < RG_ARRAY_LEN(deny); i++)
			if (strcmp(w[k], deny[i]) == 0)
				return 1;
	}
	return -1;
}

/* can_deny_words - (see above), restriction classes looked into. */
static bool can_deny_words(struct reader *rd, const char *name)
{
	return deny_in_words(rd, param(rd, name), 0) > 0;
}

/* ---- domains, networks, recipients ---- */

static void push(struct audit_model *m, char ***list, size_t *n, const char *s)
{
	if ((*n & (*n - 1)) == 0) /* doubling: 2n+2 after each power of two */
		*list = xrealloc(*list, (2 * *n + 2) * sizeof(char *));
	(*list)[(*n)++] = audit_keep(m, xstrdup(s));
	(*list)[*n] = NULL;
	rg_str_lower((*list)[*n - 1]);
}

/* domain_word - one domain (and, where Postfix matches subdomains, ".domain"). */
static void domain_word(struct reader *rd, const char *d, char ***list, size_t *n,
			bool with_parents)
{
	push(rd->m, list, n, d);
	if (with_parents && d[0] != '.') {
		char *dot = xasprintf(".%s", d);
		push(rd->m, list, n, dot);
		free(dot);
	}
}

/* domain_words - a domain list: names, /file includes and tables (their keys). */
static void domain_words(struct reader *rd, const char *name, char ***list, size_t *n,
			 bool with_parents)
{
	size_t nw;
	char **w = split(rd->m, param(rd, name), &nw);
	for (size_t k = 0; k < nw; k++) {
		const char *why = NULL;
		if (strchr(w[k], ':') != NULL || w[k][0] == '/') {
			const struct map *t = open_table(rd, w[k][0] == '/' ? audit_keep(rd->m,
				xasprintf("texthash:%s", w[k])) : w[k], &why);
			if (t == NULL) {
				audit_add_finding(&rd->findings, &rd->n_findings, "unreadable",
						  SEV_UNDECIDED, NULL, "make it readable, or audit "
						  "with the table's source next to it",
						  "%s: %s", name, why);
				continue;
			}
			for (size_t e = 0; e < t->n; e++)
				if (t->entries[e].key && t->entries[e].key[0] != '@' &&
				    !strchr(t->entries[e].key, '@'))
					domain_word(rd, t->entries[e].key, list, n, with_parents);
			continue;
		}
		domain_word(rd, w[k], list, n, with_parents);
	}
}

struct cidr audit_style_network(const char *style, const struct host_network *hn)
{
	if (strcmp(style, "host") == 0)
		return (struct cidr){hn->addr, hn->addr.family == AF_INET ? 32 : 128};
	/* class: the interface's whole class A, B or C network, so a public
	 * address trusts its provider's /8 or /16; IPv6 has no classes and
	 * Postfix takes the subnet, as for anything else */
	if (strcmp(style, "class") != 0 || hn->addr.family != AF_INET || hn->addr.addr[0] >= 224)
		return hn->cidr;
	unsigned bytes = hn->addr.addr[0] < 128 ? 1 : hn->addr.addr[0] < 192 ? 2 : 3;
	struct cidr c = {hn->addr, bytes * 8};
	memset(c.net.addr + bytes, 0, sizeof(c.net.addr) - bytes);
	return c;
}

void audit_style_findings(const char *style, const struct host_network *hn, size_t n,
			  struct audit_finding **f, size_t *nf)
{
	for (size_t k = 0; k < n; k++) {
		const struct cidr *c = &hn[k].cidr;
		unsigned wide = c->net.family == AF_INET ? AUDIT_SUBNET_WIDE_V4 : AUDIT_SUBNET_WIDE_V6;
		struct cidr trusted = audit_style_network(style, &hn[k]);
		/* provider-sized ones are mynetworks-wide-public's (audit.c) */
		if (trusted.prefix != c->prefix || c->prefix >= wide || audit_wide_public(c) ||
		    !audit_network_public(c))
			continue;
		char text[80];
		cidr_format(c, text, sizeof(text));
		audit_add_finding(f, nf, "mynetworks-style-wide-subnet", SEV_SUSPICIOUS, NULL,
				  "set mynetworks explicitly to your own hosts' networks, or "
				  "mynetworks_style = host",
				  "mynetworks is unset and mynetworks_style = %s trusts %s, the "
				  "whole subnet of %s's public address: wider than a /%u, it is "
				  "often a hosting provider's network shared with other customers, "
				  "and every host in it may relay", style, text, hn[k].ifname, wide);
	}
}

/* style_networks - what mynetworks_style gives on this host. */
static void style_networks(struct reader *rd, struct strbuf *sb)
{
	const char *style = param(rd, "mynetworks_style");
	struct host_network hn[64];
	size_t nhn = host_networks(hn, RG_ARRAY_LEN(hn));
	audit_style_findings(style, hn, nhn, &rd->findings, &rd->n_findings);
	strbuf_puts(sb, "127.0.0.0/8 [::1]/128");
	for (size_t k = 0; k < nhn; k++) {
		char text[80];
		struct cidr c = audit_style_network(style, &hn[k]);
		cidr_format(&c, text, sizeof(text));
		strbuf_printf(sb, " %s", text);
	}
}

/* networks - mynetworks, or what mynetworks_style gives on this host. */
static void networks(struct reader *rd)
{
	struct config *cfg = &rd->m->cfg;
	const char *explicit = raw(rd, "mynetworks");
	struct strbuf sb;
	strbuf_init(&sb);
	if (explicit != NULL)
		strbuf_puts(&sb, param(rd, "mynetworks"));
	else
		style_networks(rd, &sb);
	size_t n;
	char **w = split(rd->m, sb.data ? sb.data : "", &n);
	strbuf_free(&sb);
	cfg->mynetworks = audit_keep(rd->m, xcalloc(n + 1, sizeof(struct cidr)));
	for (size_t k = 0; k < n; k++) {
		char why[256];
		unsigned a, b, c, d, len;
		char v4[32];
		/* Debian's [::ffff:127.0.0.0]/104: relayguard folds mapped addresses to IPv4 */
		if (sscanf(w[k], "[::ffff:%u.%u.%u.%u]/%u", &a, &b, &c, &d, &len) == 5 && len >= 96 &&
		    len <= 128) {
			snprintf(v4, sizeof(v4), "%u.%u.%u.%u/%u", a, b, c, d, len - 96);
			w[k] = audit_keep(rd->m, xstrdup(v4));
		}
		if (cidr_parse(w[k], &cfg->mynetworks[cfg->n_mynetworks], why, sizeof(why)))
			cfg->n_mynetworks++;
		else
			audit_add_finding(&rd->findings, &rd->n_findings, "unreadable", SEV_UNDECIDED,
					  NULL, "write networks as CIDR in main.cf",
					  "mynetworks: %s is not read by the audit (%s)", w[k], why);
	}
}

/* recipient_maps - NULL-terminated tables; Postfix's passwd lookup (which we
 * cannot do) is an empty table: only postmaster exists, unknown users are refused. */
static struct map **recipient_maps(struct reader *rd, const char *name, bool placeholder)
{
	size_t n;
	char **w = split(rd->m, param(rd, name), &n);
	struct map **maps = audit_keep(rd->m, xcalloc(n + 1, sizeof(struct map *)));
	size_t got = 0;
	for (size_t k = 0; k < n; k++) {
		const char *why;
		const struct map *t = open_table(rd, w[k], &why);
		if (t == NULL && !placeholder)
			continue;
		if (t == NULL) {
			struct map *empty = xcalloc(1, sizeof(*empty));
			empty->type = MAP_INLINE;
			empty->spec = xstrdup(w[k]);
			t = audit_keep_map(rd->m, empty);
		}
		maps[got++] = (struct map *)t;
	}
	return maps;
}

/* ours - is DOMAIN one we deliver or relay for? */
static bool ours(const struct config *cfg, const char *domain)
{
	return address_domain_listed(domain, (const char *const *)cfg->mydestination) ||
	       address_domain_listed(domain, (const char *const *)cfg->relay_domains);
}

/* forward_findings - entries that send mail for one of our addresses outside:
 * anyone may write to them (a forwarding relay), to every user with "@domain". */
static void forward_findings(struct reader *rd, const char *param_name, bool aliases)
{
	size_t n;
	char **w = split(rd->m, param(rd, param_name), &n);
	for (size_t k = 0; k < n; k++) {
		const char *why;
		const struct map *t = open_table(rd, w[k], &why);
		if (t == NULL && !aliases) /* regexp:, pcre:, ldap:...: it may forward anything */
			audit_add_finding(&rd->findings, &rd->n_findings, "unreadable", SEV_UNDECIDED,
					  NULL, "audit it by hand, or use a table the audit reads "
					  "(hash:, texthash:, inline:)", "%s: %s: where it sends mail "
					  "is not known", param_name, why);
		for (size_t e = 0; t != NULL && e < t->n; e++) {
			char *key = t->entries[e].key, *value = t->entries[e].value;
			size_t klen = strlen(key);
			if (aliases && klen > 0 && key[klen - 1] == ':')
				key[klen - 1] = '\0'; /* aliases(5) "name: target" */
			const char *at = strrchr(key, '@');
			if (!aliases && (at == NULL || !ours(&rd->m->cfg, at + 1)))
				continue; /* a domain key, or an address that is not ours */
			size_t nt;
			char **targets = split(rd->m, value, &nt);
			for (size_t i = 0; i < nt; i++) {
				const char *tat = strrchr(targets[i], '@');
				if (tat == NULL || ours(&rd->m->cfg, tat + 1))
					continue;
				bool all = key[0] == '@';
				audit_add_finding(&rd->findings, &rd->n_findings,
					all ? "catch-all-forward-outside" : "alias-forward-outside",
					SEV_SUSPICIOUS, NULL,
					"forward only to your own domains, or refuse outside mail for "
					"the alias (check_recipient_access ... permit_sasl_authenticated, "
					"reject)",
					"%s %s: %s goes to %s outside: anyone may send to it and this "
					"server forwards it%s", param_name, w[k], key, targets[i],
					all ? " (every address of the domain: a catch-all)" : "");
				break;
			}
		}
	}
}

/* ---- services ---- */

/* add_override - one -o NAME=VALUE (or -o {NAME = VALUE}) of a service. */
static void add_override(struct pf_service *s, const char *arg)
{
	char *kv = xstrdup(arg), *name, *value;
	size_t len = strlen(kv);
	if (len >= 2 && kv[0] == '{' && kv[len - 1] == '}') {
		kv[len - 1] = '\0';
		memmove(kv, kv + 1, len - 1);
	}
	if (parse_assignment(kv, &name, &value))
		set_kv(&s->over, name, value);
	free(kv);
}

/* service_line - an smtpd service of one master.cf line; false for other lines. */
static bool service_line(struct reader *rd, const char *line, struct pf_service *s)
{
	size_t nw;
	char **w = split_by(rd->m, line, " \t", &nw); /* commas belong to -o values */
	if (nw < 8 || strcmp(w[7], "smtpd") != 0 ||
	    (strcmp(w[1], "inet") != 0 && strcmp(w[1], "pass") != 0))
		return false;
	*s = (struct pf_service){.name = w[0], .type = w[1]};
	for (size_t k = 8; k < nw; k++) {
		if (strcmp(w[k], "-o") == 0 && k + 1 < nw)
			add_override(s, w[++k]);
		else if (strncmp(w[k], "-o", 2) == 0 && w[k][2] != '\0')
			add_override(s, w[k] + 2); /* -oNAME=VALUE, as master(8) takes it */
	}
	return true;
}

/* read_master - the smtpd services of master.cf and their -o overrides; NULL
 * with err when it exists but cannot be read (a missing one is Postfix's default). */
static struct pf_service *read_master(struct reader *rd, size_t *ns, char *err, size_t errlen)
{
	char *path = xasprintf("%s/master.cf", rd->dir);
	size_t nl, cap = 4;
	char **lines = read_logical_lines(path, &nl);
	if (lines == NULL && errno != ENOENT) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		free(path);
		return NULL;
	}
	free(path);
	struct pf_service *svcs = xcalloc(cap, sizeof(*svcs));
	*ns = 0;
	for (size_t i = 0; lines && i < nl; i++) {
		if (*ns == cap) {
			cap *= 2;
			svcs = xrealloc(svcs, cap * sizeof(*svcs));
		}
		if (*ns == SERVICES_MAX) {
			audit_add_finding(&rd->findings, &rd->n_findings, "not-audited",
					  SEV_UNDECIDED, NULL, "audit the rest by hand",
					  "master.cf: more than %d smtpd services; the others are not "
					  "audited", SERVICES_MAX);
			break;
		}
		if (service_line(rd, lines[i], &svcs[*ns]))
			++*ns;
	}
	if (lines == NULL) { /* no master.cf: Postfix's one smtpd on port 25 */
		svcs[0] = (struct pf_service){.name = "smtp", .type = "inet"};
		*ns = 1;
	}
	free_lines(lines, lines ? nl : 0);
	return svcs;
}

/* submission_like - 587/465 and the services named for them. */
static bool submission_like(const char *name)
{
	const char *port = strrchr(name, ':');
	port = port ? port + 1 : name;
	return strcmp(port, "submission") == 0 || strcmp(port, "submissions") == 0 ||
	       strcmp(port, "smtps") == 0 || strcmp(port, "587") == 0 || strcmp(port, "465") == 0;
}

/* service_ip - the address a service answers on, for [ip] literals. */
static const char *service_ip(struct reader *rd, const char *name)
{
	const char *colon = strrchr(name, ':');
	if (colon != NULL) {
		char *host = xstrndup(name, (size_t)(colon - name));
		struct rg_ip ip;
		if (ip_parse(host, &ip))
			return audit_keep(rd->m, host);
		free(host);
	}
	size_t n;
	char **w = split(rd->m, param(rd, "inet_interfaces"), &n);
	struct rg_ip ip;
	return n > 0 && ip_parse(w[0], &ip) ? w[0] : "127.0.0.1";
}

/* add_undecided - one more reason that holds for the whole service. */
static void add_undecided(struct reader *rd, struct audit_service *s, const char *why)
{
	s->undecided = audit_keep(rd->m, s->undecided ? xasprintf("%s; %s", s->undecided, why)
						     : xstrdup(why));
}

/* per_service_params - overrides of what the model holds once for all services:
 * that service is not audited (its own networks and domains would be needed). */
static void per_service_params(struct reader *rd, const struct pf_service *ps,
			       struct audit_service *s)
{
	static const char *global[] = {"mynetworks", "mynetworks_style", "relay_domains",
		"mydestination", "virtual_alias_domains", "virtual_mailbox_domains",
		"virtual_alias_maps", "local_recipient_maps", "relay_recipient_maps",
		"smtpd_sender_login_maps", "parent_domain_matches_subdomains",
		"allow_untrusted_routing", "smtpd_restriction_classes"};
	for (size_t i = 0; i < RG_ARRAY_LEN(global); i++) {
		const char *v = raw_kv(&ps->over, global[i]);
		if (v == NULL)
			continue;
		char *why = xasprintf("-o %s=%s: a per-service %s is not audited", global[i], v,
				      global[i]);
		add_undecided(rd, s, why);
		free(why);
	}
}

/* covers_strangers - does a host list (smtpd_authorized_xclient_hosts) hold an
 * Internet client? 0: no, 1: yes, -1: cannot tell (names, tables). */
static int covers_strangers(struct reader *rd, const char *list)
{
	static const char *samples[] = {"20.0.0.9", "80.0.0.9", "151.0.0.9", "203.0.113.9",
					"2a00:1450::9"};
	size_t n;
	char **w = split(rd->m, list, &n);
	int result = 0;
	for (size_t k = 0; k < n; k++) {
		struct cidr c;
		char err[128];
		if (!cidr_parse(w[k], &c, err, sizeof(err))) {
			result = -1;
			continue;
		}
		for (size_t i = 0; i < RG_ARRAY_LEN(samples); i++) {
			struct rg_ip ip;
			if (ip_parse(samples[i], &ip) && cidr_match(&c, &ip))
				return 1;
		}
	}
	return result;
}

/* client_tricks - XCLIENT and the PROXY protocol let a client claim an address. */
static void client_tricks(struct reader *rd, struct audit_service *s)
{
	const char *xclient = param(rd, "smtpd_authorized_xclient_hosts");
	const char *proxy = param(rd, "smtpd_upstream_proxy_protocol");
	int anyone = xclient[0] ? covers_strangers(rd, xclient) : 0;
	if (xclient[0] && anyone != 0) {
		s->client_trick = audit_keep(rd->m, xasprintf(
			"smtpd_authorized_xclient_hosts = %s: %s may send XCLIENT ADDR=127.0.0.1 "
			"and be a mynetworks client", xclient, anyone > 0 ? "a stranger" : "whoever "
			"those hosts are"));
		s->trick_anyone = anyone > 0;
	} else if (proxy[0]) {
		s->client_trick = audit_keep(rd->m, xasprintf(
			"smtpd_upstream_proxy_protocol = %s: whoever reaches this port directly may "
			"send \"PROXY TCP4 127.0.0.1 ...\" and be a mynetworks client", proxy));
	}
}

/* anonymous_login - AUTH without "noanonymous": a SASL backend that offers
 * ANONYMOUS makes every stranger an authenticated user. */
static void anonymous_login(struct reader *rd, struct audit_service *s)
{
	const char *opts = raw(rd, "smtpd_sasl_security_options");
	if (!s->sasl || (opts == NULL ? true : strstr(param(rd, "smtpd_sasl_security_options"),
						      "noanonymous") != NULL))
		return; /* Postfix's default is noanonymous */
	audit_add_finding(&rd->findings, &rd->n_findings, "sasl-anonymous", SEV_SUSPICIOUS,
			  s->name, "smtpd_sasl_security_options = noanonymous",
			  "smtpd_sasl_security_options lacks noanonymous: where the SASL backend "
			  "offers ANONYMOUS, a stranger logs in without a password and relays as an "
			  "authenticated user");
}

/* build_service - one master.cf smtpd service with its overrides in effect. */
static void build_service(struct reader *rd, const struct pf_service *ps, struct audit_service *s)
{
	static const char *names[AL_COUNT] = {"smtpd_client_restrictions", "smtpd_helo_restrictions",
					      "smtpd_sender_restrictions", "smtpd_relay_restrictions",
					      "smtpd_recipient_restrictions"};
	rd->svc = ps;
	*s = (struct audit_service){
		.name = audit_keep(rd->m, xasprintf("master.cf %s (%s)", ps->name, ps->type)),
		.ip = service_ip(rd, ps->name), .submission_like = submission_like(ps->name),
		.sasl = param_yes(rd, "smtpd_sasl_auth_enable")};
	for (size_t l = 0; l < AL_COUNT; l++)
		s->lists[l] = read_list(rd, names[l]);
	s->refuses_all = !can_deny_words(rd, names[AL_RELAY]) &&
			 !can_deny_words(rd, names[AL_RECIPIENT]);
	const char *milters = param(rd, "smtpd_milters");
	if (milters[0] != '\0')
		s->undecided = audit_keep(rd->m, xasprintf("smtpd_milters = %s: a milter can add "
			"recipients after the restrictions (smfi_addrcpt); it is not audited", milters));
	per_service_params(rd, ps, s);
	client_tricks(rd, s);
	anonymous_login(rd, s);
	rd->svc = NULL;
}

/* ---- the model ---- */

static void host_names(struct reader *rd)
{
	struct config *cfg = &rd->m->cfg;
	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	const char *h = raw(rd, "myhostname");
	cfg->myhostname = (char *)(h ? param(rd, "myhostname") : audit_strdup(rd->m, host));
	const char *d = raw(rd, "mydomain");
	const char *dot = strchr(cfg->myhostname, '.');
	cfg->mydomain = (char *)(d ? param(rd, "mydomain")
				   : audit_strdup(rd->m, dot ? dot + 1 : "localdomain"));
	cfg->myorigin = (char *)param(rd, "myorigin");
	if (cfg->myorigin[0] == '/') { /* Debian: myorigin = /etc/mailname */
		char line[256] = "";
		FILE *f = fopen(cfg->myorigin, "r");
		if (f == NULL || fgets(line, sizeof(line), f) == NULL)
			line[0] = '\0';
		if (f)
			fclose(f);
		line[strcspn(line, "\r\n \t")] = '\0';
		cfg->myorigin = line[0] ? (char *)audit_strdup(rd->m, line) : cfg->myhostname;
	}
}

static void overlap_findings(struct reader *rd);

/* domains - mydestination (with the virtual domains) and relay_domains. */
static void domains(struct reader *rd)
{
	struct config *cfg = &rd->m->cfg;
	size_t nd = 0, nr = 0;
	cfg->mydestination = cfg->relay_domains = NULL;
	domain_words(rd, "mydestination", &cfg->mydestination, &nd, false);
	domain_words(rd, "virtual_alias_domains", &cfg->mydestination, &nd, false);
	domain_words(rd, "virtual_mailbox_domains", &cfg->mydestination, &nd, false);
	domain_words(rd, "relay_domains", &cfg->relay_domains, &nr, true);
	if (cfg->mydestination == NULL)
		push(rd->m, &cfg->mydestination, &nd, cfg->myhostname);
	if (cfg->relay_domains == NULL)
		cfg->relay_domains = xcalloc(1, sizeof(char *));
	/* grown by push(): the model owns the final arrays */
	audit_keep(rd->m, cfg->mydestination);
	audit_keep(rd->m, cfg->relay_domains);
	/* {d}: the mail domain, not the host's own name or localhost */
	rd->m->domain = cfg->mydestination[0];
	for (size_t k = 0; cfg->mydestination[k]; k++) {
		const char *d = cfg->mydestination[k];
		if (strcmp(d, cfg->myhostname) != 0 && strncmp(d, "localhost", 9) != 0) {
			rd->m->domain = d;
			break;
		}
	}
	overlap_findings(rd);
}

/* overlap_findings - a domain set in relay_domains that we also deliver. */
static void overlap_findings(struct reader *rd)
{
	const struct config *cfg = &rd->m->cfg;
	if (raw_kv(&rd->main, "relay_domains") == NULL)
		return; /* Postfix's old default $mydestination overlaps by design */
	for (size_t k = 0; cfg->relay_domains[k]; k++)
		if (cfg->relay_domains[k][0] != '.' &&
		    address_domain_listed(cfg->relay_domains[k],
					  (const char *const *)cfg->mydestination))
			audit_add_finding(&rd->findings, &rd->n_findings, "relay-domains-overlap-local",
					  SEV_SUSPICIOUS, NULL, "list a domain in relay_domains or in "
					  "mydestination/virtual_*_domains, never both",
					  "relay_domains lists %s, which this server also delivers "
					  "itself: which one wins depends on the address class",
					  cfg->relay_domains[k]);
}

/* takes_any - does relay_recipient_maps take every user of relay domain D
 * (no tables, or an "@D" catch-all, as Postfix looks it up last)? */
static bool takes_any(const struct config *cfg, const char *d)
{
	if (cfg->relay_recipient_maps == NULL || cfg->relay_recipient_maps[0] == NULL)
		return true;
	if (d[0] == '.')
		return false; /* a subdomain's catch-all names a domain we do not know */
	char key[300];
	snprintf(key, sizeof(key), "@%s", d);
	for (size_t k = 0; cfg->relay_recipient_maps[k]; k++)
		if (map_lookup(cfg->relay_recipient_maps[k], key) != NULL)
			return true;
	return false;
}

/* routing_finding - allow_untrusted_routing = yes honours user%victim@relay-domain:
 * open when a relay domain takes any recipient (no relay_recipient_maps, or
 * an @domain catch-all in them), as a probe aimed at that domain sees it
 * relayed. A relay domain that is also ours still counts: its subdomains
 * are relay domains (parent_domain_matches_subdomains), not ours. */
static void routing_finding(struct reader *rd)
{
	if (!param_yes(rd, "allow_untrusted_routing"))
		return;
	const struct config *cfg = &rd->m->cfg;
	bool open = false;
	for (size_t k = 0; !open && cfg->relay_domains && cfg->relay_domains[k]; k++)
		open = takes_any(cfg, cfg->relay_domains[k]);
	audit_add_finding(&rd->findings, &rd->n_findings, "allow-untrusted-routing",
			  open ? SEV_OPEN : SEV_SUSPICIOUS, NULL,
			  "allow_untrusted_routing = no (the default)",
			  "allow_untrusted_routing = yes: user%%victim@your-relay-domain is "
			  "an authorised destination and gets forwarded (relayguard's resolver "
			  "never honours it, so the tests here do not show it)");
}

/* reader_fail - everything read so far is dropped: the configuration cannot be read. */
static struct audit_model *reader_fail(struct reader *rd)
{
	for (size_t k = 0; k < rd->n_findings; k++) {
		free(rd->findings[k].text);
		free(rd->findings[k].fix);
	}
	free(rd->findings);
	free_kv(&rd->main);
	audit_model_free(rd->m);
	free(rd);
	return NULL;
}

struct audit_model *audit_model_from_postfix(const char *dir, char *err, size_t errlen)
{
	struct reader *rd = xcalloc(1, sizeof(*rd));
	struct audit_model *m = xcalloc(1, sizeof(*m));
	rd->m = m;
	rd->dir = dir;
	if (!read_main(rd, err, errlen))
		return reader_fail(rd);
	const char *compat = raw(rd, "compatibility_level");
	rd->compat = compat ? strtod(compat, NULL) : 0;
	m->postfix = true;
	m->origin = audit_keep(m, xasprintf("Postfix %s", dir));
	host_names(rd);
	domains(rd);
	networks(rd);
	m->cfg.local_recipient_maps = recipient_maps(rd, "local_recipient_maps", true);
	m->cfg.relay_recipient_maps = recipient_maps(rd, "relay_recipient_maps", true);
	routing_finding(rd);
	/* a login table we cannot read: each login owns the address it is named after
	 * (only the authenticated class depends on it) */
	m->cfg.smtpd_sender_login_maps = recipient_maps(rd, "smtpd_sender_login_maps", false);
	forward_findings(rd, "virtual_alias_maps", false);
	forward_findings(rd, "alias_maps", true);
	size_t ns = 0;
	struct pf_service *svcs = read_master(rd, &ns, err, errlen);
	if (svcs == NULL)
		return reader_fail(rd);
	m->services = audit_keep(m, xcalloc(ns + 1, sizeof(struct audit_service)));
	for (size_t i = 0; i < ns; i++) {
		build_service(rd, &svcs[i], &m->services[m->n_services++]);
		free_kv(&svcs[i].over);
	}
	free(svcs);
	m->findings = rd->findings;
	m->n_findings = rd->n_findings;
	free_kv(&rd->main);
	free(rd);
	return m;
}
