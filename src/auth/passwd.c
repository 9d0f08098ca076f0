/*
 * passwd.c - Dovecot-format passwd-file (see passwd.h).
 *
 * DESCRIPTION
 *	The file is read whole into a sorted table at start-up (as root, so it
 *	may be readable by root only). Before each check the worker stat()s the
 *	file and re-reads it when it changed; if that fails (e.g. the server now
 *	runs as mail_owner and cannot read it) the table in memory stays and the
 *	log says why once, on one line, naming the user who must be able to read it.
 */
#include "auth/passwd.h"
#include "util/log.h"
#include "util/util.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define USER_MAX 255

enum scheme { SCHEME_CRYPT, SCHEME_PLAIN };

struct entry {
	char *user;    /* lower case */
	unsigned line; /* where it stands in the file */
	enum scheme scheme;
	char *secret;  /* crypt(3) hash, or the plain password; "" : may not log in */
};

struct table {
	struct entry *e;
	size_t n;
	char *dummy;   /* a crypt hash for unknown users: the same cost as a real check */
};

struct passwd_db {
	char *path;
	pthread_mutex_t lock;
	struct table *t;
	struct stat st;  /* of the file the table was read from */
	bool reload_warned;
};

static const struct {
	const char *name;
	enum scheme scheme;
	const char *prefix; /* the crypt(3) prefix the hash must have; NULL: any */
} schemes[] = {
	{"CRYPT", SCHEME_CRYPT, NULL},
	{"SHA512-CRYPT", SCHEME_CRYPT, "$6$"},
	{"SHA256-CRYPT", SCHEME_CRYPT, "$5$"},
	{"BLF-CRYPT", SCHEME_CRYPT, "$2"},
	{"PLAIN", SCHEME_PLAIN, NULL},
	{"CLEAR", SCHEME_PLAIN, NULL},
	{"CLEARTEXT", SCHEME_PLAIN, NULL},
};

static void table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].user);
		explicit_bzero(t->e[i].secret, strlen(t->e[i].secret));
		free(t->e[i].secret);
	}
	free(t->e);
	free(t->dummy);
	free(t);
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->user, ((const struct entry *)b)->user);
}

/* user_ok - printable ASCII without blanks or ':'; what Dovecot's usernames are. */
static bool user_ok(const char *u)
{
	if (*u == '\0' || strlen(u) > USER_MAX)
		return false;
	for (; *u; u++)
		if (*u <= ' ' || *u >= 0x7f || *u == ':')
			return false;
	return true;
}

/* parse_secret - "{SCHEME}hash" or a bare hash into an entry; NULL or a problem. */
static const char *parse_secret(char *field, struct entry *e)
{
	const char *prefix = NULL;
	e->scheme = SCHEME_CRYPT;
	if (field[0] == '{') {
		char *end = strchr(field, '}');
		if (end == NULL)
			return "missing '}' after the password scheme";
		*end = '\0';
		size_t k;
		for (k = 0; k < RG_ARRAY_LEN(schemes); k++)
			if (rg_strcasecmp(field + 1, schemes[k].name) == 0)
				break;
		if (k == RG_ARRAY_LEN(schemes))
			return "unsupported password scheme (use CRYPT, SHA512-CRYPT, "
			       "SHA256-CRYPT, BLF-CRYPT or PLAIN)";
		e->scheme = schemes[k].scheme;
		prefix = schemes[k].prefix;
		field = end + 1;
	}
	e->secret = xstrdup(field);
	if (e->scheme == SCHEME_PLAIN || field[0] == '\0')
		return NULL;
	if (prefix != NULL && strncmp(field, prefix, strlen(prefix)) != 0)
		return "the hash does not match its {SCHEME}";
	int c = crypt_checksalt(field);
	if (field[0] != '$' || (c != CRYPT_SALT_OK && c != CRYPT_SALT_METHOD_LEGACY))
		return "not a crypt(3) hash this system can check (yescrypt $y$, bcrypt $2b$, "
		       "SHA512-CRYPT $6$, SHA256-CRYPT $5$)";
	return NULL;
}

