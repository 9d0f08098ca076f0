/*
 * dkim_table.c - the DKIM signing table (dkim_signing_table): which key signs
 * mail from which domain.
 *
 *	# domain        selector  private key
 *	example.com     rsa2026   /etc/relayguard/dkim/example.com.rsa2026.pem
 *	example.com     ed2026    /etc/relayguard/dkim/example.com.ed2026.pem
 *	*.example.org   mail      /etc/relayguard/dkim/example.org.mail.pem
 *
 * Owns: parsing the file, loading each key once at start-up, and the lookup
 * (exact domain first, else the closest "*." wildcard; several lines for one
 * domain sign with each key: RSA plus Ed25519 dual signing).
 * Must not: sign (dkim_sign.c), or re-read the file per message.
 */
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"

#include "util/util.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* name_ok - a domain (optionally "*.domain") or selector: labels of letters, digits, - and _. */
static bool name_ok(const char *s, bool wildcard)
{
	if (wildcard && strncmp(s, "*.", 2) == 0)
		s += 2;
	size_t n = strlen(s);
	if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n;
}

/* parse_line - one non-comment line into e; false with err set. */
static bool parse_line(char *line, struct dkim_signing_entry *e, const char *path, unsigned ln,
		       char *err, size_t errlen)
{
	char *save = NULL, *f[4];
	size_t n = 0;
	for (char *w = strtok_r(line, " \t", &save); w && n < 4; w = strtok_r(NULL, " \t", &save))
		f[n++] = w;
	if (n != 3) {
		snprintf(err, errlen, "%s:%u: want \"domain selector /path/to/key.pem\"", path, ln);
		return false;
	}
	if (!name_ok(f[0], true) || !name_ok(f[1], false) || strlen(f[1]) > 63) {
		snprintf(err, errlen, "%s:%u: bad domain or selector \"%s %s\"", path, ln, f[0], f[1]);
		return false;
	}
	char why[256];
	e->key = dkim_key_load_private(f[2], why, sizeof(why));
	if (e->key == NULL) {
		snprintf(err, errlen, "%s:%u: %s", path, ln, why);
		return false;
	}
	e->domain = xstrdup(f[0]);
	rg_str_lower(e->domain);
	e->selector = xstrdup(f[1]);
	e->keyfile = xstrdup(f[2]);
	e->line = ln;
	return true;
}

/* add_line - a line of the file: skip blanks and comments, else parse into t. */
static bool add_line(struct dkim_signing_table *t, char *line, const char *path, unsigned ln,
		     char *err, size_t errlen)
{
	line[strcspn(line, "\r\n")] = '\0';
	char *s = rg_str_trim(line);
	if (*s == '\0' || *s == '#')
		return true;
	t->e = xrealloc(t->e, (t->n + 1) * sizeof(*t->e));
	memset(&t->e[t->n], 0, sizeof(t->e[t->n]));
	if (!parse_line(s, &t->e[t->n], path, ln, err, errlen))
		return false;
	t->n++;
	return true;
}

struct dkim_signing_table *dkim_signing_table_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot open: %m", path);
		return NULL;
	}
	struct dkim_signing_table *t = xcalloc(1, sizeof(*t));
	char line[2048];
	unsigned ln = 0;
	bool ok = true;
	while (ok && fgets(line, sizeof(line), f) != NULL)
		ok = add_line(t, line, path, ++ln, err, errlen);
	fclose(f);
	if (!ok) {
		dkim_signing_table_free(t);
		return NULL;
	}
	return t;
}

void dkim_signing_table_free(struct dkim_signing_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].domain);
		free(t->e[i].selector);
		free(t->e[i].keyfile);
		EVP_PKEY_free(t->e[i].key);
	}
	free(t->e);
	free(t);
}

/* find_exact - the entries whose domain column is exactly name. */
static size_t find_exact(const struct dkim_signing_table *t, const char *name,
			 const struct dkim_signing_entry **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n && n < max; i++)
		if (rg_strcasecmp(t->e[i].domain, name) == 0)
			out[n++] = &t->e[i];
	return n;
}

size_t dkim_signing_table_find(const struct dkim_signing_table *t, const char *domain,
			       const struct dkim_signing_entry **out, size_t max)
{
	if (t == NULL || max == 0)
		return 0;
	size_t n = find_exact(t, domain, out, max);
	char wild[300];
	for (const char *p = strchr(domain, '.'); n == 0 && p != NULL; p = strchr(p + 1, '.')) {
		snprintf(wild, sizeof(wild), "*%s", p);
		n = find_exact(t, wild, out, max);
	}
	return n;
}
