/*
 * config.c - configuration loading (see config.h).
 *
 * DESCRIPTION
 *	Loading has four steps, each reporting every problem it finds:
 *	1. the parameter table is filled with defaults;
 *	2. the file (if any) overrides them, line by line, in main.cf syntax:
 *	   "name = value", continuation lines start with white space, lines
 *	   whose first non-blank character is '#' are comments;
 *	3. $name, ${name} and $(name) are expanded in every value;
 *	4. each value is converted into its typed field, then the whole is
 *	   checked for an open relay.
 */
#include "config/config.h"
#include "config/aliases.h"
#include "abuse/shared.h"
#include "qmgr/route.h"
#include "address/address.h"
#include "address/expand.h"
#include "util/util.h"

#include <libpsl.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum ptype {
	P_STRING, P_HOSTNAME, P_DOMAINS, P_RELAY_DOMAINS, P_NETWORKS, P_MAPS,
	P_RESTRICTIONS, P_SIZE, P_COUNT, P_DURATION, P_LISTEN, P_PATH, P_BOOL, P_CHOICE,
};

struct param_def {
	const char *name;
	enum ptype type;
	const char *def; /* NULL: computed at load time */
};

#define DEFAULT_RELAY "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"

static const struct param_def params[] = {
	{"myhostname", P_HOSTNAME, NULL},
	{"mydomain", P_HOSTNAME, NULL},
	{"myorigin", P_HOSTNAME, "$myhostname"},
	{"mydestination", P_DOMAINS, "localhost"},
	{"mynetworks", P_NETWORKS, "127.0.0.0/8 [::1]/128"},
	{"relay_domains", P_RELAY_DOMAINS, ""},
	{"local_recipient_maps", P_MAPS, "inline:{postmaster}"},
	{"relay_recipient_maps", P_MAPS, ""},
	{"smtpd_banner", P_STRING, "$myhostname ESMTP relayguard"},
	{"smtpd_listen", P_LISTEN, "127.0.0.1:2525, [::1]:2525"},
	{"smtpd_client_restrictions", P_RESTRICTIONS, ""},
	{"smtpd_helo_restrictions", P_RESTRICTIONS, ""},
	{"smtpd_sender_restrictions", P_RESTRICTIONS, ""},
	{"smtpd_relay_restrictions", P_RESTRICTIONS, DEFAULT_RELAY},
	{"smtpd_recipient_restrictions", P_RESTRICTIONS, ""},
	{"message_size_limit", P_SIZE, "10240000"},
	{"smtpd_recipient_limit", P_COUNT, "1000"},
	{"smtpd_timeout", P_DURATION, "300s"},
	{"smtpd_hard_error_limit", P_COUNT, "20"},
	{"smtpd_junk_command_limit", P_COUNT, "100"},
	{"smtpd_client_connection_count_limit", P_COUNT, "50"},
	{"queue_directory", P_PATH, "./var/queue"},
	{"virtual_mailbox_base", P_PATH, "./var/mail"},
	{"direct_local_delivery", P_BOOL, "yes"},
	{"mail_owner", P_STRING, "relayguard"},
	{"smtpd_peername_lookup", P_BOOL, "yes"},
	{"dns_servers", P_STRING, ""},
	{"submission_listen", P_LISTEN, "127.0.0.1:2587, [::1]:2587"},
	{"submissions_listen", P_LISTEN, "127.0.0.1:2465, [::1]:2465"},
	{"smtpd_tls_security_level", P_CHOICE, "may"},
	{"submission_tls_security_level", P_CHOICE, "encrypt"},
	{"smtpd_tls_cert_file", P_STRING, ""},
	{"smtpd_tls_key_file", P_STRING, "$smtpd_tls_cert_file"},
	{"smtpd_tls_auth_only", P_BOOL, "yes"},
	{"data_directory", P_PATH, "./var/data"},
	{"smtpd_sasl_auth_enable", P_BOOL, "no"},
	{"smtpd_sasl_type", P_CHOICE, "passwd-file"},
	{"smtpd_sasl_path", P_STRING, ""},
	{"smtpd_sasl_authenticated_header", P_BOOL, "no"},
	{"smtpd_sasl_failure_delay", P_DURATION, "1s"},
	{"smtpd_sasl_failure_limit", P_COUNT, "5"},
	{"smtpd_sasl_failure_window", P_DURATION, "10m"},
	{"smtpd_sasl_lockout_time", P_DURATION, "15m"},
	{"smtpd_sender_login_maps", P_MAPS, ""},
	{"submission_client_restrictions", P_RESTRICTIONS, "permit_sasl_authenticated, reject"},
	{"submission_sender_restrictions", P_RESTRICTIONS, "reject_sender_login_mismatch"},
	/* outbound delivery */
	{"relayhost", P_STRING, ""},
	{"default_transport", P_STRING, "smtp"},
	{"transport_maps", P_MAPS, ""},
	{"smtp_tls_policy_maps", P_MAPS, ""},
	{"smtp_sasl_password_maps", P_MAPS, ""},
	{"smtp_sasl_auth_enable", P_BOOL, "no"},
	{"smtp_sasl_security_options", P_STRING, "noplaintext, noanonymous"},
	{"smtp_sasl_tls_security_options", P_STRING, "noanonymous"},
	{"smtp_tls_security_level", P_CHOICE, "may"},
	{"smtp_tls_CAfile", P_STRING, ""},
	{"smtp_tls_CApath", P_STRING, ""},
	{"smtp_helo_name", P_HOSTNAME, "$myhostname"},
	{"smtp_bind_address", P_STRING, ""},
	{"smtp_bind_address6", P_STRING, ""},
	{"smtp_tcp_port", P_COUNT, "25"},
	{"inet_protocols", P_CHOICE, "all"},
	{"smtp_address_preference", P_CHOICE, "any"},
	{"smtp_connect_timeout", P_DURATION, "30s"},
	{"smtp_helo_timeout", P_DURATION, "300s"},
	{"smtp_mail_timeout", P_DURATION, "300s"},
	{"smtp_rcpt_timeout", P_DURATION, "300s"},
	{"smtp_data_init_timeout", P_DURATION, "120s"},
	{"smtp_data_xfer_timeout", P_DURATION, "180s"},
	{"smtp_data_done_timeout", P_DURATION, "600s"},
	{"smtp_quit_timeout", P_DURATION, "300s"},
	{"minimal_backoff_time", P_DURATION, "300s"},
	{"maximal_backoff_time", P_DURATION, "4000s"},
	{"queue_run_delay", P_DURATION, "300s"},
	{"maximal_queue_lifetime", P_DURATION, "5d"},
	{"bounce_queue_lifetime", P_DURATION, "5d"},
	{"delay_warning_time", P_DURATION, "0h"},
	{"bounce_size_limit", P_SIZE, "50000"},
	{"default_destination_concurrency_limit", P_COUNT, "20"},
	{"default_destination_recipient_limit", P_COUNT, "50"},
	{"qmgr_message_active_limit", P_COUNT, "20000"},
	/* in-flow control: acceptance slows down when delivery falls behind */
	{"in_flow_delay", P_DURATION, "1s"},
	{"in_flow_backlog_limit", P_COUNT, "1000"},
	/* message limits from the hostile review (issue 11) */
	{"hopcount_limit", P_COUNT, "50"},
	{"header_size_limit", P_SIZE, "102400"},
	/* resource limits from the hostile review (issue 11, findings 5 and 6) */
	{"smtpd_connection_limit", P_COUNT, "0"},
	{"smtpd_per_record_deadline", P_BOOL, "yes"},
	{"smtpd_min_data_rate", P_COUNT, "500"},
	{"smtpd_data_memory_limit", P_SIZE, "268435456"},
	{"queue_minfree", P_SIZE, "0"},
	/* the relay self-test at serve start (issue 10): enforce, warn or off */
	{"relay_selftest", P_CHOICE, "enforce"},
	/* abuse control for authenticated relaying (issue 13) */
	{"anvil_rate_time_unit", P_DURATION, "60s"},
	{"smtpd_client_connection_rate_limit", P_COUNT, "0"},
	{"smtpd_client_message_rate_limit", P_COUNT, "0"},
	{"smtpd_client_recipient_rate_limit", P_COUNT, "0"},
	{"smtpd_client_auth_rate_limit", P_COUNT, "0"},
	{"smtpd_sasl_message_rate_limit", P_COUNT, "0"},
	{"smtpd_sasl_recipient_rate_limit", P_COUNT, "0"},
	{"smtpd_client_event_limit_exceptions", P_NETWORKS, "$mynetworks"},
	{"smtpd_sasl_lockout_exceptions", P_NETWORKS, "$mynetworks"},
	{"smtpd_sasl_hijack_threshold", P_COUNT, "30"},
	{"smtpd_sasl_hijack_window", P_DURATION, "10m"},
	{"smtpd_sasl_hijack_message_threshold", P_COUNT, "200"},
	{"smtpd_sasl_hijack_wide_message", P_COUNT, "50"},
	{"smtpd_sasl_hijack_suspend_time", P_DURATION, "1d"},
	{"shared_state", P_STRING, ""},
	/* outbound TLS that cannot be stripped (issue 14) */
	{"smtp_tls_memory_lifetime", P_DURATION, "30d"},
	{"smtp_dns_support_level", P_CHOICE, "enabled"},
	{"smtp_mta_sts", P_BOOL, "yes"},
	{"smtp_mta_sts_CAfile", P_STRING, ""},
	{"smtp_mta_sts_https_port", P_COUNT, "443"},
	{"smtp_mta_sts_recheck_time", P_DURATION, "60s"},
	{"smtp_tls_reporting", P_BOOL, "yes"},
	/* aliases and hosted domains (issue 12): convert_hosted(), address/expand.h */
	{"alias_maps", P_MAPS, ""},
	{"virtual_alias_domains", P_DOMAINS, ""},
	{"virtual_alias_maps", P_MAPS, ""},
	{"virtual_mailbox_domains", P_DOMAINS, ""},
	{"virtual_mailbox_maps", P_MAPS, ""},
	{"recipient_delimiter", P_STRING, ""},
	{"virtual_alias_recursion_limit", P_COUNT, "1000"},
	{"virtual_alias_expansion_limit", P_COUNT, "1000"},
};
#define N_PARAMS RG_ARRAY_LEN(params)

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
};

