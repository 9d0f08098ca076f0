/*
 * abuse_bench.c - what the abuse checks cost per message, in-process and
 * through Redis (see bench/abuse.sh and bench/README.md).
 *
 *	abuse_bench [MESSAGES] [redis://IP:PORT/DB]
 *
 * One "message" is what a session asks of src/abuse/ for a submission with
 * three recipients: abuse_check(MESSAGE), three abuse_check(RECIPIENT) and
 * abuse_hold() with their three domains, from one of 10,000 clients and
 * 1,000 logins, every rate limit and the hijack detector on (limits high
 * enough that nothing is refused). With a Redis URL the same runs with
 * shared_state: the time includes every answer coming back. Then AUTH
 * failures counted through Redis per second (abuse_auth_failed), as one
 * relayguard would send them. Prints one line per figure.
 */
#include "abuse/abuse.h"
#include "auth/lockout.h"
#include "config/config.h"
#include "control/control.h"
#include "net/net.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct config *load(const char *shared)
{
	char path[] = "/tmp/rg-abuse-bench-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "myhostname = mx.example.com\nmynetworks = 127.0.0.1/32\n"
		"smtpd_client_message_rate_limit = 1000000000\n"
		"smtpd_client_recipient_rate_limit = 1000000000\n"
		"smtpd_sasl_message_rate_limit = 1000000000\n"
		"smtpd_sasl_recipient_rate_limit = 1000000000\n"
		"smtpd_sasl_hijack_threshold = 1000000\n"
		"smtpd_sasl_hijack_message_threshold = 1000000000\n"
		"smtpd_sasl_failure_limit = 1000000\n"
		"shared_state = %s\n", shared ? shared : "");
	fclose(f);
	char *errors = NULL;
	struct config *cfg = config_load(path, &errors);
	unlink(path);
	if (cfg == NULL) {
		fprintf(stderr, "abuse_bench: %s", errors ? errors : "config\n");
		exit(1);
	}
	return cfg;
}

/* one_message - the calls a session makes for one message with 3 recipients. */
static void one_message(struct abuse *a, unsigned k, time_t now)
{
	char ip_text[32], login[32], reply[ABUSE_REPLY_MAX];
	char d0[32], d1[32], d2[32];
	struct rg_ip ip;
	snprintf(ip_text, sizeof(ip_text), "10.%u.%u.%u", (k % 10000) / 256 / 256,
		 (k % 10000) / 256 % 256, k % 10000 % 256);
	ip_parse(ip_text, &ip);
	snprintf(login, sizeof(login), "user%u@example.com", k % 1000);
	snprintf(d0, sizeof(d0), "d%u.example", k % 50);
	snprintf(d1, sizeof(d1), "d%u.example", (k + 1) % 50);
	snprintf(d2, sizeof(d2), "d%u.example", (k + 2) % 50);
	const char *domains[] = {d0, d1, d2};
	struct abuse_client c = {&ip, ip_text, login, "bench"};
	abuse_check(a, ABUSE_MESSAGE, &c, now, reply, sizeof(reply));
	for (int r = 0; r < 3; r++)
		abuse_check(a, ABUSE_RECIPIENT, &c, now, reply, sizeof(reply));
	abuse_hold(a, &c, domains, 3, now);
}

/* drain - run the loop until every Redis answer is in. */
static void drain(struct event_base *base, struct abuse *a)
{
	while (abuse_shared_pending(a) > 0)
		event_base_loop(base, EVLOOP_ONCE);
}

static double run(struct abuse *a, struct event_base *base, unsigned n)
{
	time_t now = time(NULL);
	double t0 = now_s();
	for (unsigned k = 0; k < n; k++) {
		one_message(a, k, now);
		if (base && k % 256 == 255) /* a session's pace: bounded requests in flight */
			drain(base, a);
	}
	if (base)
		drain(base, a);
	return now_s() - t0;
}

static void auth_failures(struct abuse *a, struct event_base *base, unsigned n)
{
	double t0 = now_s();
	for (unsigned k = 0; k < n; k++) {
		struct rg_ip ip;
		char text[32];
		snprintf(text, sizeof(text), "10.9.%u.%u", (k / 256) % 256, k % 256);
		ip_parse(text, &ip);
		abuse_auth_failed(a, &ip, false, time(NULL));
		if (k % 256 == 255)
			drain(base, a);
	}
	drain(base, a);
	double t = now_s() - t0;
	struct strbuf st;
	strbuf_init(&st);
	abuse_control_ops.stats(a, &st);
	const char *f = strstr(st.data, "shared_failures ");
	printf("redis: %u AUTH failures counted in %.3f s: %.0f/s (one process; %.*s)\n", n, t,
	       (double)n / t, f ? (int)strcspn(f, "\n") : 0, f ? f : "");
	strbuf_free(&st);
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 200000;
	const char *url = argc > 2 ? argv[2] : NULL;
	struct config *cfg = load(NULL);
	struct lockout *lo = lockout_new(5, 600, 900, 100000);
	struct abuse *a = abuse_new(cfg, lo);
	run(a, NULL, n / 10); /* warm: tables filled */
	double t = run(a, NULL, n);
	printf("in-process: %u messages in %.3f s: %.2f us per message (5 checks + hold)\n", n, t,
	       t * 1e6 / n);
	abuse_free(a);
	config_free(cfg);
	if (url != NULL) {
		cfg = load(url);
		struct event_base *base = event_base_new();
		char err[256];
		a = abuse_new(cfg, lo);
		if (!abuse_share(a, base, err, sizeof(err))) {
			fprintf(stderr, "abuse_bench: %s\n", err);
			return 1;
		}
		for (int i = 0; i < 100; i++) /* connect */
			event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(100000);
		event_base_loop(base, EVLOOP_NONBLOCK);
		unsigned rn = n / 10;
		t = run(a, base, rn);
		printf("redis: %u messages in %.3f s: %.2f us per message (8 counters in Redis each, "
		       "answers awaited)\n", rn, t, t * 1e6 / rn);
		auth_failures(a, base, rn);
		abuse_free(a);
		config_free(cfg);
		event_base_free(base);
	}
	lockout_free(lo);
	return 0;
}
