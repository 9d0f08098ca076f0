/*
 * test_route.c - next-hop syntax, transport_maps values and the routing order
 * (transport_maps, then relayhost, then MX), as tables.
 */
#include "check.h"
#include "config/config.h"
#include "qmgr/route.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct hop_row {
	int line;
	const char *in;
	bool ok;
	const char *host;
	unsigned port;
	bool mx;
};

static const struct hop_row hop_rows[] = {
	{__LINE__, "[mx.example.com]:2525", true, "mx.example.com", 2525, false},
	{__LINE__, "[mx.example.com]", true, "mx.example.com", 25, false},
	{__LINE__, "example.com", true, "example.com", 25, true},
	{__LINE__, "example.com:587", true, "example.com", 587, true},
	{__LINE__, "[127.0.0.5]:2525", true, "127.0.0.5", 2525, false},
	{__LINE__, "[::1]:2525", true, "::1", 2525, false},
	{__LINE__, "::1", true, "::1", 25, false},           /* a bare IP: never an MX lookup */
	{__LINE__, "127.0.0.5", true, "127.0.0.5", 25, false},
	{__LINE__, "[mx.example.com", false, NULL, 0, false}, /* unclosed */
	{__LINE__, "[]:25", false, NULL, 0, false},
	{__LINE__, "mx.example.com:0", false, NULL, 0, false},
	{__LINE__, "mx.example.com:65536", false, NULL, 0, false},
	{__LINE__, "mx.example.com:", false, NULL, 0, false},
	{__LINE__, "[mx.example.com]x", false, NULL, 0, false},
	{__LINE__, "mx example.com", false, NULL, 0, false},  /* no spaces, no syntax smuggling */
	{__LINE__, "mx.example.com\r\nRCPT", false, NULL, 0, false},
	{__LINE__, "", false, NULL, 0, false},
};

static void test_nexthops(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(hop_rows); i++) {
		const struct hop_row *r = &hop_rows[i];
		char host[ROUTE_HOST_MAX] = "";
		unsigned port = 0;
		bool mx = false;
		bool ok = route_parse_nexthop(r->in, 25, host, sizeof(host), &port, &mx);
		CHECK_AT(r->line, ok == r->ok, "\"%s\": ok %d, want %d", r->in, ok, r->ok);
		if (!ok || !r->ok)
			continue;
		CHECK_STR_AT(r->line, host, r->host, "host");
		CHECK_AT(r->line, port == r->port, "port %u, want %u", port, r->port);
		CHECK_AT(r->line, mx == r->mx, "mx %d, want %d", mx, r->mx);
	}
}

/* Routing against a real configuration: transport table, relayhost. */
struct route_row {
	int line;
	const char *maincf;  /* TABLE stands for the transport table's path */
	const char *domain;
	enum route_domain_class local_domain; /* false/true: remote/mydestination */
	enum route_kind kind;
	const char *host;    /* ROUTE_SMTP, ROUTE_LMTP */
	unsigned port;
	bool mx;
	const char *via;
	const char *key;
	const char *status;  /* ROUTE_ERROR */
	const char *text;
};

#define TABLE_TEXT "example.com smtp:[mx.example.com]:2525\n" \
		   ".example.com smtp:hub.example.com\n" \
		   "example.org local\n" \
		   "example.net error:5.7.1 no mail here\n" \
		   "discard.example discard:\n" \
		   "bare.example smtp:\n" \
		   "v6.example smtp:[::1]:2526\n" \
		   "noisy.example error:nothing to see\n" \
		   "lmtp.example lmtp:inet:[::1]:2424\n"