/* Loading state: raw values, their origins, and the error report. */
struct loader {
	const char *file;
	char *raw[N_PARAMS];
	char *expanded[N_PARAMS];
	bool expanding[N_PARAMS]; /* on the stack of expand(): a $name loop */
	struct config_origin origin[N_PARAMS];
	struct strbuf errors;
	struct config *cfg;
};

static void add_error(struct loader *ld, size_t param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(struct loader *ld, size_t param, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const struct config_origin *o = param < N_PARAMS ? &ld->origin[param] : NULL;
	char *line;
	if (o != NULL && o->file != NULL)
		line = xasprintf("%s:%u: %s\n", o->file, o->line, msg);
	else if (ld->file != NULL)
		line = xasprintf("%s: %s\n", ld->file, msg);
	else
		line = xasprintf("default configuration: %s\n", msg);
	/* one $name error can surface through several parameters: say it once */
	if (ld->errors.data == NULL || strstr(ld->errors.data, line) == NULL)
		strbuf_puts(&ld->errors, line);
	free(line);
}

static size_t param_index(const char *name, size_t n)
{
	for (size_t i = 0; i < N_PARAMS; i++)
		if (strlen(params[i].name) == n && strncmp(params[i].name, name, n) == 0)
			return i;
	return N_PARAMS;
}

/* edit_distance - for "did you mean" hints on misspelt parameter names. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];
	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

static const char *closest_param(const char *name)
{
	const char *best = NULL;
	size_t best_d = 4;
	for (size_t i = 0; i < N_PARAMS; i++) {
		size_t d = edit_distance(name, params[i].name);
		if (d < best_d) {
			best_d = d;
			best = params[i].name;
		}
	}
	return best;
}

static const char *closest_restriction(const char *name);
static size_t idx(const char *name);

/* system_hostname - gethostname(), or "localhost" when unset. */
static char *system_hostname(void)
{
	char name[256];
	if (gethostname(name, sizeof(name)) != 0 || name[0] == '\0')
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	rg_str_lower(name);
	return xstrdup(name);
}

static bool hostname_ok(const char *name);
static void derive_mydomain(struct loader *ld);

static void set_defaults(struct loader *ld)
{
	for (size_t i = 0; i < N_PARAMS; i++) {
		if (params[i].def != NULL)
			ld->raw[i] = xstrdup(params[i].def);
	}
	size_t host = param_index("myhostname", 10);
	ld->raw[host] = system_hostname();
	if (!hostname_ok(ld->raw[host])) {
		free(ld->raw[host]);
		ld->raw[host] = xstrdup("localhost"); /* e.g. "my_host": set myhostname */
	}
	derive_mydomain(ld);
}

/* derive_mydomain - Postfix's default: myhostname without its first label. */
static void derive_mydomain(struct loader *ld)
{
	size_t host = param_index("myhostname", 10), dom = param_index("mydomain", 8);
	const char *dot = strchr(ld->raw[host], '.');
	free(ld->raw[dom]);
	ld->raw[dom] = xstrdup(dot && dot[1] && !strchr(dot, '$') ? dot + 1 : "localdomain");
}

/* set_param - one logical line "name = value" from the file. */
static void set_param(struct loader *ld, char *line, unsigned lineno)
{
	char *name_end = line, *p;
	while (*name_end == '_' || (*name_end >= 'a' && *name_end <= 'z') ||
	       (*name_end >= 'A' && *name_end <= 'Z') || (*name_end >= '0' && *name_end <= '9'))
		name_end++;
	for (p = name_end; *p == ' ' || *p == '\t'; p++)
		;
	if (name_end == line || *p != '=') {
		strbuf_printf(&ld->errors, "%s:%u: expected \"name = value\"\n", ld->file, lineno);
		return;
	}
	size_t i = param_index(line, (size_t)(name_end - line));
	if (i == N_PARAMS) {
		char *name = xstrndup(line, (size_t)(name_end - line));
		const char *hint = closest_param(name);
		strbuf_printf(&ld->errors, "%s:%u: unknown parameter \"%s\"%s%s%s\n", ld->file,
			      lineno, name, hint ? " (did you mean \"" : "", hint ? hint : "",
			      hint ? "\"?)" : "");
		free(name);
		return;
	}
	free(ld->raw[i]);
	ld->raw[i] = xstrdup(rg_str_trim(p + 1));
	ld->origin[i].file = ld->file;
	ld->origin[i].line = lineno;
}

/* read_file - main.cf logical lines into the raw table. */
static bool read_file(struct loader *ld)
{
	FILE *f = fopen(ld->file, "r");
	if (f == NULL) {
		strbuf_printf(&ld->errors, "%s: cannot open: %s\n", ld->file, strerror(errno));
		return false;
	}
	char *line = NULL, *logical = NULL;
	size_t cap = 0;
	unsigned lineno = 0, start = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (memchr(line, '\0', (size_t)len) != NULL) {
			strbuf_printf(&ld->errors, "%s:%u: NUL byte in file\n", ld->file, lineno);
			continue;
		}
		char *t = rg_str_trim(line);
		if (*t == '\0' || *t == '#')
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			if (logical == NULL) {
				strbuf_printf(&ld->errors, "%s:%u: continuation line without a "
					      "parameter before it\n", ld->file, lineno);
				continue;
			}
			char *joined = xasprintf("%s %s", logical, t);
			free(logical);
			logical = joined;
			continue;
		}
		if (logical != NULL)
			set_param(ld, logical, start);
		free(logical);
		logical = xstrdup(t);
		start = lineno;
	}
	if (logical != NULL)
		set_param(ld, logical, start);
	free(logical);
	free(line);
	fclose(f);
	return true;
}

