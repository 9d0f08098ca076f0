/*
 * log - one line per event, plain text or JSON, safe from any thread.
 *
 * Owns: the log format, escaping of untrusted values (a client's HELO name is
 * never allowed to forge a log line) and the destination (stderr).
 * Must not: decide what is worth logging; callers name the event and fields.
 *
 * Plain:  2026-01-01T00:00:00.000Z info rcpt client=127.0.0.9 reply="554 ..." session=4f2a
 * JSON:   {"time":"...","level":"info","event":"rcpt","client":"127.0.0.9",...}
 *
 * A "client" field (always our own text of the peer's address) comes first,
 * right after the event name, and "session" last, the others in the caller's
 * order; so a filter can anchor on "EVENT client=IP "
 * (fail2ban: "^ warning auth-failed client=<HOST>"). Values a client chose
 * (user=, helo=, from=, reply=, ...) are bare only if they are one token
 * without '=', blanks or quotes; otherwise quoted with '"', '\\' escaped and
 * control or non-ASCII bytes as \xNN, so they cannot pass for our fields.
 */
#ifndef RG_LOG_H
#define RG_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };
enum log_format { LOG_FORMAT_PLAIN, LOG_FORMAT_JSON };

struct log_kv {
	const char *key;
	const char *value; /* NULL values are left out */
};

void log_set_format(enum log_format format);
void log_set_debug(int enabled);

void log_event(enum log_level level, const char *event, const struct log_kv *kv,
	       size_t n);

/* log_ev(LOG_INFO, "connect", {"session", id}, {"client", ip}); */
#define log_ev(level, event, ...)                                                \
	log_event((level), (event), (const struct log_kv[]){__VA_ARGS__},       \
		  sizeof((const struct log_kv[]){__VA_ARGS__}) /                 \
			  sizeof(struct log_kv))

/* log_hold - this thread's lines wait in memory until log_release(), which
 * writes them with one write(2): the event loop holds them while it hands
 * back a batch of finished jobs (two lines a message, one syscall). Holds
 * nest; a held line is never longer in memory than the batch. */
void log_hold(void);
void log_release(void);
/* log_flush - the lines held so far go out now; the hold goes on. Called
 * before a reply leaves: a server killed right after a 250 must not take
 * the lines that record the message with it. */
void log_flush(void);

/* Free-form message: event "message", field "text". */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
