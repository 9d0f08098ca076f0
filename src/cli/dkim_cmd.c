/*
 * dkim_cmd.c - `relayguard dkim ...` (see dkim_cmd.h).
 *
 *	relayguard dkim keygen --domain D --selector S [--type rsa|ed25519] [--bits 2048] [--out DIR]
 *	relayguard dkim check D S [--key FILE] [--dns HOST:PORT]
 *	relayguard dkim sign --domain D --selector S --key FILE [--time T] < message
 *	relayguard dkim verify [--dns HOST:PORT] [--time T] < message
 */
#include "cli/dkim_cmd.h"

#include "cli/cli.h"
#include "dns/dns.h"
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"
#include "msgauth/header.h"
#include "util/util.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DKIM_CLI_MAX_MSG (64u * 1024 * 1024)

static const char usage[] =
	"usage: relayguard dkim keygen --domain D --selector S [--type rsa|ed25519] [--bits 2048] [--out DIR]\n"
	"       relayguard dkim check DOMAIN SELECTOR [--key FILE] [--dns HOST:PORT]\n"
	"       relayguard dkim sign --domain D --selector S --key FILE [--time T] < message\n"
	"       relayguard dkim verify [--dns HOST:PORT] [--time T] < message\n"
	"\n"
	"keygen  writes DIR/D.S.pem (mode 0600; an existing file is never replaced) and\n"
	"        prints the TXT record to publish at S._domainkey.D\n"
	"check   looks the record up and says whether it is valid and matches --key\n"
	"sign    prints the message with a DKIM-Signature field (relaxed/relaxed) prepended\n"
	"verify  prints one line per signature: dkim=RESULT header.d= header.s= header.b=\n"
	"        exit 0 when every signature passes, 1 otherwise (also when there is none)\n"
	"--dns   the DNS server to ask (default: /etc/resolv.conf)\n";

struct opts {
	const char *domain, *selector, *type, *out, *key, *dns;
	const char *pos[2];
	size_t npos;
	unsigned bits;
	long long time;
};

/* parse_opts - the options every subcommand shares; false on a usage error. */
static bool parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->type = "rsa";
	o->out = ".";
	o->bits = 2048;
	o->time = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **slot = strcmp(a, "--domain") == 0     ? &o->domain
				    : strcmp(a, "--selector") == 0 ? &o->selector
				    : strcmp(a, "--type") == 0     ? &o->type
				    : strcmp(a, "--out") == 0      ? &o->out
				    : strcmp(a, "--key") == 0      ? &o->key
				    : strcmp(a, "--dns") == 0      ? &o->dns
								   : NULL;
		if (slot != NULL && v != NULL) {
			*slot = v;
			i++;
		} else if (strcmp(a, "--bits") == 0 && v != NULL) {
			o->bits = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (strcmp(a, "--time") == 0 && v != NULL) {
			o->time = strtoll(v, NULL, 10);
			i++;
		} else if (a[0] != '-' && o->npos < 2) {
			o->pos[o->npos++] = a;
		} else {
			fprintf(stderr, "relayguard dkim: unknown or incomplete option \"%s\"\n", a);
			return false;
		}
	}
	return true;
}

/* ---- keygen ---- */

/* generate - a new RSA key of bits, or an Ed25519 key. */
static EVP_PKEY *generate(const struct opts *o)
{
	if (strcmp(o->type, "ed25519") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (strcmp(o->type, "rsa") != 0 || o->bits < 1024 || o->bits > 4096) {
		fprintf(stderr, "relayguard dkim: --type rsa|ed25519, --bits 1024 to 4096 (2048 advised)\n");
		return NULL;
	}
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)o->bits);
}

/* write_key - PEM (PKCS#8) into a new file, mode 0600; false if it exists. */
static bool write_key(EVP_PKEY *k, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "relayguard dkim: %s: %s%s\n", path, strerror(errno),
			errno == EEXIST ? " (not replaced: remove it first, or pick another selector)" : "");
		return false;
	}
	BIO *mem = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL);
	char *data;
	long n = BIO_get_mem_data(mem, &data);
	bool ok = write(fd, data, (size_t)n) == (ssize_t)n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	BIO_free(mem);
	if (!ok)
		fprintf(stderr, "relayguard dkim: writing %s failed\n", path);
	return ok;
}

/* print_record - the zone-file line, the value split into strings of at most 255 bytes. */
static void print_record(const struct opts *o, EVP_PKEY *k)
{
	char *p = dkim_key_public_b64(k);
	char *txt = xasprintf("v=DKIM1; k=%s; p=%s",
			      dkim_key_type_of(k) == DKIM_KEY_ED25519 ? "ed25519" : "rsa", p);
	printf("%s._domainkey.%s. IN TXT (", o->selector, o->domain);
	for (size_t i = 0, n = strlen(txt); i < n; i += 255)
		printf(" \"%.*s\"", (int)(n - i < 255 ? n - i : 255), txt + i);
	printf(" )\n");
	free(txt);
	free(p);
}

