/*
 * play.c - a scripted SMTP session on smtpc, told line by line.
 *
 * Owns: see play.h. The loop is the demo's own, run until the session ends.
 * Must not: block while the loop runs (only smtpc and timers).
 */
#include "demo/play.h"
#include "client/smtpc.h"
#include "demo/report.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#define PLAY_TIMEOUT_MS 15000

struct player {
	const struct play_script *s;
	struct report *rep;
	struct play_result *res;
	struct event_base *base;
	struct smtpc *c;
	SSL_CTX *tls;
	size_t next;  /* the command to send next */
	bool quitting, ok;
};

static void on_reply(struct smtpc *c, const struct smtpc_reply *r, void *arg);

/* tell_reply - every line of a reply, as the server sent it. */
static void tell_reply(struct player *p, const struct smtpc_reply *r)
{
	if (r->status != SMTPC_REPLY) {
		rep_add(p->rep, REP_RECV, p->s->who, "(%s)", r->error ? r->error : "no reply");
		return;
	}
	char *copy = xstrdup(r->text), *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		rep_add(p->rep, REP_RECV, p->s->who, "%s", l);
	free(copy);
	const char *nl = strchr(r->text, '\n');
	size_t n = nl ? (size_t)(nl - r->text) : strlen(r->text);
	snprintf(p->res->last_reply, sizeof(p->res->last_reply), "%.*s", (int)n, r->text);
}

/* finish - the session is over: stop the loop (c is freed by the caller). */
static void finish(struct player *p, bool ok)
{
	p->ok = ok;
	event_base_loopbreak(p->base);
}

/* send_cmd - tell and send the next command, or QUIT after the last. */
static void send_cmd(struct player *p)
{
	if (p->next >= p->s->n || p->quitting) {
		p->quitting = true;
		rep_add(p->rep, REP_SEND, NULL, "QUIT");
		smtpc_command(p->c, "QUIT", on_reply, p);
		return;
	}
	const struct play_cmd *cmd = &p->s->cmds[p->next];
	rep_add(p->rep, REP_SEND, NULL, "%s", cmd->show ? cmd->show : cmd->line);
	smtpc_command(p->c, cmd->line, on_reply, p);
}

/* send_message - after 354: tell each line, send the text and the final dot. */
static void send_message(struct player *p)
{
	const char *m = p->s->message;
	for (const char *l = m; *l != '\0';) {
		const char *e = strstr(l, "\r\n");
		size_t n = e ? (size_t)(e - l) : strlen(l);
		rep_add(p->rep, REP_SEND, NULL, "%.*s", (int)n, l);
		l += n + (e ? 2 : 0);
	}
	rep_add(p->rep, REP_SEND, NULL, ".");
	smtpc_send_raw(p->c, m, strlen(m));
	smtpc_send_raw(p->c, ".\r\n", 3);
	smtpc_expect_after_send(p->c, PLAY_TIMEOUT_MS, PLAY_TIMEOUT_MS, on_reply, p);
}

/* after_reply - what the reply to the current command leads to. */
static void after_reply(struct player *p, const struct smtpc_reply *r)
{
	const char *line = p->s->cmds[p->next].line;
	bool data = strcmp(line, "DATA") == 0;
	if (p->res->code[p->next] == 0) {
		p->res->code[p->next] = r->code;
		rg_strlcpy(p->res->reply[p->next], p->res->last_reply, sizeof(p->res->reply[0]));
		if (data && r->code == 354) {
			send_message(p);
			return;
		}
	} else if (data) { /* the reply to the end of the message */
		p->res->data_code = r->code;
		rg_strlcpy(p->res->data_reply, p->res->last_reply, sizeof(p->res->data_reply));
	}
	if (strcmp(line, "STARTTLS") == 0 && r->code == 220) {
		char err[256];
		if (!smtpc_starttls(p->c, p->tls, NULL, err, sizeof(err))) {
			rep_add(p->rep, REP_SAY, NULL, "TLS failed: %s", err);
			p->quitting = true;
		}
	}
	if (r->code >= 400)
		p->quitting = true; /* refused: the attacker gives up on this one */
	p->next++;
	send_cmd(p);
}

static void on_reply(struct smtpc *c, const struct smtpc_reply *r, void *arg)
{
	struct player *p = arg;
	(void)c;
	tell_reply(p, r);
	if (r->status != SMTPC_REPLY) {
		finish(p, p->quitting);
		return;
	}
	if (p->quitting && p->next >= p->s->n) {
		finish(p, true);
		return;
	}
	if (p->next == 0 && p->res->greeting == 0) {
		p->res->greeting = r->code;
		if (r->code != 220)
			p->quitting = true;
		send_cmd(p);
		return;
	}
	if (p->quitting) { /* the reply to QUIT after a refusal */
		finish(p, true);
		return;
	}
	after_reply(p, r);
}

/* addr4 - an IPv4 sockaddr. */
static struct sockaddr_in addr4(const char *ip, unsigned port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ip, &sa.sin_addr);
	return sa;
}

bool play_run(const struct play_script *s, struct report *rep, struct play_result *res)
{
	memset(res, 0, sizeof(*res));
	struct player p = {.s = s, .rep = rep, .res = res};
	struct sockaddr_in to = addr4(s->server_ip, s->port), from = addr4(s->source_ip, 0);
	struct smtpc_opts o = {
		.addr = (struct sockaddr *)&to, .addrlen = sizeof(to),
		.source = (struct sockaddr *)&from, .sourcelen = sizeof(from),
		.timeout_ms = PLAY_TIMEOUT_MS,
	};
	char err[256] = "";
	p.base = event_base_new();
	p.tls = smtpc_tls_probe_ctx(); /* the demo's servers have self-signed certificates */
	rep_add(rep, REP_SAY, NULL, "connect from %s to %s:%u (%s)", s->source_ip, s->server_ip,
		s->port, s->who);
	if (p.base != NULL && p.tls != NULL && s->n <= PLAY_MAX)
		p.c = smtpc_connect(p.base, &o, on_reply, &p, err, sizeof(err));
	if (p.c != NULL)
		event_base_dispatch(p.base);
	else
		rep_add(rep, REP_SAY, NULL, "cannot connect: %s", err[0] ? err : "no memory");
	if (p.c != NULL)
		smtpc_free(p.c);
	SSL_CTX_free(p.tls);
	if (p.base != NULL)
		event_base_free(p.base);
	return p.ok;
}
