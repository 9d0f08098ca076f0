/*
 * hijack_state.c - the hijack hold's state file (see hijack_state.h).
 */
#include "abuse/hijack_state.h"
#include "abuse/hijack.h"
#include "tlspol/statefile.h"
#include "util/basedir.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER "# relayguard hijack-state 1\n"
#define PER_LINE 32
#define LINE_MAX_LEN 1200 /* "known " + a 255-byte login + 32 hashes, with room */
#define LOGIN_MAX 255

/* ---- writing ---- */

static void put_login(const char *login, time_t until, const char *why, const uint64_t *known,
		      size_t n, void *arg)
{
	struct strbuf *out = arg;
	if (until > 0)
		strbuf_printf(out, "suspended %s %lld %s\n", login, (long long)until, why);
	for (size_t i = 0; i < n; i += PER_LINE) {
		strbuf_printf(out, "known %s", login);
		for (size_t k = i; k < n && k < i + PER_LINE; k++)
			strbuf_printf(out, " %016" PRIx64, known[k]);
		strbuf_puts(out, "\n");
	}
}

void hijack_state_format(const struct hijack *h, time_t now, struct strbuf *out)
{
	strbuf_puts(out, HEADER);
	hijack_each_login(h, now, put_login, out);
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

/* read_lines - every line of F into H; the count of bad ones. */
static size_t read_lines(struct hijack *h, FILE *f, time_t now, unsigned max)
{
	char line[LINE_MAX_LEN + 2];
	size_t bad = 0;
	bool skipping = false; /* inside an over-long line */
	while (fgets(line, sizeof(line), f) != NULL) {
		char *nl = strchr(line, '\n');
		bool whole = nl != NULL || feof(f);
		if (nl)
			*nl = '\0';
		if (skipping || !whole) {
			bad += !skipping;
			skipping = !whole;
			continue;
		}
		bad += !hijack_state_line(h, line, now, max);
	}
	return bad;
}

bool hijack_state_load(struct hijack *h, const char *queue_dir, time_t now,
		       unsigned max_suspend, size_t *bad, char *err, size_t errlen)
{
	*bad = 0;
	int dfd = basedir_fd(queue_dir);
	int fd = dfd < 0 ? -1 : openat(dfd, HIJACK_STATE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && dfd >= 0 && errno == ENOENT)
		return true;
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s/%s: %s", queue_dir, HIJACK_STATE_FILE,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
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