#define EXPANSION_MAX (64 * 1024)

/* expand - $name, ${name}, $(name) and $$ in the value of param i. */
static char *expand(struct loader *ld, size_t i)
{
	struct strbuf out;
	strbuf_init(&out);
	ld->expanding[i] = true;
	for (const char *p = ld->raw[i]; *p;) {
		if (out.len > EXPANSION_MAX) {
			/* $a = $b$b$b, $b = $c$c$c, ...: stop before it eats the machine */
			add_error(ld, i, "parameter %s: $name expansion longer than %d bytes",
				  params[i].name, EXPANSION_MAX);
			break;
		}
		if (*p != '$') {
			strbuf_append(&out, p++, 1);
			continue;
		}
		if (p[1] == '$') {
			strbuf_append(&out, "$", 1);
			p += 2;
			continue;
		}
		const char *name = p + 1, *end;
		char close = *name == '{' ? '}' : *name == '(' ? ')' : 0;
		if (close) {
			name++;
			end = strchr(name, close);
		} else {
			for (end = name; *end == '_' || (*end >= 'a' && *end <= 'z') ||
					 (*end >= '0' && *end <= '9'); end++)
				;
		}
		if (end == NULL) {
			add_error(ld, i, "parameter %s: missing '%c' after $%c%s", params[i].name,
				  close, p[1], name);
			break;
		}
		size_t j = param_index(name, (size_t)(end - name));
		if (j == N_PARAMS) {
			int n = end ? (int)(end - name) : (int)strlen(name);
			add_error(ld, i, "parameter %s: unknown parameter $%.*s", params[i].name,
				  n, name);
			break;
		}
		if (ld->expanding[j]) { /* name both ends of the loop */
			add_error(ld, j, "parameter %s: $name expansion loops", params[j].name);
			add_error(ld, i, "parameter %s: $name expansion loops", params[i].name);
			break;
		}
		if (ld->expanded[j] == NULL) /* once per parameter, however often it is used */
			ld->expanded[j] = expand(ld, j);
		strbuf_puts(&out, ld->expanded[j]);
		p = end + (close ? 1 : 0);
	}
	ld->expanding[i] = false;
	return strbuf_steal(&out);
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

static bool hostname_ok(const char *name)
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
		if (!hostname_ok(d)) {
			add_error(ld, i, "%s: \"%s\" is not a domain name%s", params[i].name,
				  items[k], allow_parent ? "" : " (only relay_domains "
				  "takes \".parent\" patterns)");
		} else if (d != items[k] && psl_is_public_suffix2(psl_builtin(), d,
				PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE)) {
			add_error(ld, i, "%s: \"%s\" would relay for every domain under the public "
				  "suffix \"%s\"; list your own domains", params[i].name, items[k], d);
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
			add_error(ld, i, "%s: %s", params[i].name, why);
	}
	free_list(items);
}

static void convert_networks(struct loader *ld, size_t i)
{
	convert_network_list(ld, i, &ld->cfg->mynetworks, &ld->cfg->n_mynetworks);
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
			add_error(ld, i, "%s: a cidr: table cannot list recipients", params[i].name);
			continue;
		}
		maps[m] = map_open(items[k], why, sizeof(why));
		if (maps[m] != NULL)
			m++;
		else
			add_error(ld, i, "%s: %s", params[i].name, why);
	}
	free_list(items);
	return maps;
}

static const char *closest_restriction(const char *name)
{
	const char *best = NULL;
	size_t best_d = 4;
	for (size_t k = 0; k < RG_ARRAY_LEN(restriction_names); k++) {
		size_t d = edit_distance(name, restriction_names[k].name);
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
			add_error(ld, i, "%s: %s: unknown action \"%s\" (use OK, DUNNO, "
				  "REJECT [text], DEFER [text] or a 4xx/5xx code)", params[i].name,
				  m->spec, m->entries[k].value);
			return false;
		}
	}
	return true;
}

