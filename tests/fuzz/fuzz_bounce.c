/*
 * fuzz_bounce.c - libFuzzer target: any bytes as the untrusted parts of a DSN.
 *
 * The input is split at NUL bytes into the diagnostic, the final recipient,
 * the remote MTA, the ENVID and the original message; its first byte picks
 * the action, RET=HDRS and a small size limit. Besides "no crash, no UB, no
 * leak", it checks what a mail client relies on: the boundary occurs only in
 * the Content-Type parameter and the delimiter lines (2 or 3 parts, one
 * close), and everything dsn_build wrote itself has CRLF lines of at most
 * 998 octets, so no input can add a header or a MIME part.
 */
#include "queue/bounce.h"
#include "util/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* field - the next NUL-terminated piece of the input (a copy), or "". */
static char *field(const char **p, const char *end)
{
	const char *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n = nul != NULL ? (size_t)(nul - *p) : (size_t)(end - *p);
	char *s = xstrndup(*p, n);
	*p += n + (nul != NULL ? 1 : 0);
	return s;
}

static size_t count(const char *hay, size_t n, const char *needle)
{
	size_t c = 0, l = strlen(needle);
	for (const char *p = hay; (p = memmem(p, n - (size_t)(p - hay), needle, l)) != NULL; p += l)
		c++;
	return c;
}

/* generated_ok - CRLF lines of at most 998 octets in out[0..n). */
static bool generated_ok(const char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			col = 0;
			i++;
		} else if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0' || ++col > 998) {
			return false;
		}
	}
	return col == 0;
}

/* check - the boundary only where it belongs; our own text well-formed. */
static void check(const struct strbuf *out)
{
	const char *b = strstr(out->data, "boundary=\"");
	if (b == NULL)
		abort();
	b += strlen("boundary=\"");
	char bnd[80], delim[90], close[90];
	size_t bl = strcspn(b, "\"");
	if (bl == 0 || bl > 70)
		abort();
	memcpy(bnd, b, bl);
	bnd[bl] = '\0';
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", bnd);
	snprintf(close, sizeof(close), "\r\n--%s--\r\n", bnd);
	size_t parts = count(out->data, out->len, delim), cl = strlen(close);
	if (parts < 2 || parts > 3 || count(out->data, out->len, bnd) != parts + 2 ||
	    out->len < cl || memcmp(out->data + out->len - cl, close, cl) != 0)
		abort();
	/* what we wrote ourselves: all of it, or up to the original's first byte */
	size_t gen = out->len;
	if (parts == 3) {
		const char *third = out->data;
		for (int i = 0; i < 3; i++)
			third = strstr(third, delim) + strlen(delim);
		gen = (size_t)(strstr(third, "\r\n\r\n") + 4 - out->data);
	}
	if (!generated_ok(out->data, gen))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned flags = data[0];
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	char *diag = field(&p, end), *rcpt = field(&p, end), *mta = field(&p, end);
	char *envid = field(&p, end);
	struct dsn_rcpt rc = {
		.final_rcpt = rcpt, .orig_rcpt = (flags & 8) ? diag : NULL,
		.action = (enum dsn_action)(flags & 3), .status = mta,
		.remote_mta = (flags & 16) ? mta : NULL, .diagnostic = diag,
		.last_attempt = 1000, .will_retry_until = 2000,
	};
	struct dsn_report r = {
		.reporting_mta = "mail.example.com", .queue_id = "0000000000ABC123", .envid = envid,
		.sender = (flags & 32) ? "" : "alice@example.com", .to = "alice@example.com",
		.arrival = 1, .now = 1000, .headers_only = (flags & 4) != 0,
		.size_limit = (flags & 64) ? 40 : 0, .rcpts = &rc, .n_rcpts = 1,
		.message = p, .message_len = (size_t)(end - p),
	};
	struct strbuf out;
	strbuf_init(&out);
	dsn_build(&r, "MAILER-DAEMON@mail.example.com", &out);
	check(&out);
	strbuf_free(&out);
	free(diag);
	free(rcpt);
	free(mta);
	free(envid);
	return 0;
}
