/*
 * fuzz_authres.c - libFuzzer target: any bytes as an Authentication-Results
 * field value (strict and relaxed parse, the authserv-id claim), and as the
 * client-controlled values of the field we write.
 *
 * Besides "no crash, no UB, no leak", it checks: whatever the values, our
 * field has no bare CR or LF (every line break is a fold), parses back
 * strictly with exactly our results, and claims our authserv-id.
 */
#include "msgauth/authres.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct authres_parsed parsed; /* large: not on the stack */

/* written_is_safe - format with the input as every client value. */
static void written_is_safe(const char *s)
{
	struct authres_dkim sig = {"pass", s, s, s, NULL};
	struct authres_fields f = {"mx.relayguard.test", s, "fail", s, s, &sig, 1, "fail", s, NULL};
	struct strbuf sb;
	strbuf_init(&sb);
	if (!authres_format(&f, &sb))
		abort();
	for (size_t i = 0; i < sb.len; i++) {
		bool crlf = sb.data[i] == '\r' && i + 1 < sb.len && sb.data[i + 1] == '\n';
		bool folded = crlf && (i + 2 == sb.len || sb.data[i + 2] == '\t');
		if ((sb.data[i] == '\r' && !folded) || (sb.data[i] == '\n' && sb.data[i - 1] != '\r'))
			abort();
	}
	const char *v = sb.data + strlen("Authentication-Results:");
	if (!authres_parse(v, strlen(v) - 2, 0, &parsed) || parsed.nresults != 4 ||
	    !authres_claims_id(v, strlen(v), "mx.relayguard.test"))
		abort();
	strbuf_free(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = (const char *)data;
	for (unsigned flags = 0; flags <= AUTHRES_RELAXED; flags++)
		if (authres_parse(v, size, flags, &parsed) && parsed.nresults > AUTHRES_MAX_RESULTS)
			abort();
	(void)authres_claims_id(v, size, "mx.relayguard.test");
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	written_is_safe(s);
	free(s);
	return 0;
}