static int cmd_keygen(const struct opts *o)
{
	if (o->domain == NULL || o->selector == NULL) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	EVP_PKEY *k = generate(o);
	if (k == NULL)
		return EXIT_USAGE;
	char *path = xasprintf("%s/%s.%s.pem", o->out, o->domain, o->selector);
	int rc = 1;
	if (write_key(k, path)) {
		fprintf(stderr, "wrote %s (mode 0600); publish this record:\n", path);
		print_record(o, k);
		rc = 0;
	}
	free(path);
	EVP_PKEY_free(k);
	return rc;
}

/* ---- DNS (check, verify) ---- */

struct lookup {
	struct event_base *base;
	size_t pending;
	char **txt;                    /* per name: the record chosen, or NULL */
	enum dkim_key_lookup *status;
};

struct lookup_arg {
	struct lookup *l;
	size_t i;
};

/* pick - of several TXT records, the one that looks like a DKIM key. */
static const char *pick(const struct dns_txt_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (strstr(r->txt[i], "p=") != NULL)
			return r->txt[i];
	return r->n > 0 ? r->txt[0] : NULL;
}

static void on_txt(void *arg, const struct dns_txt_result *r)
{
	struct lookup_arg *a = arg;
	struct lookup *l = a->l;
	const char *t = r->status == DNS_TXT_FOUND ? pick(r) : NULL;
	l->status[a->i] = t ? DKIM_KEY_LOOKUP_OK
			    : r->status == DNS_TXT_TEMP ? DKIM_KEY_LOOKUP_TEMP : DKIM_KEY_LOOKUP_NONE;
	l->txt[a->i] = t ? xstrdup(t) : NULL;
	if (--l->pending == 0)
		event_base_loopbreak(l->base);
}

/* lookup_all - the TXT records of names[0..n), all at once; false if DNS cannot start. */
static bool lookup_all(const char *servers, const char *const *names, size_t n, struct lookup *l)
{
	char err[256];
	l->base = event_base_new();
	l->txt = xcalloc(n ? n : 1, sizeof(*l->txt));
	l->status = xcalloc(n ? n : 1, sizeof(*l->status));
	struct dns *d = dns_new(l->base, servers, 5000, err, sizeof(err));
	if (d == NULL) {
		fprintf(stderr, "relayguard dkim: DNS: %s\n", err);
		event_base_free(l->base);
		return false;
	}
	struct lookup_arg *args = xcalloc(n ? n : 1, sizeof(*args));
	l->pending = n;
	for (size_t i = 0; i < n; i++) {
		args[i] = (struct lookup_arg){l, i};
		dns_txt_lookup(d, names[i], on_txt, &args[i]);
	}
	if (n > 0)
		event_base_dispatch(l->base);
	dns_free(d);
	event_base_free(l->base);
	free(args);
	return true;
}

static void lookup_free(struct lookup *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l->txt[i]);
	free(l->txt);
	free(l->status);
}

/* ---- check ---- */

/* check_record - is the record valid, and the local key's public half? */
static int check_record(const char *name, const char *txt, const char *keyfile)
{
	struct dkim_key k;
	char why[256];
	if (dkim_key_parse(txt, &k, why, sizeof(why)) != DKIM_KEY_VALID) {
		printf("%s: INVALID: %s\n", name, why);
		return 1;
	}
	printf("%s: valid %s key%s%s\n", name, k.type == DKIM_KEY_RSA ? "RSA" : "Ed25519",
	       k.testing ? " (t=y: testing)" : "", k.strict ? " (t=s)" : "");
	int rc = 0;
	if (keyfile != NULL) {
		EVP_PKEY *local = dkim_key_load_private(keyfile, why, sizeof(why));
		if (local == NULL) {
			printf("%s\n", why);
			rc = 1;
		} else {
			bool same = EVP_PKEY_eq(local, k.pkey) == 1;
			printf("%s: %s the key in %s\n", name, same ? "MATCHES" : "DOES NOT MATCH", keyfile);
			rc = same ? 0 : 1;
			EVP_PKEY_free(local);
		}
	}
	dkim_key_free(&k);
	return rc;
}

