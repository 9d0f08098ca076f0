/*
 * sasl - the server side of the PLAIN (RFC 4616) and LOGIN SASL mechanisms
 * as SMTP AUTH (RFC 4954) carries them: base64 decoding and splitting a
 * client's response into a username and a password.
 *
 * Owns: the rules for what a response may contain (strict base64; no NUL in
 * a username or password; an authorization identity only when it equals the
 * login, since nobody may act for someone else).
 * Must not: check passwords (auth.h) or know about sessions; pure functions.
 */
#ifndef RG_AUTH_SASL_H
#define RG_AUTH_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SASL_FIELD_MAX 256 /* a username or password, NUL included */

enum sasl_mech { SASL_PLAIN, SASL_LOGIN };

/* "PLAIN" or "LOGIN" in any case. */
bool sasl_mech_parse(const char *name, enum sasl_mech *m);
const char *sasl_mech_name(enum sasl_mech m);

/* Strict base64 (RFC 4648, padding required); "=" alone is the empty string.
 * Returns the decoded length, or -1 when IN is not base64 or does not fit. */
ssize_t sasl_b64_decode(const char *in, unsigned char *out, size_t cap);

/* A PLAIN response "authzid NUL authcid NUL passwd" into user and pass;
 * false with *why set when it is malformed. */
bool sasl_plain_split(const unsigned char *msg, size_t n, char *user, char *pass,
		      const char **why);

/* One LOGIN field (the username or the password); false with *why set. */
bool sasl_login_field(const unsigned char *msg, size_t n, char *out, const char **why);

#endif
