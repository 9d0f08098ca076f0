/*
 * maps - lookup tables named the Postfix way: "type:name".
 *
 * Owns: loading tables into memory when the configuration is read (so a
 * lookup never does I/O and a bad table stops the start with file:line) and
 * the lookups themselves.
 *   /path or texthash:/path   "key [value]" per line, keys case-insensitive
 *   inline:{ key, key=value }  a table written in main.cf itself
 *   cidr:/path                "network value" per line, first match wins
 * Must not: interpret values; callers decide what "REJECT" or a key means.
 */
#ifndef RG_MAPS_H
#define RG_MAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

enum map_type { MAP_TEXTHASH, MAP_INLINE, MAP_CIDR };

struct map_entry {
	char *key;       /* lower case; NULL for cidr entries */
	struct cidr net; /* cidr entries */
	char *value;     /* "" when the line had only a key */
};

struct map {
	enum map_type type;
	char *spec; /* as written, for messages */
	struct map_entry *entries;
	size_t n;
};

/* Load "type:name". err receives "file:line: reason" on failure. */
struct map *map_open(const char *spec, char *err, size_t errlen);
void map_free(struct map *m);
/* A copy of M owning its own memory (a reload keeping a table read at start). */
struct map *map_dup(const struct map *m);
/* Do A and B hold the same entries, in the same order? */
bool map_equal(const struct map *a, const struct map *b);

/* Key lookup (texthash, inline); NULL when absent. */
const char *map_lookup(const struct map *m, const char *key);
/* Address lookup (cidr); NULL when no network matches. */
const char *map_lookup_ip(const struct map *m, const struct rg_ip *ip);

/* fn(arg, line, lineno, err, errlen) - one line as read (with its newline);
 * false with err stops the reading. */
typedef bool map_line_fn(void *arg, char *line, unsigned lineno, char *err, size_t errlen);
/* Call fn for each line of the file at path; false with err when it cannot
 * be opened ("cannot open <what> <path>: ..."), a line is longer than 4095
 * bytes ("path:line: ...") or fn says so. */
bool map_read_lines(const char *path, const char *what, map_line_fn *fn, void *arg,
		    char *err, size_t errlen);

/* The next item of a table value at *cursor (advanced past it), or NULL at
 * the end: commas separate items, and with blanks_separate so do spaces and
 * tabs (else blanks around an item are trimmed and blanks inside it kept);
 * a double-quoted part stays whole. Writes a NUL after the item. */
char *map_next_item(char **cursor, bool blanks_separate);

/* An access(5) table value: what check_client_access does with a match. */
enum access_action { ACCESS_OK, ACCESS_DUNNO, ACCESS_REJECT, ACCESS_DEFER };
struct access_result {
	enum access_action action;
	int code;          /* reply code for REJECT/DEFER: from the value or the default */
	const char *text;  /* points into the value; "" when none was given */
};
/* Parse "OK", "PERMIT", "DUNNO", "REJECT [text]", "DEFER [text]", "4xx/5xx text". */
bool map_access_parse(const char *value, struct access_result *out);

#endif
