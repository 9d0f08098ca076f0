/*
 * tls.c - TLS for the server (see tls.h).
 *
 * DESCRIPTION
 *	One SSL_CTX for every listener. With no smtpd_tls_cert_file, a
 *	self-signed ECDSA P-256 certificate for myhostname is made in
 *	data_directory on first start (and again when myhostname changes) and
 *	re-used afterwards; the log says so, because clients will not trust it.
 */
#include "tls/tls.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* Mozilla's "intermediate" list for TLS 1.2; TLS 1.3 suites are OpenSSL's defaults. */
#define TLS12_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
		      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
		      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
		      "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define SELF_SIGNED_DAYS 3650

struct tls_server {
	SSL_CTX *ctx;
};

/* openssl_error - the first queued OpenSSL error as text (queue cleared). */
static void openssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e == 0)
		rg_strlcpy(buf, "unknown error", len);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/* make_cert - a self-signed certificate for HOST with KEY. */
static X509 *make_cert(EVP_PKEY *key, const char *host)
{
	X509 *x = X509_new();
	unsigned char serial[16];
	if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* positive */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ASN1_INTEGER *sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	BN_free(bn);
	if (sn == NULL || !X509_set_version(x, 2) || !X509_set_serialNumber(x, sn)) {
		ASN1_INTEGER_free(sn);
		goto fail;
	}
	ASN1_INTEGER_free(sn);
	X509_NAME *name = X509_get_subject_name(x);
	char san[300];
	snprintf(san, sizeof(san), "DNS:%s", host);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	bool ok = X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
		  X509_gmtime_adj(X509_getm_notAfter(x), 86400L * SELF_SIGNED_DAYS) &&
		  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					     (const unsigned char *)host, -1, -1, 0) &&
		  X509_set_issuer_name(x, name) && X509_set_pubkey(x, key) && ext != NULL &&
		  X509_add_ext(x, ext, -1) && X509_sign(x, key, EVP_sha256()) > 0;
	X509_EXTENSION_free(ext);
	if (ok)
		return x;
fail:
	X509_free(x);
	return NULL;
}

/* write_pem - write PATH atomically (tmp + rename) with MODE. */
static bool write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	bool ok = f != NULL;
	if (ok && key)
		ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	if (ok && cert)
		ok = PEM_write_X509(f, cert) == 1;
	if (f != NULL) {
		ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
		ok = fclose(f) == 0 && ok;
	} else if (fd >= 0) {
		close(fd);
	}
	ok = ok && rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok;
}

/* cert_names_host - does the PEM certificate at PATH carry CN=HOST? */
static bool cert_names_host(const char *path, const char *host)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	char cn[256] = "";
	if (x != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	X509_free(x);
	ERR_clear_error();
	return strcmp(cn, host) == 0;
}

/* self_signed - make (or re-use) DIR/selfsigned.{crt,key} for HOST. */
static bool self_signed(const char *dir, const char *host, char **cert_path, char **key_path,
			char *err, size_t errlen)
{
	*cert_path = xasprintf("%s/selfsigned.crt", dir);
	*key_path = xasprintf("%s/selfsigned.key", dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "data_directory %s: %s", dir, strerror(errno));
		return false;
	}
	if (access(*key_path, R_OK) == 0 && cert_names_host(*cert_path, host))
		return true;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *cert = key ? make_cert(key, host) : NULL;
	bool ok = cert != NULL && write_pem(*key_path, 0600, key, NULL) &&
		  write_pem(*cert_path, 0644, NULL, cert);
	if (!ok)
		snprintf(err, errlen, "cannot make a self-signed certificate in %s: %s", dir,
			 errno ? strerror(errno) : "OpenSSL error");
	else
		log_ev(LOG_WARNING, "tls-self-signed", {"certificate", *cert_path},
		       {"host", host},
		       {"note", "made a self-signed certificate; clients will not trust it: set "
				"smtpd_tls_cert_file and smtpd_tls_key_file"});
	X509_free(cert);
	EVP_PKEY_free(key);
	return ok;
}

static SSL_CTX *make_ctx(char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	static const unsigned char sid_ctx[] = "relayguard";
	if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) ||
	    !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1)) {
		openssl_error(err, errlen);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle sessions stay small */
	SSL_CTX_set_num_tickets(ctx, 1); /* SMTP clients resume one session at most */
	return ctx;
}

static bool load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
	char why[256];
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_error(why, sizeof(why));
		snprintf(err, errlen, "smtpd_tls_cert_file %s: %s", cert, why);
		return false;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		openssl_error(why, sizeof(why));
		snprintf(err, errlen, "smtpd_tls_key_file %s: %s", key, why);
		return false;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "smtpd_tls_key_file %s does not match the certificate in %s",
			 key, cert);
		ERR_clear_error();
		return false;
	}
	return true;
}

struct tls_server *tls_server_new(const struct config *cfg, char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL;
	SSL_CTX *ctx = NULL;
	bool ok;
	if (cfg->smtpd_tls_cert_file[0] == '\0') {
		ok = self_signed(cfg->data_directory, cfg->myhostname, &cert, &key, err, errlen);
	} else {
		cert = xstrdup(cfg->smtpd_tls_cert_file);
		key = xstrdup(cfg->smtpd_tls_key_file);
		ok = true;
	}
	if (ok) {
		ctx = make_ctx(err, errlen);
		ok = ctx != NULL && load_pair(ctx, cert, key, err, errlen);
	}
	free(cert);
	free(key);
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	struct tls_server *t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	return t;
}

void tls_server_free(struct tls_server *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

struct bufferevent *tls_wrap_socket(struct tls_server *t, struct event_base *base,
				    evutil_socket_t fd)
{
	SSL *ssl = SSL_new(t->ctx);
	if (ssl == NULL)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *tls_wrap_filter(struct tls_server *t, struct event_base *base,
				    struct bufferevent *plain)
{
	SSL *ssl = SSL_new(t->ctx);
	if (ssl == NULL)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_filter_new(
		base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

bool tls_established(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	return ssl != NULL && SSL_is_init_finished(ssl);
}

bool tls_describe(struct bufferevent *bev, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	if (ssl == NULL)
		return false;
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;
	snprintf(buf, len, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
		 c ? SSL_CIPHER_get_name(c) : "unknown", bits, alg);
	return true;
}

void tls_error_text(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	if (e == 0) {
		int se = EVUTIL_SOCKET_ERROR();
		rg_strlcpy(buf, se ? evutil_socket_error_to_string(se)
				   : "connection closed during the TLS handshake", len);
		return;
	}
	const char *reason = ERR_reason_error_string(e);
	if (reason != NULL)
		rg_strlcpy(buf, reason, len);
	else
		ERR_error_string_n(e, buf, len);
	while (bufferevent_get_openssl_error(bev) != 0)
		; /* drain the rest of this session's errors */
}
