/*
 * dsn_param - the RFC 3461 (DSN) parameters of MAIL and RCPT, checked and
 * decoded: RET=, ENVID=, NOTIFY=, ORCPT=.
 *
 * Owns: xtext decoding and the syntax of each value, in canonical form
 * (RET upper case; NOTIFY as "NEVER" or SUCCESS,FAILURE,DELAY in that order;
 * ORCPT as "rfc822;decoded-address" with the type in lower case).
 * Must not: do I/O or decide anything about delivery (the queue manager and
 * the bounce builder read the stored values).
 */
#ifndef RG_DSN_PARAM_H
#define RG_DSN_PARAM_H

#include <stdbool.h>
#include <stddef.h>

#define DSN_ENVID_MAX 100  /* RFC 3461 4.4 */
#define DSN_ORCPT_MAX 500  /* RFC 3461 4.2 */

/* xtext (RFC 3461 4): "+XX" hex escapes; printable ASCII only, no '+' or '='
 * unescaped. The decoded text must be printable ASCII too. */
bool dsn_xtext_decode(const char *in, char *out, size_t outlen);
/* RET=FULL or RET=HDRS (any case): out "FULL" / "HDRS". */
bool dsn_param_ret(const char *value, char *out, size_t outlen);
/* ENVID=xtext, decoded, at most DSN_ENVID_MAX characters. */
bool dsn_param_envid(const char *value, char *out, size_t outlen);
/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY (each once, any case). */
bool dsn_param_notify(const char *value, char *out, size_t outlen);
/* ORCPT=addr-type;xtext: "rfc822;user@example.com" (decoded). */
bool dsn_param_orcpt(const char *value, char *out, size_t outlen);

#endif