static void convert_restrictions(struct loader *ld, size_t i, struct restriction_list *rl)
{
	size_t n;
	char **items = split_list(ld->expanded[i], &n);
	rl->param = params[i].name;
	rl->items = xcalloc(n + 1, sizeof(struct restriction));
	for (size_t k = 0; k < n; k++) {
		struct restriction *r = &rl->items[rl->n];
		if (!lookup_restriction(items[k], &r->kind, &r->name)) {
			const char *hint = closest_restriction(items[k]);
			add_error(ld, i, "%s: unknown restriction \"%s\"%s%s%s", params[i].name,
				  items[k], hint ? " (did you mean \"" : "", hint ? hint : "",
				  hint ? "\"?)" : "");
			continue;
		}
		if (r->kind == R_CHECK_CLIENT_ACCESS) {
			char why[1024];
			if (items[k + 1] == NULL || strncmp(items[k + 1], "cidr:", 5) != 0) {
				add_error(ld, i, "%s: check_client_access needs a cidr:/path table "
					  "after it", params[i].name);
				continue;
			}
			r->table = map_open(items[++k], why, sizeof(why));
			if (r->table == NULL) {
				add_error(ld, i, "%s: %s", params[i].name, why);
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

static bool convert_number(struct loader *ld, size_t i, uint64_t *out)
{
	const char *v = ld->expanded[i];
	bool ok = params[i].type == P_DURATION ? rg_parse_duration(v, out) : rg_parse_u64(v, out);
	if (!ok) {
		add_error(ld, i, "%s: \"%s\" is not %s", params[i].name, v,
			  params[i].type == P_DURATION ? "a time (e.g. 300s, 5m, 1h)"
						       : "a whole number");
		return false;
	}
	return true;
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

/* convert_listen - one listener role's addresses, appended to cfg->listen. */
static void convert_listen(struct loader *ld, size_t i, enum listen_role role)
{
	size_t n;
	char **items = split_list(ld->expanded[i], &n);
	struct config *cfg = ld->cfg;
	cfg->listen = xrealloc(cfg->listen, (cfg->n_listen + n + 1) * sizeof(struct listen_addr));
	for (size_t k = 0; k < n; k++) {
		struct listen_addr *la = &cfg->listen[cfg->n_listen];
		memset(la, 0, sizeof(*la));
		rg_strlcpy(la->text, items[k], sizeof(la->text));
		la->role = role;
		if (parse_listen(items[k], la))
			cfg->n_listen++;
		else
			add_error(ld, i, "%s: \"%s\" is not address:port (e.g. 127.0.0.1:25, "
				  "[::1]:25, *:25)", params[i].name, items[k]);
	}
	free_list(items);
}

static void convert_listeners(struct loader *ld)
{
	convert_listen(ld, idx("smtpd_listen"), ROLE_MTA);
	convert_listen(ld, idx("submission_listen"), ROLE_SUBMISSION);
	convert_listen(ld, idx("submissions_listen"), ROLE_SUBMISSIONS);
	if (ld->cfg->n_listen == 0)
		add_error(ld, idx("smtpd_listen"), "smtpd_listen: at least one address:port is "
			  "needed (in smtpd_listen, submission_listen or submissions_listen)");
}

/* convert_choice - a value from a fixed list; returns its index. */
static int convert_choice(struct loader *ld, size_t i, const char *const *choices, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (rg_strcasecmp(ld->expanded[i], choices[k]) == 0)
			return (int)k;
	struct strbuf list;
	strbuf_init(&list);
	for (size_t k = 0; k < n; k++)
		strbuf_printf(&list, "%s%s", k ? (k + 1 == n ? " or " : ", ") : "", choices[k]);
	add_error(ld, i, "%s: \"%s\" is not %s", params[i].name, ld->expanded[i], list.data);
	strbuf_free(&list);
	return 0;
}

static char *convert_single(struct loader *ld, size_t i)
{
	const char *v = ld->expanded[i];
	if (params[i].type == P_HOSTNAME && !hostname_ok(v))
		add_error(ld, i, "%s: \"%s\" is not a valid host or domain name", params[i].name, v);
	if (params[i].type == P_PATH && v[0] == '\0')
		add_error(ld, i, "%s: a directory is needed", params[i].name);
	if (params[i].type == P_STRING && strpbrk(v, "\r\n") != NULL)
		add_error(ld, i, "%s: value contains a line break", params[i].name);
	return xstrdup(v);
}

static bool convert_bool(struct loader *ld, size_t i)
{
	const char *v = ld->expanded[i];
	if (rg_strcasecmp(v, "yes") == 0 || rg_strcasecmp(v, "true") == 0)
		return true;
	if (rg_strcasecmp(v, "no") != 0 && rg_strcasecmp(v, "false") != 0)
		add_error(ld, i, "%s: \"%s\" is not yes or no", params[i].name, v);
	return false;
}

/* A number parameter and the values it may take. */
struct range {
	const char *name;
	uint64_t *field;
	uint64_t min, max;
};

/* convert_ranges - each parameter as a number (or time) within its range. */
static void convert_ranges(struct loader *ld, const struct range *r, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		size_t i = param_index(r[k].name, strlen(r[k].name));
		if (!convert_number(ld, i, r[k].field))
			continue;
		if (*r[k].field < r[k].min || *r[k].field > r[k].max)
			add_error(ld, i, "%s: %s is out of range (%llu..%llu)", params[i].name,
				  ld->expanded[i], (unsigned long long)r[k].min,
				  (unsigned long long)r[k].max);
	}
}

static void convert_limits(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	struct range limits[] = {
		{"message_size_limit", &cfg->message_size_limit, 1024, 1ull << 30},
		{"smtpd_recipient_limit", &cfg->smtpd_recipient_limit, 1, 100000},
		{"smtpd_timeout", &cfg->smtpd_timeout, 1, 86400},
		{"smtpd_hard_error_limit", &cfg->smtpd_hard_error_limit, 1, 1000},
		{"smtpd_junk_command_limit", &cfg->smtpd_junk_command_limit, 1, 100000},
		{"smtpd_client_connection_count_limit", &cfg->smtpd_client_connection_count_limit,
		 0, 1000000}, /* 0: no limit, as in Postfix */
		{"smtpd_sasl_failure_delay", &cfg->smtpd_sasl_failure_delay, 0, 60},
		{"smtpd_sasl_failure_limit", &cfg->smtpd_sasl_failure_limit, 1, 1000000},
		{"smtpd_sasl_failure_window", &cfg->smtpd_sasl_failure_window, 1, 7 * 86400},
		{"smtpd_sasl_lockout_time", &cfg->smtpd_sasl_lockout_time, 0, 7 * 86400},
		{"hopcount_limit", &cfg->hopcount_limit, 1, 100000},
		{"header_size_limit", &cfg->header_size_limit, 1024, 1ull << 30},
		/* 0: derived from RLIMIT_NOFILE at start (server.c) */
		{"smtpd_connection_limit", &cfg->smtpd_connection_limit, 0, 1000000},
		{"smtpd_min_data_rate", &cfg->smtpd_min_data_rate, 1, 1ull << 30},
		{"smtpd_data_memory_limit", &cfg->smtpd_data_memory_limit, 65536, 1ull << 40},
		{"queue_minfree", &cfg->queue_minfree, 0, 1ull << 50},
	};
	convert_ranges(ld, limits, RG_ARRAY_LEN(limits));
}

static size_t idx(const char *name)
{
	return param_index(name, strlen(name));
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
			add_error(ld, i, "%s: \"%s\" is not ip or ip:port (e.g. 127.0.0.1:53, "
				  "[::1]:53)", params[i].name, items[k]);
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
		add_error(ld, i, "%s: \"%s\" is not inet:IP:PORT (e.g. inet:127.0.0.1:12345, "
			  "inet:[::1]:12345; host names are not resolved)", params[i].name, v);
}

/* convert_tls_sasl - the TLS and SMTP AUTH parameters. */
static void convert_tls_sasl(struct loader *ld)
{
	static const char *const levels[] = {"none", "may", "encrypt"};
	static const char *const sasl_types[] = {"passwd-file", "dovecot"};
	struct config *cfg = ld->cfg;
	cfg->smtpd_tls_security_level = (enum tls_level)convert_choice(
		ld, idx("smtpd_tls_security_level"), levels, 3);
	cfg->submission_tls_security_level = (enum tls_level)convert_choice(
		ld, idx("submission_tls_security_level"), levels + 1, 2) + 1;
	cfg->smtpd_tls_cert_file = convert_single(ld, idx("smtpd_tls_cert_file"));
	cfg->smtpd_tls_key_file = convert_single(ld, idx("smtpd_tls_key_file"));
	if (cfg->smtpd_tls_cert_file[0] == '\0' && cfg->smtpd_tls_key_file[0] != '\0')
		add_error(ld, idx("smtpd_tls_key_file"), "smtpd_tls_key_file is set but "
			  "smtpd_tls_cert_file is not");
	cfg->smtpd_tls_auth_only = convert_bool(ld, idx("smtpd_tls_auth_only"));
	cfg->data_directory = convert_single(ld, idx("data_directory"));
	cfg->smtpd_sasl_auth_enable = convert_bool(ld, idx("smtpd_sasl_auth_enable"));
	cfg->smtpd_sasl_type = (enum sasl_type)convert_choice(ld, idx("smtpd_sasl_type"),
								sasl_types, 2);
	cfg->smtpd_sasl_path = convert_single(ld, idx("smtpd_sasl_path"));
	cfg->smtpd_sasl_authenticated_header =
		convert_bool(ld, idx("smtpd_sasl_authenticated_header"));
	if (cfg->smtpd_sasl_auth_enable && cfg->smtpd_sasl_path[0] == '\0')
		add_error(ld, idx("smtpd_sasl_auth_enable"), "smtpd_sasl_auth_enable = yes needs "
			  "smtpd_sasl_path (a passwd-file, or Dovecot's auth socket with "
			  "smtpd_sasl_type = dovecot)");
	check_sasl_path(ld, idx("smtpd_sasl_path"));
	cfg->smtpd_sender_login_maps = convert_maps(ld, idx("smtpd_sender_login_maps"));
	convert_restrictions(ld, idx("submission_client_restrictions"), &cfg->submission_client);
	convert_restrictions(ld, idx("submission_sender_restrictions"), &cfg->submission_sender);
}

static const char *const smtp_tls_levels[] = {"none", "may", "encrypt", "verify", "secure",
					       "dane"};

bool config_smtp_tls_level(const char *name, enum smtp_tls_level *out)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(smtp_tls_levels); k++) {
		if (rg_strcasecmp(name, smtp_tls_levels[k]) == 0) {
			*out = (enum smtp_tls_level)k;
			return true;
		}
	}
	return false;
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
			add_error(ld, i, "%s: \"%s\" is not a SASL security option (noplaintext, "
				  "noanonymous, ...)", params[i].name, items[k]);
		if (rg_strcasecmp(items[k], "noplaintext") == 0)
			plaintext = false;
	}
	free_list(items);
	return plaintext;
}

/* check_bind_address - smtp_bind_address(6): empty or an IP of that family. */
static void check_bind_address(struct loader *ld, size_t i, int family)
{
	struct rg_ip ip;
	const char *v = ld->expanded[i];
	if (v[0] != '\0' && (!ip_parse(v, &ip) || ip.family != family))
		add_error(ld, i, "%s: \"%s\" is not an %s address", params[i].name, v,
			  family == AF_INET ? "IPv4" : "IPv6");
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
				add_error(ld, i, "%s: %s: \"%s\" for %s is not a TLS level (none, may, "
					  "encrypt, verify, secure, dane)", params[i].name, m->spec,
					  m->entries[e].value, m->entries[e].key);
		}
	}
}

