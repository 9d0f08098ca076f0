/*
 * fuzz_sasl.c - libFuzzer target: any bytes as an AUTH PLAIN or LOGIN response.
 *
 * Besides "no crash, no UB, no leak", it checks what the session relies on:
 * the decoded length fits the buffer, a PLAIN split gives NUL-free fields
 * shorter than SASL_FIELD_MAX with a non-empty username, and base64 decoding
 * agrees with re-encoding (strictness: one text for one byte string).
 */
#include "auth/sasl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	size_t cap = size / 4 * 3 + 3;
	unsigned char *buf = malloc(cap);
	ssize_t n = sasl_b64_decode(text, buf, cap);
	if (n > (ssize_t)cap)
		abort();
	if (n > 0) {
		/* strict: encoding the result gives back exactly the input */
		unsigned char *again = malloc((size_t)n / 3 * 4 + 8);
		int m = EVP_EncodeBlock(again, buf, (int)n);
		if ((size_t)m != strlen(text) || memcmp(again, text, (size_t)m) != 0)
			abort();
		free(again);
		char user[SASL_FIELD_MAX], pass[SASL_FIELD_MAX];
		const char *why;
		if (sasl_plain_split(buf, (size_t)n, user, pass, &why) &&
		    (user[0] == '\0' || strlen(user) >= SASL_FIELD_MAX || strlen(pass) >= SASL_FIELD_MAX))
			abort();
		if (sasl_login_field(buf, (size_t)n, user, &why) && strlen(user) != (size_t)n)
			abort(); /* a NUL slipped into a field */
	}
	free(buf);
	free(text);
	return 0;
}