/* parse_line - one "user:password[:...]" line; NULL or what is wrong with it. */
static const char *parse_line(char *line, struct entry *e)
{
	char *colon = strchr(line, ':');
	if (colon == NULL)
		return "expected user:password";
	*colon = '\0';
	char *secret = colon + 1;
	secret[strcspn(secret, ":")] = '\0';
	if (!user_ok(line))
		return "bad user name (printable, no blanks, at most 255 characters)";
	e->user = xstrdup(line);
	rg_str_lower(e->user);
	return parse_secret(secret, e);
}

/* method_len - the length of a crypt hash's "$id$" prefix. */
static size_t method_len(const char *h)
{
	const char *end = h[0] == '$' ? strchr(h + 1, '$') : NULL;
	return end ? (size_t)(end - h) + 1 : 0;
}

/* make_dummy - a hash for unknown users, of the method most users have (ties:
 * yescrypt, what "relayguard passwd" makes), so an unknown user costs what a
 * typical known one does. A file that mixes methods still lets timing tell the
 * methods apart: keep one. */
static char *make_dummy(const struct table *t)
{
	const char *best = NULL;
	size_t best_n = 0;
	for (size_t i = 0; i < t->n; i++) {
		const char *h = t->e[i].secret;
		size_t m = method_len(h), n = 0;
		if (t->e[i].scheme != SCHEME_CRYPT || m == 0)
			continue;
		for (size_t j = 0; j < t->n; j++)
			if (t->e[j].scheme == SCHEME_CRYPT && method_len(t->e[j].secret) == m &&
			    strncmp(t->e[j].secret, h, m) == 0)
				n++;
		if (n > best_n || (n == best_n && strncmp(h, "$y$", 3) == 0)) {
			best = h;
			best_n = n;
		}
	}
	if (best != NULL)
		return xstrdup(best);
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL)
		return NULL;
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_rn("relayguard-dummy", setting, cd, sizeof(*cd));
	char *out = h && h[0] == '$' ? xstrdup(h) : NULL;
	free(cd);
	return out;
}

static void add_problem(struct strbuf *errs, const char *path, unsigned line, const char *what)
{
	strbuf_printf(errs, "%s:%u: %s\n", path, line, what);
}

/* read_table - the whole file; problems go to ERRS, one a line; *OPEN_ERRNO
 * (when not NULL) gets why fopen() failed, or 0. */
static struct table *read_table(const char *path, struct strbuf *errs, int *open_errno)
{
	FILE *f = fopen(path, "r");
	if (open_errno != NULL)
		*open_errno = f == NULL ? errno : 0;
	if (f == NULL) {
		strbuf_printf(errs, "%s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	struct table *t = xcalloc(1, sizeof(*t));
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (memchr(line, '\0', (size_t)len) != NULL) {
			add_problem(errs, path, lineno, "NUL byte in file");
			continue;
		}
		char *s = rg_str_trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		struct entry e = {0};
		const char *problem = parse_line(s, &e);
		if (problem != NULL) {
			add_problem(errs, path, lineno, problem);
			free(e.user);
			free(e.secret);
			continue;
		}
		e.line = lineno;
		t->e = xrealloc(t->e, (t->n + 1) * sizeof(*t->e));
		t->e[t->n++] = e;
	}
	explicit_bzero(line, cap);
	free(line);
	fclose(f);
	if (t->n > 0)
		qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
	for (size_t i = 1; i < t->n; i++) {
		const struct entry *a = &t->e[i - 1], *b = &t->e[i];
		if (strcmp(a->user, b->user) == 0)
			strbuf_printf(errs, "%s:%u: user %s is already listed on line %u\n", path,
				      a->line > b->line ? a->line : b->line, b->user,
				      a->line < b->line ? a->line : b->line);
	}
	t->dummy = make_dummy(t);
	if (t->dummy == NULL)
		strbuf_printf(errs, "%s: libcrypt cannot make a yescrypt hash\n", path);
	return t;
}

struct passwd_db *passwd_db_load(const char *path, char *err, size_t errlen)
{
	struct strbuf errs;
	strbuf_init(&errs);
	struct stat st;
	memset(&st, 0, sizeof(st));
	stat(path, &st);
	struct table *t = read_table(path, &errs, NULL);
	if (errs.len > 0) {
		rg_strlcpy(err, errs.data, errlen);
		size_t n = strlen(err);
		if (n > 0 && err[n - 1] == '\n')
			err[n - 1] = '\0';
		strbuf_free(&errs);
		table_free(t);
		return NULL;
	}
	strbuf_free(&errs);
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].scheme == SCHEME_PLAIN)
			log_ev(LOG_WARNING, "passwd-plaintext", {"file", path}, {"user", t->e[i].user},
			       {"note", "stored in clear text; make a hash with 'relayguard passwd'"});
	struct passwd_db *db = xcalloc(1, sizeof(*db));
	db->path = xstrdup(path);
	db->t = t;
	db->st = st;
	pthread_mutex_init(&db->lock, NULL);
	return db;
}

