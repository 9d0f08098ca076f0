/*
 * tls - the server side of TLS: STARTTLS (RFC 3207) and implicit TLS (RFC 8314).
 *
 * Owns: the SSL_CTX (TLS 1.2 at least, forward-secret AEAD ciphers, no
 * renegotiation, no compression), the certificate and key (loaded at start-up,
 * before privileges are dropped), the self-signed certificate made on first
 * start when none is configured, wrapping a session's bufferevent in
 * libevent's OpenSSL bufferevent, and describing a TLS session for the log
 * and the Received: header.
 * Must not: speak SMTP; the session decides when TLS starts.
 */
#ifndef RG_TLS_H
#define RG_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/util.h>

#include "config/config.h"

struct bufferevent;
struct event_base;
struct tls_server;

/* Load (or make, when smtpd_tls_cert_file is empty) the certificate; NULL with ERR on failure. */
struct tls_server *tls_server_new(const struct config *cfg, char *err, size_t errlen);
void tls_server_free(struct tls_server *t);

/* Implicit TLS: a bufferevent that handshakes on fd first (fd is taken). */
struct bufferevent *tls_wrap_socket(struct tls_server *t, struct event_base *base,
				    evutil_socket_t fd);
/* STARTTLS: a TLS filter over PLAIN, which it takes over (freed with the filter). */
struct bufferevent *tls_wrap_filter(struct tls_server *t, struct event_base *base,
				    struct bufferevent *plain);

/* Is BEV a TLS bufferevent whose handshake is done? */
bool tls_established(struct bufferevent *bev);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"; false when not TLS. */
bool tls_describe(struct bufferevent *bev, char *buf, size_t len);
/* Why the last TLS operation on BEV failed (OpenSSL's reason, or a generic text). */
void tls_error_text(struct bufferevent *bev, char *buf, size_t len);

#endif
