/*
 * mtasts.c - MTA-STS syntax, MX matching and the policy cache (see mtasts.h).
 */
#include "tlspol/mtasts.h"
#include "util/statefile.h"
#include "tlspol/tlsmem.h"
#include "util/basedir.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_LEN (STS_MX_MAX * 260 + 400)

static const char *const mode_names[] = {"none", "testing", "enforce"};

const char *sts_mode_name(enum sts_mode m)
{
	return (unsigned)m < RG_ARRAY_LEN(mode_names) ? mode_names[m] : "none";
}

static bool mode_parse(const char *s, enum sts_mode *m)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(mode_names); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*m = (enum sts_mode)i;
			return true;
		}
	}
	return false;
}

/* trim - s without surrounding blanks, in place. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

static bool id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > STS_ID_MAX)
		return false;
	for (const char *p = id; *p; p++)
		if (!isalnum((unsigned char)*p))
			return false;
	return true;
}

bool sts_parse_txt(const char *txt, char *id, size_t idlen)
{
	char buf[1024];
	if (strlen(txt) >= sizeof(buf))
		return false;
	rg_strlcpy(buf, txt, sizeof(buf));
	bool first = true, have_id = false;
	char *save = NULL;
	for (char *f = strtok_r(buf, ";", &save); f != NULL; f = strtok_r(NULL, ";", &save)) {
		f = trim(f);
		if (*f == '\0')
			continue;
		if (first && strcmp(f, "v=STSv1") != 0)
			return false; /* 3.1: v=STSv1 must come first */
		if (!first && strncmp(f, "id=", 3) == 0 && !have_id) {
			if (!id_valid(f + 3) || strlen(f + 3) >= idlen)
				return false;
			rg_strlcpy(id, f + 3, idlen);
			have_id = true;
		}
		first = false;
	}
	return have_id;
}

/* mx_pattern_valid - a host name, or "*." and a host name. */
static bool mx_pattern_valid(const char *s)
{
	const char *name = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
	return tlsmem_domain_valid(name) && strchr(name, '.') != NULL && !strchr(name, '*');
}

/* policy_field - one "key: value" of a policy file into p. */
static bool policy_field(char *key, char *value, struct sts_policy *p, bool *version,
			 bool *have_mode, bool *have_age, char *err, size_t errlen)
{
	uint64_t age = 0;
	if (strcmp(key, "version") == 0) {
		*version = strcmp(value, "STSv1") == 0;
		if (!*version)
			snprintf(err, errlen, "version is \"%.40s\", not STSv1", value);
		return *version;
	}
	if (strcmp(key, "mode") == 0) {
		*have_mode = mode_parse(value, &p->mode);
		if (!*have_mode)
			snprintf(err, errlen, "mode \"%.40s\" is not enforce, testing or none", value);
		return *have_mode;
	}
	if (strcmp(key, "max_age") == 0) {
		*have_age = strlen(value) <= 10 && rg_parse_u64(value, &age) &&
			    age <= STS_MAX_AGE_MAX;
		if (!*have_age)
			snprintf(err, errlen, "max_age \"%.40s\" is not 0..%u", value, STS_MAX_AGE_MAX);
		p->max_age = age;
		return *have_age;
	}
	if (strcmp(key, "mx") == 0) {
		rg_str_lower(value);
		if (!mx_pattern_valid(value)) {
			snprintf(err, errlen, "mx \"%.80s\" is not a host name pattern", value);
			return false;
		}
		if (p->n_mx < STS_MX_MAX) /* more are ignored: MX past them are refused */
			rg_strlcpy(p->mx[p->n_mx++], value, sizeof(p->mx[0]));
	}
	return true; /* other keys: extensions, ignored */
}

