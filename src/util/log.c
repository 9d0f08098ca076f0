/*
 * log.c - event log lines (see log.h).
 */
#include "util/log.h"
#include "util/util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_FIELDS_MAX 32 /* per line; log_ev calls name a dozen at most */

static enum log_format log_format = LOG_FORMAT_PLAIN;
static int log_debug_enabled;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* log_hold: the lines this thread holds back, and how deep the holds nest */
static _Thread_local struct strbuf held;
static _Thread_local unsigned hold_depth;

static const char *const level_names[] = {"debug", "info", "warning", "error", "fatal"};

void log_set_format(enum log_format format)
{
	log_format = format;
}

void log_set_debug(int enabled)
{
	log_debug_enabled = enabled;
}

static void put_time(struct strbuf *sb)
{
	struct timeval tv;
	struct tm tm;
	char buf[32];
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_printf(sb, "%s.%03ldZ", buf, (long)(tv.tv_usec / 1000));
}

/* needs_quotes - a plain value is bare only when it is one token without '=',
 * blanks, quotes, backslashes, control or non-ASCII bytes; anything else is
 * quoted with those escaped. So no value, bare or quoted, can end early or
 * pass for another "key=value" field, whatever a client put in it. */
static int needs_quotes(const char *v)
{
	if (*v == '\0')
		return 1;
	for (; *v; v++)
		if (*v == ' ' || *v == '"' || *v == '=' || *v == '\\' ||
		    (unsigned char)*v < 0x20 || (unsigned char)*v >= 0x7f)
			return 1;
	return 0;
}

/* put_escaped - control and non-ASCII bytes become \xNN in both formats. */
static void put_escaped(struct strbuf *sb, const char *v, int json)
{
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			strbuf_append(sb, esc, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			strbuf_printf(sb, json ? "\\u%04x" : "\\x%02x", c);
		} else {
			strbuf_append(sb, (const char *)&c, 1);
		}
	}
}

static void put_plain(struct strbuf *sb, const struct log_kv *kv)
{
	strbuf_printf(sb, " %s=", kv->key);
	if (needs_quotes(kv->value)) {
		strbuf_puts(sb, "\"");
		put_escaped(sb, kv->value, 0);
		strbuf_puts(sb, "\"");
	} else {
		strbuf_puts(sb, kv->value);
	}
}

/* find_key - the index of field KEY (with a value), or N. */
static size_t find_key(const struct log_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (kv[i].value != NULL && strcmp(kv[i].key, key) == 0)
			return i;
	return n;
}

/* log_order - the fields as written: "client" first, right after the event name,
 * so "EVENT client=IP " can be anchored (fail2ban); "session" last; the others
 * in the caller's order. ORDER gets at most N indexes; returns how many. */
static size_t log_order(const struct log_kv *kv, size_t n, size_t *order)
{
	size_t c = find_key(kv, n, "client"), sid = find_key(kv, n, "session"), k = 0;
	if (c < n)
		order[k++] = c;
	for (size_t i = 0; i < n; i++)
		if (kv[i].value != NULL && i != c && i != sid)
			order[k++] = i;
	if (sid < n)
		order[k++] = sid;
	return k;
}

static void format_plain(struct strbuf *sb, enum log_level level, const char *event,
			 const struct log_kv *kv, const size_t *order, size_t k)
{
	put_time(sb);
	strbuf_printf(sb, " %s %s", level_names[level], event);
	for (size_t i = 0; i < k; i++)
		put_plain(sb, &kv[order[i]]);
}

static void put_json(struct strbuf *sb, const struct log_kv *kv)
{
	strbuf_puts(sb, ",\"");
	put_escaped(sb, kv->key, 1);
	strbuf_puts(sb, "\":\"");
	put_escaped(sb, kv->value, 1);
	strbuf_puts(sb, "\"");
}

static void format_json(struct strbuf *sb, enum log_level level, const char *event,
			const struct log_kv *kv, const size_t *order, size_t k)
{
	strbuf_puts(sb, "{\"time\":\"");
	put_time(sb);
	strbuf_printf(sb, "\",\"level\":\"%s\",\"event\":\"", level_names[level]);
	put_escaped(sb, event, 1);
	strbuf_puts(sb, "\"");
	for (size_t i = 0; i < k; i++)
		put_json(sb, &kv[order[i]]);
	strbuf_puts(sb, "}");
}

/* write_all - whole lines to stderr, under the lock (no interleaving). */
static void write_all(const char *p, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&log_lock);
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(STDERR_FILENO, p + off, n - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	pthread_mutex_unlock(&log_lock);
}

void log_event(enum log_level level, const char *event, const struct log_kv *kv,
	       size_t n)
{
	if (level == LOG_DEBUG && !log_debug_enabled)
		return;
	size_t order[LOG_FIELDS_MAX];
	size_t k = log_order(kv, n < LOG_FIELDS_MAX ? n : LOG_FIELDS_MAX, order);
	struct strbuf sb;
	strbuf_init(&sb);
	if (log_format == LOG_FORMAT_JSON)
		format_json(&sb, level, event, kv, order, k);
	else
		format_plain(&sb, level, event, kv, order, k);
	strbuf_puts(&sb, "\n");
	if (hold_depth > 0) {
		strbuf_append(&held, sb.data, sb.len);
		strbuf_free(&sb);
		if (level >= LOG_ERROR) { /* an error goes out at once, in order */
			write_all(held.data, held.len);
			strbuf_free(&held);
		}
		return;
	}
	write_all(sb.data, sb.len);
	strbuf_free(&sb);
}

void log_hold(void)
{
	hold_depth++;
}

void log_flush(void)
{
	if (held.len == 0) /* nothing held: the usual case, at every reply */
		return;
	write_all(held.data, held.len);
	strbuf_free(&held);
}

void log_release(void)
{
	if (hold_depth == 0 || --hold_depth > 0)
		return;
	log_flush();
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char text[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_ev(level, "message", {"text", text});
}
