/*
 * tlsmem.c - the downgrade memory and its file (see tlsmem.h).
 *
 * A chained hash table of domains; the file is written by statefile.c
 * from a snapshot made on the loop.
 */
#include "tlspol/tlsmem.h"
#include "util/statefile.h"
#include "util/basedir.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUCKETS 4096
#define LINE_MAX_LEN 600
#define HEADER "# relayguard tls-memory 1\n"

struct node {
	struct tlsmem_entry e;
	struct node *next;
};

struct tlsmem {
	struct statefile *file;
	struct node *buckets[BUCKETS];
	size_t n, max;     /* max 0: TLSMEM_MAX_ENTRIES */
	uint64_t lifetime; /* 0: entries never expire here (tlsmem_limit not called) */
	bool full_logged;
};

static const char *const level_names[] = {"unknown", "plain", "tls", "verified"};

/* ---- pure parts ---- */

enum tlsmem_level tlsmem_level_of(const char *tls_desc)
{
	if (tls_desc == NULL || tls_desc[0] == '\0' || strcmp(tls_desc, "none") == 0)
		return TLSMEM_PLAIN;
	size_t n = strlen(tls_desc);
	/* "... verified" at the end; "unverified (why)" never ends that way */
	if (n >= 9 && strcmp(tls_desc + n - 9, " verified") == 0)
		return TLSMEM_VERIFIED;
	return TLSMEM_TLS;
}

const char *tlsmem_level_name(enum tlsmem_level l)
{
	return (unsigned)l < RG_ARRAY_LEN(level_names) ? level_names[l] : "unknown";
}

bool tlsmem_domain_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
		if (!ok || (c == '.' && p[1] == '.'))
			return false;
	}
	return true;
}

static bool level_parse(const char *s, enum tlsmem_level *out)
{
	for (size_t i = TLSMEM_PLAIN; i < RG_ARRAY_LEN(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum tlsmem_level)i;
			return true;
		}
	}
	return false;
}

bool tlsmem_parse_line(const char *line, struct tlsmem_entry *e)
{
	char domain[256], level[16], rest[2];
	int64_t since, last;
	if (strlen(line) >= LINE_MAX_LEN ||
	    sscanf(line, "%255s %15s %" SCNd64 " %" SCNd64 " %1s", domain, level, &since, &last,
		   rest) != 4)
		return false;
	if (!tlsmem_domain_valid(domain) || !level_parse(level, &e->best) || since < 0 ||
	    last < since)
		return false;
	rg_strlcpy(e->domain, domain, sizeof(e->domain));
	rg_str_lower(e->domain);
	e->since = (time_t)since;
	e->last = (time_t)last;
	return true;
}

void tlsmem_format_line(const struct tlsmem_entry *e, struct strbuf *out)
{
	strbuf_printf(out, "%s %s %" PRId64 " %" PRId64 "\n", e->domain, tlsmem_level_name(e->best),
		      (int64_t)e->since, (int64_t)e->last);
}

bool tlsmem_parse_shared(const char *text, struct tlsmem_entry *e)
{
	char domain[256], level[16], rest[2];
	if (strnlen(text, LINE_MAX_LEN) >= LINE_MAX_LEN ||
	    sscanf(text, "%255s %15s %1s", domain, level, rest) != 2)
		return false;
	if (!tlsmem_domain_valid(domain) || !level_parse(level, &e->best) ||
	    e->best < TLSMEM_TLS)
		return false;
	rg_strlcpy(e->domain, domain, sizeof(e->domain));
	rg_str_lower(e->domain);
	return true;
}

/* ---- the table ---- */

static unsigned bucket_of(const char *domain)
{
	uint32_t h = 2166136261u; /* FNV-1a over the lower-cased name */
	for (const char *p = domain; *p; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
		h = (h ^ (uint8_t)c) * 16777619u;
	}
	return h % BUCKETS;
}

static struct node **find(struct tlsmem *m, const char *domain)
{
	struct node **pp = &m->buckets[bucket_of(domain)];
	while (*pp != NULL && rg_strcasecmp((*pp)->e.domain, domain) != 0)
		pp = &(*pp)->next;
	return pp;
}

const struct tlsmem_entry *tlsmem_get(const struct tlsmem *m, const char *domain)
{
	struct node *const *pp = find((struct tlsmem *)m, domain);
	return *pp ? &(*pp)->e : NULL;
}

/* expired - e last seen more than the lifetime before now (a clock gone back: not). */
static bool expired(const struct tlsmem *m, const struct tlsmem_entry *e, time_t now)
{
	return m->lifetime > 0 && now > e->last && (uint64_t)(now - e->last) > m->lifetime;
}

/* sweep - drop every expired entry; the count dropped. */
static size_t sweep(struct tlsmem *m, time_t now)
{
	size_t dropped = 0;
	for (size_t b = 0; b < BUCKETS; b++) {
		for (struct node **pp = &m->buckets[b]; *pp != NULL;) {
			struct node *nd = *pp;
			if (!expired(m, &nd->e, now)) {
				pp = &nd->next;
				continue;
			}
			*pp = nd->next;
			free(nd);
			m->n--;
			dropped++;
		}
	}
	return dropped;
}

/* evict_lru - drop the least recently seen entry that is not verified. */
static bool evict_lru(struct tlsmem *m)
{
	struct node **victim = NULL;
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct node **pp = &m->buckets[b]; *pp != NULL; pp = &(*pp)->next)
			if ((*pp)->e.best != TLSMEM_VERIFIED &&
			    (victim == NULL || (*pp)->e.last < (*victim)->e.last))
				victim = pp;
	if (victim == NULL)
		return false;
	struct node *nd = *victim;
	*victim = nd->next;
	free(nd);
	m->n--;
	return true;
}

