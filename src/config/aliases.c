/*
 * aliases.c - /etc/aliases files (see aliases.h).
 *
 * DESCRIPTION
 *	aliases(5): "name: value, value, ..."; a line starting with white
 *	space continues the previous entry; '#' at the start of a line is a
 *	comment. The name may be quoted ("a b": ...). Values are checked one
 *	by one so that a pipe hidden in the middle of a list is refused too.
 */
#include "config/aliases.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIAS_ENTRY_MAX 65536 /* one entry with all its continuation lines */

/* One entry being read: its text and the line it started on; and the line
 * of every entry taken, for the duplicate check. */
struct pending {
	struct map *m;
	const char *path;
	struct strbuf text;
	unsigned line;
	unsigned *lines;
};

/* A name and where it was defined, for the duplicate check. */
struct defined {
	const char *key;
	unsigned line;
};

static int compare_keys(const void *a, const void *b)
{
	const struct map_entry *x = a, *y = b;
	return strcmp(x->key, y->key);
}

/* refused_value - why value cannot be delivered by this version, or NULL. */
static const char *refused_value(const char *v)
{
	const char *s = v[0] == '"' ? v + 1 : v;
	if (rg_strncasecmp(s, ":include:", 9) == 0)
		return ":include: files are not supported; list the addresses in this file";
	if (s[0] == '|')
		return "delivery to a command (|command) is not supported in this version";
	if (s[0] == '/')
		return "delivery to a file (/path) is not supported in this version";
	if (strchr(s, ' ') != NULL && v[0] != '"')
		return "an address cannot contain white space (separate addresses with commas)";
	return NULL;
}

/* check_values - every value of an entry is an address we can deliver to. */
static bool check_values(const char *value, const char *path, unsigned line, char *err,
			 size_t errlen)
{
	char *copy = xstrdup(value), *cursor = copy, *item;
	bool ok = true, any = false;
	while (ok && (item = map_next_item(&cursor, false)) != NULL) {
		const char *why = refused_value(item);
		any = true;
		if (why != NULL) {
			snprintf(err, errlen, "%s:%u: \"%.100s\": %s", path, line, item, why);
			ok = false;
		}
	}
	free(copy);
	if (ok && !any) {
		snprintf(err, errlen, "%s:%u: the alias has no value", path, line);
		ok = false;
	}
	return ok;
}

/* split_name - "name: rest" (the name may be quoted); NULL when there is no ':'. */
static char *split_name(char *text, char **rest)
{
	char *p = text;
	if (*p == '"') {
		p = strchr(p + 1, '"');
		if (p == NULL)
			return NULL;
	}
	p = strchr(p, ':');
	if (p == NULL)
		return NULL;
	*p = '\0';
	*rest = rg_str_trim(p + 1);
	char *name = rg_str_trim(text);
	size_t n = strlen(name);
	if (n >= 2 && name[0] == '"' && name[n - 1] == '"') {
		name[n - 1] = '\0';
		name++;
	}
	return name;
}

static void add_entry(struct map *m, const char *key, const char *value)
{
	m->entries = xrealloc(m->entries, (m->n + 1) * sizeof(*m->entries));
	struct map_entry *e = &m->entries[m->n++];
	memset(e, 0, sizeof(*e));
	e->key = xstrdup(key);
	rg_str_lower(e->key);
	e->value = xstrdup(value);
}

/* finish_entry - the entry read so far into the table; false with err. */
static bool finish_entry(struct map *m, struct pending *p, const char *path, char *err,
			 size_t errlen)
{
	if (p->text.len == 0)
		return true;
	char *value, *name = split_name(p->text.data, &value);
	bool ok = false;
	if (name == NULL || *name == '\0')
		snprintf(err, errlen, "%s:%u: expected \"name: address, ...\"", path, p->line);
	else if (strlen(name) > 64)
		snprintf(err, errlen, "%s:%u: alias name longer than 64 characters", path, p->line);
	else if (check_values(value, path, p->line, err, errlen)) {
		add_entry(m, name, value);
		p->lines = xrealloc(p->lines, m->n * sizeof(*p->lines));
		p->lines[m->n - 1] = p->line;
		ok = true;
	}
	strbuf_free(&p->text);
	return ok;
}

/* take_line - one raw line: a continuation, a comment, or a new entry. */
static bool take_line(void *arg, char *line, unsigned lineno, char *err, size_t errlen)
{
	struct pending *p = arg;
	line[strcspn(line, "\r\n")] = '\0';
	bool continuation = line[0] == ' ' || line[0] == '\t';
	char *s = rg_str_trim(line);
	if (*s == '#' || (*s == '\0' && !continuation))
		return true;
	if (*s == '\0')
		return true;
	if (continuation && p->text.len > 0) {
		if (p->text.len + strlen(s) > ALIAS_ENTRY_MAX) {
			snprintf(err, errlen, "%s:%u: entry longer than %d bytes", p->path, lineno,
				 ALIAS_ENTRY_MAX);
			return false;
		}
		strbuf_printf(&p->text, " %s", s);
		return true;
	}
	if (!finish_entry(p->m, p, p->path, err, errlen))
		return false;
	p->line = lineno;
	strbuf_puts(&p->text, s);
	return true;
}

static int compare_defined(const void *a, const void *b)
{
	const struct defined *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* no_duplicates - a name defined twice is an error at its second line
 * (Postfix would warn and keep one: a silent choice nobody can see). */
static bool no_duplicates(const struct map *m, const unsigned *lines, const char *path,
			  char *err, size_t errlen)
{
	struct defined *d = xcalloc(m->n ? m->n : 1, sizeof(*d));
	for (size_t i = 0; i < m->n; i++)
		d[i] = (struct defined){m->entries[i].key, lines[i]};
	qsort(d, m->n, sizeof(*d), compare_defined);
	bool ok = true;
	for (size_t i = 1; i < m->n && ok; i++) {
		if (strcmp(d[i].key, d[i - 1].key) == 0) {
			snprintf(err, errlen, "%s:%u: \"%s\" is defined twice (first at line %u)",
				 path, d[i].line, d[i].key, d[i - 1].line);
			ok = false;
		}
	}
	free(d);
	return ok;
}

static bool load(struct map *m, const char *path, char *err, size_t errlen)
{
	struct pending p = {.m = m, .path = path};
	bool ok = map_read_lines(path, "aliases file", take_line, &p, err, errlen);
	if (ok)
		ok = finish_entry(m, &p, path, err, errlen);
	if (ok)
		ok = no_duplicates(m, p.lines, path, err, errlen);
	if (ok)
		qsort(m->entries, m->n, sizeof(*m->entries), compare_keys);
	strbuf_free(&p.text);
	free(p.lines);
	return ok;
}

struct map *aliases_open(const char *spec, char *err, size_t errlen)
{
	const char *path = spec;
	if (strncmp(spec, "texthash:", 9) == 0)
		path = spec + 9;
	else if (strncmp(spec, "hash:", 5) == 0)
		path = spec + 5;
	if (path[0] != '/' && path[0] != '.') {
		snprintf(err, errlen, "unsupported alias table \"%s\" (use /path, hash:/path or "
			 "texthash:/path to a file in aliases(5) format)", spec);
		return NULL;
	}
	struct map *m = xcalloc(1, sizeof(*m));
	m->type = MAP_TEXTHASH;
	m->spec = xstrdup(spec);
	if (!load(m, path, err, errlen)) {
		map_free(m);
		return NULL;
	}
	return m;
}
