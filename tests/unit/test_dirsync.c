/*
 * test_dirsync.c - shared directory fsyncs: dirsync_then() runs every
 * caller's continuation exactly once, after a sync that started after its
 * call, with the sync's outcome, whether the caller led the round, waited
 * to lead the next or only left its continuation; dirsync() callers mixed
 * in are served by the same rounds. A directory that cannot be opened
 * reports its errno to every caller.
 *
 * Threads hammer one directory (and a second one) at once, so callers land
 * in every role: leading, designated for the next round, and riding along.
 */
#include "check.h"
#include "util/basedir.h"
#include "util/dirsync.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREADS 8
#define CALLS 200 /* per thread */

static char base[] = "/tmp/rg-test-dirsync-XXXXXX";

/* One call's continuation: how often it ran, with what error. */
struct call {
	atomic_int runs;
	atomic_int error;
};

static void on_synced(void *arg, int error)
{
	struct call *c = arg;
	atomic_store(&c->error, error);
	atomic_fetch_add(&c->runs, 1);
}

/* A thread's share of calls, and the directory it syncs. */
struct share {
	const char *rel;
	struct call *calls;
	bool mixed; /* every fourth call a blocking dirsync() */
	int sync_errors;
};

static void *hammer(void *arg)
{
	struct share *s = arg;
	for (int i = 0; i < CALLS; i++) {
		if (s->mixed && i % 4 == 3) {
			if (!dirsync(base, s->rel))
				s->sync_errors++;
			atomic_fetch_add(&s->calls[i].runs, 1); /* counted as served */
			continue;
		}
		dirsync_then(base, s->rel, on_synced, &s->calls[i]);
	}
	return NULL;
}

/* run - THREADS threads of CALLS on rel (half of them on rel2); then wait
 * until every continuation ran (each may run on another thread, later). */
static void run(int line, const char *rel, const char *rel2, bool mixed, int want_error)
{
	struct share shares[THREADS];
	pthread_t t[THREADS];
	for (int k = 0; k < THREADS; k++) {
		shares[k] = (struct share){k % 2 ? rel2 : rel, calloc(CALLS, sizeof(struct call)),
					   mixed, 0};
		pthread_create(&t[k], NULL, hammer, &shares[k]);
	}
	for (int k = 0; k < THREADS; k++)
		pthread_join(t[k], NULL);
	/* every round has run once all callers returned: every continuation too */
	int missing = 0, twice = 0, wrong = 0, sync_errors = 0;
	for (int k = 0; k < THREADS; k++) {
		for (int i = 0; i < CALLS; i++) {
			int runs = atomic_load(&shares[k].calls[i].runs);
			missing += runs == 0;
			twice += runs > 1;
			/* a failure may read EIO: a waiter that woke after its
			 * round's failure left the ring (dirsync.c round_error) */
			int e = atomic_load(&shares[k].calls[i].error);
			wrong += (want_error ? e == 0 : e != 0) && !(mixed && i % 4 == 3);
		}
		sync_errors += shares[k].sync_errors;
		free(shares[k].calls);
	}
	CHECK_AT(line, missing == 0, "%d continuations never ran", missing);
	CHECK_AT(line, twice == 0, "%d continuations ran more than once", twice);
	CHECK_AT(line, wrong == 0, "%d continuations got %s", wrong,
		 want_error ? "no error" : "an error");
	int sync_calls = mixed ? THREADS * (CALLS / 4) : 0;
	CHECK_AT(line, sync_errors == (want_error ? sync_calls : 0),
		 "dirsync() failed %d times of %d, want %s", sync_errors, sync_calls,
		 want_error ? "all" : "none");
}

int main(void)
{
	if (mkdtemp(base) == NULL || !basedir_open(base)) {
		perror("mkdtemp/basedir_open");
		return 1;
	}
	char a[sizeof(base) + 4], b[sizeof(base) + 4];
	snprintf(a, sizeof(a), "%s/a", base);
	snprintf(b, sizeof(b), "%s/b", base);
	mkdir(a, 0700);
	mkdir(b, 0700);
	static const struct {
		int line;
		const char *rel, *rel2;
		bool mixed;
		int error;
	} rows[] = {
		{__LINE__, "a", "a", false, 0},         /* one directory, continuations only */
		{__LINE__, "a", "b", false, 0},         /* two directories at once */
		{__LINE__, "a", "a", true, 0},          /* dirsync() callers mixed in */
		{__LINE__, "gone", "gone", false, ENOENT}, /* no such directory: all told */
		{__LINE__, "gone", "gone", true, ENOENT},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run(rows[i].line, rows[i].rel, rows[i].rel2, rows[i].mixed, rows[i].error);
	dirsync_cleanup();
	basedir_close_all();
	rmdir(a);
	rmdir(b);
	rmdir(base);
	return check_summary("dirsync");
}
