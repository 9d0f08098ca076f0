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
 *
 * The test's own fsync() stamps every directory sync when it starts and
 * when it ends (and, in the flaky rows, fails every FLAKY_EVERY-th with
 * EIO): a continuation told 0 must have been covered by a sync that
 * succeeded, started after the call and ended before the continuation ran
 * (the group-commit rule: a round covers only what was renamed before its
 * fsync began). A 250 rests on exactly that.
 */
#include "check.h"
#include "util/basedir.h"
#include "util/dirsync.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 8
#define CALLS 200 /* per thread */
#define FLAKY_EVERY 5 /* in the flaky rows, this sync in so many fails */
#define SYNCS_KEPT (THREADS * CALLS * 2)

static char base[] = "/tmp/rg-test-dirsync-XXXXXX";

/* The logical clock: stamps calls, syncs and continuations in order. */
static atomic_uint_fast64_t ticks = 1;

/* A directory sync as fsync() saw it. */
struct sync_seen {
	uint64_t start, end;
	ino_t dir;
	int error;
};
static struct sync_seen syncs[SYNCS_KEPT];
static atomic_size_t n_syncs;
static atomic_bool flaky;

/* fsync - the real one (a syscall, not libc's), stamped; in the flaky rows
 * every FLAKY_EVERY-th fails with EIO. Replaces libc's for dirsync.c. */
int fsync(int fd)
{
	struct stat st;
	uint64_t start = atomic_fetch_add(&ticks, 1);
	int r = (int)syscall(SYS_fsync, fd);
	size_t i = atomic_fetch_add(&n_syncs, 1);
	if (r == 0 && atomic_load(&flaky) && i % FLAKY_EVERY == FLAKY_EVERY - 1) {
		errno = EIO;
		r = -1;
	}
	if (i < SYNCS_KEPT && fstat(fd, &st) == 0)
		syncs[i] = (struct sync_seen){start, atomic_fetch_add(&ticks, 1), st.st_ino,
					      r == 0 ? 0 : errno};
	return r;
}

/* One call's continuation: how often it ran, with what error, and when
 * (the call before dirsync_then, the continuation when it ran). */
struct call {
	atomic_int runs;
	atomic_int error;
	uint64_t called, ran;
	ino_t dir;
};

static void on_synced(void *arg, int error)
{
	struct call *c = arg;
	c->ran = atomic_fetch_add(&ticks, 1);
	atomic_store(&c->error, error);
	atomic_fetch_add(&c->runs, 1);
}

/* covered - a sync of c's directory succeeded, began after the call and
 * ended before the continuation ran. */
static bool covered(const struct call *c)
{
	size_t n = atomic_load(&n_syncs);
	for (size_t i = 0; i < n && i < SYNCS_KEPT; i++)
		if (syncs[i].dir == c->dir && syncs[i].error == 0 && syncs[i].start > c->called &&
		    syncs[i].end < c->ran)
			return true;
	return false;
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
		struct stat st;
		char path[128];
		snprintf(path, sizeof(path), "%s/%s", base, s->rel);
		s->calls[i].dir = stat(path, &st) == 0 ? st.st_ino : 0;
		s->calls[i].called = atomic_fetch_add(&ticks, 1); /* "after its rename" */
		dirsync_then(base, s->rel, on_synced, &s->calls[i]);
	}
	return NULL;
}

/* run - THREADS threads of CALLS on rel (half of them on rel2); then wait
 * until every continuation ran (each may run on another thread, later). */
static void run(int line, const char *rel, const char *rel2, bool mixed, bool flaky_syncs,
		int want_error)
{
	atomic_store(&flaky, flaky_syncs);
	atomic_store(&n_syncs, 0);
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
	int missing = 0, twice = 0, wrong = 0, sync_errors = 0, uncovered = 0, failed = 0;
	for (int k = 0; k < THREADS; k++) {
		for (int i = 0; i < CALLS; i++) {
			int runs = atomic_load(&shares[k].calls[i].runs);
			missing += runs == 0;
			twice += runs > 1;
			/* a failure may read EIO: a waiter that woke after its
			 * round's failure left the ring (dirsync.c round_error) */
			int e = atomic_load(&shares[k].calls[i].error);
			bool then = !(mixed && i % 4 == 3);
			wrong += (want_error ? e == 0 : e != 0) && then && !flaky_syncs;
			failed += e != 0 && then;
			uncovered += e == 0 && then && !covered(&shares[k].calls[i]);
		}
		sync_errors += shares[k].sync_errors;
		free(shares[k].calls);
	}
	CHECK_AT(line, missing == 0, "%d continuations never ran", missing);
	CHECK_AT(line, twice == 0, "%d continuations ran more than once", twice);
	CHECK_AT(line, wrong == 0, "%d continuations got %s", wrong,
		 want_error ? "no error" : "an error");
	CHECK_AT(line, uncovered == 0, "%d continuations told 0 without a sync that began "
		 "after the call and succeeded before they ran", uncovered);
	CHECK_AT(line, !flaky_syncs || failed > 0, "no continuation heard of a failed sync");
	int sync_calls = mixed ? THREADS * (CALLS / 4) : 0;
	if (flaky_syncs)
		return; /* which dirsync() calls fail is up to the schedule */
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
		bool mixed, flaky;
		int error;
	} rows[] = {
		{__LINE__, "a", "a", false, false, 0},  /* one directory, continuations only */
		{__LINE__, "a", "b", false, false, 0},  /* two directories at once */
		{__LINE__, "a", "a", true, false, 0},   /* dirsync() callers mixed in */
		{__LINE__, "a", "a", false, true, 0},   /* some syncs fail (EIO) */
		{__LINE__, "a", "b", true, true, 0},
		{__LINE__, "gone", "gone", false, false, ENOENT}, /* no such directory: all told */
		{__LINE__, "gone", "gone", true, false, ENOENT},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run(rows[i].line, rows[i].rel, rows[i].rel2, rows[i].mixed, rows[i].flaky,
		    rows[i].error);
	dirsync_cleanup();
	basedir_close_all();
	rmdir(a);
	rmdir(b);
	rmdir(base);
	return check_summary("dirsync");
}
