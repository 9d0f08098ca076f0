/*
 * dirsync.c - shared directory fsyncs (see dirsync.h).
 *
 * Each directory has tickets: a caller takes the next ticket after its own
 * rename. The leader records the highest ticket taken when it starts an
 * fsync; when that fsync returns, every ticket up to that number is durable.
 * Callers whose ticket is higher wait for the next round (and may lead it).
 * After a failed fsync the directory stays failed: commits are refused (451)
 * rather than acknowledged on a disk that reported an I/O error.
 */
#include "util/dirsync.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dir_entry {
	char *path;
	uint64_t taken, done;  /* tickets handed out / made durable */
	bool running;
	uint64_t fail_from;    /* 0, or the first ticket of the first failed fsync */
	uint64_t miss_from, miss_upto; /* the last round that could not open the dir */
	struct dir_entry *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t round_done = PTHREAD_COND_INITIALIZER;
static struct dir_entry *dirs;

static struct dir_entry *find_dir(const char *path)
{
	for (struct dir_entry *d = dirs; d != NULL; d = d->next)
		if (strcmp(d->path, path) == 0)
			return d;
	struct dir_entry *d = xcalloc(1, sizeof(*d));
	d->path = xstrdup(path);
	d->next = dirs;
	dirs = d;
	return d;
}

enum sync_result { SYNC_OK, SYNC_NO_DIR, SYNC_IO_ERROR };

static enum sync_result fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return SYNC_NO_DIR;
	bool ok = fsync(fd) == 0;
	int saved = errno;
	close(fd);
	errno = saved;
	return ok ? SYNC_OK : SYNC_IO_ERROR;
}

bool dirsync(const char *dir)
{
	pthread_mutex_lock(&lock);
	struct dir_entry *d = find_dir(dir);
	uint64_t ticket = ++d->taken;
	while (d->done < ticket) {
		if (d->running) {
			pthread_cond_wait(&round_done, &lock);
			continue;
		}
		d->running = true;
		uint64_t from = d->done + 1, upto = d->taken; /* all who renamed before now */
		pthread_mutex_unlock(&lock);
		enum sync_result r = fsync_path(d->path);
		pthread_mutex_lock(&lock);
		d->running = false;
		d->done = upto;
		if (r == SYNC_IO_ERROR && d->fail_from == 0)
			d->fail_from = from; /* an fsync error on a directory (EIO) is not retried */
		if (r == SYNC_NO_DIR) {
			d->miss_from = from;
			d->miss_upto = upto;
		}
		pthread_cond_broadcast(&round_done);
	}
	bool ok = (d->fail_from == 0 || ticket < d->fail_from) &&
		  !(ticket >= d->miss_from && ticket <= d->miss_upto);
	pthread_mutex_unlock(&lock);
	return ok;
}

void dirsync_cleanup(void)
{
	pthread_mutex_lock(&lock);
	while (dirs != NULL) {
		struct dir_entry *d = dirs;
		dirs = d->next;
		free(d->path);
		free(d);
	}
	pthread_mutex_unlock(&lock);
}
