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

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

/* One copy written but not yet durable. */
struct staged {
	struct queue_msg *m;
	struct queue_rcpt *r;
	char *path, *newdir;
	bool synced;
};

static void log_failure(const struct queue_msg *m, const struct queue_rcpt *r, const char *err)
{
	char to[ADDR_PATH_MAX + 3];
	snprintf(to, sizeof(to), "<%s>", r->orig);
	log_ev(LOG_ERROR, "delivery-failed", {"queue", m->id}, {"to", to}, {"reason", err},
	       {"next", "retry later; the message stays queued"});
}

static void log_deferred(const struct queue_msg *m, const struct queue_rcpt *r)
{
	char to[ADDR_PATH_MAX + 3];
	snprintf(to, sizeof(to), "<%s>", r->orig);
	log_ev(LOG_INFO, "deferred", {"queue", m->id}, {"to", to},
	       {"class", address_class_name(r->cls)},
	       {"reason", "outbound delivery is not implemented yet; the message stays in the "
			  "queue (deferred/)"});
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
	snprintf(err, errlen, "%s/%s: missing or damaged queue file", cfg->queue_directory,
		 m->path);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* stage_message - write every pending local copy of m; returns copies staged.
 * The text is copied from the queue file, never held in memory whole. */
static size_t stage_message(const struct config *cfg, struct queue_msg *m,
			    struct staged **list, size_t n)
{
	char err[512];
	int fd = open_text(cfg, m, err, sizeof(err));
	if (fd < 0) {
		/* damaged or gone: retrying cannot help; keep the file for the operator */
		log_ev(LOG_ERROR, "queue-corrupt", {"queue", m->id}, {"reason", err},
		       {"action", "moved to corrupt/"});
		queue_set_aside(cfg->queue_directory, m->path);
		for (size_t i = 0; i < m->n_rcpts; i++)
			m->rcpts[i].done = true; /* nothing more to do with it here */
		m->set_aside = true;
		return n;
	}
	for (size_t i = 0; i < m->n_rcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		if (r->done)
			continue;
		if (r->cls != ADDR_CLASS_LOCAL) {
			log_deferred(m, r);
			continue;
		}
		char path[4096], newdir[4096];
		if (!maildir_deliver_fd(cfg->virtual_mailbox_base, r->domain, r->local, fd,
					m->body_offset, (size_t)m->size, path, sizeof(path),
					newdir, sizeof(newdir), err, sizeof(err))) {
			log_failure(m, r, err);
			continue;
		}
		*list = xrealloc(*list, (n + 1) * sizeof(**list));
		(*list)[n++] = (struct staged){m, r, xstrdup(path), xstrdup(newdir), false};
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
			list[k].r->done = ok;
			if (!ok)
				log_failure(list[k].m, list[k].r, "cannot sync the Maildir directory");
		}
	}
}

static void log_delivered(const struct staged *s)
{
	char to[ADDR_PATH_MAX + 3];
	snprintf(to, sizeof(to), "<%s>", s->r->orig);
	log_ev(LOG_INFO, "delivered", {"queue", s->m->id}, {"to", to}, {"mailbox", s->path});
}

void local_deliver_batch(const struct config *cfg, struct queue_msg **msgs, size_t n,
			 bool *retry)
{
	struct staged *list = NULL;
	size_t staged = 0;
	for (size_t i = 0; i < n; i++)
		staged = stage_message(cfg, msgs[i], &list, staged);
	sync_directories(cfg->virtual_mailbox_base, list, staged);
	for (size_t i = 0; i < staged; i++) {
		if (list[i].r->done)
			log_delivered(&list[i]);
		free(list[i].path);
		free(list[i].newdir);
	}
	free(list);
	for (size_t i = 0; i < n; i++) {
		struct queue_msg *m = msgs[i];
		retry[i] = false;
		if (m->set_aside)
			continue;
		for (size_t k = 0; k < m->n_rcpts; k++)
			retry[i] |= m->rcpts[k].cls == ADDR_CLASS_LOCAL && !m->rcpts[k].done;
		char err[512];
		if (retry[i])
			queue_record_progress(cfg->queue_directory, m);
		else if (!queue_finish(cfg->queue_directory, m, err, sizeof(err)))
			log_ev(LOG_ERROR, "queue-error", {"queue", m->id}, {"reason", err});
	}
}