/* convert_outbound_limits - the numbers of outbound delivery, with ranges. */
static void convert_outbound_limits(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	uint64_t port = 25;
	struct range limits[] = {
		{"smtp_tcp_port", &port, 1, 65535},
		{"smtp_connect_timeout", &cfg->smtp_connect_timeout, 1, 3600},
		{"smtp_helo_timeout", &cfg->smtp_helo_timeout, 1, 3600},
		{"smtp_mail_timeout", &cfg->smtp_mail_timeout, 1, 3600},
		{"smtp_rcpt_timeout", &cfg->smtp_rcpt_timeout, 1, 3600},
		{"smtp_data_init_timeout", &cfg->smtp_data_init_timeout, 1, 3600},
		{"smtp_data_xfer_timeout", &cfg->smtp_data_xfer_timeout, 1, 3600},
		{"smtp_data_done_timeout", &cfg->smtp_data_done_timeout, 1, 3600},
		{"smtp_quit_timeout", &cfg->smtp_quit_timeout, 1, 3600},
		{"minimal_backoff_time", &cfg->minimal_backoff_time, 1, 30 * 86400},
		{"maximal_backoff_time", &cfg->maximal_backoff_time, 1, 30 * 86400},
		{"queue_run_delay", &cfg->queue_run_delay, 1, 86400},
		{"maximal_queue_lifetime", &cfg->maximal_queue_lifetime, 0, 100 * 86400},
		{"bounce_queue_lifetime", &cfg->bounce_queue_lifetime, 0, 100 * 86400},
		{"delay_warning_time", &cfg->delay_warning_time, 0, 100 * 86400},
		{"bounce_size_limit", &cfg->bounce_size_limit, 1, 1ull << 30},
		{"default_destination_concurrency_limit",
		 &cfg->default_destination_concurrency_limit, 1, 1000},
		{"default_destination_recipient_limit", &cfg->default_destination_recipient_limit,
		 1, 100000},
		{"qmgr_message_active_limit", &cfg->qmgr_message_active_limit, 1, 1000000},
		{"in_flow_delay", &cfg->in_flow_delay, 0, 10}, /* Postfix allows 0-10s */
		{"in_flow_backlog_limit", &cfg->in_flow_backlog_limit, 1, 1000000},
	};
	convert_ranges(ld, limits, RG_ARRAY_LEN(limits));
	cfg->smtp_tcp_port = (unsigned)port;
	if (cfg->minimal_backoff_time > cfg->maximal_backoff_time)
		add_error(ld, idx("minimal_backoff_time"), "minimal_backoff_time is larger than "
			  "maximal_backoff_time");
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
				add_error(ld, idx("transport_maps"), "transport_maps: %s: %s: %s",
					  m->spec, m->entries[e].key, err);
		}
	}
	struct route r;
	if (!route_parse_transport(cfg->default_transport, "example.com", 25, &r, err,
				   sizeof(err)))
		add_error(ld, idx("default_transport"), "default_transport: %s", err);
	if (cfg->relayhost[0] != '\0' &&
	    !route_parse_nexthop(cfg->relayhost, 25, host, sizeof(host), &port, &mx))
		add_error(ld, idx("relayhost"), "relayhost: \"%s\" is not a next hop ([host]:port, "
			  "host:port, host or domain)", cfg->relayhost);
}

/* convert_outbound - the SMTP client's and the queue manager's parameters. */
static void convert_outbound(struct loader *ld)
{
	static const char *const protos[] = {"all", "ipv4", "ipv6"};
	static const char *const prefs[] = {"any", "ipv4", "ipv6"};
	struct config *cfg = ld->cfg;
	cfg->relayhost = convert_single(ld, idx("relayhost"));
	cfg->default_transport = convert_single(ld, idx("default_transport"));
	cfg->transport_maps = convert_maps(ld, idx("transport_maps"));
	cfg->smtp_tls_policy_maps = convert_maps(ld, idx("smtp_tls_policy_maps"));
	check_tls_policy_maps(ld, idx("smtp_tls_policy_maps"));
	cfg->smtp_sasl_password_maps = convert_maps(ld, idx("smtp_sasl_password_maps"));
	cfg->smtp_sasl_auth_enable = convert_bool(ld, idx("smtp_sasl_auth_enable"));
	cfg->smtp_sasl_plaintext_ok = sasl_plaintext_ok(ld, idx("smtp_sasl_security_options"));
	sasl_plaintext_ok(ld, idx("smtp_sasl_tls_security_options"));
	cfg->smtp_tls_security_level = (enum smtp_tls_level)convert_choice(
		ld, idx("smtp_tls_security_level"), smtp_tls_levels, RG_ARRAY_LEN(smtp_tls_levels));
	cfg->smtp_tls_CAfile = convert_single(ld, idx("smtp_tls_CAfile"));
	cfg->smtp_tls_CApath = convert_single(ld, idx("smtp_tls_CApath"));
	cfg->smtp_helo_name = convert_single(ld, idx("smtp_helo_name"));
	cfg->smtp_bind_address = convert_single(ld, idx("smtp_bind_address"));
	cfg->smtp_bind_address6 = convert_single(ld, idx("smtp_bind_address6"));
	check_bind_address(ld, idx("smtp_bind_address"), AF_INET);
	check_bind_address(ld, idx("smtp_bind_address6"), AF_INET6);
	cfg->inet_protocols = (enum inet_protocols)convert_choice(ld, idx("inet_protocols"),
								  protos, 3);
	cfg->smtp_address_preference = (enum inet_protocols)convert_choice(
		ld, idx("smtp_address_preference"), prefs, 3);
	convert_outbound_limits(ld);
	check_routes(ld);
	if (cfg->smtp_sasl_auth_enable && cfg->smtp_sasl_password_maps[0] == NULL)
		add_error(ld, idx("smtp_sasl_auth_enable"), "smtp_sasl_auth_enable = yes needs "
			  "smtp_sasl_password_maps (next hop -> user:password)");
}

