/*
 * tlsrpt.c - TLS-RPT counts, JSON, gzip and message (see tlsrpt.h).
 */
#include "tlspol/tlsrpt.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

struct tlsrpt {
	struct tlsrpt_domain *head;
	size_t n;
	time_t start;
};

struct tlsrpt *tlsrpt_new(time_t now)
{
	struct tlsrpt *r = xcalloc(1, sizeof(*r));
	r->start = now;
	return r;
}

static struct tlsrpt_domain *domain_get(struct tlsrpt *r, const char *domain,
					enum tlsrpt_policy type, const char *policy,
					const char *mx_patterns)
{
	for (struct tlsrpt_domain *d = r->head; d != NULL; d = d->next)
		if (d->type == type && rg_strcasecmp(d->domain, domain) == 0)
			return d;
	if (r->n >= TLSRPT_DOMAINS_MAX)
		return NULL;
	struct tlsrpt_domain *d = xcalloc(1, sizeof(*d));
	rg_strlcpy(d->domain, domain, sizeof(d->domain));
	rg_str_lower(d->domain);
	d->type = type;
	d->policy = xstrdup(policy ? policy : "");
	rg_strlcpy(d->mx, mx_patterns ? mx_patterns : "", sizeof(d->mx));
	d->next = r->head;
	r->head = d;
	r->n++;
	return d;
}

static void add_detail(struct tlsrpt_domain *d, const char *result, const char *mx,
		       const char *ip)
{
	for (size_t i = 0; i < d->n_details; i++) {
		struct tlsrpt_detail *t = &d->details[i];
		if (strcmp(t->result, result) == 0 && strcmp(t->mx, mx) == 0 &&
		    strcmp(t->ip, ip) == 0) {
			t->count++;
			return;
		}
	}
	if (d->n_details == TLSRPT_DETAILS_MAX)
		return;
	struct tlsrpt_detail *t = &d->details[d->n_details++];
	rg_strlcpy(t->result, result, sizeof(t->result));
	rg_strlcpy(t->mx, mx, sizeof(t->mx));
	rg_strlcpy(t->ip, ip, sizeof(t->ip));
	t->count = 1;
}

void tlsrpt_note(struct tlsrpt *r, const char *domain, enum tlsrpt_policy type,
		 const char *policy, const char *mx_patterns, const char *result, const char *mx,
		 const char *ip)
{
	struct tlsrpt_domain *d = domain_get(r, domain, type, policy, mx_patterns);
	if (d == NULL)
		return;
	if (result == NULL) {
		d->ok++;
		return;
	}
	d->failed++;
	add_detail(d, result, mx ? mx : "", ip ? ip : "");
}

struct tlsrpt_domain *tlsrpt_take(struct tlsrpt *r, time_t now, time_t *start)
{
	struct tlsrpt_domain *all = r->head;
	*start = r->start;
	r->head = NULL;
	r->n = 0;
	r->start = now;
	return all;
}

void tlsrpt_domains_free(struct tlsrpt_domain *d)
{
	while (d != NULL) {
		struct tlsrpt_domain *next = d->next;
		free(d->policy);
		free(d);
		d = next;
	}
}

void tlsrpt_free(struct tlsrpt *r)
{
	if (r == NULL)
		return;
	tlsrpt_domains_free(r->head);
	free(r);
}

/* ---- the report ---- */

static void json_time(struct strbuf *out, time_t t)
{
	char buf[32];
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, sizeof(buf), "1970-01-01T00:00:00Z");
	json_string(out, buf);
}

/* json_lines - text split at '\n' (or at ' ' with by_space) as a JSON array. */
static void json_lines(struct strbuf *out, const char *text, char sep)
{
	strbuf_puts(out, "[");
	bool first = true;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, sep == ' ' ? " " : "\n");
		if (n > 0) {
			char *item = xstrndup(p, n);
			strbuf_puts(out, first ? "" : ",");
			json_string(out, item);
			free(item);
			first = false;
		}
		p += n + (p[n] != '\0');
	}
	strbuf_puts(out, "]");
}

static void json_policy(const struct tlsrpt_domain *d, struct strbuf *out)
{
	strbuf_puts(out, "{\"policy-type\":");
	json_string(out, d->type == TLSRPT_STS ? "sts" : "tlsa");
	strbuf_puts(out, ",\"policy-string\":");
	json_lines(out, d->policy, '\n');
	strbuf_puts(out, ",\"policy-domain\":");
	json_string(out, d->domain);
	if (d->type == TLSRPT_STS) {
		strbuf_puts(out, ",\"mx-host\":");
		json_lines(out, d->mx, ' ');
	}
	strbuf_puts(out, "}");
}

