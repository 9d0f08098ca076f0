/*
 * metrics_bench - what the metrics cost per message.
 *
 * A message through the MTA port counts, in the session and the queue
 * manager: a connection, a session open and closed, EHLO MAIL RCPT DATA QUIT
 * (5 commands), one RCPT decision, one message with its bytes and latency,
 * one delivery with its latency. This makes those 12 calls N times, with a
 * scrape every 10,000 messages (far more often than Prometheus asks), and
 * prints the time per message; compare it with the time a message takes
 * end to end (make bench: about 650 us at 1,500 messages/s here).
 *
 *	build/bench-tools/metrics_bench [messages]
 */
#include "metrics/events.h"
#include "metrics/metrics.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>

static void one_message(void)
{
	static const char *const verbs[] = {"EHLO", "MAIL", "RCPT", "DATA", "QUIT"};
	mev_connection();
	mev_session_open(+1);
	for (size_t i = 0; i < 5; i++)
		mev_command(verbs[i]);
	mev_rcpt("accept", "permit_mynetworks");
	mev_message(true, 4096, 0.0004);
	mev_delivery("delivered", "local", 0.002);
	mev_session_open(-1);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	mev_init();
	size_t scraped = 0;
	double start = rg_monotonic();
	for (long i = 0; i < n; i++) {
		one_message();
		if (i % 10000 == 0) {
			struct strbuf sb;
			strbuf_init(&sb);
			metrics_render(&sb);
			scraped += sb.len;
			strbuf_free(&sb);
		}
	}
	double took = rg_monotonic() - start;
	printf("metrics: %ld messages in %.3f s: %.3f us per message (12 counter updates; "
	       "a scrape of %zu bytes every 10,000)\n",
	       n, took, took * 1e6 / (double)n, n ? scraped / (size_t)(n / 10000 + 1) : 0);
	mev_reset();
	return 0;
}
