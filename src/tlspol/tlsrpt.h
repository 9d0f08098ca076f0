/*
 * tlsrpt - SMTP TLS Reporting (RFC 8460): what happened to TLS sessions per
 * policy domain, and the report about it.
 *
 * Owns: the counts of successful and failed sessions per policy domain
 * (an MTA-STS or DANE policy in force), the failure details by result type,
 * MX host and address (bounded), the report's JSON (4.4), its gzip
 * (zlib), the rua= of the _smtp._tls TXT record (3), and the report message
 * (5.3: multipart/report; report-type="tlsrpt", application/tlsrpt+gzip).
 * Must not: do DNS or queue I/O (tlsrpt_send.c does), or decide outcomes.
 */
#ifndef RG_TLSRPT_H
#define RG_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/util.h"

#define TLSRPT_DOMAINS_MAX 10000
#define TLSRPT_DETAILS_MAX 32 /* failure detail rows per domain; more are counted only */

enum tlsrpt_policy { TLSRPT_STS, TLSRPT_TLSA };

struct tlsrpt_detail {
	char result[40];      /* "starttls-not-supported", "validation-failure", ... */
	char mx[256], ip[64]; /* receiving-mx-hostname, receiving-ip ("" unknown) */
	uint64_t count;
};

struct tlsrpt_domain {
	char domain[256];
	enum tlsrpt_policy type;
	char *policy;         /* the policy's text lines (sts) or TLSA records, '\n'-joined */
	char mx[512];         /* the MX patterns (sts), space-separated */
	uint64_t ok, failed;
	struct tlsrpt_detail details[TLSRPT_DETAILS_MAX];
	size_t n_details;
	struct tlsrpt_domain *next;
};

struct tlsrpt;
struct tlsrpt *tlsrpt_new(time_t now);
/* One session to domain under its policy: result NULL for success, else a
 * RFC 8460 4.3 result type with the MX host and address. */
void tlsrpt_note(struct tlsrpt *r, const char *domain, enum tlsrpt_policy type,
		 const char *policy, const char *mx_patterns, const char *result, const char *mx,
		 const char *ip);
/* Take every domain (a list, caller frees with tlsrpt_domains_free) and the
 * start of their period; the counts start again at now. */
struct tlsrpt_domain *tlsrpt_take(struct tlsrpt *r, time_t now, time_t *start);
void tlsrpt_domains_free(struct tlsrpt_domain *d);
void tlsrpt_free(struct tlsrpt *r);

/* ---- pure parts, exposed for tests ---- */
struct tlsrpt_meta {
	const char *org;       /* organization-name: myhostname */
	const char *contact;   /* contact-info */
	const char *report_id;
	time_t start, end;
};
/* The RFC 8460 report (one policy) as JSON into out. */
void tlsrpt_json(const struct tlsrpt_domain *d, const struct tlsrpt_meta *m, struct strbuf *out);
/* The first mailto: of a "v=TLSRPTv1; rua=mailto:a@example.com,https://..." record. */
bool tlsrpt_rua_mailto(const char *txt, char *addr, size_t len);
/* gzip (RFC 1952) of in into out; false on a zlib failure. */
bool tlsrpt_gzip(const char *in, size_t len, struct strbuf *out);
/* The report message (headers, CRLF): From from, To to, the gzip'd JSON attached. */
void tlsrpt_message(const char *from, const char *to, const char *domain, const char *submitter,
		    const char *report_id, time_t now, const char *gz, size_t gzlen,
		    struct strbuf *out);

#endif
