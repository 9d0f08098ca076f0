/*
 * metrics.c - the registry and its text exposition (see metrics.h).
 *
 * DESCRIPTION
 *	Families sit in a list in the order they were made (the scrape shows
 *	them so). A family's series are found by a linear scan of at most
 *	METRIC_SERIES_MAX label sets: a handful of string compares, cheaper
 *	than the reply line the event that counts it writes.
 */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct series {
	char *values[METRIC_LABELS_MAX];
	double v;
	unsigned long long buckets[METRIC_BUCKETS_MAX + 1]; /* histograms: per bound, +Inf */
	double sum;
	unsigned long long count;
};

struct metric {
	char *name, *help;
	enum metric_type type;
	char *labels[METRIC_LABELS_MAX];
	size_t n_labels;
	double bounds[METRIC_BUCKETS_MAX];
	size_t n_bounds;
	struct series series[METRIC_SERIES_MAX];
	size_t n_series;
	metric_collect_fn *collect;
	void *collect_arg;
	struct metric *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric *families, **tail = &families;

static const char *const other_values[METRIC_LABELS_MAX] = {"other", "other", "other"};

/* split_labels - "a,b" into M's label names. */
static void split_labels(struct metric *m, const char *labels)
{
	while (labels && *labels && m->n_labels < METRIC_LABELS_MAX) {
		size_t n = strcspn(labels, ",");
		m->labels[m->n_labels++] = xstrndup(labels, n);
		labels += n + (labels[n] == ',');
	}
}

static struct metric *find_family(const char *name)
{
	for (struct metric *m = families; m; m = m->next)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

/* family - NAME's family, made on first use. */
static struct metric *family(const char *name, const char *help, enum metric_type type,
			     const char *labels)
{
	pthread_mutex_lock(&lock);
	struct metric *m = find_family(name);
	if (m == NULL) {
		m = xcalloc(1, sizeof(*m));
		m->name = xstrdup(name);
		m->help = xstrdup(help);
		m->type = type;
		split_labels(m, labels);
		*tail = m;
		tail = &m->next;
	}
	pthread_mutex_unlock(&lock);
	return m;
}

struct metric *metric_counter(const char *name, const char *help, const char *labels)
{
	return family(name, help, METRIC_COUNTER, labels);
}

struct metric *metric_gauge(const char *name, const char *help, const char *labels)
{
	return family(name, help, METRIC_GAUGE, labels);
}

struct metric *metric_histogram(const char *name, const char *help, const double *bounds,
				size_t n)
{
	struct metric *m = family(name, help, METRIC_HISTOGRAM, NULL);
	pthread_mutex_lock(&lock);
	m->n_bounds = n < METRIC_BUCKETS_MAX ? n : METRIC_BUCKETS_MAX;
	memcpy(m->bounds, bounds, m->n_bounds * sizeof(double));
	pthread_mutex_unlock(&lock);
	return m;
}

static bool same_values(const struct metric *m, const struct series *s,
			const char *const *values)
{
	for (size_t i = 0; i < m->n_labels; i++)
		if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
			return false;
	return true;
}

static struct series *new_series(struct metric *m, const char *const *values)
{
	struct series *s = &m->series[m->n_series++];
	for (size_t i = 0; i < m->n_labels; i++)
		s->values[i] = xstrdup(values[i] ? values[i] : "");
	return s;
}

/* series - the series for VALUES (lock held); past the limit, "other". */
static struct series *series(struct metric *m, const char *const *values)
{
	if (m->n_labels == 0)
		return m->n_series ? &m->series[0] : new_series(m, NULL);
	for (size_t k = 0; k < m->n_series; k++)
		if (same_values(m, &m->series[k], values))
			return &m->series[k];
	if (m->n_series + 1 < METRIC_SERIES_MAX)
		return new_series(m, values);
	for (size_t k = 0; k < m->n_series; k++) /* the last slot is kept for "other" */
		if (same_values(m, &m->series[k], other_values))
			return &m->series[k];
	return new_series(m, other_values);
}

void metric_add(struct metric *m, const char *const *values, double v)
{
	if (m == NULL) /* not made (metrics off, or a test without them) */
		return;
	pthread_mutex_lock(&lock);
	series(m, values)->v += v;
	pthread_mutex_unlock(&lock);
}

void metric_inc(struct metric *m, const char *const *values)
{
	metric_add(m, values, 1);
}

void metric_set(struct metric *m, const char *const *values, double v)
{
	if (m == NULL) /* not made (metrics off, or a test without them) */
		return;
	pthread_mutex_lock(&lock);
	series(m, values)->v = v;
	pthread_mutex_unlock(&lock);
}

void metric_observe(struct metric *m, double seconds)
{
	if (m == NULL) /* not made (metrics off, or a test without them) */
		return;
	pthread_mutex_lock(&lock);
	struct series *s = series(m, NULL);
	size_t b = 0;
	while (b < m->n_bounds && seconds > m->bounds[b])
		b++;
	s->buckets[b]++;
	s->sum += seconds;
	s->count++;
	pthread_mutex_unlock(&lock);
}

void metric_collector(struct metric *m, metric_collect_fn *fn, void *arg)
{
	pthread_mutex_lock(&lock);
	m->collect = fn;
	m->collect_arg = arg;
	pthread_mutex_unlock(&lock);
}

/* put_escaped - a HELP text or label value: \ " and newline escaped. */
static void put_escaped(struct strbuf *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\' || (quote && *s == '"'))
			strbuf_printf(out, "\\%c", *s);
		else if (*s == '\n')
			strbuf_puts(out, "\\n");
		else
			strbuf_append(out, s, 1);
	}
}

/* put_labels - {a="x",b="y"} (EXTRA: one more, e.g. le="0.5"). */
static void put_labels(struct strbuf *out, const struct metric *m, const struct series *s,
		       const char *extra)
{
	if (m->n_labels == 0 && extra == NULL)
		return;
	strbuf_puts(out, "{");
	for (size_t i = 0; i < m->n_labels; i++) {
		strbuf_printf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
		put_escaped(out, s->values[i], true);
		strbuf_puts(out, "\"");
	}
	if (extra)
		strbuf_printf(out, "%s%s", m->n_labels ? "," : "", extra);
	strbuf_puts(out, "}");
}

static void put_number(struct strbuf *out, double v)
{
	if (v > -1e15 && v < 1e15 && (double)(long long)v == v)
		strbuf_printf(out, " %.0f\n", v);
	else
		strbuf_printf(out, " %.9g\n", v);
}

static void render_histogram(struct strbuf *out, const struct metric *m, const struct series *s)
{
	unsigned long long cumulative = 0;
	char le[48];
	for (size_t b = 0; b <= m->n_bounds; b++) {
		cumulative += s->buckets[b];
		if (b < m->n_bounds)
			snprintf(le, sizeof(le), "le=\"%g\"", m->bounds[b]);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		strbuf_printf(out, "%s_bucket", m->name);
		put_labels(out, m, s, le);
		put_number(out, (double)cumulative);
	}
	strbuf_printf(out, "%s_sum", m->name);
	put_number(out, s->sum);
	strbuf_printf(out, "%s_count", m->name);
	put_number(out, (double)s->count);
}

static void render_family(struct strbuf *out, struct metric *m)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	strbuf_printf(out, "# HELP %s ", m->name);
	put_escaped(out, m->help, false);
	strbuf_printf(out, "\n# TYPE %s %s\n", m->name, types[m->type]);
	if (m->type == METRIC_HISTOGRAM && m->n_series == 0)
		series(m, NULL); /* an empty histogram still shows its buckets */
	for (size_t k = 0; k < m->n_series; k++) {
		const struct series *s = &m->series[k];
		if (m->type == METRIC_HISTOGRAM) {
			render_histogram(out, m, s);
			continue;
		}
		strbuf_puts(out, m->name);
		put_labels(out, m, s, NULL);
		put_number(out, s->v);
	}
}

void metrics_render(struct strbuf *out)
{
	for (struct metric *m = families; m; m = m->next)
		if (m->collect) /* outside the lock: it calls metric_set() */
			m->collect(m, m->collect_arg);
	pthread_mutex_lock(&lock);
	for (struct metric *m = families; m; m = m->next)
		render_family(out, m);
	pthread_mutex_unlock(&lock);
}

static void free_family(struct metric *m)
{
	for (size_t k = 0; k < m->n_series; k++)
		for (size_t i = 0; i < m->n_labels; i++)
			free(m->series[k].values[i]);
	for (size_t i = 0; i < m->n_labels; i++)
		free(m->labels[i]);
	free(m->name);
	free(m->help);
	free(m);
}

void metrics_reset(void)
{
	pthread_mutex_lock(&lock);
	while (families) {
		struct metric *m = families;
		families = m->next;
		free_family(m);
	}
	tail = &families;
	pthread_mutex_unlock(&lock);
}

const char *metric_choice(const char *value, const char *const *allowed)
{
	for (size_t i = 0; value && allowed[i]; i++)
		if (strcasecmp(value, allowed[i]) == 0)
			return allowed[i];
	return "other";
}
