/*
 * ehlo.c - greeting, EHLO/HELO, STARTTLS and capabilities (see ehlo.h).
 *
 * DESCRIPTION
 *	Stages: SH_GREETING -> SH_EHLO (HELO on refusal, per the fallback
 *	option) -> [SH_STARTTLS -> SH_TLS_EHLO] -> SH_DONE. After STARTTLS the
 *	same verb is sent again (RFC 3207 4.2: the server forgets what it knew);
 *	its capabilities replace the first ones. Each reply is checked once,
 *	in the callback of the step that awaited it.
 */
#include "client/ehlo.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

/* kw_is - the line's keyword is word (case-insensitive), followed by end, ' ' or '='. */
static bool kw_is(const char *kw, const char *word)
{
	size_t n = strlen(word);
	return rg_strncasecmp(kw, word, n) == 0 && (kw[n] == '\0' || kw[n] == ' ' || kw[n] == '=');
}

/* parse_size - "SIZE 10240000": the limit; junk or overflow means none stated. */
static uint64_t parse_size(const char *kw)
{
	const char *p = kw + 4;
	while (*p == ' ')
		p++;
	uint64_t v = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			return 0;
		v = v * 10 + d;
	}
	return *p == '\0' || *p == ' ' ? v : 0;
}

/* parse_auth - "AUTH PLAIN LOGIN" (or the old "AUTH=PLAIN LOGIN"). */
static void parse_auth(const char *kw, struct smtp_caps *caps)
{
	caps->auth = true;
	for (const char *p = kw + 4; *p;) {
		p += strspn(p, " =");
		size_t n = strcspn(p, " =");
		if (n == 5 && rg_strncasecmp(p, "PLAIN", 5) == 0)
			caps->auth_plain = true;
		if (n == 5 && rg_strncasecmp(p, "LOGIN", 5) == 0)
			caps->auth_login = true;
		p += n;
	}
}

static void parse_keyword(const char *kw, struct smtp_caps *caps)
{
	if (kw_is(kw, "PIPELINING"))
		caps->pipelining = true;
	else if (kw_is(kw, "STARTTLS"))
		caps->starttls = true;
	else if (kw_is(kw, "8BITMIME"))
		caps->eightbitmime = true;
	else if (kw_is(kw, "DSN"))
		caps->dsn = true;
	else if (kw_is(kw, "SMTPUTF8"))
		caps->smtputf8 = true;
	else if (kw_is(kw, "XCLIENT"))
		caps->xclient = true;
	else if (kw_is(kw, "AUTH"))
		parse_auth(kw, caps);
	else if (kw_is(kw, "SIZE")) {
		caps->has_size = true;
		caps->size = parse_size(kw);
	}
}

/* smtp_caps_parse - one keyword per line after the first (which names the server). */
void smtp_caps_parse(const char *text, struct smtp_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	const char *p = strchr(text, '\n');
	while (p != NULL) {
		p++;
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char line[512];
		if (len > 4 && len < sizeof(line)) {
			memcpy(line, p, len);
			line[len] = '\0';
			parse_keyword(line + 4, caps);
		}
		p = end;
	}
}

/* ---- the opening ---- */

static void on_ehlo(struct smtpc *c, const struct smtpc_reply *r, void *arg);

static void trace(struct smtp_hello *h, const char *sent, const struct smtpc_reply *r)
{
	if (h->o.trace != NULL)
		h->o.trace(h->arg, sent, r);
}

/* finish - hand the outcome to the caller (which may free the connection). */
static void finish(struct smtp_hello *h, enum smtp_hello_stage stage, bool ok,
		   const struct smtpc_reply *r)
{
	h->stage = stage;
	h->ok = ok;
	h->fn(h, r, h->arg);
}

static void local_failure(struct smtp_hello *h, enum smtp_hello_stage stage, const char *why)
{
	struct smtpc_reply r = {.status = SMTPC_ERROR, .text = "", .error = why};
	finish(h, stage, false, &r);
}

static void command(struct smtp_hello *h, const char *line, smtpc_fn fn)
{
	trace(h, line, NULL);
	smtpc_command_timeout(h->c, line, h->o.timeout_ms, fn, h);
}

