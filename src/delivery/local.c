/*
 * local.c - local delivery of queued messages, in batches (see local.h).
 *
 * A batch writes every pending local recipient's copy (file fsync'd, renamed
 * into new/), then syncs each Maildir's new/ directory once, then logs the
 * deliveries and finishes the queue files. Under load this is group commit:
 * one directory fsync serves every message that landed in that Maildir.
 */
#include "delivery/local.h"
#include "delivery/maildir.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* One copy written but not yet durable. */
struct staged {
	struct delivery *d;
	size_t i;             /* the recipient's index in d */
	char *path, *newdir;
	bool synced;
};

static struct queue_rcpt *rcpt_of(struct delivery *d, size_t i)
{
	return &d->msg->rcpts[d->rcpt[i]];
}

static void fail(struct delivery *d, size_t i, const char *err)
{
	char reply[600];
	snprintf(reply, sizeof(reply), "local delivery failed: %s", err);
	delivery_outcome(d, i, RCPT_DEFERRED, "4.3.0", reply, NULL);
}

/* open_text - the committed queue file, checked to hold the whole text. */
static int open_text(const struct config *cfg, const struct queue_msg *m, char *err,
		     size_t errlen)
{
	int base = basedir_fd(cfg->queue_directory);
	int fd = base < 0 ? -1 : openat(base, m->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 &&
	    (uint64_t)st.st_size >= (uint64_t)m->body_offset + m->size) /* state records follow */
		return fd;
	int saved = fd >= 0 ? EBADMSG : errno; /* shorter than its header says: damaged */
	snprintf(err, errlen, "%s/%s: %s", cfg->queue_directory, m->path,
		 saved == EBADMSG ? "damaged queue file (shorter than its header says)"
				  : strerror(saved));
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

/* stage - write every local copy of d's message; returns copies staged.
 * The text is copied from the queue file, never held in memory whole. */
static size_t stage(const struct config *cfg, struct delivery *d, struct staged **list,
		    size_t n)
{
	char err[512];
	struct queue_msg *m = d->msg;
	int fd = m->set_aside ? -1 : open_text(cfg, m, err, sizeof(err));
	if (fd < 0 && !m->set_aside && errno != EBADMSG) {
		for (size_t i = 0; i < d->n_rcpt; i++) /* out of fds, ...: later */
			fail(d, i, err);
		return n;
	}
	if (fd < 0) {
		/* damaged: retrying cannot help; keep the file for the operator */
		if (!m->set_aside) {
			log_ev(LOG_ERROR, "queue-corrupt", {"queue", m->id}, {"reason", err},
			       {"action", "moved to corrupt/"});
			queue_set_aside(cfg->queue_directory, m->path);
		}
		m->set_aside = true;
		return n;
	}
	for (size_t i = 0; i < d->n_rcpt; i++) {
		struct queue_rcpt *r = rcpt_of(d, i);
		char path[4096], newdir[4096];
		if (!maildir_deliver_fd(cfg->virtual_mailbox_base, r->domain, r->local, fd,
					m->body_offset, (size_t)m->size, path, sizeof(path),
					newdir, sizeof(newdir), err, sizeof(err))) {
			fail(d, i, err);
			continue;
		}
		*list = xrealloc(*list, (n + 1) * sizeof(**list));
		(*list)[n++] = (struct staged){d, i, xstrdup(path), xstrdup(newdir), false};
	}
	close(fd);
	return n;
}

/* sync_directories - one dirsync per distinct new/ directory. */
static void sync_directories(const char *base, struct staged *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (list[i].synced)
			continue;
		bool ok = dirsync(base, list[i].newdir);
		for (size_t k = i; k < n; k++) {
			if (strcmp(list[k].newdir, list[i].newdir) != 0)
				continue;
			list[k].synced = true;
			if (ok)
				delivery_outcome(list[k].d, list[k].i, RCPT_SENT, "2.0.0",
						 list[k].path, NULL);
			else
				fail(list[k].d, list[k].i, "cannot sync the Maildir directory");
		}
	}
}

void local_deliver_batch(const struct config *cfg, struct delivery **reqs, size_t n)
{
	struct staged *list = NULL;
	size_t staged = 0;
	for (size_t i = 0; i < n; i++)
		staged = stage(cfg, reqs[i], &list, staged);
	sync_directories(cfg->virtual_mailbox_base, list, staged);
	for (size_t i = 0; i < staged; i++) {
		free(list[i].path);
		free(list[i].newdir);
	}
	free(list);
}
