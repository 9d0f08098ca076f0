/*
 * metrics - what the server counts, and the Prometheus text that shows it.
 *
 * Owns: one process-wide registry of metric families (counters, gauges,
 * histograms), each with a fixed list of label names and at most
 * METRIC_SERIES_MAX label sets (later ones are counted under the value
 * "other": a client cannot grow it), and the text exposition format 0.0.4
 * (names, HELP, TYPE, escaped label values, cumulative buckets).
 * Must not: do I/O (the HTTP side is metrics_http.c), or take label values
 * from clients unchecked: callers pass values from fixed sets (a verb, a
 * restriction name from the configuration, a status), and anything else
 * becomes "other" through metric_choice().
 *
 * Updates take a mutex (a few tens of nanoseconds uncontended), so worker
 * threads may count too. Gauges that mirror state elsewhere (queue sizes) are
 * filled at scrape time by a collect function on the event loop.
 *
 *	static struct metric *rcpt;
 *	rcpt = metric_counter("relayguard_rcpt_total", "RCPT decisions", "result,restriction");
 *	metric_inc(rcpt, (const char *[]){"reject", "reject_unauth_destination"});
 */
#ifndef RG_METRICS_H
#define RG_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

#define METRIC_SERIES_MAX 64  /* label sets per family */
#define METRIC_LABELS_MAX 3   /* label names per family */
#define METRIC_BUCKETS_MAX 16 /* histogram bounds */

struct metric;

/* Families are made once (same name again: the same family); LABELS is a
 * comma-separated list of names or NULL. They live until metrics_reset(). */
struct metric *metric_counter(const char *name, const char *help, const char *labels);
struct metric *metric_gauge(const char *name, const char *help, const char *labels);
/* BOUNDS: ascending upper bounds in seconds (+Inf is added). No labels. */
struct metric *metric_histogram(const char *name, const char *help, const double *bounds,
				size_t n);

/* VALUES: one per label name (NULL when the family has none). M NULL: nothing. */
void metric_add(struct metric *m, const char *const *values, double v);
void metric_inc(struct metric *m, const char *const *values);
void metric_set(struct metric *m, const char *const *values, double v);
void metric_observe(struct metric *m, double seconds);

/* A gauge family filled just before each scrape (on the caller's thread):
 * FN calls metric_set() on M for each series. One collector per family. */
typedef void metric_collect_fn(struct metric *m, void *arg);
void metric_collector(struct metric *m, metric_collect_fn *fn, void *arg);

/* The whole registry in the text format, appended to OUT. */
void metrics_render(struct strbuf *out);
/* Forget every family (tests, and the end of serve). */
void metrics_reset(void);

/* One of the values in ALLOWED (case-insensitive, NULL-terminated), or "other". */
const char *metric_choice(const char *value, const char *const *allowed);

#endif