static const struct route_row route_rows[] = {
	{__LINE__, "transport_maps = TABLE\n", "example.com", false, ROUTE_SMTP,
	 "mx.example.com", 2525, false, "transport_maps", "[mx.example.com]:2525", NULL, NULL},
	/* ".example.com" matches subdomains only, the nearest parent first */
	{__LINE__, "transport_maps = TABLE\n", "a.b.example.com", false, ROUTE_SMTP,
	 "hub.example.com", 25, true, "transport_maps", "hub.example.com", NULL, NULL},
	{__LINE__, "transport_maps = TABLE\n", "example.org", false, ROUTE_LOCAL, NULL, 0,
	 false, "transport_maps", NULL, NULL, NULL},
	{__LINE__, "transport_maps = TABLE\n", "example.net", false, ROUTE_ERROR, NULL, 0,
	 false, "transport_maps", NULL, "5.7.1", "no mail here"},
	{__LINE__, "transport_maps = TABLE\n", "noisy.example", false, ROUTE_ERROR, NULL, 0,
	 false, "transport_maps", NULL, "5.0.0", "nothing to see"},
	{__LINE__, "transport_maps = TABLE\n", "discard.example", false, ROUTE_DISCARD, NULL,
	 0, false, "transport_maps", NULL, NULL, NULL},
	{__LINE__, "transport_maps = TABLE\nsmtp_tcp_port = 2525\n", "bare.example", false,
	 ROUTE_SMTP, "bare.example", 2525, true, "transport_maps", "bare.example", NULL, NULL},
	{__LINE__, "transport_maps = TABLE\n", "v6.example", false, ROUTE_SMTP, "::1", 2526,
	 false, "transport_maps", "[::1]:2526", NULL, NULL},
	/* not in the table: relayhost, else MX of the domain itself */
	{__LINE__, "transport_maps = TABLE\nrelayhost = [smtp.example.net]:587\n",
	 "other.example", false, ROUTE_SMTP, "smtp.example.net", 587, false, "relayhost",
	 "[smtp.example.net]:587", NULL, NULL},
	{__LINE__, "relayhost = example.net\n", "other.example", false, ROUTE_SMTP,
	 "example.net", 25, true, "relayhost", "example.net", NULL, NULL},
	{__LINE__, "smtp_tcp_port = 2600\n", "other.example", false, ROUTE_SMTP,
	 "other.example", 2600, true, "mx", "other.example", NULL, NULL},
	/* default_transport: a 4.x.x error defers (tests keep mail off the network) */
	{__LINE__, "default_transport = error:4.3.2 off in tests\n", "other.example", false,
	 ROUTE_ERROR, NULL, 0, false, "default_transport", NULL, "4.3.2", "off in tests"},
	{__LINE__, "default_transport = smtp:[127.0.0.7]:2600\nrelayhost = example.net\n",
	 "other.example", false, ROUTE_SMTP, "127.0.0.7", 2600, false, "default_transport",
	 "[127.0.0.7]:2600", NULL, NULL},
	{__LINE__, "default_transport = error:4.3.2 off\n", "localhost", true, ROUTE_LOCAL,
	 NULL, 0, false, "local", NULL, NULL, NULL},
	/* our own domain: local, even with a relayhost */
	{__LINE__, "relayhost = [smtp.example.net]\n", "localhost", true, ROUTE_LOCAL, NULL, 0,
	 false, "local", NULL, NULL, NULL},
	/* the table wins over local */
	{__LINE__, "transport_maps = TABLE\n", "example.com", true, ROUTE_SMTP,
	 "mx.example.com", 2525, false, "transport_maps", "[mx.example.com]:2525", NULL, NULL},
	/* issue 12: our own domains go to mailbox_transport / virtual_transport */
	{__LINE__, "mailbox_transport = lmtp:unix:/run/dovecot/lmtp\n", "localhost",
	 ROUTE_DOMAIN_MYDESTINATION, ROUTE_LMTP, "/run/dovecot/lmtp", 0, false,
	 "mailbox_transport", "lmtp:unix:/run/dovecot/lmtp", NULL, NULL},
	{__LINE__, "mailbox_transport = lmtp:inet:127.0.0.1\n", "localhost",
	 ROUTE_DOMAIN_MYDESTINATION, ROUTE_LMTP, "127.0.0.1", 24, false, "mailbox_transport",
	 "lmtp:inet:127.0.0.1:24", NULL, NULL},
	{__LINE__, "virtual_transport = lmtp:inet:127.0.0.1:2424\n", "hosted.example",
	 ROUTE_DOMAIN_VIRTUAL, ROUTE_LMTP, "127.0.0.1", 2424, false, "virtual_transport",
	 "lmtp:inet:127.0.0.1:2424", NULL, NULL},
	/* each applies to its own kind of domain only; empty: local Maildir */
	{__LINE__, "virtual_transport = lmtp:inet:127.0.0.1:2424\n", "localhost",
	 ROUTE_DOMAIN_MYDESTINATION, ROUTE_LOCAL, NULL, 0, false, "local", NULL, NULL, NULL},
	{__LINE__, "mailbox_transport = lmtp:inet:127.0.0.1:2424\n", "hosted.example",
	 ROUTE_DOMAIN_VIRTUAL, ROUTE_LOCAL, NULL, 0, false, "local", NULL, NULL, NULL},
	{__LINE__, "mailbox_transport = lmtp:inet:127.0.0.1:2424\n", "other.example",
	 ROUTE_DOMAIN_REMOTE, ROUTE_SMTP, "other.example", 25, true, "mx", "other.example",
	 NULL, NULL},
	{__LINE__, "mailbox_transport = local\n", "localhost", ROUTE_DOMAIN_MYDESTINATION,
	 ROUTE_LOCAL, NULL, 0, false, "mailbox_transport", NULL, NULL, NULL},
	/* transport_maps still wins, and may say lmtp too */
	{__LINE__, "mailbox_transport = lmtp:unix:/run/dovecot/lmtp\ntransport_maps = TABLE\n",
	 "example.com", ROUTE_DOMAIN_MYDESTINATION, ROUTE_SMTP, "mx.example.com", 2525, false,
	 "transport_maps", "[mx.example.com]:2525", NULL, NULL},
	{__LINE__, "transport_maps = TABLE\n", "lmtp.example", ROUTE_DOMAIN_REMOTE, ROUTE_LMTP,
	 "::1", 2424, false, "transport_maps", "lmtp:inet:[::1]:2424", NULL, NULL},
};

