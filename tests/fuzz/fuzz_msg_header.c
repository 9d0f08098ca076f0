/*
 * fuzz_msg_header.c - libFuzzer target: any bytes as a message, split into
 * header fields (msgauth/header.h).
 *
 * Invariants: every field's raw bytes lie inside the block and start with its
 * name; limits hold; the body offset is within the input; searching
 * bottom-up and top-down finds the same number of fields.
 */
#include "msgauth/header.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_headers h;
	if (msg_headers_parse((const char *)data, size, &h) != MSG_HDR_OK)
		return 0;
	if (h.n > MSG_HDR_MAX_FIELDS || h.body_offset > size)
		abort();
	for (size_t i = 0; i < h.n; i++) {
		const struct msg_field *f = &h.f[i];
		if (f->raw < h.copy || f->raw + f->raw_len > h.copy + h.body_offset ||
		    f->raw_len > MSG_HDR_MAX_FIELD || strncmp(f->raw, f->name, strlen(f->name)) != 0 ||
		    strlen(f->value) > f->raw_len)
			abort();
	}
	if (h.n > 0) {
		size_t down = 0, up = 0;
		for (long i = msg_headers_next(&h, h.f[0].name, -1); i >= 0; i = msg_headers_next(&h, h.f[0].name, i))
			down++;
		for (long i = msg_headers_prev(&h, h.f[0].name, (long)h.n); i >= 0; i = msg_headers_prev(&h, h.f[0].name, i))
			up++;
		if (up != down || down != msg_headers_count(&h, h.f[0].name))
			abort();
	}
	msg_headers_free(&h);
	return 0;
}