void passwd_db_free(struct passwd_db *db)
{
	if (db == NULL)
		return;
	table_free(db->t);
	pthread_mutex_destroy(&db->lock);
	free(db->path);
	free(db);
}

/* reload_reason - the problems on one log line ("; " between them); when the
 * file cannot be opened for lack of permission, who must be able to read it:
 * the user the server runs as by now (mail_owner, after start-up as root). */
static void reload_reason(const char *path, const struct strbuf *errs, int open_errno,
			  struct strbuf *out)
{
	const char *p = errs->data;
	while (*p) {
		size_t n = strcspn(p, "\n");
		strbuf_printf(out, "%s%.*s", out->len ? "; " : "", (int)n, p);
		p += n + (p[n] == '\n');
	}
	if (open_errno != EACCES && open_errno != EPERM)
		return;
	struct passwd pw, *found = NULL;
	char buf[1024];
	uid_t uid = geteuid();
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
		strbuf_printf(out, " (the file must be readable by user %s (mail_owner), which the "
			      "server runs as after start-up: e.g. chgrp %s %s; chmod 640 %s)",
			      pw.pw_name, pw.pw_name, path, path);
	else
		strbuf_printf(out, " (the file must be readable by uid %u (mail_owner), which the "
			      "server runs as after start-up)", (unsigned)uid);
}

/* maybe_reload - re-read the file if it changed since it was read (lock held). */
static void maybe_reload(struct passwd_db *db)
{
	struct stat st;
	if (stat(db->path, &st) != 0 || (st.st_mtim.tv_sec == db->st.st_mtim.tv_sec &&
					 st.st_mtim.tv_nsec == db->st.st_mtim.tv_nsec &&
					 st.st_size == db->st.st_size && st.st_ino == db->st.st_ino))
		return;
	struct strbuf errs;
	strbuf_init(&errs);
	int open_errno;
	struct table *t = read_table(db->path, &errs, &open_errno);
	if (errs.len == 0) {
		table_free(db->t);
		db->t = t;
		db->st = st;
		db->reload_warned = false;
		log_ev(LOG_INFO, "passwd-reloaded", {"file", db->path});
	} else {
		table_free(t);
		if (!db->reload_warned) {
			struct strbuf reason;
			strbuf_init(&reason);
			reload_reason(db->path, &errs, open_errno, &reason);
			log_ev(LOG_WARNING, "passwd-reload-failed", {"file", db->path},
			       {"reason", reason.data}, {"action", "still using the users read before"});
			strbuf_free(&reason);
		}
		db->reload_warned = true;
	}
	strbuf_free(&errs);
}

