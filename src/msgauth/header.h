/*
 * header - the message header parser shared by DKIM, DMARC and the session.
 *
 * Owns: splitting a header block (RFC 5322 2.2) into fields, each with its
 * name, its raw bytes (folding kept, as DKIM "simple" needs them) and its
 * unfolded value; finding fields by name, top-down or bottom-up (DKIM h=).
 * Bounded: at most MSG_HDR_MAX_FIELDS fields of MSG_HDR_MAX_FIELD bytes each;
 * bare LF is taken as a line end; nothing past the block is read.
 * Must not: interpret field bodies (addresses: from.c; tags: dkim_tags.c),
 * or hold the message body.
 */
#ifndef RG_MSGAUTH_HEADER_H
#define RG_MSGAUTH_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#define MSG_HDR_MAX_FIELDS 1000
#define MSG_HDR_MAX_FIELD  (64 * 1024) /* raw bytes of one field, folding included */

struct msg_field {
	char *name;      /* as written, NUL-terminated (no trailing blanks) */
	const char *raw; /* the whole field from its name up to, not including, its last line end */
	size_t raw_len;
	char *value;     /* after the colon, unfolded (line ends removed), NUL-terminated;
			  * leading and trailing blanks removed */
};

struct msg_headers {
	struct msg_field *f; /* in message order */
	size_t n;
	size_t body_offset;  /* where the body starts in the parsed buffer */
	bool has_body;       /* an empty line ended the block (else: end of input) */
	char *copy;          /* the block, owned; raw pointers point into it */
};

enum msg_hdr_status {
	MSG_HDR_OK,
	MSG_HDR_TOO_MANY,   /* more than MSG_HDR_MAX_FIELDS fields */
	MSG_HDR_TOO_LONG,   /* a field longer than MSG_HDR_MAX_FIELD */
	MSG_HDR_MALFORMED,  /* a line that is neither a field, a continuation nor the end */
};

/* Parse the header block at the start of buf[0..len). On error *h is empty and
 * the status says why; lines before the bad one are not kept. */
enum msg_hdr_status msg_headers_parse(const char *buf, size_t len, struct msg_headers *h);
void msg_headers_free(struct msg_headers *h);

/* msg_headers_prev - index of the last field called name (any case) before
 * index before (pass h->n to start at the bottom), or -1. */
long msg_headers_prev(const struct msg_headers *h, const char *name, long before);
/* msg_headers_next - the first field called name after index after (-1: from the top), or -1. */
long msg_headers_next(const struct msg_headers *h, const char *name, long after);
/* msg_headers_count - how many fields are called name. */
size_t msg_headers_count(const struct msg_headers *h, const char *name);

const char *msg_hdr_status_text(enum msg_hdr_status st);

#endif
