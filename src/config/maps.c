/*
 * maps.c - lookup tables (see maps.h).
 */
#include "config/maps.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_LINE_MAX 4096

static void add_entry(struct map *m, char *key, const struct cidr *net, const char *value)
{
	m->entries = xrealloc(m->entries, (m->n + 1) * sizeof(*m->entries));
	struct map_entry *e = &m->entries[m->n++];
	memset(e, 0, sizeof(*e));
	e->key = key;
	if (net != NULL)
		e->net = *net;
	e->value = xstrdup(value);
}

/* split_key_value - "key  value..." -> key, value ("" when none). */
static char *split_key_value(char *line, char **value)
{
	char *p = line;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p) {
		*p++ = '\0';
		*value = rg_str_trim(p);
	} else {
		*value = p;
	}
	return line;
}

/* load_line - one non-comment line of a file table. */
static bool load_line(struct map *m, char *line, const char *path, unsigned lineno,
		      char *err, size_t errlen)
{
	char *value, *key = split_key_value(line, &value);
	if (m->type == MAP_CIDR) {
		struct cidr net;
		char why[256];
		if (!cidr_parse(key, &net, why, sizeof(why))) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
			return false;
		}
		if (*value == '\0') {
			snprintf(err, errlen, "%s:%u: \"%s\" needs an action (OK, REJECT, ...)",
				 path, lineno, key);
			return false;
		}
		add_entry(m, NULL, &net, value);
		return true;
	}
	char *k = xstrdup(key);
	rg_str_lower(k);
	add_entry(m, k, NULL, value);
	return true;
}

/* map_read_lines - see maps.h. */
bool map_read_lines(const char *path, const char *what, map_line_fn *fn, void *arg,
		    char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
		return false;
	}
	char line[MAP_LINE_MAX];
	unsigned lineno = 0;
	bool ok = true;
	while (ok && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
				 MAP_LINE_MAX);
			ok = false;
		} else {
			ok = fn(arg, line, lineno, err, errlen);
		}
	}
	fclose(f);
	return ok;
}

/* A file table being read. */
struct file_load {
	struct map *m;
	const char *path;
};

/* file_line - one line of a file table; blank ones and comments are skipped. */
static bool file_line(void *arg, char *line, unsigned lineno, char *err, size_t errlen)
{
	const struct file_load *fl = arg;
	char *s = rg_str_trim(line);
	if (*s == '\0' || *s == '#')
		return true;
	return load_line(fl->m, s, fl->path, lineno, err, errlen);
}

static bool load_file(struct map *m, const char *path, char *err, size_t errlen)
{
	struct file_load fl = {m, path};
	return map_read_lines(path, "table", file_line, &fl, err, errlen);
}

/* map_next_item - see maps.h. */
char *map_next_item(char **cursor, bool blanks_separate)
{
	char *p = *cursor;
	while (*p == ',' || *p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return NULL;
	char *start = p;
	bool quoted = false;
	for (; *p && (quoted || !(*p == ',' || (blanks_separate && (*p == ' ' || *p == '\t'))));
	     p++) {
		if (*p == '\\' && quoted && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
	}
	if (*p != '\0')
		*p++ = '\0';
	*cursor = p;
	return blanks_separate ? start : rg_str_trim(start);
}

/* load_inline - "{ a, b=c, { d e } }" as Postfix's inline: table. */
static bool load_inline(struct map *m, const char *body, char *err, size_t errlen)
{
	size_t n = strlen(body);
	if (n < 2 || body[0] != '{' || body[n - 1] != '}') {
		snprintf(err, errlen, "inline table must be written inline:{ key, key=value }");
		return false;
	}
	char *copy = xstrndup(body + 1, n - 2);
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *t = rg_str_trim(tok);
		if (*t == '\0')
			continue;
		char *eq = strchr(t, '=');
		const char *value = "";
		if (eq != NULL) {
			*eq = '\0';
			value = rg_str_trim(eq + 1);
			t = rg_str_trim(t);
		}
		char *k = xstrdup(t);
		rg_str_lower(k);
		add_entry(m, k, NULL, value);
	}
	free(copy);
	return true;
}

static int compare_keys(const void *a, const void *b)
{
	const struct map_entry *x = a, *y = b;
	return strcmp(x->key, y->key);
}

/* sort_keys - key tables are searched by bisection (user lists can be long). */
static void sort_keys(struct map *m)
{
	if (m->type != MAP_CIDR && m->n > 1)
		qsort(m->entries, m->n, sizeof(*m->entries), compare_keys);
}

struct map *map_open(const char *spec, char *err, size_t errlen)
{
	struct map *m = xcalloc(1, sizeof(*m));
	m->spec = xstrdup(spec);
	bool ok;
	if (strncmp(spec, "inline:", 7) == 0) {
		m->type = MAP_INLINE;
		ok = load_inline(m, spec + 7, err, errlen);
	} else if (strncmp(spec, "cidr:", 5) == 0) {
		m->type = MAP_CIDR;
		ok = load_file(m, spec + 5, err, errlen);
	} else if (strncmp(spec, "texthash:", 9) == 0) {
		m->type = MAP_TEXTHASH;
		ok = load_file(m, spec + 9, err, errlen);
	} else if (spec[0] == '/' || spec[0] == '.') {
		m->type = MAP_TEXTHASH;
		ok = load_file(m, spec, err, errlen);
	} else {
		snprintf(err, errlen, "unsupported table \"%s\" (use a /path, texthash:/path, "
			 "inline:{...} or cidr:/path)", spec);
		ok = false;
	}
	if (!ok) {
		map_free(m);
		return NULL;
	}
	sort_keys(m);
	return m;
}

void map_free(struct map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->entries[i].key);
		free(m->entries[i].value);
	}
	free(m->entries);
	free(m->spec);
	free(m);
}

