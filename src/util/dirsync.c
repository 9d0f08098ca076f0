/*
 * dirsync.c - shared directory fsyncs (see dirsync.h).
 *
 * Each directory has tickets: a caller takes the next ticket after its own
 * rename. The leader records the highest ticket taken when it starts an
 * fsync; when that fsync returns, every ticket up to that number is durable.
 * Callers whose ticket is higher wait for the next round (and may lead it).
 * Each caller gets the outcome of the round that covered its ticket.
 * Waiters sleep on one of two condition variables by the parity of the
 * round that will cover them: the end of a round wakes only those it
 * covered, and one waiter of the next round to lead it (no herd of
 * threads that wake only to sleep again).
 * dirsync_then() callers do not wait at all while a thread is already
 * designated to lead the next round: they leave a continuation, which the
 * thread that completes the covering round runs. The designation is
 * cleared when a round starts, and that round covers every ticket taken
 * before it, so no continuation is ever left without a leader.
 */
#include "util/dirsync.h"
#include "util/basedir.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAILURES_KEPT 16   /* failed rounds remembered for waiters that wake late */
#define MAX_IDLE_DIRS 256  /* idle entries beyond this are dropped */

struct failure {
	uint64_t from, upto; /* the tickets of a round whose open/fsync failed */
	int error;
};

/* A dirsync_then() caller's continuation: run when its ticket is covered. */
struct cont {
	uint64_t ticket;
	dirsync_fn done;
	void *arg;
	struct cont *next;
};

