/*
 * qctl.c - queue commands on the files (see qctl.h).
 *
 * Live (server running) these run on the event loop: they list directories,
 * read envelopes and rename or unlink files, without fsync. A hold or delete
 * lost in a crash leaves the message where it was; no mail is lost. The
 * queue manager replaces them with in-memory answers.
 */
#include "queue/qctl.h"
#include "queue/queue_admin.h"
#include "util/basedir.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_LEN (QUEUE_ID_LEN + 16)

/* set_reason - replace whatever out holds by the reason of a failure. */
static void set_reason(struct strbuf *out, const char *reason)
{
	out->len = 0;
	if (out->data)
		out->data[0] = '\0';
	strbuf_puts(out, reason);
}

/* find - the file of id, or an error in out. */
static bool find(const struct qctl *q, const char *id, char path[PATH_LEN],
		 struct strbuf *out)
{
	if (queue_find(q->dir, id, path, PATH_LEN))
		return true;
	strbuf_printf(out, "no such message in the queue: %s", id);
	return false;
}

/* busy - live, a message in active/ belongs to the server's delivery. */
static bool busy(const struct qctl *q, const char *path, struct strbuf *out)
{
	if (q->offline || queue_state_of(path) != QUEUE_STATE_ACTIVE)
		return false;
	strbuf_printf(out, "%s is being delivered (active/); try again once it is deferred",
		      path + strlen("active/"));
	return true;
}

static bool qctl_list(void *arg, bool json, struct strbuf *out)
{
	const struct qctl *q = arg;
	char err[512];
	if (queue_list_files(q->dir, json, out, err, sizeof(err)))
		return true;
	set_reason(out, err);
	return false;
}

static bool qctl_flush(void *arg, const char *id, struct strbuf *out)
{
	const struct qctl *q = arg;
	char path[PATH_LEN];
	if (id != NULL && !find(q, id, path, out))
		return false;
	/* the queue manager retries here; until it exists there is nothing to retry */
	log_ev(LOG_INFO, "queue-flush", {"id", id ? id : "all"},
	       {"action", "none: outbound delivery is not implemented yet"});
	strbuf_printf(out, "flush requested for %s (outbound delivery is not implemented "
		      "yet: nothing is retried)\n", id ? id : "every message");
	return true;
}

/* delete_one - unlink one message's file, unless live delivery has it. */
static bool delete_one(const struct qctl *q, const char *path, struct strbuf *out)
{
	const char *id = strchr(path, '/') + 1;
	if (busy(q, path, out))
		return false;
	if (unlinkat(basedir_fd(q->dir), path, 0) != 0) {
		strbuf_printf(out, "cannot delete %s/%s: %s", q->dir, path, strerror(errno));
		return false;
	}
	if (!q->offline)
		log_ev(LOG_INFO, "queue-deleted", {"id", id}, {"from", path});
	strbuf_printf(out, "%s: deleted\n", id);
	return true;
}

/* delete_all - every message not being delivered; says what it left. */
static bool delete_all(const struct qctl *q, struct strbuf *out)
{
	size_t deleted = 0, kept = 0;
	for (size_t i = 0; i < RG_ARRAY_LEN(queue_admin_subdirs); i++) {
		char **files = queue_list(q->dir, queue_admin_subdirs[i]);
		for (size_t j = 0; files && files[j]; j++) {
			struct strbuf one;
			strbuf_init(&one);
			bool ok = delete_one(q, files[j], &one);
			if (!ok)
				strbuf_printf(out, "%s: kept: %s\n", files[j], one.data);
			deleted += ok;
			kept += !ok;
			strbuf_free(&one);
			free(files[j]);
		}
		free(files);
	}
	strbuf_printf(out, "%zu message%s deleted", deleted, deleted == 1 ? "" : "s");
	if (kept)
		strbuf_printf(out, ", %zu kept", kept);
	strbuf_puts(out, "\n");
	return true;
}

static bool qctl_delete(void *arg, const char *id, struct strbuf *out)
{
	const struct qctl *q = arg;
	char path[PATH_LEN];
	if (id == NULL)
		return delete_all(q, out);
	return find(q, id, path, out) && delete_one(q, path, out);
}

