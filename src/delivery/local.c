/*
 * local.c - local delivery of queued messages, in batches (see local.h).
 *
 * A batch writes every pending local recipient's copy (file fsync'd, linked or
 * renamed into new/), then syncs each Maildir's new/ directory once, then logs the
 * deliveries and finishes the queue files. Under load this is group commit:
 * one directory fsync serves every message that landed in that Maildir.
 *
 * Delivery at acceptance (local_deliver_then) writes the same copies from
 * the text in memory, before the 250, when every recipient is local: then
 * the Maildir copies are the durable ones and no queue file is written.
 *
 * Idempotent: a copy's Maildir name is derived from the queue id and the
 * recipient's index, so when a crash fell between "copy in new/" and "done
 * mark in the queue file", the retry finds the copy (in new/, or in cur/
 * where a client moved it) and counts it delivered instead of writing a
 * second one. Only messages that may have been delivered before are looked
 * up (see lookup_for); a recovered one in a snapshot of each mailbox taken
 * once per process (delivered.h), a retried one in the directories.
 */
#include "delivery/local.h"
#include "address/expand.h"
#include "delivery/delivered.h"
#include "delivery/maildir.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
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

/* The Maildir of a recipient, under virtual_mailbox_base. */
struct mailbox {
	char dir[ADDR_DOMAIN_MAX + 1];
	char sub[ADDR_LOCAL_MAX + 1];
};

/* mailbox_of - where r's copy goes (expand.h: user+tag -> user, virtual
 * mailbox paths; the Maildir++ .Junk folder for a DMARC quarantine); false
 * when r has no mailbox (an unknown virtual user). */
