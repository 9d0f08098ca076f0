/*
 * queue_admin - what an operator does with queue files: find, move, list.
 *
 * Owns: queue id syntax, the hold/ directory's meaning (a message there is
 * never delivered until it is released), moving a file between active/,
 * deferred/ and hold/, and the listing format (mailq-like text and JSON)
 * shared by the offline CLI and the server's control socket.
 * Must not: run on the event loop for anything but the formatting functions
 * (queue_listing_*); the others read directories and files.
 */
#ifndef RG_QUEUE_ADMIN_H
#define RG_QUEUE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"
#include "util/util.h"

/* The directories a message can be in, in listing order. */
extern const char *const queue_admin_subdirs[3]; /* "active", "deferred", "hold" */

/* A queue id: 16 to QUEUE_ID_LEN upper-case hex digits (queue_new_id). */
bool queue_id_valid(const char *id);

/* Which directory holds id: path gets "deferred/ID" etc. False if none. */
bool queue_find(const char *dir, const char *id, char *path, size_t pathlen);

/* Rename dir/path ("deferred/ID") to sub/ID; false with err on failure. Not
 * fsync'd: a move lost in a crash leaves the message where it was. */
bool queue_move(const char *dir, const char *path, const char *sub, char *err,
		size_t errlen);

/* Where a message is, for the listing mark (Postfix's: '*' active, '!' held). */
enum queue_state { QUEUE_STATE_DEFERRED, QUEUE_STATE_ACTIVE, QUEUE_STATE_HELD };
enum queue_state queue_state_of(const char *path);

/* A listing in progress: begin, one add per message, end. */
struct queue_listing {
	struct strbuf *out;
	bool json;
	size_t n;
	uint64_t bytes;
};
void queue_listing_begin(struct queue_listing *l, struct strbuf *out, bool json);
void queue_listing_add(struct queue_listing *l, const struct queue_msg *m,
		       enum queue_state state);
void queue_listing_end(struct queue_listing *l);

/* List every message in active/, deferred/ and hold/ from the files. False
 * (with err) only when the queue directory itself cannot be read. */
bool queue_list_files(const char *dir, bool json, struct strbuf *out, char *err,
		      size_t errlen);

#endif
