/*
 * passwd - the passwd-file backend (smtpd_sasl_type = passwd-file) and
 * password hashing for "relayguard passwd".
 *
 * Owns: reading a passwd-file in Dovecot's format
 *	user@domain:{SCHEME}hash[:uid:gid:gecos:home:shell:extra]
 * (or a bare crypt(3) hash), checking a password against it with libcrypt in
 * constant-time comparison, re-reading the file when it changes, and making
 * new hashes. Schemes: CRYPT (any hash crypt(3) knows: yescrypt, bcrypt,
 * SHA512-CRYPT, SHA256-CRYPT), SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, and
 * PLAIN/CLEAR (for tests; logged as a warning).
 * Must not: block the event loop. passwd_db_verify() is slow on purpose
 * (that is what a password hash is) and runs on a worker thread.
 */
#ifndef RG_AUTH_PASSWD_H
#define RG_AUTH_PASSWD_H

#include <stddef.h>

#include "auth/auth.h"

struct passwd_db;

/* Load PATH; NULL with "PATH:LINE: what is wrong" lines in ERR on failure. */
struct passwd_db *passwd_db_load(const char *path, char *err, size_t errlen);
void passwd_db_free(struct passwd_db *db);

/*
 * passwd_db_verify - is PASS right for USER? Thread-safe. Unknown users cost
 * the same hash computation as known ones and get the same answer, so neither
 * the reply nor its timing says which users exist. CANON gets the user's name
 * as the file spells it (lower case) on AUTH_OK; REASON a word for the log.
 */
enum auth_status passwd_db_verify(struct passwd_db *db, const char *user, const char *pass,
				  char *canon, size_t canonlen, char *reason, size_t reasonlen);

/* passwd_hash - "{SCHEME}hash" for the file, or NULL with ERR. Schemes as above;
 * NULL SCHEME means CRYPT with yescrypt. */
char *passwd_hash(const char *scheme, const char *password, char *err, size_t errlen);

#endif