static void json_details(const struct tlsrpt_domain *d, struct strbuf *out)
{
	strbuf_puts(out, "[");
	for (size_t i = 0; i < d->n_details; i++) {
		const struct tlsrpt_detail *t = &d->details[i];
		strbuf_puts(out, i ? ",{\"result-type\":" : "{\"result-type\":");
		json_string(out, t->result);
		if (t->ip[0]) {
			strbuf_puts(out, ",\"receiving-ip\":");
			json_string(out, t->ip);
		}
		if (t->mx[0]) {
			strbuf_puts(out, ",\"receiving-mx-hostname\":");
			json_string(out, t->mx);
		}
		strbuf_printf(out, ",\"failed-session-count\":%llu}", (unsigned long long)t->count);
	}
	strbuf_puts(out, "]");
}

void tlsrpt_json(const struct tlsrpt_domain *d, const struct tlsrpt_meta *m, struct strbuf *out)
{
	strbuf_puts(out, "{\"organization-name\":");
	json_string(out, m->org);
	strbuf_puts(out, ",\"date-range\":{\"start-datetime\":");
	json_time(out, m->start);
	strbuf_puts(out, ",\"end-datetime\":");
	json_time(out, m->end);
	strbuf_puts(out, "},\"contact-info\":");
	json_string(out, m->contact);
	strbuf_puts(out, ",\"report-id\":");
	json_string(out, m->report_id);
	strbuf_puts(out, ",\"policies\":[{\"policy\":");
	json_policy(d, out);
	strbuf_printf(out, ",\"summary\":{\"total-successful-session-count\":%llu,"
		      "\"total-failure-session-count\":%llu},\"failure-details\":",
		      (unsigned long long)d->ok, (unsigned long long)d->failed);
	json_details(d, out);
	strbuf_puts(out, "}]}\n");
}

/* rua_value - the value of the field whose key is exactly "rua" (fields
 * split on ';', RFC 8460 3: not "xrua=" or a "rua=" inside another value). */
static const char *rua_value(const char *txt)
{
	for (const char *f = txt; f != NULL; f = strchr(f, ';')) {
		f += *f == ';';
		f += strspn(f, " \t");
		if (strncmp(f, "rua=", 4) == 0)
			return f + 4;
	}
	return NULL;
}

bool tlsrpt_rua_mailto(const char *txt, char *addr, size_t len)
{
	if (strncmp(txt, "v=TLSRPTv1", 10) != 0 || (txt[10] != ';' && txt[10] != ' '))
		return false;
	for (const char *p = rua_value(txt); p != NULL && *p && *p != ';';) {
		size_t n = strcspn(p, ",;");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 7 && strncmp(p, "mailto:", 7) == 0 && n - 7 < len && memchr(p, '@', n)) {
			memcpy(addr, p + 7, n - 7);
			addr[n - 7] = '\0';
			return strcspn(addr, " <>\"\\") == n - 7; /* a plain address only */
		}
		p += strcspn(p, ",;");
		if (*p == ',')
			p++;
		while (*p == ' ')
			p++;
	}
	return false;
}

bool tlsrpt_gzip(const char *in, size_t len, struct strbuf *out)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return false; /* 15 + 16: a gzip wrapper */
	unsigned char buf[16384];
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)len;
	int rc;
	do {
		z.next_out = buf;
		z.avail_out = sizeof(buf);
		rc = deflate(&z, Z_FINISH);
		strbuf_append(out, (const char *)buf, sizeof(buf) - z.avail_out);
	} while (rc == Z_OK);
	deflateEnd(&z);
	return rc == Z_STREAM_END;
}

/* base64_lines - RFC 2045 base64, 76 characters a line, CRLF. */
static void base64_lines(const char *data, size_t len, struct strbuf *out)
{
	for (size_t off = 0; off < len; off += 57) {
		unsigned char line[80];
		size_t n = len - off < 57 ? len - off : 57;
		int w = EVP_EncodeBlock(line, (const unsigned char *)data + off, (int)n);
		strbuf_append(out, (const char *)line, (size_t)w);
		strbuf_puts(out, "\r\n");
	}
}

void tlsrpt_message(const char *from, const char *to, const char *domain, const char *submitter,
		    const char *report_id, time_t now, const char *gz, size_t gzlen,
		    struct strbuf *out)
{
	char date[64], day[16];
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	strftime(day, sizeof(day), "%Y%m%d", &tm);
	strbuf_printf(out, "From: TLS reporting <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
		      "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n"
		      "Message-ID: <%s>\r\nTLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n"
		      "MIME-Version: 1.0\r\n", from, to, date, domain, submitter, report_id,
		      report_id, domain, submitter);
	strbuf_printf(out, "Content-Type: multipart/report; report-type=\"tlsrpt\"; "
		      "boundary=\"tlsrpt-%s\"\r\n\r\n", report_id);
	strbuf_printf(out, "--tlsrpt-%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
		      "This is an aggregate TLS report (RFC 8460) from %s for %s.\r\n\r\n", report_id,
		      submitter, domain);
	strbuf_printf(out, "--tlsrpt-%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
		      "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
		      "filename=\"%s!%s!%s.json.gz\"\r\n\r\n", report_id, submitter, domain, day);
	base64_lines(gz, gzlen, out);
	strbuf_printf(out, "\r\n--tlsrpt-%s--\r\n", report_id);
}