static int cmd_check(const struct opts *o)
{
	if (o->npos != 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	char *name = xasprintf("%s._domainkey.%s", o->pos[1], o->pos[0]);
	const char *names[1] = {name};
	struct lookup l;
	int rc = 1;
	if (lookup_all(o->dns, names, 1, &l)) {
		if (l.status[0] == DKIM_KEY_LOOKUP_OK) {
			printf("%s: \"%s\"\n", name, l.txt[0]);
			rc = check_record(name, l.txt[0], o->key);
		} else {
			printf("%s: %s\n", name, l.status[0] == DKIM_KEY_LOOKUP_TEMP
							 ? "DNS lookup failed (temporary)"
							 : "no TXT record");
		}
		lookup_free(&l, 1);
	}
	free(name);
	return rc;
}

/* ---- sign, verify ---- */

/* read_stdin - the whole message (at most DKIM_CLI_MAX_MSG bytes). */
static char *read_stdin(size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = xmalloc(cap);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap) {
			if (cap >= DKIM_CLI_MAX_MSG) {
				fprintf(stderr, "relayguard dkim: message larger than %u bytes\n",
					DKIM_CLI_MAX_MSG);
				free(buf);
				return NULL;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
	}
	*len = n;
	return buf;
}

/* parse_msg - headers of the message on stdin; its buffer in *msg. */
static bool parse_msg(struct msg_headers *h, char **msg, size_t *len)
{
	*msg = read_stdin(len);
	if (*msg == NULL)
		return false;
	enum msg_hdr_status st = msg_headers_parse(*msg, *len, h);
	if (st != MSG_HDR_OK) {
		fprintf(stderr, "relayguard dkim: the message header: %s\n", msg_hdr_status_text(st));
		free(*msg);
		return false;
	}
	return true;
}

/* put_field - the new field, with bare LF line ends when the message uses them. */
static void put_field(const char *field, bool lf)
{
	for (const char *p = field; *p; p++)
		if (!(lf && *p == '\r'))
			putchar(*p);
}

static int cmd_sign(const struct opts *o)
{
	char why[256];
	if (o->domain == NULL || o->selector == NULL || o->key == NULL) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	EVP_PKEY *k = dkim_key_load_private(o->key, why, sizeof(why));
	if (k == NULL) {
		fprintf(stderr, "relayguard dkim: %s\n", why);
		return 1;
	}
	struct msg_headers h;
	char *msg;
	size_t len;
	if (!parse_msg(&h, &msg, &len)) {
		EVP_PKEY_free(k);
		return 1;
	}
	struct dkim_sign *s = dkim_sign_new(k, o->domain, o->selector, &h,
					    o->time >= 0 ? (time_t)o->time : time(NULL));
	dkim_sign_body(s, msg + h.body_offset, len - h.body_offset);
	char *field = dkim_sign_finish(s, why, sizeof(why));
	const char *nl = memchr(msg, '\n', len);
	if (field != NULL) {
		put_field(field, nl != NULL && (nl == msg || nl[-1] != '\r'));
		fwrite(msg, 1, len, stdout);
	} else {
		fprintf(stderr, "relayguard dkim: %s\n", why);
	}
	free(field);
	msg_headers_free(&h);
	free(msg);
	EVP_PKEY_free(k);
	return field != NULL ? 0 : 1;
}

/* report - one line per signature; 0 when all pass. */
static int report(const struct dkim_verify *v)
{
	size_t n = dkim_verify_nresults(v), passed = 0;
	if (n == 0)
		printf("dkim=none (no signature)\n");
	for (size_t i = 0; i < n; i++) {
		const struct dkim_sig_result *r = dkim_verify_result(v, i);
		printf("dkim=%s header.d=%s header.s=%s header.b=%.8s a=%s%s%s%s%s\n",
		       dkim_result_name(r->result), r->d, r->s, r->b, r->a,
		       r->l_present ? " (l= covers part of the body)" : "",
		       r->testing ? " (t=y testing)" : "", r->reason[0] ? " reason=" : "", r->reason);
		passed += r->result == DKIM_PASS;
	}
	return n > 0 && passed == n ? 0 : 1;
}

static int cmd_verify(const struct opts *o)
{
	struct msg_headers h;
	char *msg;
	size_t len;
	if (!parse_msg(&h, &msg, &len))
		return 1;
	struct dkim_verify *v = dkim_verify_new(&h, DKIM_MAX_SIGS_DEFAULT,
						o->time >= 0 ? (time_t)o->time : time(NULL));
	size_t n = dkim_verify_nkeys(v);
	const char **names = xcalloc(n ? n : 1, sizeof(*names));
	for (size_t i = 0; i < n; i++)
		names[i] = dkim_verify_key_name(v, i);
	struct lookup l;
	int rc = 1;
	if (lookup_all(o->dns, names, n, &l)) {
		for (size_t i = 0; i < n; i++)
			dkim_verify_set_key(v, i, l.txt[i], l.status[i]);
		dkim_verify_body(v, msg + h.body_offset, len - h.body_offset);
		dkim_verify_finish(v);
		rc = report(v);
		lookup_free(&l, n);
	}
	free(names);
	dkim_verify_free(v);
	msg_headers_free(&h);
	free(msg);
	return rc;
}

int dkim_main(int argc, char **argv)
{
	struct opts o;
	if (argc < 1 || cli_asks_help(argc, argv)) {
		fputs(usage, argc < 1 ? stderr : stdout);
		return argc < 1 ? EXIT_USAGE : 0;
	}
	if (!parse_opts(argc, argv, &o))
		return EXIT_USAGE;
	if (strcmp(argv[0], "keygen") == 0)
		return cmd_keygen(&o);
	if (strcmp(argv[0], "check") == 0)
		return cmd_check(&o);
	if (strcmp(argv[0], "sign") == 0)
		return cmd_sign(&o);
	if (strcmp(argv[0], "verify") == 0)
		return cmd_verify(&o);
	fprintf(stderr, "relayguard dkim: unknown subcommand \"%s\" (try --help)\n", argv[0]);
	return EXIT_USAGE;
}
