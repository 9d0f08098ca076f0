/*
 * sasl.c - PLAIN and LOGIN response decoding (see sasl.h).
 */
#include "auth/sasl.h"
#include "util/util.h"

#include <string.h>

#include <openssl/evp.h>

bool sasl_mech_parse(const char *name, enum sasl_mech *m)
{
	if (rg_strcasecmp(name, "PLAIN") == 0)
		*m = SASL_PLAIN;
	else if (rg_strcasecmp(name, "LOGIN") == 0)
		*m = SASL_LOGIN;
	else
		return false;
	return true;
}

const char *sasl_mech_name(enum sasl_mech m)
{
	return m == SASL_PLAIN ? "PLAIN" : "LOGIN";
}

/* b64_value - the 6-bit value of a base64 character, or -1. */
static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

ssize_t sasl_b64_decode(const char *in, unsigned char *out, size_t cap)
{
	size_t n = strlen(in);
	if (n == 1 && in[0] == '=')
		return 0; /* RFC 4954: an empty initial response */
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap)
		return -1;
	size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
	for (size_t i = 0; i < n - pad; i++)
		if (b64_value(in[i]) < 0)
			return -1; /* EVP would skip blanks; a response has none */
	/* the bits after the last byte must be zero: one text for one byte string */
	if (pad > 0 && (b64_value(in[n - pad - 1]) & (pad == 1 ? 0x3 : 0xf)) != 0)
		return -1;
	int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0 || (size_t)len < pad)
		return -1;
	return (ssize_t)((size_t)len - pad);
}

/* field - copy one NUL-free field of at most SASL_FIELD_MAX - 1 bytes. */
static bool field(const unsigned char *p, size_t n, char *out)
{
	if (n >= SASL_FIELD_MAX || memchr(p, '\0', n) != NULL)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

bool sasl_plain_split(const unsigned char *msg, size_t n, char *user, char *pass,
		      const char **why)
{
	const unsigned char *z1 = memchr(msg, '\0', n);
	const unsigned char *z2 = z1 ? memchr(z1 + 1, '\0', n - (size_t)(z1 + 1 - msg)) : NULL;
	if (z1 == NULL || z2 == NULL) {
		*why = "a PLAIN response is authzid NUL user NUL password";
		return false;
	}
	char authz[SASL_FIELD_MAX];
	if (!field(msg, (size_t)(z1 - msg), authz) ||
	    !field(z1 + 1, (size_t)(z2 - z1 - 1), user) ||
	    !field(z2 + 1, n - (size_t)(z2 + 1 - msg), pass)) {
		*why = "a field is too long or contains NUL";
		return false;
	}
	if (user[0] == '\0') {
		*why = "empty username";
		return false;
	}
	if (authz[0] != '\0' && strcmp(authz, user) != 0) {
		*why = "acting for another user (authzid) is not allowed";
		return false;
	}
	return true;
}

bool sasl_login_field(const unsigned char *msg, size_t n, char *out, const char **why)
{
	if (!field(msg, n, out)) {
		*why = "too long or contains NUL";
		return false;
	}
	return true;
}