/* room - make room for one more entry seen at now; false when none can go. */
static bool room(struct tlsmem *m, time_t now)
{
	size_t max = m->max > 0 ? m->max : TLSMEM_MAX_ENTRIES;
	if (m->n < max)
		return true;
	if (now == 0) /* loading the file: nothing goes yet */
		return false;
	return sweep(m, now) > 0 || evict_lru(m);
}

/* insert - a new entry (e->domain lower case) seen at now (0: read from the
 * file); false when the table is full. */
static bool insert(struct tlsmem *m, const struct tlsmem_entry *e, time_t now)
{
	if (!room(m, now)) {
		if (!m->full_logged)
			log_ev(LOG_WARNING, "tls-memory-full", {"domain", e->domain});
		m->full_logged = true;
		return false;
	}
	struct node *nd = xcalloc(1, sizeof(*nd));
	nd->e = *e;
	unsigned b = bucket_of(e->domain);
	nd->next = m->buckets[b];
	m->buckets[b] = nd;
	m->n++;
	return true;
}

/* ---- the file ---- */

static void snapshot(const struct tlsmem *m, struct strbuf *out)
{
	strbuf_puts(out, HEADER);
	for (size_t b = 0; b < BUCKETS; b++)
		for (const struct node *nd = m->buckets[b]; nd != NULL; nd = nd->next)
			tlsmem_format_line(&nd->e, out);
}

static void snapshot_cb(void *arg, struct strbuf *out)
{
	snapshot(arg, out);
}

static void changed(struct tlsmem *m)
{
	statefile_changed(m->file);
}

void tlsmem_limit(struct tlsmem *m, uint64_t lifetime, size_t max, time_t now)
{
	m->lifetime = lifetime;
	m->max = max;
	if (sweep(m, now) > 0)
		changed(m);
}

bool tlsmem_save_now(struct tlsmem *m, char *err, size_t errlen)
{
	return statefile_flush(m->file, true, err, errlen);
}

/* read_lines - every good line of f into m; the count of bad ones. */
static size_t read_lines(struct tlsmem *m, FILE *f)
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
		struct tlsmem_entry e;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (!tlsmem_parse_line(line, &e) || *find(m, e.domain) != NULL)
			bad++;
		else
			insert(m, &e, 0);
	}
	return bad;
}

struct tlsmem *tlsmem_open(struct event_base *base, const char *queue_dir, char *err,
			   size_t errlen)
{
	bool absent;
	FILE *f = statefile_open_read(queue_dir, TLSMEM_FILE, &absent, err, errlen);
	if (f == NULL && !absent)
		return NULL;
	struct tlsmem *m = xcalloc(1, sizeof(*m));
	if (f != NULL) {
		size_t bad = read_lines(m, f);
		fclose(f);
		if (bad > 0) {
			char n[32];
			snprintf(n, sizeof(n), "%zu", bad);
			log_ev(LOG_WARNING, "tls-memory-bad-lines", {"count", n});
		}
	}
	m->file = statefile_new(base, queue_dir, TLSMEM_FILE, snapshot_cb, m);
	return m;
}

void tlsmem_note(struct tlsmem *m, const char *domain, enum tlsmem_level seen, time_t now)
{
	if (!tlsmem_domain_valid(domain) || seen == TLSMEM_UNKNOWN)
		return;
	struct node **pp = find(m, domain);
	if (*pp == NULL) {
		struct tlsmem_entry e = {.best = seen, .since = now, .last = now};
		rg_strlcpy(e.domain, domain, sizeof(e.domain));
		rg_str_lower(e.domain);
		if (insert(m, &e, now))
			changed(m);
		return;
	}
	struct tlsmem_entry *e = &(*pp)->e;
	if (seen > e->best) {
		e->best = seen;
		e->since = e->last = now;
		changed(m);
	} else if (seen == e->best && now > e->last) {
		bool stale = now - e->last >= TLSMEM_REFRESH_SECONDS;
		e->last = now;
		if (stale)
			changed(m);
	}
}

bool tlsmem_forget(struct tlsmem *m, const char *domain)
{
	struct node **pp = find(m, domain);
	if (*pp == NULL)
		return false;
	struct node *nd = *pp;
	*pp = nd->next;
	free(nd);
	m->n--;
	changed(m);
	return true;
}

static int by_domain(const void *a, const void *b)
{
	const struct tlsmem_entry *x = *(const struct tlsmem_entry *const *)a;
	const struct tlsmem_entry *y = *(const struct tlsmem_entry *const *)b;
	return strcmp(x->domain, y->domain);
}

static void format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "?");
}

void tlsmem_list(const struct tlsmem *m, struct strbuf *out)
{
	const struct tlsmem_entry **all = xcalloc(m->n + 1, sizeof(*all));
	size_t k = 0;
	for (size_t b = 0; b < BUCKETS; b++)
		for (const struct node *nd = m->buckets[b]; nd != NULL; nd = nd->next)
			all[k++] = &nd->e;
	qsort(all, k, sizeof(*all), by_domain);
	for (size_t i = 0; i < k; i++) {
		char since[32], last[32];
		format_time(all[i]->since, since, sizeof(since));
		format_time(all[i]->last, last, sizeof(last));
		strbuf_printf(out, "%s %s since %s last %s\n", all[i]->domain,
			      tlsmem_level_name(all[i]->best), since, last);
	}
	free(all);
}

void tlsmem_free(struct tlsmem *m)
{
	if (m == NULL)
		return;
	statefile_free(m->file); /* waits for a write in flight, saves what changed */
	for (size_t b = 0; b < BUCKETS; b++) {
		while (m->buckets[b] != NULL) {
			struct node *nd = m->buckets[b];
			m->buckets[b] = nd->next;
			free(nd);
		}
	}
	free(m);
}