/* check_plain - compare digests, so the time says nothing about the password. */
static bool check_plain(const char *secret, const char *pass)
{
	unsigned char a[32], b[32];
	EVP_Digest(secret, strlen(secret), a, NULL, EVP_sha256(), NULL);
	EVP_Digest(pass, strlen(pass), b, NULL, EVP_sha256(), NULL);
	return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

static bool check_crypt(const char *hash, const char *pass)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_rn(pass, hash, cd, sizeof(*cd));
	size_t n = strlen(hash);
	bool ok = h != NULL && h[0] == '$' && strlen(h) == n && CRYPTO_memcmp(h, hash, n) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

enum auth_status passwd_db_verify(struct passwd_db *db, const char *user, const char *pass,
				  char *canon, size_t canonlen, char *reason, size_t reasonlen)
{
	char key[USER_MAX + 1];
	rg_strlcpy(key, user, sizeof(key));
	rg_str_lower(key);
	pthread_mutex_lock(&db->lock);
	maybe_reload(db);
	struct entry probe = {.user = key}, *e = NULL;
	if (strlen(user) <= USER_MAX && db->t->n > 0)
		e = bsearch(&probe, db->t->e, db->t->n, sizeof(*e), entry_cmp);
	/* copy out what the check needs: the hash is slow, the lock must not be */
	bool usable = e != NULL && e->secret[0] != '\0';
	enum scheme scheme = usable ? e->scheme : SCHEME_CRYPT;
	char *secret = xstrdup(usable ? e->secret : db->t->dummy);
	char *dummy = scheme == SCHEME_PLAIN ? xstrdup(db->t->dummy) : NULL;
	pthread_mutex_unlock(&db->lock);
	/* unknown users, accounts without a password and clear-text entries cost one
	 * hash too, so the time of a failure does not say which kind of user it was */
	bool ok = scheme == SCHEME_PLAIN ? check_plain(secret, pass) : check_crypt(secret, pass);
	ok = ok && usable;
	if (dummy != NULL) {
		check_crypt(dummy, pass);
		free(dummy);
	}
	explicit_bzero(secret, strlen(secret));
	free(secret);
	if (e == NULL) {
		rg_strlcpy(reason, "unknown user", reasonlen);
		return AUTH_FAILED;
	}
	if (!ok) {
		rg_strlcpy(reason, "wrong password", reasonlen);
		return AUTH_FAILED;
	}
	rg_strlcpy(canon, key, canonlen);
	return AUTH_OK;
}

char *passwd_hash(const char *scheme, const char *password, char *err, size_t errlen)
{
	static const struct { const char *name, *prefix, *label; } out[] = {
		{"CRYPT", "$y$", "CRYPT"}, {"YESCRYPT", "$y$", "CRYPT"},
		{"SHA512-CRYPT", "$6$", "SHA512-CRYPT"}, {"SHA256-CRYPT", "$5$", "SHA256-CRYPT"},
		{"BLF-CRYPT", "$2y$", "BLF-CRYPT"},
	};
	size_t k = 0;
	if (scheme != NULL)
		for (k = 0; k < RG_ARRAY_LEN(out) && rg_strcasecmp(scheme, out[k].name) != 0; k++)
			;
	if (k == RG_ARRAY_LEN(out)) {
		snprintf(err, errlen, "unknown scheme \"%s\" (use CRYPT (yescrypt), SHA512-CRYPT, "
			 "SHA256-CRYPT or BLF-CRYPT)", scheme);
		return NULL;
	}
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (crypt_gensalt_rn(out[k].prefix, 0, NULL, 0, setting, sizeof(setting)) == NULL) {
		snprintf(err, errlen, "libcrypt cannot make a %s salt: %s", out[k].name,
			 strerror(errno));
		return NULL;
	}
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *h = crypt_rn(password, setting, cd, sizeof(*cd));
	char *res = NULL;
	if (h == NULL || h[0] != '$')
		snprintf(err, errlen, "libcrypt failed: %s", strerror(errno));
	else
		res = xasprintf("{%s}%s", out[k].label, h);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return res;
}