static bool mailbox_of(const struct config *cfg, const struct queue_msg *m,
		       const struct queue_rcpt *r, struct mailbox *mb)
{
	if (!expand_mailbox(cfg, r->local, r->domain, mb->dir, sizeof(mb->dir), mb->sub,
			    sizeof(mb->sub)))
		return false;
	if (m->junk && strlen(mb->sub) + 7 < sizeof(mb->sub))
		strcat(mb->sub, "/.Junk");
	return true;
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

static void add_staged(struct staged **list, size_t n, struct delivery *d, size_t i,
		       const char *path, const char *newdir)
{
	*list = xrealloc(*list, (n + 1) * sizeof(**list));
	(*list)[n] = (struct staged){d, i, xstrdup(path), xstrdup(newdir), false};
}

/* How to learn whether a copy may already be in the Maildir. */
enum lookup {
	LOOKUP_NONE,     /* arrived since this process started, never tried: cannot be */
	LOOKUP_SNAPSHOT, /* older than this process: an earlier run may have delivered it */
	LOOKUP_SCAN,     /* tried before: this process too may have written it */
};

/* find_copy - where recipient i's copy already is ("" and false: nowhere). */
static bool find_copy(const struct config *cfg, struct delivery *d, size_t i, enum lookup how,
		      const char *unique, char *dir, size_t dirlen, char *path, size_t pathlen)
{
	struct mailbox mb;
	bool in_cur;
	if (!mailbox_of(cfg, d->msg, rcpt_of(d, i), &mb))
		return false;
	if (how == LOOKUP_SCAN)
		return maildir_find_delivered(cfg->virtual_mailbox_base, mb.dir, mb.sub,
					      unique, path, pathlen, dir, dirlen);
	if (!delivered_before(cfg->virtual_mailbox_base, mb.dir, mb.sub,
			      strtoull(d->msg->id, NULL, 16), (uint32_t)d->rcpt[i], &in_cur))
		return false;
	snprintf(dir, dirlen, "%s/%s/%s", mb.dir, mb.sub, in_cur ? "cur" : "new");
	snprintf(path, pathlen, "%s/%s", cfg->virtual_mailbox_base, dir);
	return true;
}

/* already_delivered - did an earlier attempt put this copy in the Maildir?
 * Then it counts as delivered (its directory is synced with the others). */
static bool already_delivered(const struct config *cfg, struct delivery *d, size_t i,
			      enum lookup how, const char *unique, struct staged **list,
			      size_t n)
{
	char path[4096], dir[4096], to[600];
	if (how == LOOKUP_NONE ||
	    !find_copy(cfg, d, i, how, unique, dir, sizeof(dir), path, sizeof(path)))
		return false;
	snprintf(to, sizeof(to), "<%s>", rcpt_of(d, i)->orig);
	log_ev(LOG_INFO, "already-delivered", {"queue", d->msg->id}, {"to", to},
	       {"mailbox", path}, {"copy", unique}, {"action", "not delivered again"});
	add_staged(list, n, d, i, path, dir);
	return true;
}

/* stage_one - recipient i's copy: found from before, or written now under
 * its deterministic name. Returns copies staged. */
static size_t stage_one(const struct config *cfg, struct delivery *d, size_t i, int fd,
			enum lookup how, struct staged **list, size_t n)
{
	struct queue_msg *m = d->msg;
	struct queue_rcpt *r = rcpt_of(d, i);
	char unique[64], to[600], path[4096], newdir[4096], err[512];
	struct mailbox mb;
	snprintf(unique, sizeof(unique), "%s%s_%zu", MAILDIR_UNIQUE_MARK, m->id, d->rcpt[i]);
	if (!mailbox_of(cfg, m, r, &mb)) { /* an alias led to a user who does not exist */
		delivery_outcome(d, i, RCPT_BOUNCED, "5.1.1",
				 "User unknown in virtual mailbox table", NULL);
		return n;
	}
	if (already_delivered(cfg, d, i, how, unique, list, n))
		return n + 1;
	snprintf(to, sizeof(to), "%s@%s", r->local, r->domain);
	struct maildir_copy c = {m->sender, to, unique, (long long)m->arrival};
	if (!maildir_deliver_copy(cfg->virtual_mailbox_base, mb.dir, mb.sub, &c, fd,
				  m->body_offset, (size_t)m->size, path, sizeof(path), newdir,
				  sizeof(newdir), err, sizeof(err))) {
		fail(d, i, err);
		return n;
	}
	add_staged(list, n, d, i, path, newdir);
	return n + 1;
}

/* lookup_for - may an earlier attempt have delivered some of d's copies? A
 * message tried before is looked for in the directories themselves; one
 * older than this process (recovered from the queue at start) in the
 * snapshot of what earlier runs left; one that arrived since the start and
 * was never tried cannot have been delivered, and costs no lookup. */
static enum lookup lookup_for(const struct delivery *d, time_t started)
{
	for (size_t i = 0; i < d->n_rcpt; i++)
		if (d->msg->rcpts[d->rcpt[i]].attempts > 0)
			return LOOKUP_SCAN;
	if (strncmp(d->msg->path ? d->msg->path : "", "deferred/", 9) == 0)
		return LOOKUP_SCAN;
	/* the same second counts: the message may predate the start */
	return d->msg->arrival <= started ? LOOKUP_SNAPSHOT : LOOKUP_NONE;
}

/* stage - write every local copy of d's message; returns copies staged.
 * The text is copied from the queue file, never held in memory whole. */
static size_t stage(const struct config *cfg, struct delivery *d, enum lookup how,
		    struct staged **list, size_t n)
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
	for (size_t i = 0; i < d->n_rcpt; i++)
		n = stage_one(cfg, d, i, fd, how, list, n);
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

void local_deliver_batch(const struct config *cfg, struct delivery **reqs, size_t n,
			 time_t started)
{
	struct staged *list = NULL;
	size_t staged = 0;
	/* each request with the configuration its pass routed with (a batch may
	 * span a reload; the directories are the same in all: a restart's) */
	for (size_t i = 0; i < n; i++)
		staged = stage(reqs[i]->cfg ? reqs[i]->cfg : cfg, reqs[i],
			       lookup_for(reqs[i], started), &list, staged);
	sync_directories(cfg->virtual_mailbox_base, list, staged);
	for (size_t i = 0; i < staged; i++) {
		free(list[i].path);
		free(list[i].newdir);
	}
	free(list);
}

/* copy_now - recipient i's copy of m, from memory, under its queued name. */
static bool copy_now(const struct config *cfg, const struct queue_msg *m, size_t i,
		     char *path, size_t pathlen, char *newdir, size_t newdirlen, char *err,
		     size_t errlen)
{
	const struct queue_rcpt *r = &m->rcpts[i];
	char unique[64], to[600];
	struct mailbox mb;
	if (!mailbox_of(cfg, m, r, &mb)) {
		snprintf(err, errlen, "%s@%s has no mailbox", r->local, r->domain);
		return false; /* queued instead, and bounced from there */
	}
	snprintf(unique, sizeof(unique), "%s%s_%zu", MAILDIR_UNIQUE_MARK, m->id, i);
	snprintf(to, sizeof(to), "%s@%s", r->local, r->domain);
	struct maildir_copy c = {m->sender, to, unique, (long long)m->arrival};
	return maildir_deliver_copy_mem(cfg->virtual_mailbox_base, mb.dir, mb.sub, &c,
					m->body.data, m->body.len, path, pathlen, newdir,
					newdirlen, err, errlen);
}

/* take_back - remove the copies of a delivery at acceptance that failed
 * part-way: nothing was promised, and the message is queued or refused
 * instead, so a copy left behind would be a duplicate. */
static void take_back(struct queue_msg *m)
{
	for (size_t i = 0; i < m->n_rcpts; i++) {
		if (m->rcpts[i].last_reply != NULL && unlink(m->rcpts[i].last_reply) != 0)
			log_ev(LOG_WARNING, "direct-copy-not-removed", {"queue", m->id},
			       {"mailbox", m->rcpts[i].last_reply}, {"reason", strerror(errno)});
		queue_rcpt_set_reply(&m->rcpts[i], NULL); /* a queued delivery starts afresh */
	}
}

/* A delivery at acceptance whose new/ directories are being synced. */
struct syncing {
	struct queue_msg *m;
	local_done_fn done;
	void *arg;
	atomic_size_t left; /* directories not yet synced */
	atomic_int error;   /* the first failure's errno */
};

/* now_synced - one of the directories is synced (or failed); after the
 * last, the outcome. Runs on whichever thread led the covering sync. */
static void now_synced(void *arg, int error)
{
	struct syncing *y = arg;
	int none = 0;
	if (error != 0)
		atomic_compare_exchange_strong(&y->error, &none, error);
	if (atomic_fetch_sub(&y->left, 1) != 1)
		return;
	char err[512] = "";
	int e = atomic_load(&y->error);
	if (e != 0) {
		snprintf(err, sizeof(err), "cannot sync a Maildir directory: %s", strerror(e));
		take_back(y->m);
	}
	y->done(y->arg, e == 0, err);
	free(y);
}

/* copy_all - every recipient's copy; dirs gets the distinct new/ directories. */
static bool copy_all(const struct config *cfg, struct queue_msg *m, char **dirs, size_t *n,
		     char *err, size_t errlen)
{
	char path[4096], newdir[4096];
	for (size_t i = 0; i < m->n_rcpts; i++) {
		if (!copy_now(cfg, m, i, path, sizeof(path), newdir, sizeof(newdir), err, errlen))
			return false;
		queue_rcpt_set_reply(&m->rcpts[i], path);
		bool seen = false;
		for (size_t k = 0; k < *n && !seen; k++)
			seen = strcmp(dirs[k], newdir) == 0;
		if (!seen)
			dirs[(*n)++] = xstrdup(newdir);
	}
	return true;
}

void local_deliver_then(const struct config *cfg, struct queue_msg *m, local_done_fn done,
			void *arg)
{
	char err[512] = "";
	char **dirs = xcalloc(m->n_rcpts ? m->n_rcpts : 1, sizeof(*dirs));
	size_t n = 0;
	bool ok = copy_all(cfg, m, dirs, &n, err, sizeof(err));
	if (!ok || n == 0) {
		if (!ok)
			take_back(m);
		done(arg, ok, err);
	} else {
		struct syncing *y = xcalloc(1, sizeof(*y));
		*y = (struct syncing){.m = m, .done = done, .arg = arg};
		atomic_init(&y->left, n);
		atomic_init(&y->error, 0);
		/* y, m and arg may be gone once the last of these returns */
		for (size_t i = 0; i < n; i++)
			dirsync_then(cfg->virtual_mailbox_base, dirs[i], now_synced, y);
	}
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
}

/* At most this many Maildirs are walked at start: the walk must end. */
#define CLEAN_MAX_MAILBOXES 100000

void local_clean_tmp(const struct config *cfg, const struct timespec *started)
{
	size_t visited;
	size_t n = maildir_clean_tmp(cfg->virtual_mailbox_base, started, CLEAN_MAX_MAILBOXES,
				     &visited);
	char removed[24], seen[24];
	snprintf(removed, sizeof(removed), "%zu", n);
	snprintf(seen, sizeof(seen), "%zu", visited);
	log_ev(LOG_INFO, "maildir-recovery", {"orphans_removed", removed},
	       {"mailboxes", seen},
	       {"limit", visited >= CLEAN_MAX_MAILBOXES ? "reached: the rest not walked" : NULL});
}
