/*
 * statefile.c - durable whole-file replacement, in the background (see
 * statefile.h).
 */
#include "util/statefile.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/log.h"
#include "util/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct statefile {
	char *dir, *name;
	struct workers *writer; /* NULL: no background writes */
	statefile_snapshot_fn snapshot;
	statefile_render_fn render; /* NULL: the snapshot is the text */
	void *arg;
	bool dirty, writing;
};

struct write_job {
	struct statefile *sf;
	char *text;
	size_t len;
	bool ok;
	char err[300];
};

/* write_all - text into fd; false with errno. */
static bool write_all(int fd, const char *text, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, text, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		text += w;
		len -= (size_t)w;
	}
	return true;
}

/* owned_as_dir - written by root (the command line, no server running), the
 * file gets the directory's owner: mail_owner's server must read it next. */
static bool owned_as_dir(int fd, int dfd)
{
	struct stat st;
	if (geteuid() != 0)
		return true;
	return fstat(dfd, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) == 0;
}

/* open_tmp - a new TMP in DFD. Whoever owns the directory (mail_owner) may
 * have left a symbolic or hard link there for root's command line to write
 * through (and chown): it goes, and O_EXCL creates a file of our own. */
static int open_tmp(int dfd, const char *tmp)
{
	if (unlinkat(dfd, tmp, 0) != 0 && errno != ENOENT)
		return -1;
	return openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

FILE *statefile_open_read(const char *dir, const char *name, bool *absent, char *err,
			  size_t errlen)
{
	int dfd = basedir_fd(dir);
	/* O_NONBLOCK: a FIFO there (whoever owns the directory) must not hang us */
	int fd = dfd < 0 ? -1 : openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	*absent = fd < 0 && dfd >= 0 && errno == ENOENT;
	if (*absent)
		return NULL;
	struct stat st;
	bool regular = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	FILE *f = regular ? fdopen(fd, "r") : NULL;
	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s/%s: %s", dir, name,
			 fd >= 0 && !regular ? "not a regular file" : strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	return f;
}

bool statefile_write(const char *dir, const char *name, const char *text, size_t len, char *err,
		     size_t errlen)
{
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int dfd = basedir_fd(dir);
	int fd = dfd < 0 ? -1 : open_tmp(dfd, tmp);
	bool ok = fd >= 0 && owned_as_dir(fd, dfd) && write_all(fd, text, len) && fsync(fd) == 0;
	int e = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		e = errno;
	}
	if (ok && renameat(dfd, tmp, dfd, name) != 0) {
		ok = false;
		e = errno;
	}
	if (ok && !dirsync(dir, ".")) {
		ok = false;
		e = errno;
	}
	if (!ok)
		snprintf(err, errlen, "cannot write %s/%s: %s", dir, name, strerror(e));
	return ok;
}

struct statefile *statefile_new(struct event_base *base, const char *dir, const char *name,
				statefile_snapshot_fn snapshot, void *arg)
{
	struct statefile *sf = xcalloc(1, sizeof(*sf));
	sf->dir = xstrdup(dir);
	sf->name = xstrdup(name);
	sf->snapshot = snapshot;
	sf->arg = arg;
	if (base != NULL)
		sf->writer = workers_new(base, 1);
	return sf;
}

void statefile_set_render(struct statefile *sf, statefile_render_fn render)
{
	sf->render = render;
}

/* write_text - the snapshot TEXT (rendered first when the owner said how). */
static bool write_text(const struct statefile *sf, const char *text, size_t len, char *err,
		       size_t errlen)
{
	if (sf->render == NULL)
		return statefile_write(sf->dir, sf->name, text, len, err, errlen);
	struct strbuf sb;
	strbuf_init(&sb);
	sf->render(text, len, &sb);
	bool ok = statefile_write(sf->dir, sf->name, sb.data ? sb.data : "", sb.len, err, errlen);
	strbuf_free(&sb);
	return ok;
}

static void write_work(void *arg)
{
	struct write_job *w = arg;
	w->ok = write_text(w->sf, w->text, w->len, w->err, sizeof(w->err));
}

static void start_write(struct statefile *sf);

static void write_done(void *arg)
{
	struct write_job *w = arg;
	struct statefile *sf = w->sf;
	bool ok = w->ok;
	if (!ok) { /* the owner's table still holds; the next change (or exit) tries again */
		log_ev(LOG_WARNING, "state-write-failed", {"reason", w->err});
		sf->dirty = true;
	}
	free(w->text);
	free(w);
	sf->writing = false;
	if (ok && sf->dirty && sf->writer != NULL) /* not at once after a failure: no busy loop */
		start_write(sf);
}

static void start_write(struct statefile *sf)
{
	struct strbuf sb;
	strbuf_init(&sb);
	sf->snapshot(sf->arg, &sb);
	struct write_job *w = xcalloc(1, sizeof(*w));
	w->sf = sf;
	w->len = sb.len;
	w->text = strbuf_steal(&sb);
	if (w->text == NULL)
		w->text = xstrdup("");
	sf->dirty = false;
	sf->writing = true;
	workers_submit(sf->writer, write_work, write_done, w);
}

void statefile_changed(struct statefile *sf)
{
	sf->dirty = true;
	if (sf->writer != NULL && !sf->writing)
		start_write(sf);
}

bool statefile_flush(struct statefile *sf, bool force, char *err, size_t errlen)
{
	if (!sf->dirty && !force)
		return true;
	struct strbuf sb;
	strbuf_init(&sb);
	sf->snapshot(sf->arg, &sb);
	bool ok = write_text(sf, sb.data ? sb.data : "", sb.len, err, errlen);
	strbuf_free(&sb);
	if (ok)
		sf->dirty = false;
	return ok;
}

void statefile_free(struct statefile *sf)
{
	if (sf == NULL)
		return;
	if (sf->writer != NULL) {
		struct workers *w = sf->writer;
		sf->writer = NULL; /* write_done starts no new write */
		workers_free(w);
	}
	char err[300];
	if (!statefile_flush(sf, false, err, sizeof(err)))
		log_ev(LOG_WARNING, "state-write-failed", {"reason", err});
	free(sf->dir);
	free(sf->name);
	free(sf);
}
