/*
 * qctl - the control socket's commands done on the queue files.
 *
 * Owns: list, flush, delete, hold and release as file operations (the
 * control_ops the server registers until the queue manager provides its
 * own, and what `relayguard queue` does itself when no server runs).
 * Must not: touch a message in active/ while a server runs (the server has
 * it in memory for delivery): live, those are refused.
 */
#ifndef RG_QCTL_H
#define RG_QCTL_H

#include <stdbool.h>

#include "control/control.h"

struct qctl {
	const char *dir;  /* queue_directory, held open by basedir */
	bool offline;     /* the caller holds the queue lock: no server runs */
};

/* control_ops over the files; their arg is a struct qctl *. */
extern const struct control_ops qctl_ops;

/* Told the id of each message qctl_held_by_login released. */
typedef void qctl_released_fn(void *arg, const char *id);
/* qctl_held_by_login - every message in hold/ that LOGIN submitted (the queue
 * file's login record): released (to active/ or deferred/, RELEASED told) or
 * deleted. Says what it did in out; false only when hold/ cannot be read. */
bool qctl_held_by_login(const struct qctl *q, const char *login, bool release,
			struct strbuf *out, qctl_released_fn *released, void *arg);

#endif