static void send_hello(struct smtp_hello *h)
{
	char line[300];
	snprintf(line, sizeof(line), "%s %s", h->o.lmtp ? "LHLO" : h->helo ? "HELO" : "EHLO",
		 h->o.helo_name);
	command(h, line, on_ehlo);
}

void smtp_hello_init(struct smtp_hello *h, const struct smtp_hello_opts *o, smtp_hello_fn fn,
		     void *arg)
{
	memset(h, 0, sizeof(*h));
	h->o = *o;
	h->fn = fn;
	h->arg = arg;
}

void smtp_hello_greeting(struct smtpc *c, const struct smtpc_reply *r, void *arg)
{
	struct smtp_hello *h = arg;
	h->c = c;
	trace(h, NULL, r);
	rg_strlcpy(h->greeting, r->text, sizeof(h->greeting));
	if (r->status != SMTPC_REPLY || r->code / 100 != 2) {
		finish(h, SH_GREETING, false, r);
		return;
	}
	if (h->o.pause_after_greeting) {
		finish(h, SH_GREETING, true, r);
		return;
	}
	smtp_hello_continue(h);
}

void smtp_hello_continue(struct smtp_hello *h)
{
	h->stage = SH_EHLO;
	send_hello(h);
}

static void on_starttls(struct smtpc *c, const struct smtpc_reply *r, void *arg)
{
	struct smtp_hello *h = arg;
	trace(h, NULL, r);
	if (r->status == SMTPC_REPLY && r->code == 220) {
		char err[160];
		if (!smtpc_starttls(c, h->o.tls_ctx, h->o.sni, err, sizeof(err))) {
			local_failure(h, SH_STARTTLS, err);
			return;
		}
		h->tls = true;
		h->stage = SH_TLS_EHLO;
		send_hello(h); /* the handshake runs with it: a failure is its reply */
		return;
	}
	if (r->status == SMTPC_REPLY && r->code != 421 && h->o.starttls == SH_TLS_IF_OFFERED &&
	    h->o.starttls_refusal_ok) {
		h->starttls_refused = true;
		finish(h, SH_DONE, true, r);
		return;
	}
	finish(h, SH_STARTTLS, false, r);
}

/* fallback - is HELO worth a try after this refusal of EHLO? */
static bool fallback(const struct smtp_hello *h, const struct smtpc_reply *r)
{
	if (r->status != SMTPC_REPLY || r->code == 421 || h->helo || h->stage != SH_EHLO ||
	    h->o.lmtp)
		return false;
	return h->o.fallback == SH_FALLBACK_ANY ||
	       (h->o.fallback == SH_FALLBACK_5XX && r->code / 100 == 5);
}

/* after_ehlo - the first EHLO/HELO was accepted: STARTTLS, or done. */
static void after_ehlo(struct smtp_hello *h, const struct smtpc_reply *r)
{
	rg_strlcpy(h->first_ehlo, r->text, sizeof(h->first_ehlo));
	h->caps_first = h->caps;
	if (h->o.starttls == SH_TLS_NO) {
		finish(h, SH_DONE, true, r);
		return;
	}
	if (h->caps.starttls) {
		h->stage = SH_STARTTLS;
		command(h, "STARTTLS", on_starttls);
		return;
	}
	if (h->o.starttls == SH_TLS_REQUIRED) {
		local_failure(h, SH_STARTTLS, h->helo ? "TLS is required, but the server does "
						       "not speak ESMTP (HELO only)"
						     : "TLS is required, but was not offered");
		return;
	}
	finish(h, SH_DONE, true, r);
}

static void on_ehlo(struct smtpc *c, const struct smtpc_reply *r, void *arg)
{
	(void)c;
	struct smtp_hello *h = arg;
	trace(h, NULL, r);
	if (r->status != SMTPC_REPLY || r->code / 100 != 2) {
		if (fallback(h, r)) {
			h->helo = true; /* an old server: HELO, no extensions */
			send_hello(h);
			return;
		}
		finish(h, h->stage, false, r);
		return;
	}
	if (h->helo)
		memset(&h->caps, 0, sizeof(h->caps));
	else
		smtp_caps_parse(r->text, &h->caps);
	if (h->stage == SH_TLS_EHLO) {
		finish(h, SH_DONE, true, r);
		return;
	}
	after_ehlo(h, r);
}