bool sts_parse_policy(const char *text, size_t len, struct sts_policy *p, char *err,
		      size_t errlen)
{
	if (len > STS_POLICY_MAX || memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "policy too long or not text");
		return false;
	}
	char *copy = xstrndup(text, len), *save = NULL;
	bool version = false, mode = false, age = false, ok = true;
	p->n_mx = 0;
	for (char *l = strtok_r(copy, "\n", &save); l != NULL && ok; l = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(l, ':');
		if (colon == NULL) {
			ok = trim(l)[0] == '\0';
			if (!ok)
				snprintf(err, errlen, "line without ':'");
			continue;
		}
		*colon = '\0';
		ok = policy_field(trim(l), trim(colon + 1), p, &version, &mode, &age, err, errlen);
	}
	free(copy);
	if (ok && (!version || !mode || !age || (p->mode != STS_NONE && p->n_mx == 0))) {
		snprintf(err, errlen, "missing %s", !version ? "version" : !mode ? "mode"
						    : !age ? "max_age" : "mx");
		ok = false;
	}
	return ok;
}

bool sts_mx_match(const struct sts_policy *p, const char *host)
{
	for (size_t i = 0; i < p->n_mx; i++) {
		const char *pat = p->mx[i];
		if (strncmp(pat, "*.", 2) != 0) {
			if (rg_strcasecmp(pat, host) == 0)
				return true;
			continue;
		}
		const char *dot = strchr(host, '.'); /* the wildcard is exactly one label */
		if (dot != NULL && dot != host && rg_strcasecmp(dot + 1, pat + 2) == 0)
			return true;
	}
	return false;
}

void sts_mx_list(const struct sts_policy *p, char *out, size_t len)
{
	out[0] = '\0';
	size_t used = 0;
	for (size_t i = 0; i < p->n_mx && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? " " : "", p->mx[i]);
}

void sts_format_line(const struct sts_policy *p, struct strbuf *out)
{
	strbuf_printf(out, "%s %s %s %" PRIu64 " %" PRId64 " %" PRId64, p->domain, p->id,
		      sts_mode_name(p->mode), p->max_age, (int64_t)p->fetched, (int64_t)p->checked);
	for (size_t i = 0; i < p->n_mx; i++)
		strbuf_printf(out, " %s", p->mx[i]);
	strbuf_puts(out, "\n");
}

bool sts_parse_line(const char *line, struct sts_policy *p)
{
	char buf[LINE_MAX_LEN], mode[16];
	int64_t fetched, checked;
	int used = 0;
	if (strlen(line) >= sizeof(buf))
		return false;
	memset(p, 0, sizeof(*p));
	if (sscanf(line, "%255s %32s %15s %" SCNu64 " %" SCNd64 " %" SCNd64 "%n", p->domain, p->id,
		   mode, &p->max_age, &fetched, &checked, &used) != 6 ||
	    !tlsmem_domain_valid(p->domain) || !id_valid(p->id) || !mode_parse(mode, &p->mode) ||
	    p->max_age > STS_MAX_AGE_MAX || fetched < 0 || checked < 0)
		return false;
	p->fetched = (time_t)fetched;
	p->checked = (time_t)checked;
	rg_strlcpy(buf, line + used, sizeof(buf));
	char *save = NULL;
	for (char *m = strtok_r(buf, " ", &save); m != NULL; m = strtok_r(NULL, " ", &save)) {
		if (p->n_mx == STS_MX_MAX || !mx_pattern_valid(m))
			return false;
		rg_strlcpy(p->mx[p->n_mx++], m, sizeof(p->mx[0]));
	}
	rg_str_lower(p->domain);
	return p->mode == STS_NONE || p->n_mx > 0;
}

/* ---- the cache: a list, and a hash of it by domain (100000 lines load in linear time) ---- */

#define STS_BUCKETS 65536

struct sts_entry {
	struct sts_policy p;
	struct sts_entry *next, *hnext;
};

struct sts_cache {
	struct sts_entry *head;
	size_t n, max;
	struct statefile *file;
	struct sts_entry *bucket[STS_BUCKETS];
};

static void snapshot(void *arg, struct strbuf *out)
{
	const struct sts_cache *c = arg;
	strbuf_puts(out, "# relayguard mta-sts 1\n");
	for (const struct sts_entry *e = c->head; e != NULL; e = e->next)
		sts_format_line(&e->p, out);
}

/* hash - FNV-1a of the lower-cased domain. */
static size_t hash(const char *domain)
{
	uint32_t h = 2166136261u;
	for (const char *s = domain; *s; s++)
		h = (h ^ (unsigned)tolower((unsigned char)*s)) * 16777619u;
	return h % STS_BUCKETS;
}

