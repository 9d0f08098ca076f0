/*
 * smtp_send_check - send one message through src/client/dialogue.c and print
 * every result as JSON (the driver of tests/integration/test_smtp_client.py).
 *
 * usage: smtp_send_check [--tls none|may|encrypt|verify|secure] [--implicit-tls]
 *          [--cafile F] [--capath D] [--servername NAME] [--match DOMAIN]
 *          [--helo NAME] [--auth USER:PASS] [--plaintext-auth-ok] [--source IP]
 *          [--from ADDR] [--to ADDR]... [--notify V] [--orcpt V] [--ret V]
 *          [--envid V] [--8bit] [--file PATH] [--twice]
 *          [--timeout connect|helo|mail|rcpt|data-init|data-xfer|data-done|quit=MS]...
 *          HOST-IP PORT
 *
 * Prints {"open": RESULT, "sends": [RESULT...], "reusable": [bool...]}: the
 * opening, then one result per message (--twice: the same message twice over
 * one connection when it stays reusable). The message is read from --file
 * (default: stdin) as it is. Exit status 0 when it ran, 2 on usage errors.
 * Test tool; not installed.
 */
#include "client/dialogue.h"
#include "client/smtpc.h"
#include "net/net.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RCPTS 64

static struct {
	struct smtp_hop_opts hop;
	struct smtp_out_msg msg;
	struct smtp_out_rcpt rcpts[MAX_RCPTS];
	bool twice;
	unsigned sends;
	struct strbuf out;
} run;

static void json_str(struct strbuf *sb, const char *s)
{
	strbuf_puts(sb, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			strbuf_printf(sb, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			strbuf_printf(sb, "\\u%04x", *p);
		else
			strbuf_append(sb, (const char *)p, 1);
	}
	strbuf_puts(sb, "\"");
}

static const char *kind_name(enum smtp_result_kind k)
{
	static const char *names[] = {"done", "conn_fail", "temp_all", "perm_all"};
	return names[k];
}

static void json_result(struct strbuf *sb, const struct smtp_result *r)
{
	strbuf_printf(sb, "{\"kind\": \"%s\", \"try_next\": %s, \"local\": %s, \"code\": %d, ",
		      kind_name(r->kind), r->try_next_address ? "true" : "false",
		      r->local ? "true" : "false", r->code);
	strbuf_puts(sb, "\"stage\": ");
	json_str(sb, r->stage);
	strbuf_puts(sb, ", \"enhanced\": ");
	json_str(sb, r->enhanced);
	strbuf_puts(sb, ", \"text\": ");
	json_str(sb, r->text);
	strbuf_puts(sb, ", \"tls\": ");
	json_str(sb, r->tls_desc);
	strbuf_puts(sb, ", \"auth\": ");
	json_str(sb, r->auth_desc);
	strbuf_puts(sb, ", \"relay\": ");
	json_str(sb, r->relay_desc);
	strbuf_puts(sb, ", \"rcpts\": [");
	for (size_t i = 0; i < r->n_rcpts; i++) {
		strbuf_printf(sb, "%s{\"code\": %d, \"enhanced\": ", i ? ", " : "", r->rcpts[i].code);
		json_str(sb, r->rcpts[i].enhanced);
		strbuf_puts(sb, ", \"text\": ");
		json_str(sb, r->rcpts[i].text);
		strbuf_puts(sb, "}");
	}
	strbuf_puts(sb, "]}");
}

static void on_sent(struct smtp_out *o, const struct smtp_result *r, void *arg)
{
	(void)arg;
	strbuf_puts(&run.out, run.sends++ ? ", " : "");
	json_result(&run.out, r);
	bool reusable = smtp_out_reusable(o);
	static char flags[64]; /* the reusable flags, printed after the list */
	size_t n = strlen(flags);
	snprintf(flags + n, sizeof(flags) - n, "%s%s", n ? ", " : "", reusable ? "true" : "false");
	if (run.twice && run.sends == 1 && reusable) {
		smtp_out_send(o, &run.msg, on_sent, NULL);
		return;
	}
	strbuf_printf(&run.out, "], \"reusable\": [%s]}", flags);
	smtp_out_close(o);
}

static void on_ready(struct smtp_out *o, const struct smtp_result *r, void *arg)
{
	(void)arg;
	strbuf_puts(&run.out, "{\"open\": ");
	json_result(&run.out, r);
	strbuf_puts(&run.out, ", \"sends\": [");
	if (r->kind != SR_DONE) {
		strbuf_puts(&run.out, "], \"reusable\": []}");
		smtp_out_close(o);
		return;
	}
	smtp_out_send(o, &run.msg, on_sent, NULL);
}

static bool set_timeout(const char *spec)
{
	static const struct {
		const char *name;
		size_t off;
	} names[] = {
		{"connect", offsetof(struct smtp_hop_opts, connect_ms)},
		{"helo", offsetof(struct smtp_hop_opts, helo_ms)},
		{"mail", offsetof(struct smtp_hop_opts, mail_ms)},
		{"rcpt", offsetof(struct smtp_hop_opts, rcpt_ms)},
		{"data-init", offsetof(struct smtp_hop_opts, data_init_ms)},
		{"data-xfer", offsetof(struct smtp_hop_opts, data_xfer_ms)},
		{"data-done", offsetof(struct smtp_hop_opts, data_done_ms)},
		{"quit", offsetof(struct smtp_hop_opts, quit_ms)},
	};
	const char *eq = strchr(spec, '=');
	for (size_t i = 0; eq && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == (size_t)(eq - spec) &&
		    strncmp(spec, names[i].name, (size_t)(eq - spec)) == 0) {
			*(unsigned *)((char *)&run.hop + names[i].off) = (unsigned)atoi(eq + 1);
			return true;
		}
	}
	return false;
}

