/*
 * msgauth_text - the message text an end-of-data stage reads: the part
 * spooled to tmp/ID (queue_spool_open_text) followed by the part in memory.
 *
 * Owns: reading the header block (bounded) and streaming the body in chunks
 * on a worker thread.
 * Must not: hold a large body in memory, or write anything.
 */
#ifndef RG_MSGAUTH_TEXT_H
#define RG_MSGAUTH_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/session.h"
#include "util/util.h"

#define MSGAUTH_HEADER_MAX (1024 * 1024) /* a longer header block is not read on */

/* The text from its start up to and including the empty line that ends the
 * header (or MSGAUTH_HEADER_MAX bytes), appended to out. */
bool msgauth_text_header(const struct session_eod *e, struct strbuf *out, char *why,
			 size_t whylen);
/* The text from offset to its end, to fn in chunks. */
bool msgauth_text_body(const struct session_eod *e, uint64_t offset,
		       void (*fn)(void *arg, const char *p, size_t n), void *arg, char *why,
		       size_t whylen);

#endif
