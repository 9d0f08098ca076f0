/*
 * authres - the Authentication-Results header field (RFC 8601): the one we
 * write, and enough reading of others' to remove forgeries of ours.
 *
 * Owns: formatting our field (auth, spf, dkim, dmarc results) with every
 * value quoted so that client-controlled text (MAIL FROM, HELO, d=, s=, b=)
 * can never end a result, start a method or a line; folding; parsing a
 * field value (strict RFC 8601, or relaxed for what real MTAs write) and
 * the decision whether a field claims our authserv-id, so the session can
 * drop it (the OpenDMARC CVE-2020-12272 class).
 * Must not: decide results (spf, dkim and dmarc modules do) or touch the
 * message; parsing is bounded and allocation-free.
 */
#ifndef RG_MSGAUTH_AUTHRES_H
#define RG_MSGAUTH_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#include "util/util.h"

/* ---- writing ----------------------------------------------------------- */

#define AUTHRES_VALUE_MAX 200 /* longer values are cut (a display header) */

struct authres_dkim {
	const char *result;   /* "pass", "fail", "neutral", "policy", "temperror", ... */
	const char *domain;   /* header.d= (NULL: left out) */
	const char *selector; /* header.s= */
	const char *b;        /* the b= value; its first 8 characters are written */
	const char *reason;   /* reason="..." (NULL: none) */
};

struct authres_fields {
	const char *authserv_id;   /* myhostname */
	const char *auth_identity; /* SASL identity: "auth=pass smtp.auth=..."; NULL: not authenticated */
	const char *spf_result;    /* RFC 8601 2.7.2 keyword; NULL: no spf= result */
	const char *spf_mailfrom;  /* smtp.mailfrom= (the MAIL FROM address, or NULL) */
	const char *spf_helo;      /* smtp.helo= when SPF checked the HELO identity */
	const struct authres_dkim *dkim; /* ndkim == 0 writes "dkim=none" */
	size_t ndkim;
	const char *dmarc_result;  /* NULL: no dmarc= result */
	const char *dmarc_from;    /* header.from= (the author domain) */
	const char *dmarc_reason;  /* reason="..." (e.g. "p=reject") */
};

/* authres_format - append "Authentication-Results: ...\r\n" (folded, each
 * result on its own line) to out. False, with nothing appended, when a
 * result keyword is not one RFC 8601 registers for its method (a caller's
 * bug, never the client's). */
bool authres_format(const struct authres_fields *f, struct strbuf *out);

/* authres_append_value - append v as an RFC 8601 pvalue: bare when it is a
 * token or local@domain, otherwise a quoted-string; control characters and
 * bytes >= 0x80 become '?', and at most AUTHRES_VALUE_MAX bytes are used. */
void authres_append_value(struct strbuf *out, const char *v);

/* ---- reading ----------------------------------------------------------- */

#define AUTHRES_MAX_RESULTS 16
#define AUTHRES_MAX_PROPS 8
#define AUTHRES_TEXT_MAX 128
#define AUTHRES_INPUT_MAX 16384

enum { AUTHRES_RELAXED = 1 << 0 }; /* tolerate what real MTAs write: no
				    * authserv-id (or one at the end), '/' ':'
				    * in bare values, "action=none", junk words,
				    * a trailing ';', any result keyword */

struct authres_prop {
	char ptype[16];                 /* "smtp", "header", ... ("" relaxed, no dot) */
	char property[32];              /* lower case */
	char value[AUTHRES_TEXT_MAX];   /* quotes removed; cut at the maximum */
};

struct authres_result {
	char method[32];                /* lower case */
	unsigned version;               /* method/version, 1 when absent */
	char result[32];                /* lower case */
	char reason[AUTHRES_TEXT_MAX];
	size_t nprops;
	struct authres_prop props[AUTHRES_MAX_PROPS];
};

struct authres_parsed {
	char authserv_id[256];          /* as written, quotes removed */
	unsigned version;               /* 1 when absent */
	size_t nresults;                /* stored (more are counted in extra) */
	size_t extra;
	struct authres_result res[AUTHRES_MAX_RESULTS];
	char error[96];                 /* why parsing failed */
};

/* authres_parse - parse a field value (without "Authentication-Results:").
 * Returns false, with p->error set, when it is not one. */
bool authres_parse(const char *value, size_t len, unsigned flags, struct authres_parsed *p);

/* authres_claims_id - does this field value claim to come from authserv_id?
 * True when its authserv-id (comments, quotes, case and a trailing dot
 * ignored) is ours, or, written the Outlook way, a bare ';'-separated
 * element is; also when the value is too broken to tell but names our id
 * first. Errs towards true: a removed forgery is cheap, a kept one is the
 * CVE. */
bool authres_claims_id(const char *value, size_t len, const char *authserv_id);

/* authres_field_forged - is the header field field[0..n) (name, value and
 * continuation lines as received, CRLF between them) an
 * Authentication-Results field to remove because it claims authserv_id? It
 * is judged unfolded, so the claim may be on any line. Also true when it
 * could be ours and we cannot tell: WHOLE false (only its beginning was
 * held), a value of only comments and white space, a value longer than
 * AUTHRES_INPUT_MAX, our id behind a control or non-ASCII byte (another
 * reader's white space), or an RFC 2047 encoded word before the first ';'.
 * Any other field: false. */
bool authres_field_forged(const char *field, size_t n, bool whole, const char *authserv_id);

#endif