/* find - the hash chain link holding domain's entry (*result NULL: none). */
static struct sts_entry **find(struct sts_cache *c, const char *domain)
{
	struct sts_entry **pp = &c->bucket[hash(domain)];
	while (*pp != NULL && rg_strcasecmp((*pp)->p.domain, domain) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void add(struct sts_cache *c, const struct sts_policy *p)
{
	struct sts_entry *e = xcalloc(1, sizeof(*e));
	e->p = *p;
	e->next = c->head;
	c->head = e;
	e->hnext = c->bucket[hash(p->domain)];
	c->bucket[hash(p->domain)] = e;
	c->n++;
}

/* expired - p is past fetched + max_age at now (a clock gone back: not). */
static bool expired(const struct sts_policy *p, time_t now)
{
	return now > p->fetched && (uint64_t)(now - p->fetched) > p->max_age;
}

/* evict - make room: an expired policy goes, else the one fetched longest ago. */
static void evict(struct sts_cache *c, time_t now)
{
	struct sts_entry **victim = NULL;
	for (struct sts_entry **pp = &c->head; *pp != NULL; pp = &(*pp)->next) {
		if (expired(&(*pp)->p, now)) {
			victim = pp;
			break;
		}
		if (victim == NULL || (*pp)->p.fetched < (*victim)->p.fetched)
			victim = pp;
	}
	if (victim == NULL)
		return;
	struct sts_entry *e = *victim;
	*victim = e->next;
	*find(c, e->p.domain) = e->hnext;
	free(e);
	c->n--;
}

static void read_file(struct sts_cache *c, FILE *f)
{
	char line[LINE_MAX_LEN + 2];
	time_t now = time(NULL);
	size_t bad = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *nl = strchr(line, '\n');
		struct sts_policy p;
		if (nl == NULL && !feof(f)) {
			int ch;
			while ((ch = fgetc(f)) != EOF && ch != '\n') {
			}
			bad++;
			continue;
		}
		if (nl)
			*nl = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (!sts_parse_line(line, &p) || *find(c, p.domain) != NULL)
			bad++;
		else if (!expired(&p, now) && c->n < c->max)
			add(c, &p); /* an expired policy is of no use: dropped */
	}
	if (bad > 0) {
		char n[32];
		snprintf(n, sizeof(n), "%zu", bad);
		log_ev(LOG_WARNING, "mta-sts-cache-bad-lines", {"count", n});
	}
}

struct sts_cache *sts_cache_open(struct event_base *base, const char *queue_dir, char *err,
				 size_t errlen)
{
	bool absent;
	FILE *f = statefile_open_read(queue_dir, STS_CACHE_FILE, &absent, err, errlen);
	if (f == NULL && !absent)
		return NULL;
	struct sts_cache *c = xcalloc(1, sizeof(*c));
	c->max = STS_CACHE_MAX;
	if (f != NULL) {
		read_file(c, f);
		fclose(f);
	}
	c->file = statefile_new(base, queue_dir, STS_CACHE_FILE, snapshot, c);
	return c;
}

struct sts_policy *sts_cache_get(struct sts_cache *c, const char *domain, time_t now)
{
	struct sts_entry *e = *find(c, domain);
	if (e == NULL || expired(&e->p, now))
		return NULL;
	return &e->p;
}

void sts_cache_put(struct sts_cache *c, const struct sts_policy *p)
{
	struct sts_entry **pp = find(c, p->domain);
	if (*pp != NULL) {
		(*pp)->p = *p;
	} else {
		if (c->n >= c->max)
			evict(c, time(NULL)); /* never drop the new policy: it is in force */
		add(c, p);
	}
	statefile_changed(c->file);
}

void sts_cache_touch(struct sts_cache *c, struct sts_policy *p, time_t now)
{
	(void)c;
	p->checked = now;
}

void sts_cache_set_max(struct sts_cache *c, size_t max)
{
	c->max = max > 0 ? max : 1;
}

void sts_cache_free(struct sts_cache *c)
{
	if (c == NULL)
		return;
	statefile_free(c->file);
	while (c->head != NULL) {
		struct sts_entry *e = c->head;
		c->head = e->next;
		free(e);
	}
	free(c);
}