static char *write_file(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static char *replace_table(const char *text, const char *table)
{
	struct strbuf sb;
	strbuf_init(&sb);
	for (const char *p = text; *p;) {
		const char *t = strstr(p, "TABLE");
		size_t n = t ? (size_t)(t - p) : strlen(p);
		strbuf_append(&sb, p, n);
		if (t == NULL)
			break;
		strbuf_puts(&sb, table);
		p = t + 5;
	}
	return strbuf_steal(&sb);
}

static void check_route(const struct route_row *r, const struct route *got)
{
	CHECK_AT(r->line, got->kind == r->kind, "%s: kind %d, want %d", r->domain, got->kind,
		 r->kind);
	CHECK_STR_AT(r->line, got->via, r->via, "via");
	if (r->kind == ROUTE_SMTP || r->kind == ROUTE_LMTP) {
		CHECK_STR_AT(r->line, got->host, r->host, "host");
		CHECK_AT(r->line, got->port == r->port, "port %u, want %u", got->port, r->port);
		CHECK_AT(r->line, got->mx == r->mx, "mx %d, want %d", got->mx, r->mx);
		CHECK_STR_AT(r->line, got->key, r->key, "key");
		CHECK_AT(r->line, got->unix_socket == (r->kind == ROUTE_LMTP && r->port == 0),
			 "unix_socket %d", got->unix_socket);
	}
	if (r->kind == ROUTE_ERROR) {
		CHECK_STR_AT(r->line, got->status, r->status, "status");
		CHECK_STR_AT(r->line, got->text, r->text, "text");
	}
}

static void test_routes(const char *dir)
{
	char *table = write_file(dir, "transport", TABLE_TEXT);
	for (size_t i = 0; i < RG_ARRAY_LEN(route_rows); i++) {
		const struct route_row *r = &route_rows[i];
		char *text = replace_table(r->maincf, table);
		char *path = write_file(dir, "main.cf", text);
		char *errors = NULL, err[512] = "";
		struct config *cfg = config_load(path, &errors);
		CHECK_AT(r->line, cfg != NULL, "config: %s", errors ? errors : "");
		struct route got;
		if (cfg && route_for_domain(cfg, r->domain, r->local_domain, &got, err, sizeof(err)))
			check_route(r, &got);
		else if (cfg)
			CHECK_AT(r->line, false, "%s: %s", r->domain, err);
		config_free(cfg);
		free(errors);
		free(text);
		free(path);
	}
	free(table);
}

/* Bad values stop the start with file:line, naming the table and the key. */
struct bad_row {
	int line;
	const char *table;
	const char *maincf;
	const char *want;
};

static const struct bad_row bad_rows[] = {
	{__LINE__, "example.com pipe:/x\n", "transport_maps = TABLE\n",
	 "transport_maps: TABLE: example.com: \"pipe:/x\": unknown transport"},
	{__LINE__, "example.com lmtp:unix:x\n", "transport_maps = TABLE\n",
	 "transport_maps: TABLE: example.com: lmtp:unix:x: not an absolute socket path"},
	/* issue 12: LMTP destinations are checked at start-up, with file:line */
	{__LINE__, "", "mailbox_transport = lmtp:inet:dovecot:24\n",
	 "FILE:1: mailbox_transport: \"lmtp:inet:dovecot:24\": not lmtp:unix:/path or "
	 "lmtp:inet:IP:port (an IP address: names are not resolved)"},
	{__LINE__, "", "virtual_transport = lmtp:tcp:127.0.0.1:24\n",
	 "FILE:1: virtual_transport: \"lmtp:tcp:127.0.0.1:24\": not lmtp:unix:/path"},
	{__LINE__, "", "virtual_transport = lmtp:inet:127.0.0.1:70000\n",
	 "FILE:1: virtual_transport: \"lmtp:inet:127.0.0.1:70000\""},
	{__LINE__, "", "mailbox_transport = lmtp:unix:/" "0123456789012345678901234567890123456789"
	 "0123456789012345678901234567890123456789012345678901234567890123456789\n",
	 "FILE:1: mailbox_transport: lmtp:unix:/0123"},
	{__LINE__, "", "mailbox_transport = lmtp:unix:/run/a b\n",
	 "FILE:1: mailbox_transport: lmtp:unix:/run/a b: not an absolute socket path"},
	{__LINE__, "", "mailbox_transport = maildrop\n",
	 "FILE:1: mailbox_transport: \"maildrop\": unknown transport"},
	{__LINE__, "", "lmtp_destination_concurrency_limit = 0\n",
	 "lmtp_destination_concurrency_limit"},
	{__LINE__, "example.com smtp:[mx.example.com:25\n", "transport_maps = TABLE\n",
	 "bad next hop"},
	{__LINE__, "example.com error:3.1.1 nope\n", "transport_maps = TABLE\n",
	 "status 3.1.1 must start with 4 or 5"},
	{__LINE__, "", "default_transport = pipe:x\n",
	 "FILE:1: default_transport: \"pipe:x\": unknown transport"},
	{__LINE__, "", "relayhost = [smtp.example.com]:99999\n",
	 "FILE:1: relayhost: \"[smtp.example.com]:99999\" is not a next hop"},
	{__LINE__, "", "smtp_tls_security_level = dane-only\n",
	 "FILE:1: smtp_tls_security_level: \"dane-only\" is not none, may, encrypt, verify, "
	 "secure or dane"},
	{__LINE__, "", "smtp_sasl_auth_enable = yes\n",
	 "FILE:1: smtp_sasl_auth_enable = yes needs smtp_sasl_password_maps"},
	{__LINE__, "", "smtp_sasl_security_options = noplaintext, nosuch\n",
	 "\"nosuch\" is not a SASL security option"},
	{__LINE__, "", "smtp_bind_address = ::1\n", "smtp_bind_address: \"::1\" is not an IPv4"},
	{__LINE__, "", "minimal_backoff_time = 2h\nmaximal_backoff_time = 1h\n",
	 "minimal_backoff_time is larger than maximal_backoff_time"},
	{__LINE__, "[mx.example.com] nosuch\n", "smtp_tls_policy_maps = TABLE\n",
	 "\"nosuch\" for [mx.example.com] is not a TLS level"},
};

static void test_bad(const char *dir)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(bad_rows); i++) {
		const struct bad_row *r = &bad_rows[i];
		char *table = write_file(dir, "table", r->table);
		char *text = replace_table(r->maincf, table);
		char *path = write_file(dir, "main.cf", text);
		char *want1 = replace_table(r->want, table);
		struct strbuf want;
		strbuf_init(&want);
		for (const char *p = want1; *p; p++) {
			if (strncmp(p, "FILE", 4) == 0) {
				strbuf_puts(&want, path);
				p += 3;
			} else {
				strbuf_append(&want, p, 1);
			}
		}
		char *errors = NULL;
		struct config *cfg = config_load(path, &errors);
		CHECK_AT(r->line, cfg == NULL && errors && strstr(errors, want.data),
			 "want \"%s\" in:\n%s", want.data, errors ? errors : "(loaded)");
		config_free(cfg);
		free(errors);
		free(table);
		free(text);
		free(path);
		free(want1);
		strbuf_free(&want);
	}
}

int main(void)
{
	char dir[] = "/tmp/rg-route-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 2;
	test_nexthops();
	test_routes(dir);
	test_bad(dir);
	char *cmd = xasprintf("rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(cmd);
	return check_summary("route");
}
