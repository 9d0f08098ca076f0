/*
 * msgauth_text.c - reading the text of a message at the end of DATA (see
 * msgauth_text.h). The spooled part comes first, then msg->body.
 */
#include "smtp/msgauth_text.h"
#include "queue/queue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

/* walk - the text from offset: fn gets each piece; it returns false to stop. */
static bool walk(const struct session_eod *e, uint64_t offset,
		 bool (*fn)(void *arg, const char *p, size_t n), void *arg, char *why,
		 size_t whylen)
{
	if (e->spool != NULL && offset < e->spooled) {
		uint64_t base;
		int fd = queue_spool_open_text(e->queue_directory, e->spool, &base);
		if (fd < 0) {
			snprintf(why, whylen, "cannot open the spooled text: %s", strerror(errno));
			return false;
		}
		static __thread char buf[CHUNK];
		bool more = true;
		while (more && offset < e->spooled) {
			size_t want = e->spooled - offset < CHUNK ? (size_t)(e->spooled - offset) : CHUNK;
			ssize_t r = pread(fd, buf, want, (off_t)(base + offset));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				snprintf(why, whylen, "cannot read the spooled text: %s",
					 r < 0 ? strerror(errno) : "it is shorter than written");
				close(fd);
				return false;
			}
			offset += (uint64_t)r;
			more = fn(arg, buf, (size_t)r);
		}
		close(fd);
		if (!more)
			return true;
	}
	uint64_t on_disk = e->spool != NULL ? e->spooled : 0;
	uint64_t in_mem = offset > on_disk ? offset - on_disk : 0;
	if (in_mem < e->msg->body.len)
		fn(arg, e->msg->body.data + in_mem, e->msg->body.len - in_mem);
	return true;
}

/* add_header - gather until the empty line (CRLF CRLF) or the limit. */
static bool add_header(void *arg, const char *p, size_t n)
{
	struct strbuf *out = arg;
	size_t before = out->len;
	size_t room = MSGAUTH_HEADER_MAX - out->len;
	strbuf_append(out, p, n < room ? n : room);
	size_t from = before >= 3 ? before - 3 : 0;
	const char *end = memmem(out->data + from, out->len - from, "\r\n\r\n", 4);
	if (end != NULL) {
		out->len = (size_t)(end - out->data) + 4;
		out->data[out->len] = '\0';
		return false;
	}
	return out->len < MSGAUTH_HEADER_MAX;
}

bool msgauth_text_header(const struct session_eod *e, struct strbuf *out, char *why,
			 size_t whylen)
{
	return walk(e, 0, add_header, out, why, whylen);
}

struct body_arg {
	void (*fn)(void *arg, const char *p, size_t n);
	void *arg;
};

static bool add_body(void *arg, const char *p, size_t n)
{
	struct body_arg *b = arg;
	b->fn(b->arg, p, n);
	return true;
}

bool msgauth_text_body(const struct session_eod *e, uint64_t offset,
		       void (*fn)(void *arg, const char *p, size_t n), void *arg, char *why,
		       size_t whylen)
{
	struct body_arg b = {fn, arg};
	return walk(e, offset, add_body, &b, why, whylen);
}
