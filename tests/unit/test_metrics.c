/*
 * test_metrics - the registry and its Prometheus text.
 */
#include "check.h"
#include "metrics/events.h"
#include "metrics/metrics.h"

#include <stdlib.h>

static char *render(void)
{
	struct strbuf sb;
	strbuf_init(&sb);
	metrics_render(&sb);
	return sb.data ? strbuf_steal(&sb) : xstrdup("");
}

static void check_has(const char *text, const char *want, int line)
{
	CHECK_AT(line, strstr(text, want) != NULL, "missing \"%s\" in:\n%s", want, text);
}

static void check_counters(void)
{
	metrics_reset();
	struct metric *c = metric_counter("t_rcpt_total", "RCPT\ndecisions", "result,restriction");
	CHECK(metric_counter("t_rcpt_total", "x", NULL) == c, "same name, same family");
	metric_inc(c, (const char *[]){"reject", "reject_unauth_destination"});
	metric_inc(c, (const char *[]){"reject", "reject_unauth_destination"});
	metric_add(c, (const char *[]){"accept", "a\"b\\c\nd"}, 3);
	char *t = render();
	check_has(t, "# HELP t_rcpt_total RCPT\\ndecisions\n# TYPE t_rcpt_total counter\n",
		  __LINE__);
	check_has(t, "t_rcpt_total{result=\"reject\",restriction=\"reject_unauth_destination\"} 2\n",
		  __LINE__);
	check_has(t, "t_rcpt_total{result=\"accept\",restriction=\"a\\\"b\\\\c\\nd\"} 3\n", __LINE__);
	free(t);
}

static void check_overflow(void)
{
	metrics_reset();
	struct metric *c = metric_counter("t_many_total", "many", "who");
	for (int i = 0; i < 200; i++) {
		char v[16];
		snprintf(v, sizeof(v), "v%d", i);
		metric_inc(c, (const char *[]){v});
	}
	char *t = render();
	size_t lines = 0;
	for (const char *p = t; (p = strstr(p, "t_many_total{")) != NULL; p++)
		lines++;
	CHECK(lines == METRIC_SERIES_MAX, "%zu series, at most %d", lines, METRIC_SERIES_MAX);
	check_has(t, "t_many_total{who=\"other\"} 137\n", __LINE__);
	check_has(t, "t_many_total{who=\"v0\"} 1\n", __LINE__);
	free(t);
}

static void check_histogram(void)
{
	metrics_reset();
	static const double b[] = {0.01, 0.1, 1};
	struct metric *h = metric_histogram("t_seconds", "latency", b, 3);
	char *t = render();
	check_has(t, "t_seconds_bucket{le=\"+Inf\"} 0\nt_seconds_sum 0\nt_seconds_count 0\n",
		  __LINE__);
	free(t);
	metric_observe(h, 0.005);
	metric_observe(h, 0.05);
	metric_observe(h, 0.05);
	metric_observe(h, 7);
	t = render();
	check_has(t, "# TYPE t_seconds histogram\nt_seconds_bucket{le=\"0.01\"} 1\n"
		     "t_seconds_bucket{le=\"0.1\"} 3\nt_seconds_bucket{le=\"1\"} 3\n"
		     "t_seconds_bucket{le=\"+Inf\"} 4\nt_seconds_sum 7.105\nt_seconds_count 4\n",
		  __LINE__);
	free(t);
}

static void queue_counts(void *arg, unsigned long counts[4])
{
	(void)arg;
	counts[0] = 1;
	counts[2] = 42;
}

static void check_events(void)
{
	metrics_reset();
	mev_init();
	char *t = render();
	check_has(t, "# TYPE relayguard_rcpt_total counter\n", __LINE__);
	check_has(t, "relayguard_accept_seconds_count 0\n", __LINE__);
	free(t);
	mev_command("rcpt");
	mev_command("X-EVIL\nfoo");
	mev_rcpt("reject", "reject_unauth_destination");
	mev_tls("TLSv1.3");
	mev_delivery("delivered", "smtp", 0.2);
	mev_queue_source(queue_counts, NULL);
	mev_rate_limited("smtpd_client_message_rate_limit");
	mev_rate_limited("not_a_limit");
	mev_hijack("held");
	t = render();
	check_has(t, "relayguard_commands_total{verb=\"RCPT\"} 1\n", __LINE__);
	check_has(t, "relayguard_commands_total{verb=\"other\"} 1\n", __LINE__);
	check_has(t, "relayguard_rcpt_total{result=\"reject\",restriction=\"reject_unauth_destination\"} 1\n",
		  __LINE__);
	check_has(t, "relayguard_tls_handshakes_total{version=\"TLSv1.3\"} 1\n", __LINE__);
	check_has(t, "relayguard_delivery_attempts_total{status=\"delivered\",transport=\"smtp\"} 1\n",
		  __LINE__);
	check_has(t, "relayguard_queue_messages{state=\"deferred\"} 42\n", __LINE__);
	check_has(t, "relayguard_rate_limited_total{limit=\"smtpd_client_message_rate_limit\"} 1\n",
		  __LINE__);
	check_has(t, "relayguard_rate_limited_total{limit=\"other\"} 1\n", __LINE__);
	check_has(t, "relayguard_hijack_total{event=\"held\"} 1\n", __LINE__);
	free(t);
	mev_reset();
	mev_command("RCPT"); /* after the end: counts nowhere, and does not crash */
	t = render();
	CHECK(t[0] == '\0', "nothing left: %s", t);
	free(t);
}

int main(void)
{
	check_counters();
	check_overflow();
	check_histogram();
	check_events();
	return check_summary("metrics");
}