/* convert_selftest - relay_selftest (issue 10): what serve does with an open relay. */
static void convert_selftest(struct loader *ld)
{
	static const char *const modes[] = {"enforce", "warn", "off"};
	ld->cfg->relay_selftest = (enum relay_selftest)convert_choice(
		ld, idx("relay_selftest"), modes, RG_ARRAY_LEN(modes));
}

/* convert_exceptions - a network list; "$mynetworks" (the default) is copied,
 * so a bad mynetworks entry is reported once, not once per list. */
static void convert_exceptions(struct loader *ld, size_t i, struct cidr **out, size_t *n)
{
	struct config *cfg = ld->cfg;
	if (strcmp(ld->expanded[i], ld->expanded[idx("mynetworks")]) != 0) {
		convert_network_list(ld, i, out, n);
		return;
	}
	*out = xcalloc(cfg->n_mynetworks + 1, sizeof(struct cidr));
	memcpy(*out, cfg->mynetworks, cfg->n_mynetworks * sizeof(struct cidr));
	*n = cfg->n_mynetworks;
}

/* convert_abuse - rate limits and their exceptions (issue 13). */
static void convert_abuse(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	struct range limits[] = {
		{"anvil_rate_time_unit", &cfg->anvil_rate_time_unit, 1, 86400},
		{"smtpd_client_connection_rate_limit", &cfg->smtpd_client_connection_rate_limit,
		 0, 1000000000},
		{"smtpd_client_message_rate_limit", &cfg->smtpd_client_message_rate_limit, 0,
		 1000000000},
		{"smtpd_client_recipient_rate_limit", &cfg->smtpd_client_recipient_rate_limit, 0,
		 1000000000},
		{"smtpd_client_auth_rate_limit", &cfg->smtpd_client_auth_rate_limit, 0, 1000000000},
		{"smtpd_sasl_message_rate_limit", &cfg->smtpd_sasl_message_rate_limit, 0,
		 1000000000},
		{"smtpd_sasl_recipient_rate_limit", &cfg->smtpd_sasl_recipient_rate_limit, 0,
		 1000000000},
		{"smtpd_sasl_hijack_threshold", &cfg->smtpd_sasl_hijack_threshold, 0, 1000000},
		{"smtpd_sasl_hijack_window", &cfg->smtpd_sasl_hijack_window, 1, 7 * 86400},
		{"smtpd_sasl_hijack_message_threshold", &cfg->smtpd_sasl_hijack_message_threshold,
		 0, 1000000000},
		{"smtpd_sasl_hijack_wide_message", &cfg->smtpd_sasl_hijack_wide_message, 0, 100000},
		{"smtpd_sasl_hijack_suspend_time", &cfg->smtpd_sasl_hijack_suspend_time, 1,
		 365 * 86400},
	};
	convert_ranges(ld, limits, RG_ARRAY_LEN(limits));
	cfg->shared_state = convert_single(ld, idx("shared_state"));
	if (cfg->shared_state[0] != '\0' && !shared_url_valid(cfg->shared_state))
		add_error(ld, idx("shared_state"), "shared_state: not redis://[[USER]:PASSWORD@]"
			  "IP:PORT/DB or unix:/PATH (host names are not looked up)");
	convert_exceptions(ld, idx("smtpd_client_event_limit_exceptions"),
			   &cfg->smtpd_client_event_limit_exceptions,
			   &cfg->n_smtpd_client_event_limit_exceptions);
	convert_exceptions(ld, idx("smtpd_sasl_lockout_exceptions"),
			   &cfg->smtpd_sasl_lockout_exceptions,
			   &cfg->n_smtpd_sasl_lockout_exceptions);
}

/* convert_outbound_tls - TLS that cannot be stripped (issue 14). */
static void convert_outbound_tls(struct loader *ld)
{
	uint64_t port = 443;
	struct range r[] = {
		{"smtp_tls_memory_lifetime", &ld->cfg->smtp_tls_memory_lifetime, 0,
		 10ull * 366 * 86400},
		{"smtp_mta_sts_https_port", &port, 1, 65535},
		{"smtp_mta_sts_recheck_time", &ld->cfg->smtp_mta_sts_recheck_time, 0, 86400},
	};
	convert_ranges(ld, r, RG_ARRAY_LEN(r));
	ld->cfg->smtp_mta_sts_https_port = (unsigned)port;
	ld->cfg->smtp_mta_sts = convert_bool(ld, idx("smtp_mta_sts"));
	ld->cfg->smtp_tls_reporting = convert_bool(ld, idx("smtp_tls_reporting"));
	ld->cfg->smtp_mta_sts_CAfile = convert_single(ld, idx("smtp_mta_sts_CAfile"));
	static const char *const dns_levels[] = {"enabled", "dnssec"};
	ld->cfg->smtp_dns_support_dnssec =
		convert_choice(ld, idx("smtp_dns_support_level"), dns_levels, 2) == 1;
	/* Postfix: with DNSSEC support, DANE is the default TLS level */
	if (ld->cfg->smtp_dns_support_dnssec && ld->origin[idx("smtp_tls_security_level")].file == NULL)
		ld->cfg->smtp_tls_security_level = SMTP_TLS_DANE;
}

/* aliases and hosted domains (issue 12) ------------------------------------ */

/* convert_aliases - alias_maps: aliases(5) files, not "key value" tables. */
static struct map **convert_aliases(struct loader *ld, size_t i)
{
	size_t n, m = 0;
	char **items = split_list(ld->expanded[i], &n);
	struct map **maps = xcalloc(n + 1, sizeof(struct map *));
	for (size_t k = 0; k < n; k++) {
		char why[1024];
		if ((maps[m] = aliases_open(items[k], why, sizeof(why))) != NULL)
			m++;
		else
			add_error(ld, i, "alias_maps: %s", why);
	}
	free_list(items);
	return maps;
}

/* check_alias_values - every address of every alias is one (a typo stops the
 * start, not the mail of the user it belongs to). */
static void check_alias_values(struct loader *ld, size_t i, struct map **maps, bool alias)
{
	for (size_t k = 0; maps[k]; k++) {
		for (size_t e = 0; e < maps[k]->n; e++) {
			char why[512];
			const struct map_entry *me = &maps[k]->entries[e];
			if (!expand_value_ok(me->key, me->value, alias, why, sizeof(why)))
				add_error(ld, i, "%s: %s: %s: %s", params[i].name, maps[k]->spec,
					  me->key, why);
		}
	}
}

