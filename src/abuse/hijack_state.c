/*
 * hijack_state.c - the hijack hold's state file (see hijack_state.h).
 */
#include "abuse/hijack_state.h"
#include "abuse/hijack.h"
#include "util/statefile.h"
#include "util/basedir.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "# relayguard hijack-state 1\n"
#define PER_LINE 32
#define LINE_MAX_LEN 1200 /* "known " + a 255-byte login + 32 hashes, with room */
#define LOGIN_MAX 255

/* ---- writing ---- */

/* The snapshot the loop makes is a raw copy, one record per login: this
 * header, then the login, the reason and the hashes. Formatting millions
 * of hashes as text is left to the worker (statefile's render). */
struct record {
	uint32_t login_len, why_len, n;
	int64_t until;
};

/* put_hashes - " HEX" for each of the N hashes, and the newline. */
static void put_hashes(struct strbuf *out, const char *h, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char line[PER_LINE * 17 + 1];
	size_t len = 0;
	for (size_t k = 0; k < n; k++) {
		uint64_t v;
		memcpy(&v, h + k * sizeof(v), sizeof(v));
		line[len++] = ' ';
		for (int shift = 60; shift >= 0; shift -= 4)
			line[len++] = hex[(v >> shift) & 0xf];
	}
	line[len++] = '\n';
	strbuf_append(out, line, len);
}

static void copy_login(const char *login, time_t until, const char *why, const uint64_t *known,
		       size_t n, void *arg)
{
	struct strbuf *raw = arg;
	struct record r = {(uint32_t)strlen(login), (uint32_t)strlen(why), (uint32_t)n,
			   (int64_t)until};
	strbuf_append(raw, (const char *)&r, sizeof(r));
	strbuf_append(raw, login, r.login_len);
	strbuf_append(raw, why, r.why_len);
	strbuf_append(raw, (const char *)known, n * sizeof(*known));
}

void hijack_state_snapshot(const struct hijack *h, time_t now, struct strbuf *raw)
{
	hijack_each_login(h, now, HIJACK_STATE_LOGINS, copy_login, raw);
}

void hijack_state_render(const char *raw, size_t len, struct strbuf *out)
{
	strbuf_puts(out, HEADER);
	for (size_t at = 0; at + sizeof(struct record) <= len;) {
		struct record r;
		memcpy(&r, raw + at, sizeof(r));
		const char *login = raw + at + sizeof(r), *why = login + r.login_len;
		const char *known = why + r.why_len;
		if (r.until > 0)
			strbuf_printf(out, "suspended %.*s %lld %.*s\n", (int)r.login_len, login,
				      (long long)r.until, (int)r.why_len, why);
		for (size_t i = 0; i < r.n; i += PER_LINE) {
			strbuf_printf(out, "known %.*s", (int)r.login_len, login);
			put_hashes(out, known + i * sizeof(uint64_t), r.n - i < PER_LINE ? r.n - i
											 : PER_LINE);
		}
		at += sizeof(r) + r.login_len + r.why_len + (size_t)r.n * sizeof(uint64_t);
	}
}

void hijack_state_format(const struct hijack *h, time_t now, struct strbuf *out)
{
	struct strbuf raw;
	strbuf_init(&raw);
	hijack_state_snapshot(h, now, &raw);
	hijack_state_render(raw.data ? raw.data : "", raw.len, out);
	strbuf_free(&raw);
}

/* ---- reading ---- */

/* login_ok - 1..LOGIN_MAX printable ASCII characters, no space. */
static bool login_ok(const char *t)
{
	size_t n = 0;
	for (; t[n]; n++)
		if (n >= LOGIN_MAX || (unsigned char)t[n] <= 0x20 || (unsigned char)t[n] >= 0x7f)
			return false;
	return n > 0;
}

/* printable - WHY as it may reach a reply: printable ASCII only. */
static void printable(const char *t, char *out, size_t len)
{
	size_t n = 0;
	for (; t[n] && n + 1 < len; n++)
		out[n] = (unsigned char)t[n] < 0x20 || (unsigned char)t[n] >= 0x7f ? '?' : t[n];
	out[n] = '\0';
}