/* move - path to sub/, with the log line and the operator's answer. */
static bool move(const struct qctl *q, const char *path, const char *sub, const char *verb,
		 struct strbuf *out)
{
	char err[512];
	const char *id = strchr(path, '/') + 1;
	if (!queue_move(q->dir, path, sub, err, sizeof(err))) {
		strbuf_puts(out, err);
		return false;
	}
	if (!q->offline)
		log_ev(LOG_INFO, verb, {"id", id}, {"from", path}, {"to", sub});
	strbuf_printf(out, "%s: %s (moved to %s/)\n", id, verb + strlen("queue-"), sub);
	return true;
}

static bool qctl_hold(void *arg, const char *id, struct strbuf *out)
{
	const struct qctl *q = arg;
	char path[PATH_LEN];
	if (!find(q, id, path, out) || busy(q, path, out))
		return false;
	if (queue_state_of(path) == QUEUE_STATE_HELD) {
		strbuf_printf(out, "%s is already held", id);
		return false;
	}
	return move(q, path, "hold", "queue-held", out);
}

/* release_to - active/ while local recipients wait (local delivery reads
 * active/), else deferred/ (outbound). */
static const char *release_to(const struct qctl *q, const char *path)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	char err[512];
	const char *sub = "deferred";
	if (queue_load_header(q->dir, path, m, err, sizeof(err)))
		for (size_t i = 0; i < m->n_rcpts; i++)
			if (!m->rcpts[i].done && m->rcpts[i].cls == ADDR_CLASS_LOCAL)
				sub = "active";
	queue_msg_free(m);
	return sub;
}

/* release_now - out of hold/, due now: the file's mtime is its next try, and a
 * message held after a failed attempt would otherwise wait for its old
 * backoff (`queue release` says the message goes now, as Postfix's does). */
static bool release_now(const struct qctl *q, const char *path, struct strbuf *out)
{
	const char *sub = release_to(q, path);
	if (!move(q, path, sub, "queue-released", out))
		return false;
	char *moved = xasprintf("%s/%s", sub, strchr(path, '/') + 1);
	if (utimensat(basedir_fd(q->dir), moved, NULL, 0) != 0 && !q->offline)
		log_ev(LOG_WARNING, "queue-release-not-due", {"path", moved},
		       {"reason", strerror(errno)}, {"action", "delivered at its next try"});
	free(moved);
	return true;
}

static bool qctl_release(void *arg, const char *id, struct strbuf *out)
{
	const struct qctl *q = arg;
	char path[PATH_LEN];
	if (!find(q, id, path, out))
		return false;
	if (queue_state_of(path) != QUEUE_STATE_HELD) {
		strbuf_printf(out, "%s is not held (it is in %.*s/)", id,
			      (int)(strchr(path, '/') - path), path);
		return false;
	}
	return release_now(q, path, out);
}

/* submitted_by - the login recorded in the file at path is LOGIN. */
static bool submitted_by(const struct qctl *q, const char *path, const char *login)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	char err[512];
	bool same = queue_load_header(q->dir, path, m, err, sizeof(err)) && m->login != NULL &&
		    strcmp(m->login, login) == 0;
	queue_msg_free(m);
	return same;
}

/* by_login_one - release or delete one held file; its id to RELEASED. */
static bool by_login_one(const struct qctl *q, const char *path, bool release,
			 struct strbuf *out, qctl_released_fn *released, void *arg)
{
	if (!release)
		return delete_one(q, path, out);
	if (!release_now(q, path, out))
		return false;
	if (released)
		released(arg, strchr(path, '/') + 1);
	return true;
}

bool qctl_held_by_login(const struct qctl *q, const char *login, bool release,
			struct strbuf *out, qctl_released_fn *released, void *arg)
{
	char **files = queue_list(q->dir, "hold");
	if (files == NULL) {
		strbuf_printf(out, "cannot read %s/hold: %s", q->dir, strerror(errno));
		return false;
	}
	size_t done = 0, failed = 0;
	for (size_t i = 0; files[i]; i++) {
		if (submitted_by(q, files[i], login)) {
			bool ok = by_login_one(q, files[i], release, out, released, arg);
			done += ok;
			failed += !ok;
			if (!ok)
				strbuf_puts(out, "\n");
		}
		free(files[i]);
	}
	free(files);
	strbuf_printf(out, "%zu held message%s from login %s %s", done, done == 1 ? "" : "s",
		      login, release ? "released" : "deleted");
	if (failed)
		strbuf_printf(out, ", %zu failed", failed);
	strbuf_puts(out, "\n");
	return true;
}

const struct control_ops qctl_ops = {
	.list = qctl_list,
	.flush = qctl_flush,
	.delete = qctl_delete,
	.hold = qctl_hold,
	.release = qctl_release,
};