/* check_mailbox_values - every virtual_mailbox_maps value is "dir/user/". */
static void check_mailbox_values(struct loader *ld, size_t i, struct map **maps)
{
	for (size_t k = 0; maps[k]; k++) {
		for (size_t e = 0; e < maps[k]->n; e++) {
			char why[512];
			if (!expand_mailbox_value_ok(maps[k]->entries[e].value, why, sizeof(why)))
				add_error(ld, i, "virtual_mailbox_maps: %s: %s: %s", maps[k]->spec,
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
			add_error(ld, idx("virtual_mailbox_domains"), "%s is listed in both "
				  "virtual_alias_domains and virtual_mailbox_domains", vm[k]);
	const char *const *lists[] = {va, vm};
	for (size_t l = 0; l < 2; l++)
		for (size_t k = 0; lists[l][k]; k++)
			if (address_domain_listed(lists[l][k],
						  (const char *const *)cfg->mydestination) ||
			    address_domain_listed(lists[l][k],
						  (const char *const *)cfg->relay_domains))
				add_error(ld, idx(l ? "virtual_mailbox_domains" : "virtual_alias_domains"),
					  "%s is also in mydestination or relay_domains; list each "
					  "domain in one of them only", lists[l][k]);
}

static void convert_hosted(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	struct range limits[] = {
		{"virtual_alias_recursion_limit", &cfg->virtual_alias_recursion_limit, 1, 1000},
		{"virtual_alias_expansion_limit", &cfg->virtual_alias_expansion_limit, 1, 100000},
	};
	convert_ranges(ld, limits, RG_ARRAY_LEN(limits));
	cfg->alias_maps = convert_aliases(ld, idx("alias_maps"));
	cfg->virtual_alias_domains = convert_domains(ld, idx("virtual_alias_domains"), false);
	cfg->virtual_alias_maps = convert_maps(ld, idx("virtual_alias_maps"));
	cfg->virtual_mailbox_domains = convert_domains(ld, idx("virtual_mailbox_domains"), false);
	cfg->virtual_mailbox_maps = convert_maps(ld, idx("virtual_mailbox_maps"));
	check_mailbox_values(ld, idx("virtual_mailbox_maps"), cfg->virtual_mailbox_maps);
	check_alias_values(ld, idx("alias_maps"), cfg->alias_maps, true);
	check_alias_values(ld, idx("virtual_alias_maps"), cfg->virtual_alias_maps, false);
	cfg->recipient_delimiter = convert_single(ld, idx("recipient_delimiter"));
	if (strpbrk(cfg->recipient_delimiter, "@\"<>()[],;: \t") != NULL)
		add_error(ld, idx("recipient_delimiter"), "recipient_delimiter: \"%s\" may not "
			  "contain address syntax characters", cfg->recipient_delimiter);
	check_domain_overlap(ld);
}

static void convert_all(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	cfg->myhostname = convert_single(ld, idx("myhostname"));
	cfg->mydomain = convert_single(ld, idx("mydomain"));
	cfg->myorigin = convert_single(ld, idx("myorigin"));
	cfg->smtpd_banner = convert_single(ld, idx("smtpd_banner"));
	cfg->queue_directory = convert_single(ld, idx("queue_directory"));
	cfg->virtual_mailbox_base = convert_single(ld, idx("virtual_mailbox_base"));
	cfg->direct_local_delivery = convert_bool(ld, idx("direct_local_delivery"));
	cfg->mail_owner = convert_single(ld, idx("mail_owner"));
	rg_str_lower(cfg->myhostname);
	rg_str_lower(cfg->mydomain);
	rg_str_lower(cfg->myorigin);
	cfg->mydestination = convert_domains(ld, idx("mydestination"), false);
	cfg->relay_domains = convert_domains(ld, idx("relay_domains"), true);
	convert_networks(ld, idx("mynetworks"));
	cfg->local_recipient_maps = convert_maps(ld, idx("local_recipient_maps"));
	cfg->relay_recipient_maps = convert_maps(ld, idx("relay_recipient_maps"));
	convert_restrictions(ld, idx("smtpd_client_restrictions"), &cfg->client);
	convert_restrictions(ld, idx("smtpd_helo_restrictions"), &cfg->helo);
	convert_restrictions(ld, idx("smtpd_sender_restrictions"), &cfg->sender);
	convert_restrictions(ld, idx("smtpd_relay_restrictions"), &cfg->relay);
	convert_restrictions(ld, idx("smtpd_recipient_restrictions"), &cfg->recipient);
	convert_limits(ld);
	convert_listeners(ld);
	convert_tls_sasl(ld);
	cfg->smtpd_peername_lookup = convert_bool(ld, idx("smtpd_peername_lookup"));
	cfg->smtpd_per_record_deadline = convert_bool(ld, idx("smtpd_per_record_deadline"));
	cfg->dns_servers = convert_single(ld, idx("dns_servers"));
	check_dns_servers(ld, idx("dns_servers"));
	convert_outbound(ld);
	convert_selftest(ld);
	convert_abuse(ld);
	convert_outbound_tls(ld);
	convert_hosted(ld);
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
	size_t i = idx("smtpd_relay_restrictions");
	if (ld->origin[i].file == NULL)
		i = idx("smtpd_recipient_restrictions");
	add_error(ld, i, "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions "
		  "can refuse an unauthorised destination, so this server would be an open "
		  "relay; add reject_unauth_destination (default: %s)", DEFAULT_RELAY);
}

static void keep_effective_values(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	cfg->n_params = N_PARAMS;
	cfg->names = xcalloc(N_PARAMS, sizeof(char *));
	cfg->values = xcalloc(N_PARAMS, sizeof(char *));
	cfg->origins = xcalloc(N_PARAMS, sizeof(struct config_origin));
	for (size_t i = 0; i < N_PARAMS; i++) {
		cfg->names[i] = xstrdup(params[i].name);
		cfg->values[i] = xstrdup(ld->expanded[i]);
		cfg->origins[i] = ld->origin[i];
	}
}

/* line_of - N from "file:N: ..." (0 when the message has no line). */
static unsigned long line_of(const char *file, const char *msg)
{
	size_t n = file ? strlen(file) : 0;
	if (n == 0 || strncmp(msg, file, n) != 0 || msg[n] != ':')
		return 0;
	return strtoul(msg + n + 1, NULL, 10);
}

struct numbered {
	unsigned long line;
	size_t order;
	char *text;
};

static int compare_numbered(const void *a, const void *b)
{
	const struct numbered *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* sort_by_line - errors in file order, whatever step found them. */
static char *sort_by_line(const char *file, char *text)
{
	struct numbered *v = NULL;
	size_t n = 0;
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n] = (struct numbered){line_of(file, l), n, l};
		n++;
	}
	qsort(v, n, sizeof(*v), compare_numbered);
	struct strbuf out;
	strbuf_init(&out);
	for (size_t i = 0; i < n; i++)
		strbuf_printf(&out, "%s\n", v[i].text);
	free(v);
	free(text);
	return strbuf_steal(&out);
}

struct config *config_load(const char *path, char **errors)
{
	struct loader ld;
	memset(&ld, 0, sizeof(ld));
	strbuf_init(&ld.errors);
	ld.cfg = xcalloc(1, sizeof(struct config));
	ld.file = ld.cfg->file = path ? xstrdup(path) : NULL;
	set_defaults(&ld);
	if (path == NULL || read_file(&ld)) {
		size_t dom = idx("mydomain"), host = idx("myhostname");
		if (ld.origin[dom].file == NULL && ld.origin[host].file != NULL &&
		    strchr(ld.raw[host], '$') == NULL)
			derive_mydomain(&ld); /* from the configured name, not the system's */
		size_t errors_before = ld.errors.len;
		for (size_t i = 0; i < N_PARAMS; i++)
			if (ld.expanded[i] == NULL)
				ld.expanded[i] = expand(&ld, i);
		/* a failed $name leaves values half-expanded: checking them says nothing */
		if (ld.errors.len == errors_before) {
			convert_all(&ld);
			check_relay_safety(&ld);
		}
		for (size_t i = 0; i < N_PARAMS; i++)
			if (ld.expanded[i] == NULL)
				ld.expanded[i] = xstrdup("");
		keep_effective_values(&ld);
	}
	for (size_t i = 0; i < N_PARAMS; i++) {
		free(ld.raw[i]);
		free(ld.expanded[i]);
	}
	if (ld.errors.len > 0) {
		*errors = sort_by_line(ld.file, strbuf_steal(&ld.errors));
		config_free(ld.cfg);
		return NULL;
	}
	strbuf_free(&ld.errors);
	*errors = NULL;
	return ld.cfg;
}

static void free_restrictions(struct restriction_list *rl)
{
	for (size_t k = 0; k < rl->n; k++)
		map_free(rl->items[k].table);
	free(rl->items);
}

static void free_maps(struct map **maps)
{
	for (size_t k = 0; maps && maps[k]; k++)
		map_free(maps[k]);
	free(maps);
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->file);
	free(cfg->myhostname);
	free(cfg->mydomain);
	free(cfg->myorigin);
	free(cfg->smtpd_banner);
	free_list(cfg->mydestination);
	free_list(cfg->relay_domains);
	free(cfg->mynetworks);
	free(cfg->smtpd_client_event_limit_exceptions);
	free(cfg->smtpd_sasl_lockout_exceptions);
	free(cfg->shared_state);
	free_maps(cfg->local_recipient_maps);
	free_maps(cfg->relay_recipient_maps);
	free_restrictions(&cfg->client);
	free_restrictions(&cfg->helo);
	free_restrictions(&cfg->sender);
	free_restrictions(&cfg->relay);
	free_restrictions(&cfg->recipient);
	free(cfg->listen);
	free(cfg->queue_directory);
	free(cfg->virtual_mailbox_base);
	free(cfg->mail_owner);
	free(cfg->dns_servers);
	free(cfg->smtpd_tls_cert_file);
	free(cfg->smtpd_tls_key_file);
	free(cfg->data_directory);
	free(cfg->smtpd_sasl_path);
	free_maps(cfg->smtpd_sender_login_maps);
	free_restrictions(&cfg->submission_client);
	free_restrictions(&cfg->submission_sender);
	free(cfg->relayhost);
	free(cfg->default_transport);
	free_maps(cfg->transport_maps);
	free_maps(cfg->smtp_tls_policy_maps);
	free_maps(cfg->smtp_sasl_password_maps);
	free(cfg->smtp_tls_CAfile);
	free(cfg->smtp_mta_sts_CAfile);
	free(cfg->smtp_tls_CApath);
	free(cfg->smtp_helo_name);
	free(cfg->smtp_bind_address);
	free(cfg->smtp_bind_address6);
	/* aliases and hosted domains (issue 12) */
	free_maps(cfg->alias_maps);
	free_list(cfg->virtual_alias_domains);
	free_maps(cfg->virtual_alias_maps);
	free_list(cfg->virtual_mailbox_domains);
	free_maps(cfg->virtual_mailbox_maps);
	free(cfg->recipient_delimiter);
	for (size_t i = 0; i < cfg->n_params; i++) {
		free(cfg->names[i]);
		free(cfg->values[i]);
	}
	free(cfg->names);
	free(cfg->values);
	free(cfg->origins);
	free(cfg);
}

/* print_value - a value as `relayguard config` shows it: the password in
 * shared_state's URL (redis://user:password@...) as ***, as in the logs. */
static void print_value(FILE *out, const char *name, const char *value)
{
	const char *scheme = strstr(value, "://"), *at = strrchr(value, '@');
	if (strcmp(name, "shared_state") != 0 || scheme == NULL || at == NULL || at < scheme) {
		fprintf(out, "%s = %s\n", name, value);
		return;
	}
	fprintf(out, "%s = %.*s***%s\n", name, (int)(scheme + 3 - value), value, at);
}

void config_print(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->n_params; i++)
		print_value(out, cfg->names[i], cfg->values[i]);
}

