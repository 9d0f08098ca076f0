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
 *	   checked for an open relay (convert.c).
 *	Which parameters exist, their defaults and fields: params.def.
 */
#include "config/config.h"
#include "config/loader.h"
#include "config/params.h"
#include "util/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void config_error(struct loader *ld, size_t param, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const struct config_origin *o = param < PARAM_COUNT ? &ld->origin[param] : NULL;
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
	for (size_t i = 0; i < PARAM_COUNT; i++)
		if (strlen(config_params[i].name) == n && strncmp(config_params[i].name, name, n) == 0)
			return i;
	return PARAM_COUNT;
}

/* config_edit_distance - for "did you mean" hints on misspelt parameter names. */
size_t config_edit_distance(const char *a, const char *b)
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

size_t config_param_id(const char *name)
{
	return param_index(name, strlen(name));
}

const char *config_closest_param(const char *name)
{
	const char *best = NULL;
	size_t best_d = 4;
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		size_t d = config_edit_distance(name, config_params[i].name);
		if (d < best_d) {
			best_d = d;
			best = config_params[i].name;
		}
	}
	return best;
}

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

static void derive_mydomain(struct loader *ld);

/* install and run (issue 12): an installed binary's defaults name the
 * system's directories instead of ./var (see config_use_installed_paths) */
static bool installed_paths;
static const struct {
	enum param_id param;
	const char *path;
} installed_defaults[] = {
	{PARAM_queue_directory, "/var/spool/relayguard"},
	{PARAM_virtual_mailbox_base, "/var/mail/vhosts"},
	{PARAM_data_directory, "/var/lib/relayguard"},
};

void config_use_installed_paths(bool on)
{
	installed_paths = on;
}

/* set_installed_defaults - replace the tree-relative defaults. */
static void set_installed_defaults(struct loader *ld)
{
	for (size_t k = 0; installed_paths && k < RG_ARRAY_LEN(installed_defaults); k++) {
		size_t i = installed_defaults[k].param;
		free(ld->raw[i]);
		ld->raw[i] = xstrdup(installed_defaults[k].path);
	}
}

static void set_defaults(struct loader *ld)
{
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		if (config_params[i].def != NULL)
			ld->raw[i] = xstrdup(config_params[i].def);
	}
	set_installed_defaults(ld);
	size_t host = PARAM_myhostname;
	ld->raw[host] = system_hostname();
	if (!config_hostname_ok(ld->raw[host])) {
		free(ld->raw[host]);
		ld->raw[host] = xstrdup("localhost"); /* e.g. "my_host": set myhostname */
	}
	derive_mydomain(ld);
}

