/*
 * dkim_bench.c - what DKIM costs per message (see bench/dkim.sh and bench/README.md).
 *
 *	dkim_bench DIR [MESSAGES]
 *
 * Makes MESSAGES (default 1,000) messages of 1-8 KiB, signs each with an
 * RSA-2048 and then an Ed25519 key (timing each kind), writes them to
 * DIR/msg-N.eml with the key records in DIR/zone.txt ("name TAB record"),
 * then verifies all of them in-process, both signatures each, keys from that
 * zone in memory (no DNS). Prints one line per figure; DIR/verify_seconds
 * holds the verification time for bench/dkim_bench.py to compare with dkimpy.
 */
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"
#include "msgauth/header.h"
#include "util/util.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* make_msg - message i: the usual header fields and a body of 1-8 KiB of text lines. */
static char *make_msg(int i)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_printf(&sb, "From: Sender %d <s%d@example.com>\r\nTo: r@example.net\r\n"
			   "Subject: benchmark message %d\r\nDate: Fri, 04 Dec 2026 20:00:00 +0000\r\n"
			   "Message-ID: <%d.bench@example.com>\r\nMIME-Version: 1.0\r\n"
			   "Content-Type: text/plain; charset=us-ascii\r\n\r\n", i, i, i, i);
	int lines = 16 + (i * 7919) % 112;
	for (int l = 0; l < lines; l++)
		strbuf_printf(&sb, "Line %d of message %d: the quick brown fox jumps over the lazy dog.\r\n", l, i);
	return strbuf_steal(&sb);
}

/* sign - msg with a signature by key prepended; adds the time taken to *t. */
static char *sign(EVP_PKEY *key, const char *sel, char *msg, double *t)
{
	double t0 = now_s();
	struct msg_headers h;
	msg_headers_parse(msg, strlen(msg), &h);
	struct dkim_sign *s = dkim_sign_new(key, "example.com", sel, &h, time(NULL));
	dkim_sign_body(s, msg + h.body_offset, strlen(msg) - h.body_offset);
	char why[128];
	char *field = dkim_sign_finish(s, why, sizeof(why));
	msg_headers_free(&h);
	*t += now_s() - t0;
	char *out = xasprintf("%s%s", field, msg);
	free(field);
	free(msg);
	return out;
}

/* verify - both signatures of msg with keys rsa_rec and ed_rec; true if both pass. */
static bool verify(const char *msg, const char *rsa_rec, const char *ed_rec)
{
	struct msg_headers h;
	msg_headers_parse(msg, strlen(msg), &h);
	struct dkim_verify *v = dkim_verify_new(&h, 5, time(NULL));
	for (size_t i = 0; i < dkim_verify_nkeys(v); i++)
		dkim_verify_set_key(v, i, strncmp(dkim_verify_key_name(v, i), "rsa", 3) == 0 ? rsa_rec : ed_rec,
				    DKIM_KEY_LOOKUP_OK);
	dkim_verify_body(v, msg + h.body_offset, strlen(msg) - h.body_offset);
	dkim_verify_finish(v);
	bool ok = dkim_verify_nresults(v) == 2;
	for (size_t i = 0; i < dkim_verify_nresults(v); i++)
		ok = ok && dkim_verify_result(v, i)->result == DKIM_PASS;
	dkim_verify_free(v);
	msg_headers_free(&h);
	return ok;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: dkim_bench DIR [MESSAGES]\n");
		return 64;
	}
	int n = argc > 2 ? atoi(argv[2]) : 1000;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char *rp = dkim_key_public_b64(rsa), *ep = dkim_key_public_b64(ed);
	char *rsa_rec = xasprintf("v=DKIM1; k=rsa; p=%s", rp);
	char *ed_rec = xasprintf("v=DKIM1; k=ed25519; p=%s", ep);
	char *zone = xasprintf("rsa._domainkey.example.com\t%s\ned._domainkey.example.com\t%s\n", rsa_rec, ed_rec);
	write_file(argv[1], "zone.txt", zone);
	char **msgs = xcalloc((size_t)n, sizeof(*msgs));
	double t_rsa = 0, t_ed = 0;
	for (int i = 0; i < n; i++) {
		msgs[i] = sign(rsa, "rsa", make_msg(i), &t_rsa);
		msgs[i] = sign(ed, "ed", msgs[i], &t_ed);
		char name[64];
		snprintf(name, sizeof(name), "msg-%04d.eml", i);
		write_file(argv[1], name, msgs[i]);
	}
	printf("sign rsa-sha256 (2048 bits): %.3f ms per message\n", 1000 * t_rsa / n);
	printf("sign ed25519-sha256:         %.3f ms per message\n", 1000 * t_ed / n);
	double t0 = now_s();
	int bad = 0;
	for (int i = 0; i < n; i++)
		bad += !verify(msgs[i], rsa_rec, ed_rec);
	double tv = now_s() - t0;
	printf("verify (both signatures):    %.3f ms per message, %d messages in %.3f s, %d failed\n",
	       1000 * tv / n, n, tv, bad);
	char secs[64];
	snprintf(secs, sizeof(secs), "%.6f\n", tv);
	write_file(argv[1], "verify_seconds", secs);
	for (int i = 0; i < n; i++)
		free(msgs[i]);
	free(msgs);
	free(zone);
	free(rsa_rec);
	free(ed_rec);
	free(rp);
	free(ep);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	return bad ? 1 : 0;
}