bool config_needs_tls(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_listen; i++) {
		enum listen_role r = cfg->listen[i].role;
		if (r == ROLE_SUBMISSIONS || (r == ROLE_SUBMISSION) ||
		    (r == ROLE_MTA && cfg->smtpd_tls_security_level != TLS_NONE))
			return true;
	}
	return false;
}

bool config_in_networks(const struct cidr *list, size_t n, const struct rg_ip *ip)
{
	for (size_t k = 0; k < n; k++)
		if (cidr_match(&list[k], ip))
			return true;
	return false;
}

bool config_in_mynetworks(const struct config *cfg, const struct rg_ip *ip)
{
	return config_in_networks(cfg->mynetworks, cfg->n_mynetworks, ip);
}

/* is_bridge - interface names that containers and VMs use for NAT bridges. */
static bool is_bridge(const char *ifname)
{
	static const char *const prefixes[] = {"docker", "br-", "cni", "virbr", "veth",
					       "lxcbr", "lxdbr", "podman", "cali", "flannel"};
	for (size_t k = 0; k < RG_ARRAY_LEN(prefixes); k++)
		if (strncmp(ifname, prefixes[k], strlen(prefixes[k])) == 0)
			return true;
	return false;
}

/* network_warning - why one mynetworks entry may turn the server into an open relay. */
static void network_warning(const struct cidr *c, const struct host_network *hn, size_t nhn,
			    struct strbuf *out)
{
	char text[80];
	cidr_format(c, text, sizeof(text));
	if (c->prefix == 0) {
		strbuf_printf(out, "mynetworks contains %s: EVERY client on the Internet may "
			      "relay; this server is an open relay\n", text);
		return;
	}
	if (ip_is_loopback(&c->net) && c->prefix >= (c->net.family == AF_INET ? 8u : 128u))
		return;
	for (size_t k = 0; k < nhn; k++) {
		if (!cidr_contains(&hn[k].cidr, c))
			continue;
		if (is_bridge(hn[k].ifname))
			strbuf_printf(out, "mynetworks contains %s, the network of container/VM "
				      "bridge %s: connections forwarded through that bridge (e.g. "
				      "Docker's userland proxy) appear to come from it, so outside "
				      "clients may relay\n", text, hn[k].ifname);
		return;
	}
	strbuf_printf(out, "mynetworks contains %s, which is neither loopback nor a network "
		      "of this host: every client there (or behind a proxy or NAT that presents "
		      "such an address) may relay without authentication\n", text);
}

/* access_warnings - OK in a cidr: table of the relay or recipient list relays
 * for that network, exactly like mynetworks does. */
static void access_warnings(const struct restriction_list *rl, const struct host_network *hn,
			    size_t nhn, struct strbuf *out)
{
	for (size_t k = 0; k < rl->n; k++) {
		const struct map *m = rl->items[k].table;
		for (size_t e = 0; m != NULL && e < m->n; e++) {
			struct access_result ar;
			if (!map_access_parse(m->entries[e].value, &ar) || ar.action != ACCESS_OK)
				continue;
			struct strbuf one;
			strbuf_init(&one);
			network_warning(&m->entries[e].net, hn, nhn, &one);
			if (one.len > 0)
				strbuf_printf(out, "%s: check_client_access %s: OK for a network "
					      "permits relaying: %s", rl->param, m->spec,
					      one.data + strlen("mynetworks contains "));
			strbuf_free(&one);
		}
	}
}

char *config_warnings(const struct config *cfg)
{
	struct host_network hn[64];
	size_t nhn = host_networks(hn, RG_ARRAY_LEN(hn));
	struct strbuf out;
	strbuf_init(&out);
	for (size_t k = 0; k < cfg->n_mynetworks; k++)
		network_warning(&cfg->mynetworks[k], hn, nhn, &out);
	access_warnings(&cfg->relay, hn, nhn, &out);
	access_warnings(&cfg->recipient, hn, nhn, &out);
	return out.len ? strbuf_steal(&out) : NULL;
}
