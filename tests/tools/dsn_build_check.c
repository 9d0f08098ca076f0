/*
 * dsn_build_check - print the DSN src/queue/bounce.c builds from arguments.
 *
 * usage: dsn_build_check [-m MTA] [-q QUEUE_ID] [-e ENVID] [-s SENDER] [-t TO]
 *                        [-f FROM] [-a ARRIVAL] [-n NOW] [-l SIZE_LIMIT] [-H]
 *                        MESSAGE_FILE [FINAL ORIG ACTION STATUS REMOTE DIAG LAST RETRY]...
 *
 * Each recipient is eight arguments; "-" stands for NULL (or 0 for the two
 * times), ACTION is failed, delayed, delivered or relayed. MESSAGE_FILE "-"
 * means no original. -H is RET=HDRS; -s "" is the null sender. Times are Unix
 * seconds. The DSN goes to stdout byte for byte; stderr gets "body=8BITMIME"
 * or "body=7BIT" (dsn_build's answer). Exit status 0, or 2 on usage errors.
 * Test tool; not installed.
 */
#include "queue/bounce.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MESSAGE_MAX (64u << 20)
#define RCPT_ARGS 8

static int usage(void)
{
	fprintf(stderr, "usage: dsn_build_check [-m MTA] [-q QUEUE_ID] [-e ENVID] [-s SENDER] "
			"[-t TO] [-f FROM] [-a ARRIVAL] [-n NOW] [-l SIZE_LIMIT] [-H] "
			"MESSAGE_FILE [FINAL ORIG ACTION STATUS REMOTE DIAG LAST RETRY]...\n");
	return 2;
}

/* opt - "-" is NULL. */
static const char *opt(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

static bool parse_time(const char *s, time_t *out)
{
	if (strcmp(s, "-") == 0) {
		*out = 0;
		return true;
	}
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return false;
	*out = (time_t)v;
	return true;
}

static bool parse_action(const char *s, enum dsn_action *out)
{
	static const enum dsn_action all[] = { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED };
	for (size_t i = 0; i < RG_ARRAY_LEN(all); i++)
		if (strcmp(s, dsn_action_name(all[i])) == 0) {
			*out = all[i];
			return true;
		}
	return false;
}

/* read_file - the whole file into sb; false (with a message) on errors. */
static bool read_file(const char *path, struct strbuf *sb)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "dsn_build_check: %s: %s\n", path, strerror(errno));
		return false;
	}
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && sb->len + n <= MESSAGE_MAX)
		strbuf_append(sb, buf, n);
	bool ok = !ferror(f) && n == 0;
	fclose(f);
	if (!ok)
		fprintf(stderr, "dsn_build_check: %s: read error or larger than %u bytes\n", path,
			MESSAGE_MAX);
	return ok;
}

/* parse_rcpt - eight arguments into one recipient. */
static bool parse_rcpt(char **a, struct dsn_rcpt *rc)
{
	rc->final_rcpt = opt(a[0]);
	rc->orig_rcpt = opt(a[1]);
	rc->status = opt(a[3]);
	rc->remote_mta = opt(a[4]);
	rc->diagnostic = opt(a[5]);
	return parse_action(a[2], &rc->action) && parse_time(a[6], &rc->last_attempt) &&
	       parse_time(a[7], &rc->will_retry_until);
}

int main(int argc, char **argv)
{
	struct dsn_report r = {
		.reporting_mta = "mail.example.com", .queue_id = "0000000000ABC123",
		.sender = "alice@example.com", .arrival = 1767225600, .now = 1767229200,
		.size_limit = DSN_SIZE_LIMIT_DEFAULT,
	};
	const char *from = "MAILER-DAEMON@mail.example.com";
	unsigned long long limit;
	int c;
	while ((c = getopt(argc, argv, "m:q:e:s:t:f:a:n:l:H")) != -1) {
		switch (c) {
		case 'm': r.reporting_mta = optarg; break;
		case 'q': r.queue_id = optarg; break;
		case 'e': r.envid = optarg; break;
		case 's': r.sender = optarg; break;
		case 't': r.to = optarg; break;
		case 'f': from = optarg; break;
		case 'a': if (!parse_time(optarg, &r.arrival)) return usage(); break;
		case 'n': if (!parse_time(optarg, &r.now)) return usage(); break;
		case 'l':
			if (sscanf(optarg, "%llu", &limit) != 1)
				return usage();
			r.size_limit = (size_t)limit;
			break;
		case 'H': r.headers_only = true; break;
		default: return usage();
		}
	}
	if (r.to == NULL)
		r.to = r.sender;
	int rest = argc - optind - 1;
	if (rest < 0 || rest % RCPT_ARGS != 0)
		return usage();
	struct dsn_rcpt *rcpts = xcalloc((size_t)rest / RCPT_ARGS + 1, sizeof(*rcpts));
	for (int i = 0; i < rest / RCPT_ARGS; i++)
		if (!parse_rcpt(argv + optind + 1 + i * RCPT_ARGS, &rcpts[i])) {
			free(rcpts);
			return usage();
		}
	r.rcpts = rcpts;
	r.n_rcpts = (size_t)rest / RCPT_ARGS;

	struct strbuf msg, out;
	strbuf_init(&msg);
	strbuf_init(&out);
	int status = 0;
	if (strcmp(argv[optind], "-") != 0) {
		if (!read_file(argv[optind], &msg))
			status = 2;
		r.message = msg.data;
		r.message_len = msg.len;
	}
	if (status == 0) {
		bool eight = dsn_build(&r, from, &out);
		fwrite(out.data, 1, out.len, stdout);
		fprintf(stderr, "body=%s\n", eight ? "8BITMIME" : "7BIT");
	}
	strbuf_free(&msg);
	strbuf_free(&out);
	free(rcpts);
	return status;
}
