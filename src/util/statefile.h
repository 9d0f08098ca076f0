/*
 * statefile - small state files kept with the queue (the TLS downgrade
 * memory, cached MTA-STS policies, hijack-state): replaced whole, durably.
 *
 * Owns: writing a file in a basedir directory: a temporary file (always a
 * new one: root's command line writes here too, in a directory mail_owner
 * owns), fsync, rename over the old one, directory sync; and doing that on a
 * worker thread from a snapshot the loop made, one write at a time, again
 * when more changed meanwhile.
 * Must not: run statefile_write on the event loop (it blocks), or read the
 * owner's table from the worker (the snapshot is a copy).
 */
#ifndef RG_STATEFILE_H
#define RG_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "util/util.h"

struct event_base;
struct statefile;

/* Replace dir/name with text (dir held open by basedir). Blocks. */
bool statefile_write(const char *dir, const char *name, const char *text, size_t len, char *err,
		     size_t errlen);

/* statefile_open_read - dir/name for reading (dir held open by basedir),
 * never through a link and never a FIFO or device, which would hang start-up
 * or root's command line. NULL with *absent when there is no such file
 * (not an error), NULL with ERR ("cannot read DIR/NAME: why") otherwise. */
FILE *statefile_open_read(const char *dir, const char *name, bool *absent, char *err,
			  size_t errlen);

/* snapshot - the whole file's text, made on the loop. */
typedef void (*statefile_snapshot_fn)(void *arg, struct strbuf *out);

/* A background writer of dir/name; base NULL: only statefile_flush writes. */
struct statefile *statefile_new(struct event_base *base, const char *dir, const char *name,
				statefile_snapshot_fn snapshot, void *arg);
/* render - on the worker: the file's text from what the snapshot made (a
 * table too large to format on the loop snapshots raw bytes, formatted
 * here). Without one, the snapshot is the text. */
typedef void (*statefile_render_fn)(const char *raw, size_t len, struct strbuf *out);
void statefile_set_render(struct statefile *sf, statefile_render_fn render);
/* Something changed: write (soon, on a worker). */
void statefile_changed(struct statefile *sf);
/* Write now on this thread if anything changed (or force); false with err. */
bool statefile_flush(struct statefile *sf, bool force, char *err, size_t errlen);
/* Wait for a write in flight, flush what changed since, free. NULL is fine. */
void statefile_free(struct statefile *sf);

#endif