struct map *map_dup(const struct map *m)
{
	struct map *c = xcalloc(1, sizeof(*c));
	*c = *m;
	c->spec = xstrdup(m->spec);
	c->entries = xcalloc(m->n ? m->n : 1, sizeof(*c->entries));
	for (size_t i = 0; i < m->n; i++) {
		c->entries[i] = m->entries[i];
		c->entries[i].key = m->entries[i].key ? xstrdup(m->entries[i].key) : NULL;
		c->entries[i].value = xstrdup(m->entries[i].value);
	}
	return c;
}

/* same_text - two entry strings, either of which may be NULL (cidr keys). */
static bool same_text(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool map_equal(const struct map *a, const struct map *b)
{
	if (a->type != b->type || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct map_entry *x = &a->entries[i], *y = &b->entries[i];
		if (!same_text(x->key, y->key) || !same_text(x->value, y->value) ||
		    (a->type == MAP_CIDR &&
		     (x->net.prefix != y->net.prefix || !ip_equal(&x->net.net, &y->net.net))))
			return false;
	}
	return true;
}

const char *map_lookup(const struct map *m, const char *key)
{
	if (m->type == MAP_CIDR || m->n == 0)
		return NULL;
	char *lower = xstrdup(key);
	rg_str_lower(lower); /* keys were lowered when loaded */
	struct map_entry probe = {.key = lower};
	const struct map_entry *e = bsearch(&probe, m->entries, m->n, sizeof(*m->entries),
					    compare_keys);
	free(lower);
	return e ? e->value : NULL;
}

const char *map_lookup_ip(const struct map *m, const struct rg_ip *ip)
{
	if (m->type != MAP_CIDR)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (cidr_match(&m->entries[i].net, ip))
			return m->entries[i].value;
	return NULL;
}

bool map_access_parse(const char *value, struct access_result *out)
{
	static const struct { const char *word; enum access_action action; int code; } words[] = {
		{"OK", ACCESS_OK, 0}, {"PERMIT", ACCESS_OK, 0}, {"DUNNO", ACCESS_DUNNO, 0},
		{"REJECT", ACCESS_REJECT, 554}, {"DEFER", ACCESS_DEFER, 450},
	};
	size_t n = strcspn(value, " \t");
	const char *rest = value + n;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	out->text = rest;
	for (size_t i = 0; i < RG_ARRAY_LEN(words); i++) {
		if (strlen(words[i].word) == n && rg_strncasecmp(value, words[i].word, n) == 0) {
			out->action = words[i].action;
			out->code = words[i].code;
			return true;
		}
	}
	if (n == 3 && (value[0] == '4' || value[0] == '5') && value[1] >= '0' &&
	    value[1] <= '9' && value[2] >= '0' && value[2] <= '9') {
		out->code = atoi(value);
		out->action = value[0] == '4' ? ACCESS_DEFER : ACCESS_REJECT;
		return true;
	}
	return false;
}
