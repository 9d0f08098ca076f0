/*
 * delivered.c - snapshots of earlier runs' copies (see delivered.h).
 */
#include "delivery/delivered.h"
#include "delivery/maildir.h"
#include "util/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct copy {
	uint64_t qid;
	uint32_t idx;
	uint32_t in_cur;
};

struct snapshot {
	char *mailbox; /* "domain/local" */
	struct copy *c;
	size_t n, cap;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *snaps;
static size_t n_snaps;

static int compare_copy(const void *a, const void *b)
{
	const struct copy *x = a, *y = b;
	if (x->qid != y->qid)
		return x->qid < y->qid ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* add - maildir_scan_copies' callback: one more copy in the snapshot. */
static void add(void *arg, uint64_t qid, uint32_t idx, bool in_cur)
{
	struct snapshot *s = arg;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->c = xrealloc(s->c, s->cap * sizeof(*s->c));
	}
	s->c[s->n++] = (struct copy){qid, idx, in_cur};
}

/* snapshot_of - the mailbox's snapshot, taken now if it is the first lookup. */
static struct snapshot *snapshot_of(const char *base, const char *domain, const char *local)
{
	char key[600];
	snprintf(key, sizeof(key), "%s/%s", domain, local);
	for (size_t i = 0; i < n_snaps; i++)
		if (strcmp(snaps[i].mailbox, key) == 0)
			return &snaps[i];
	struct snapshot s = {xstrdup(key), NULL, 0, 0};
	if (!maildir_scan_copies(base, domain, local, add, &s)) {
		free(s.mailbox);
		free(s.c);
		return NULL; /* unreadable now: try again at the next lookup */
	}
	if (s.n > 1)
		qsort(s.c, s.n, sizeof(*s.c), compare_copy);
	snaps = xrealloc(snaps, (n_snaps + 1) * sizeof(*snaps));
	snaps[n_snaps] = s;
	return &snaps[n_snaps++];
}

bool delivered_before(const char *base, const char *domain, const char *local, uint64_t qid,
		      uint32_t idx, bool *in_cur)
{
	pthread_mutex_lock(&lock);
	struct snapshot *s = snapshot_of(base, domain, local);
	struct copy key = {qid, idx, 0};
	struct copy *hit = s && s->n ? bsearch(&key, s->c, s->n, sizeof(key), compare_copy) : NULL;
	if (hit != NULL)
		*in_cur = hit->in_cur != 0;
	pthread_mutex_unlock(&lock);
	return hit != NULL;
}

void delivered_free(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_snaps; i++) {
		free(snaps[i].mailbox);
		free(snaps[i].c);
	}
	free(snaps);
	snaps = NULL;
	n_snaps = 0;
	pthread_mutex_unlock(&lock);
}