static bool suspended_line(struct hijack *h, const char *rest, time_t now, unsigned max)
{
	char login[LOGIN_MAX + 1], why[HIJACK_WHY_MAX], *end;
	int used = 0;
	if (sscanf(rest, "%255s %n", login, &used) != 1 || used == 0 || !login_ok(login) ||
	    !isdigit((unsigned char)rest[used]))
		return false;
	errno = 0;
	long long until = strtoll(rest + used, &end, 10);
	if (errno != 0 || until <= 0 || (*end != ' ' && *end != '\0'))
		return false;
	used = (int)(end - rest) + (*end == ' ');
	if (until <= now)
		return true; /* over while we were down */
	if (until > now + (long long)max)
		until = now + (long long)max;
	printable(rest + used, why, sizeof(why));
	hijack_suspend(h, login, now, (time_t)until, why);
	return true;
}

static bool known_line(struct hijack *h, const char *rest, time_t now)
{
	char login[LOGIN_MAX + 1];
	int used = 0;
	uint64_t hashes[PER_LINE];
	size_t n = 0;
	if (sscanf(rest, "%255s%n", login, &used) != 1 || !login_ok(login))
		return false;
	for (const char *p = rest + used; *p; ) {
		char *end;
		if (*p != ' ' || n == PER_LINE)
			return false;
		p++;
		if (!isxdigit((unsigned char)*p))
			return false;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 16);
		if (end == p || end - p > 16 || errno != 0 || (*end != ' ' && *end != '\0'))
			return false;
		hashes[n++] = v;
		p = end;
	}
	if (n == 0)
		return false;
	hijack_restore(h, login, hashes, n, now);
	return true;
}

bool hijack_state_line(struct hijack *h, const char *line, time_t now, unsigned max_suspend)
{
	if (line[0] == '#' || line[0] == '\0')
		return true;
	if (strlen(line) >= LINE_MAX_LEN)
		return false;
	if (strncmp(line, "suspended ", 10) == 0)
		return suspended_line(h, line + 10, now, max_suspend);
	if (strncmp(line, "known ", 6) == 0)
		return known_line(h, line + 6, now);
	return false;
}

/* got_len - how much fgets put in LINE (LEN bytes, all 'x' before the
 * call): up to the last NUL, as the line itself may hold a NUL byte. */
static size_t got_len(const char *line, size_t len)
{
	const char *end = memrchr(line, '\0', len);
	return end ? (size_t)(end - line) : 0;
}

/* read_lines - every line of F into H; the count of bad ones. */
static size_t read_lines(struct hijack *h, FILE *f, time_t now, unsigned max)
{
	char line[LINE_MAX_LEN + 2];
	size_t bad = 0;
	bool skipping = false; /* inside an over-long line */
	for (;;) {
		memset(line, 'x', sizeof(line));
		if (fgets(line, sizeof(line), f) == NULL)
			break;
		size_t len = got_len(line, sizeof(line));
		bool nl = len > 0 && line[len - 1] == '\n', whole = nl || feof(f);
		len -= nl;
		line[len] = '\0';
		if (skipping || !whole) {
			bad += !skipping;
			skipping = !whole;
			continue;
		}
		/* a NUL inside: not a line we wrote (the rest of it would be lost) */
		bad += strlen(line) != len || !hijack_state_line(h, line, now, max);
	}
	return bad;
}

bool hijack_state_load(struct hijack *h, const char *queue_dir, time_t now,
		       unsigned max_suspend, size_t *bad, char *err, size_t errlen)
{
	*bad = 0;
	bool absent;
	FILE *f = statefile_open_read(queue_dir, HIJACK_STATE_FILE, &absent, err, errlen);
	if (f == NULL)
		return absent;
	*bad = read_lines(h, f, now, max_suspend);
	fclose(f);
	return true;
}

bool hijack_state_lift(const char *queue_dir, const char *login, bool *was, char *err,
		       size_t errlen)
{
	struct hijack_limits lim = {1, 1, 0, 0, UINT32_MAX, HIJACK_KNOWN_DOMAINS,
				    HIJACK_MAX_LOGINS};
	struct hijack *h = hijack_new(&lim);
	time_t now = time(NULL);
	size_t bad;
	bool ok = hijack_state_load(h, queue_dir, now, UINT32_MAX, &bad, err, errlen);
	*was = ok && hijack_clear(h, login);
	if (*was) {
		struct strbuf sb;
		strbuf_init(&sb);
		hijack_state_format(h, now, &sb);
		ok = statefile_write(queue_dir, HIJACK_STATE_FILE, sb.data, sb.len, err, errlen);
		strbuf_free(&sb);
	}
	hijack_free(h);
	return ok;
}