struct dir_entry {
	char *path;            /* base "/" rel: the key */
	char *base, *rel;
	uint64_t taken, done;  /* tickets handed out / made durable */
	uint64_t round;        /* rounds started */
	uint64_t running_upto; /* the last ticket the running round covers */
	pthread_cond_t covered[2]; /* by the parity of the round a waiter needs */
	bool running;
	bool designated;       /* a thread waits to lead the next round */
	unsigned waiters;
	struct cont *conts;    /* continuations not yet covered */
	struct failure failures[FAILURES_KEPT];
	unsigned next_failure;
	uint64_t forgotten_upto; /* failures before this were dropped from the ring */
	struct dir_entry *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct dir_entry *dirs;
static size_t n_dirs;

static void free_dir(struct dir_entry *d)
{
	pthread_cond_destroy(&d->covered[0]);
	pthread_cond_destroy(&d->covered[1]);
	free(d->path);
	free(d->base);
	free(d->rel);
	free(d);
}

/* drop_idle - forget directories nobody is syncing (Maildirs come and go). */
static void drop_idle(void)
{
	struct dir_entry **pp = &dirs;
	while (*pp != NULL && n_dirs > MAX_IDLE_DIRS) {
		struct dir_entry *d = *pp;
		if (d->running || d->waiters > 0 || d->conts != NULL) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		free_dir(d);
		n_dirs--;
	}
}

static struct dir_entry *find_dir(const char *base, const char *rel)
{
	char *path = xasprintf("%s/%s", base, rel);
	for (struct dir_entry *d = dirs; d != NULL; d = d->next) {
		if (strcmp(d->path, path) == 0) {
			free(path);
			return d;
		}
	}
	drop_idle();
	struct dir_entry *d = xcalloc(1, sizeof(*d));
	d->path = path;
	d->base = xstrdup(base);
	d->rel = xstrdup(rel);
	pthread_cond_init(&d->covered[0], NULL);
	pthread_cond_init(&d->covered[1], NULL);
	d->next = dirs;
	dirs = d;
	n_dirs++;
	return d;
}

static int fsync_path(const char *base, const char *rel)
{
	int bfd = basedir_fd(base);
	int fd = bfd < 0 ? -1 : openat(bfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno ? errno : EIO;
	int error = fsync(fd) == 0 ? 0 : (errno ? errno : EIO);
	close(fd);
	return error;
}

/* round_error - 0 unless the round that covered ticket failed. Only failures
 * are remembered, so no success is ever reported as a failure; a ticket older
 * than a forgotten failure counts as failed (the client retries: no loss). */
static int round_error(const struct dir_entry *d, uint64_t ticket)
{
	for (unsigned i = 0; i < FAILURES_KEPT; i++) {
		const struct failure *f = &d->failures[i];
		if (f->upto != 0 && ticket >= f->from && ticket <= f->upto)
			return f->error;
	}
	return ticket <= d->forgotten_upto ? EIO : 0;
}

static void remember_failure(struct dir_entry *d, uint64_t from, uint64_t upto, int error)
{
	struct failure *slot = &d->failures[d->next_failure++ % FAILURES_KEPT];
	if (slot->upto > d->forgotten_upto)
		d->forgotten_upto = slot->upto;
	*slot = (struct failure){from, upto, error};
}

/* take_covered - the continuations whose tickets are up to upto. */
static struct cont *take_covered(struct dir_entry *d, uint64_t upto)
{
	struct cont *ready = NULL, **pp = &d->conts;
	while (*pp != NULL) {
		struct cont *c = *pp;
		if (c->ticket > upto) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->next = ready;
		ready = c;
	}
	return ready;
}

/* run_round - one fsync covering every ticket taken so far; then the
 * waiters of the round are woken and its continuations run (outside the
 * lock). Called and returns with the lock held. */
static void run_round(struct dir_entry *d)
{
	d->running = true;
	d->designated = false; /* this round covers whoever counted on one */
	d->round++;
	uint64_t from = d->done + 1, upto = d->taken; /* all who renamed before now */
	d->running_upto = upto;
	pthread_mutex_unlock(&lock);
	int error = fsync_path(d->base, d->rel);
	pthread_mutex_lock(&lock);
	d->running = false;
	d->done = upto;
	if (error != 0)
		remember_failure(d, from, upto, error);
	pthread_cond_broadcast(&d->covered[d->round & 1]);
	if (d->taken > d->done) /* one of the next round's waiters leads it */
		pthread_cond_signal(&d->covered[(d->round + 1) & 1]);
	struct cont *ready = take_covered(d, upto);
	if (ready == NULL)
		return;
	d->waiters++; /* d stays while the lock is released */
	pthread_mutex_unlock(&lock);
	while (ready != NULL) {
		struct cont *next = ready->next;
		ready->done(ready->arg, error);
		free(ready);
		ready = next;
	}
	pthread_mutex_lock(&lock);
	d->waiters--;
}

/* wait_covered - until ticket is durable (leading rounds when none runs);
 * its round's outcome. The lock is held. */
static int wait_covered(struct dir_entry *d, uint64_t ticket)
{
	d->waiters++;
	while (d->done < ticket) {
		if (d->running) { /* covered by the running round, or by the next */
			uint64_t r = ticket <= d->running_upto ? d->round : d->round + 1;
			pthread_cond_wait(&d->covered[r & 1], &lock);
			continue;
		}
		run_round(d);
	}
	int error = round_error(d, ticket);
	d->waiters--;
	return error;
}

bool dirsync(const char *base, const char *rel)
{
	pthread_mutex_lock(&lock);
	struct dir_entry *d = find_dir(base, rel);
	uint64_t ticket = ++d->taken;
	int error = wait_covered(d, ticket);
	pthread_mutex_unlock(&lock);
	errno = error;
	return error == 0;
}

void dirsync_then(const char *base, const char *rel, dirsync_fn done, void *arg)
{
	pthread_mutex_lock(&lock);
	struct dir_entry *d = find_dir(base, rel);
	uint64_t ticket = ++d->taken;
	if (d->running && d->designated) { /* the designated leader's round covers it */
		struct cont *c = xcalloc(1, sizeof(*c));
		*c = (struct cont){ticket, done, arg, d->conts};
		d->conts = c;
		pthread_mutex_unlock(&lock);
		return;
	}
	if (d->running)
		d->designated = true; /* this thread leads the next round */
	int error = wait_covered(d, ticket);
	pthread_mutex_unlock(&lock);
	done(arg, error);
}

void dirsync_cleanup(void)
{
	pthread_mutex_lock(&lock);
	while (dirs != NULL) {
		struct dir_entry *d = dirs;
		dirs = d->next;
		while (d->conts != NULL) { /* none: every caller's round has run */
			struct cont *c = d->conts;
			d->conts = c->next;
			free(c);
		}
		free_dir(d);
	}
	n_dirs = 0;
	pthread_mutex_unlock(&lock);
}