static bool set_tls(const char *v)
{
	static const char *levels[] = {"none", "may", "encrypt", "verify", "secure"};
	for (size_t i = 0; i < 5; i++) {
		if (strcmp(v, levels[i]) == 0) {
			run.hop.tls = (enum smtp_tls_policy)i;
			return true;
		}
	}
	return false;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = path ? fopen(path, "rb") : stdin;
	if (f == NULL)
		return NULL;
	struct strbuf sb;
	strbuf_init(&sb);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(&sb, buf, n);
	if (path)
		fclose(f);
	*len = sb.len;
	return sb.data ? strbuf_steal(&sb) : xstrdup("");
}

static socklen_t make_addr(const char *ip, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		return sizeof(*in);
	}
	if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return sizeof(*in6);
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: smtp_send_check [options] HOST-IP PORT (see the source)\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *cafile = NULL, *capath = NULL, *file = NULL, *source = NULL;
	char *auth = NULL;
	run.msg.sender = "";
	run.hop.helo_name = "client.example.org";
	const char *notify = NULL, *orcpt = NULL;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;
		if (strcmp(a, "--implicit-tls") == 0)
			run.hop.implicit_tls = true, takes = false;
		else if (strcmp(a, "--plaintext-auth-ok") == 0)
			run.hop.sasl_plaintext_ok = true, takes = false;
		else if (strcmp(a, "--8bit") == 0)
			run.msg.eightbit = true, takes = false;
		else if (strcmp(a, "--twice") == 0)
			run.twice = true, takes = false;
		else if (v == NULL)
			return usage();
		else if (strcmp(a, "--tls") == 0) {
			if (!set_tls(v))
				return usage();
		} else if (strcmp(a, "--cafile") == 0)
			cafile = v;
		else if (strcmp(a, "--capath") == 0)
			capath = v;
		else if (strcmp(a, "--servername") == 0)
			run.hop.server_name = v;
		else if (strcmp(a, "--match") == 0)
			run.hop.tls_match_domain = v;
		else if (strcmp(a, "--helo") == 0)
			run.hop.helo_name = v;
		else if (strcmp(a, "--auth") == 0)
			auth = xstrdup(v);
		else if (strcmp(a, "--source") == 0)
			source = v;
		else if (strcmp(a, "--from") == 0)
			run.msg.sender = v;
		else if (strcmp(a, "--to") == 0) {
			if (run.msg.n_rcpts == MAX_RCPTS)
				return usage();
			run.rcpts[run.msg.n_rcpts++].addr = v;
		} else if (strcmp(a, "--notify") == 0)
			notify = v;
		else if (strcmp(a, "--orcpt") == 0)
			orcpt = v;
		else if (strcmp(a, "--ret") == 0)
			run.msg.ret = v;
		else if (strcmp(a, "--envid") == 0)
			run.msg.envid = v;
		else if (strcmp(a, "--file") == 0)
			file = v;
		else if (strcmp(a, "--timeout") == 0) {
			if (!set_timeout(v))
				return usage();
		} else
			return usage();
		i += takes;
	}
	if (argc - i != 2)
		return usage();
	struct sockaddr_storage addr, src;
	run.hop.addrlen = make_addr(argv[i], atoi(argv[i + 1]), &addr);
	run.hop.addr = (struct sockaddr *)&addr;
	if (run.hop.addrlen == 0)
		return usage();
	if (source != NULL) {
		run.hop.sourcelen = make_addr(source, 0, &src);
		run.hop.source = (struct sockaddr *)&src;
		if (run.hop.sourcelen == 0)
			return usage();
	}
	if (run.hop.server_name == NULL)
		run.hop.server_name = argv[i];
	if (auth != NULL) {
		char *colon = strchr(auth, ':');
		if (colon == NULL)
			return usage();
		*colon = '\0';
		run.hop.sasl_user = auth;
		run.hop.sasl_pass = colon + 1;
	}
	for (size_t k = 0; k < run.msg.n_rcpts; k++) {
		run.rcpts[k].notify = notify;
		run.rcpts[k].orcpt = orcpt;
	}
	run.msg.rcpts = run.rcpts;
	char *data = read_all(file, &run.msg.len);
	if (data == NULL) {
		fprintf(stderr, "smtp_send_check: cannot read %s\n", file);
		return 2;
	}
	run.msg.data = data;
	signal(SIGPIPE, SIG_IGN);
	char err[256];
	SSL_CTX *ctx = NULL;
	if (run.hop.tls != STLS_NONE || run.hop.implicit_tls) {
		ctx = smtpc_tls_verify_ctx(cafile, capath, err, sizeof(err));
		if (ctx == NULL) {
			fprintf(stderr, "smtp_send_check: %s\n", err);
			return 2;
		}
	}
	run.hop.tls_ctx = ctx;
	strbuf_init(&run.out);
	struct event_base *base = event_base_new();
	smtp_out_open(base, &run.hop, on_ready, NULL);
	event_base_dispatch(base);
	printf("%s\n", run.out.data ? run.out.data : "{}");
	strbuf_free(&run.out);
	event_base_free(base);
	SSL_CTX_free(ctx);
	free(data);
	free(auth);
	return 0;
}
