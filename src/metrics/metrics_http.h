/*
 * metrics_http - the scrape endpoint: GET /metrics on metrics_listen.
 *
 * Owns: an HTTP listener (libevent's evhttp, on the event loop) that answers
 * GET or HEAD /metrics with the registry in Prometheus text format, 404 for
 * any other path and 405 for any other method, with small header/body
 * limits, a timeout and at most 32 connections at once (more are closed at
 * once), so an idle, slow or greedy client costs nothing.
 * Must not: serve anything but the metrics, or block (rendering is a walk
 * of a few hundred counters).
 */
#ifndef RG_METRICS_HTTP_H
#define RG_METRICS_HTTP_H

#include <stddef.h>

struct event_base;
struct metrics_http;

/* Listen on HOST ("127.0.0.1", "::1", "*") and PORT; NULL with ERR. */
struct metrics_http *metrics_http_new(struct event_base *base, const char *host, unsigned port,
				      char *err, size_t errlen);
void metrics_http_free(struct metrics_http *h);

#endif
