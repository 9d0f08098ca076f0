/*
 * msgauth_check - a line-oriented driver of the pure DMARC, From: and
 * Authentication-Results modules for tests/integration/test_msgauth_vectors.py,
 * which feeds it the shared conformance vectors (JSON) and compares.
 *
 * Each input line is a command with hex-encoded arguments (so any byte,
 * CR and LF included, can be passed); each output line is one JSON object:
 * ("_" is the empty string):
 *	ar-parse MODE HEX        MODE 0 strict, 1 relaxed
 *	ar-claims HEXID HEXVALUE
 *	ar-format                a fixed set of hostile inputs (no arguments)
 *	dmarc-record HEX
 *	dmarc-aligned s|r HEXA HEXB
 *	org HEX
 *	from HEX
 * Owns nothing; must not be linked into the server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgauth/authres.h"
#include "msgauth/dmarc.h"
#include "msgauth/from.h"
#include "util/json.h"
#include "util/util.h"

/* unhex - decode a hex argument in place; its length, or -1. */
static long unhex(char *s)
{
	size_t n = strlen(s);
	if (strcmp(s, "_") == 0) /* the empty string */
		return (long)(s[0] = '\0');
	if (n % 2 != 0)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		s[i] = (char)v;
	}
	s[n / 2] = '\0';
	return (long)(n / 2);
}

static void put_str(struct strbuf *o, const char *key, const char *v)
{
	strbuf_printf(o, "\"%s\":", key);
	json_string(o, v);
}

static void cmd_ar_parse(struct strbuf *o, const char *mode, char *hex)
{
	long n = unhex(hex);
	struct authres_parsed *p = xmalloc(sizeof(*p));
	bool ok = n >= 0 && authres_parse(hex, (size_t)n, atoi(mode) ? AUTHRES_RELAXED : 0, p);
	strbuf_printf(o, "{\"ok\":%s,", ok ? "true" : "false");
	put_str(o, "error", ok ? "" : p->error);
	strbuf_puts(o, ",");
	put_str(o, "authserv_id", p->authserv_id);
	strbuf_printf(o, ",\"version\":%u,\"results\":[", p->version);
	for (size_t i = 0; ok && i < p->nresults; i++) {
		const struct authres_result *r = &p->res[i];
		strbuf_puts(o, i ? ",{" : "{");
		put_str(o, "method", r->method);
		strbuf_printf(o, ",\"version\":%u,", r->version);
		put_str(o, "result", r->result);
		strbuf_puts(o, ",");
		put_str(o, "reason", r->reason);
		strbuf_puts(o, ",\"props\":[");
		for (size_t k = 0; k < r->nprops; k++) {
			strbuf_puts(o, k ? ",[" : "[");
			json_string(o, r->props[k].ptype);
			strbuf_puts(o, ",");
			json_string(o, r->props[k].property);
			strbuf_puts(o, ",");
			json_string(o, r->props[k].value);
			strbuf_puts(o, "]");
		}
		strbuf_puts(o, "]}");
	}
	strbuf_puts(o, "]}");
	free(p);
}

static void cmd_ar_claims(struct strbuf *o, char *id, char *value)
{
	long a = unhex(id), b = unhex(value);
	bool c = a >= 0 && b >= 0 && authres_claims_id(value, (size_t)b, id);
	strbuf_printf(o, "{\"claims\":%s}", c ? "true" : "false");
}

static void cmd_record(struct strbuf *o, char *hex)
{
	static const char *const st[] = {"ok", "not-dmarc", "no-policy"};
	long n = unhex(hex);
	struct dmarc_record r;
	enum dmarc_parse s = dmarc_record_parse(hex, n < 0 ? 0 : (size_t)n, &r);
	strbuf_printf(o, "{\"status\":\"%s\",\"bad\":%u,\"p\":\"%s\",\"sp\":\"%s\",\"np\":\"%s\","
			 "\"pct\":%u,\"adkim\":\"%s\",\"aspf\":\"%s\",\"rua_valid\":%s}",
		      st[s], r.bad, dmarc_policy_name(r.p), dmarc_policy_name(r.sp),
		      dmarc_policy_name(r.np), r.pct, r.adkim == DMARC_ALIGN_STRICT ? "s" : "r",
		      r.aspf == DMARC_ALIGN_STRICT ? "s" : "r", r.rua_valid ? "true" : "false");
}