/* derive_mydomain - Postfix's default: myhostname without its first label. */
static void derive_mydomain(struct loader *ld)
{
	size_t host = PARAM_myhostname, dom = PARAM_mydomain;
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
	if (i == PARAM_COUNT) {
		char *name = xstrndup(line, (size_t)(name_end - line));
		const char *hint = config_closest_param(name);
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
			config_error(ld, i, "parameter %s: $name expansion longer than %d bytes",
				  config_params[i].name, EXPANSION_MAX);
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
			config_error(ld, i, "parameter %s: missing '%c' after $%c%s", config_params[i].name,
				  close, p[1], name);
			break;
		}
		size_t j = param_index(name, (size_t)(end - name));
		if (j == PARAM_COUNT) {
			int n = end ? (int)(end - name) : (int)strlen(name);
			config_error(ld, i, "parameter %s: unknown parameter $%.*s", config_params[i].name,
				  n, name);
			break;
		}
		if (ld->expanding[j]) { /* name both ends of the loop */
			config_error(ld, j, "parameter %s: $name expansion loops", config_params[j].name);
			config_error(ld, i, "parameter %s: $name expansion loops", config_params[i].name);
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

static void keep_effective_values(struct loader *ld)
{
	struct config *cfg = ld->cfg;
	cfg->n_params = PARAM_COUNT;
	cfg->names = xcalloc(PARAM_COUNT, sizeof(char *));
	cfg->values = xcalloc(PARAM_COUNT, sizeof(char *));
	cfg->origins = xcalloc(PARAM_COUNT, sizeof(struct config_origin));
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		cfg->names[i] = xstrdup(config_params[i].name);
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

/* pin - each parameter only a restart changes takes RUNNING's value; true
 * when one did. */
static bool pin(struct loader *ld, const struct config *running)
{
	bool pinned = false;
	for (size_t i = 0; running != NULL && i < PARAM_COUNT && i < running->n_params; i++) {
		if (config_params[i].reloads || strcmp(ld->expanded[i], running->values[i]) == 0)
			continue;
		free(ld->expanded[i]);
		ld->expanded[i] = xstrdup(running->values[i]);
		ld->origin[i] = running->origins[i];
		pinned = true;
	}
	return pinned;
}

/* reexpand - values naming a pinned one ($myhostname in smtpd_banner) are
 * expanded again, with the running value: a new session greeted with the
 * file's new name then said the running one at EHLO. */
static void reexpand(struct loader *ld)
{
	for (size_t i = 0; i < PARAM_COUNT; i++)
		if (config_params[i].reloads && ld->raw[i] != NULL &&
		    strchr(ld->raw[i], '$') != NULL) {
			free(ld->expanded[i]);
			ld->expanded[i] = NULL;
		}
	for (size_t i = 0; i < PARAM_COUNT; i++)
		if (ld->expanded[i] == NULL)
			ld->expanded[i] = expand(ld, i);
}

static struct config *load(const char *path, const struct config *running, char **errors)
{
	const char *broken = config_table_problem(); /* cannot happen: tests check it */
	if (broken != NULL) {
		*errors = xasprintf("%s\n", broken);
		return NULL;
	}
	struct loader ld;
	memset(&ld, 0, sizeof(ld));
	strbuf_init(&ld.errors);
	ld.cfg = xcalloc(1, sizeof(struct config));
	ld.file = ld.cfg->file = path ? xstrdup(path) : NULL;
	set_defaults(&ld);
	if (path == NULL || read_file(&ld)) {
		size_t dom = PARAM_mydomain, host = PARAM_myhostname;
		if (ld.origin[dom].file == NULL && ld.origin[host].file != NULL &&
		    strchr(ld.raw[host], '$') == NULL)
			derive_mydomain(&ld); /* from the configured name, not the system's */
		size_t errors_before = ld.errors.len;
		for (size_t i = 0; i < PARAM_COUNT; i++)
			if (ld.expanded[i] == NULL)
				ld.expanded[i] = expand(&ld, i);
		/* a failed $name leaves values half-expanded: checking them says nothing */
		if (ld.errors.len == errors_before) {
			if (pin(&ld, running))
				reexpand(&ld);
			ld.running = running;
			config_convert(&ld);
		}
		for (size_t i = 0; i < PARAM_COUNT; i++)
			if (ld.expanded[i] == NULL)
				ld.expanded[i] = xstrdup("");
		keep_effective_values(&ld);
	}
	for (size_t i = 0; i < PARAM_COUNT; i++) {
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

struct config *config_load(const char *path, char **errors)
{
	return load(path, NULL, errors);
}

struct config *config_load_pinned(const char *path, const struct config *running,
				  char **errors)
{
	return load(path, running, errors);
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->file);
	config_free_fields(cfg);
	for (size_t i = 0; i < cfg->n_params; i++) {
		free(cfg->names[i]);
		free(cfg->values[i]);
	}
	free(cfg->names);
	free(cfg->values);
	free(cfg->origins);
	free(cfg);
}

/* print_value - a value as `relayguard config` shows it: the password in a
 * SECRET parameter's URL (redis://user:password@...) as ***, as in the logs. */
static void print_value(FILE *out, const struct param_def *p, const char *value)
{
	const char *scheme = strstr(value, "://"), *at = strrchr(value, '@');
	if (!p->secret || scheme == NULL || at == NULL || at < scheme) {
		fprintf(out, "%s = %s\n", p->name, value);
		return;
	}
	fprintf(out, "%s = %.*s***%s\n", p->name, (int)(scheme + 3 - value), value, at);
}

void config_print(const struct config *cfg, FILE *out)
{
	for (size_t i = 0; i < cfg->n_params && i < PARAM_COUNT; i++)
		print_value(out, &config_params[i], cfg->values[i]);
}

bool config_print_param(const struct config *cfg, size_t i, bool set_only, FILE *out)
{
	if (i >= cfg->n_params || i >= PARAM_COUNT || (set_only && cfg->origins[i].file == NULL))
		return false;
	print_value(out, &config_params[i], cfg->values[i]);
	return true;
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
