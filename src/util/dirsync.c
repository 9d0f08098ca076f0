/*
 * dirsync.c - shared directory fsyncs (see dirsync.h).
 *
 * Each directory has tickets: a caller takes the next ticket after its own
 * rename. The leader records the highest ticket taken when it starts an
 * fsync; when that fsync returns, every ticket up to that number is durable.
 * Callers whose ticket is higher wait for the next round (and may lead it).
 * Each caller gets the outcome of the round that covered its ticket.
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

#define ROUNDS_KEPT 64     /* results remembered for waiters that wake late */
#define MAX_IDLE_DIRS 256  /* idle entries beyond this are dropped */

struct round {
	uint64_t from, upto;
	int error; /* 0, or the errno of the failed open/fsync */
};

struct dir_entry {
	char *path;            /* base "/" rel: the key */
	char *base, *rel;
	uint64_t taken, done;  /* tickets handed out / made durable */
	bool running;
	unsigned waiters;
	struct round rounds[ROUNDS_KEPT];
	unsigned next_round;
	struct dir_entry *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t round_done = PTHREAD_COND_INITIALIZER;
static struct dir_entry *dirs;
static size_t n_dirs;

/* drop_idle - forget directories nobody is syncing (Maildirs come and go). */
static void drop_idle(void)
{
	struct dir_entry **pp = &dirs;
	while (*pp != NULL && n_dirs > MAX_IDLE_DIRS) {
		struct dir_entry *d = *pp;
		if (d->running || d->waiters > 0) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		free(d->path);
		free(d->base);
		free(d->rel);
		free(d);
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

/* round_error - the outcome of the round that covered ticket; unknown is failure. */
static int round_error(const struct dir_entry *d, uint64_t ticket)
{
	for (unsigned i = 0; i < ROUNDS_KEPT; i++) {
		const struct round *r = &d->rounds[i];
		if (r->upto != 0 && ticket >= r->from && ticket <= r->upto)
			return r->error;
	}
	return EIO; /* too old to know: say failed, the client will retry (no loss) */
}

bool dirsync(const char *base, const char *rel)
{
	pthread_mutex_lock(&lock);
	struct dir_entry *d = find_dir(base, rel);
	uint64_t ticket = ++d->taken;
	d->waiters++;
	while (d->done < ticket) {
		if (d->running) {
			pthread_cond_wait(&round_done, &lock);
			continue;
		}
		d->running = true;
		struct round r = {d->done + 1, d->taken, 0}; /* all who renamed before now */
		pthread_mutex_unlock(&lock);
		r.error = fsync_path(d->base, d->rel);
		pthread_mutex_lock(&lock);
		d->running = false;
		d->done = r.upto;
		d->rounds[d->next_round++ % ROUNDS_KEPT] = r;
		pthread_cond_broadcast(&round_done);
	}
	int error = round_error(d, ticket);
	d->waiters--;
	pthread_mutex_unlock(&lock);
	errno = error;
	return error == 0;
}

void dirsync_cleanup(void)
{
	pthread_mutex_lock(&lock);
	while (dirs != NULL) {
		struct dir_entry *d = dirs;
		dirs = d->next;
		free(d->path);
		free(d->base);
		free(d->rel);
		free(d);
	}
	n_dirs = 0;
	pthread_mutex_unlock(&lock);
}
