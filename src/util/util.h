/*
 * util - memory and string helpers shared by every module.
 *
 * Owns: allocation that dies loudly instead of returning NULL, bounded string
 * copies, ASCII case folding and small parsers (sizes, durations).
 * Must not: know anything about SMTP, configuration or the event loop.
 */
#ifndef RG_UTIL_H
#define RG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copy at most size-1 bytes and always terminate; returns strlen(src). */
size_t rg_strlcpy(char *dst, const char *src, size_t size);

/* ASCII-only case helpers: locale must never change how addresses compare. */
void rg_str_lower(char *s);
int rg_strcasecmp(const char *a, const char *b);
int rg_strncasecmp(const char *a, const char *b, size_t n);
bool rg_str_has_prefix_ci(const char *s, const char *prefix);

/* Trim leading and trailing blanks in place; returns the trimmed start. */
char *rg_str_trim(char *s);

/* Parse a non-negative decimal integer that must fit in *out; whole string. */
bool rg_parse_u64(const char *s, uint64_t *out);
/* Parse a Postfix time value ("300", "300s", "5m", "1h", "1d") into seconds. */
bool rg_parse_duration(const char *s, uint64_t *seconds);

/* A growable byte string, always NUL-terminated. */
struct strbuf {
	char *data;
	size_t len;
	size_t cap;
};
void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
void strbuf_append(struct strbuf *sb, const char *s, size_t n);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Take the buffer's string; the strbuf is left empty. */
char *strbuf_steal(struct strbuf *sb);

/* The monotonic clock: milliseconds, and seconds with a fraction (for latencies). */
uint64_t rg_now_ms(void);
double rg_monotonic(void);

#endif