static void cmd_aligned(struct strbuf *o, const char *mode, char *a, char *b)
{
	bool ok = unhex(a) >= 0 && unhex(b) >= 0 &&
		  dmarc_aligned(a, b, mode[0] == 's' ? DMARC_ALIGN_STRICT : DMARC_ALIGN_RELAXED);
	strbuf_printf(o, "{\"aligned\":%s}", ok ? "true" : "false");
}

static void cmd_org(struct strbuf *o, char *hex)
{
	char org[DMARC_DOMAIN_MAX + 1];
	if (unhex(hex) >= 0 && dmarc_org_domain(hex, org, sizeof(org))) {
		strbuf_puts(o, "{\"org\":");
		json_string(o, org);
		strbuf_puts(o, "}");
	} else {
		strbuf_puts(o, "{\"org\":null}");
	}
}

static void cmd_from(struct strbuf *o, char *hex)
{
	long n = unhex(hex);
	struct from_result r;
	from_parse(hex, n < 0 ? 0 : (size_t)n, &r);
	strbuf_printf(o, "{\"status\":\"%s\",\"mailboxes\":%zu,\"domains\":[",
		      from_status_name(r.status), r.mailboxes);
	for (size_t i = 0; i < r.ndomains && i < FROM_DOMAINS_MAX; i++) {
		strbuf_puts(o, i ? "," : "");
		json_string(o, r.domain[i]);
	}
	strbuf_puts(o, "]}");
}

/* cmd_ar_format - our field for hostile inputs, so the test can parse it
 * back with an independent parser. */
static void cmd_ar_format(struct strbuf *o)
{
	struct authres_dkim sig[2] = {
		{"pass", "example.com", "sel\r\nspf=pass", "abc/def+ghi=jkl", NULL},
		{"fail", "evil.example; dmarc=pass", "s", NULL, "bad \"sig\"\\"},
	};
	struct authres_fields f = {
		"mx.relayguard.test", "user name", "fail",
		"\"a;b\r\nAuthentication-Results: x\"@example.org", "helo.example", sig, 2, "fail",
		"example.com", "p=reject",
	};
	struct strbuf h;
	strbuf_init(&h);
	bool ok = authres_format(&f, &h);
	strbuf_printf(o, "{\"ok\":%s,\"field\":", ok ? "true" : "false");
	json_string(o, ok ? h.data : "");
	strbuf_puts(o, "}");
	strbuf_free(&h);
}

/* dispatch - one command line. */
static void dispatch(struct strbuf *o, char *line)
{
	char *argv[4] = {NULL, NULL, NULL, NULL};
	int argc = 0;
	for (char *t = strtok(line, " \n"); t && argc < 4; t = strtok(NULL, " \n"))
		argv[argc++] = t;
	const char *c = argc ? argv[0] : "";
	if (strcmp(c, "ar-parse") == 0 && argc == 3)
		cmd_ar_parse(o, argv[1], argv[2]);
	else if (strcmp(c, "ar-claims") == 0 && argc == 3)
		cmd_ar_claims(o, argv[1], argv[2]);
	else if (strcmp(c, "ar-format") == 0)
		cmd_ar_format(o);
	else if (strcmp(c, "dmarc-record") == 0 && argc >= 1)
		cmd_record(o, argc > 1 ? argv[1] : (char[]){""});
	else if (strcmp(c, "dmarc-aligned") == 0 && argc == 4)
		cmd_aligned(o, argv[1], argv[2], argv[3]);
	else if (strcmp(c, "org") == 0 && argc == 2)
		cmd_org(o, argv[1]);
	else if (strcmp(c, "from") == 0)
		cmd_from(o, argc > 1 ? argv[1] : (char[]){""});
	else
		strbuf_puts(o, "{\"error\":\"bad command\"}");
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		struct strbuf o;
		strbuf_init(&o);
		dispatch(&o, line);
		printf("%s\n", o.data ? o.data : "{}");
		fflush(stdout);
		strbuf_free(&o);
	}
	free(line);
	return 0;
}
