/*
 * judge.c - the probe's decisions, as pure functions.
 *
 * DESCRIPTION
 *	A test's verdict depends only on the step where its transaction ended,
 *	the reply code there and its enhanced status code, never on reply text.
 *	A 4xx is retried once; if the retry gives the same 4xx with an X.7.1
 *	policy code the server is closed but defers instead of rejecting
 *	(denied-temporary); any other persistent 4xx leaves the test
 *	inconclusive. A target is open when any unambiguous test relayed,
 *	vulnerable when a smuggled message got through (and nothing relayed),
 *	suspicious when only ambiguous forms were accepted. A smuggling test is
 *	judged on how many replies its one payload drew (probe_judge_smuggle)
 *	and on where its two tokens arrived (probe_smuggle_arrival).
 */
#include "probe/probe.h"
#include "net/net.h"

#include <stdio.h>
#include <string.h>

const char *probe_verdict_name(enum probe_verdict v)
{
	static const char *const names[] = {
		[V_PENDING] = "pending",
		[V_RELAY_ACCEPTED] = "relay-accepted",
		[V_ACCEPTED_AMBIGUOUS] = "accepted-ambiguous",
		[V_DENIED] = "denied",
		[V_DENIED_TEMPORARY] = "denied-temporary",
		[V_DEFERRED] = "deferred",
		[V_INCONCLUSIVE] = "inconclusive",
		[V_ERROR] = "error",
		[V_TIMEOUT] = "timeout",
		[V_RELAY_CONFIRMED] = "relay-confirmed",
		[V_NOT_RELAYED] = "not-relayed",
		[V_DELIVERED_LOCALLY] = "delivered-locally",
		[V_WARNING] = "warning",
		[V_SKIPPED] = "skipped",
		[V_AUTH_OK] = "accepted-after-auth",
		[V_AUTH_FAILED] = "auth-failed",
		[V_SMUGGLING_ACCEPTED] = "smuggling-accepted",
		[V_NOT_SMUGGLED] = "not-smuggled",
	};
	return (size_t)v < RG_ARRAY_LEN(names) && names[v] ? names[v] : "?";
}

static const char *role_name(enum probe_role r)
{
	static const char *const names[] = {
		[ROLE_CONNECT] = "connect", [ROLE_GREETING] = "greeting", [ROLE_HELO] = "EHLO/HELO",
		[ROLE_SETUP] = "session set-up", [ROLE_AUTH] = "AUTH", [ROLE_MAIL] = "MAIL FROM",
		[ROLE_RCPT] = "RCPT TO",
	};
	return (size_t)r < RG_ARRAY_LEN(names) ? names[r] : "?";
}

/* policy_code - an X.7.1 enhanced code (delivery not authorised). */
static bool policy_code(const char *enhanced)
{
	size_t n = strlen(enhanced);
	return n >= 5 && strcmp(enhanced + 1, ".7.1") == 0;
}

static enum probe_verdict accepted(enum probe_kind kind, char *note, size_t notelen)
{
	switch (kind) {
	case PK_RELAY:
		return V_RELAY_ACCEPTED;
	case PK_AMBIGUOUS:
		snprintf(note, notelen, "accepted a routed form at one of the server's own names: "
					"it may deliver it locally or relay it");
		return V_ACCEPTED_AMBIGUOUS;
	case PK_LOCAL:
		snprintf(note, notelen, "an unknown user was accepted at RCPT: backscatter risk");
		return V_WARNING;
	case PK_AUTH_PLAIN:
		snprintf(note, notelen, "made-up credentials were accepted and relaying worked");
		return V_RELAY_ACCEPTED;
	case PK_AUTH_RELAY:
		return V_AUTH_OK;
	case PK_SMUGGLE: /* the payload was never sent (no --confirm-data, DATA refused) */
		snprintf(note, notelen, "the message could not be sent: smuggling not tested");
		return V_INCONCLUSIVE;
	}
	return V_ERROR;
}

static enum probe_verdict refused(enum probe_kind kind, const struct probe_outcome *o,
				  char *note, size_t notelen)
{
	if (kind == PK_AUTH_PLAIN && o->role == ROLE_AUTH) {
		if (o->code == 535 || o->code == 534) {
			snprintf(note, notelen, "credentials were checked on a connection without TLS");
			return V_WARNING;
		}
		snprintf(note, notelen, "AUTH refused without TLS");
		return V_DENIED;
	}
	if (kind == PK_AUTH_RELAY && o->role == ROLE_AUTH) {
		snprintf(note, notelen, "AUTH with the given credentials failed");
		return V_AUTH_FAILED;
	}
	if (kind == PK_SMUGGLE) { /* the carrier message to postmaster was refused */
		snprintf(note, notelen, "refused at %s: the message could not be sent, smuggling "
			 "not tested", role_name(o->role));
		return V_INCONCLUSIVE;
	}
	if (o->role != ROLE_RCPT)
		snprintf(note, notelen, "refused at %s", role_name(o->role));
	return V_DENIED;
}

bool probe_redo_with_own_helo(const struct probe_outcome *o, bool repeated_ehlo)
{
	return repeated_ehlo && o->role == ROLE_HELO && o->status == PS_REPLY &&
	       o->code / 100 != 2 && o->code != 421;
}

enum probe_verdict probe_judge(enum probe_kind kind, const struct probe_outcome *first,
			       const struct probe_outcome *retry, char *note, size_t notelen)
{
	const struct probe_outcome *o = retry ? retry : first;
	note[0] = '\0';
	if (o->status == PS_TIMEOUT) {
		snprintf(note, notelen, "no reply in time at %s", role_name(o->role));
		return V_TIMEOUT;
	}
	if (o->status != PS_REPLY) {
		snprintf(note, notelen, "connection %s at %s",
			 o->status == PS_CLOSED ? "closed" : "failed", role_name(o->role));
		return V_ERROR;
	}
	int cls = o->code / 100;
	if (cls == 3 || (cls == 2 && o->role != ROLE_RCPT)) {
		/* only a 2xx at RCPT accepts a recipient; a 3xx asks for more (AUTH's
		 * 334) and is nobody's acceptance: never relay-accepted */
		snprintf(note, notelen, "unexpected %dxx reply %d at %s", cls, o->code,
			 role_name(o->role));
		return V_INCONCLUSIVE;
	}
	if (cls == 2) {
		enum probe_verdict v = accepted(kind, note, notelen);
		if (retry != NULL) {
			size_t n = strlen(note);
			snprintf(note + n, notelen - n, "%saccepted on retry after %d (greylisting?)",
				 n ? "; " : "", first->code);
		}
		return v;
	}
	if (cls == 5)
		return refused(kind, o, note, notelen);
	if (cls != 4) {
		snprintf(note, notelen, "unexpected reply code %d", o->code);
		return V_INCONCLUSIVE;
	}
	if (retry == NULL)
		return V_DEFERRED;
	if (first->status == PS_REPLY && first->code == retry->code &&
	    policy_code(first->enhanced) && policy_code(retry->enhanced)) {
		snprintf(note, notelen, "the server defers (%d %s) instead of rejecting", retry->code,
			 retry->enhanced);
		return V_DENIED_TEMPORARY;
	}
	snprintf(note, notelen, "temporary failure %d%s%s at %s twice: no answer either way",
		 retry->code, retry->enhanced[0] ? " " : "", retry->enhanced, role_name(retry->role));
	return V_INCONCLUSIVE;
}

/* codes_text - "250 250 354 250" for a note. */
static void codes_text(const int *codes, size_t n, char *out, size_t outlen)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && used + 5 < outlen; i++)
		used += (size_t)snprintf(out + used, outlen - used, "%s%d", i ? " " : "", codes[i]);
}

enum probe_verdict probe_judge_smuggle(const int *codes, size_t n, enum probe_status end,
				       char *note, size_t notelen)
{
	char list[PROBE_SMUGGLE_REPLIES * 4 + 8];
	codes_text(codes, n, list, sizeof(list));
	if (n == 0) {
		snprintf(note, notelen, "no reply to the end of the message (%s)",
			 end == PS_TIMEOUT ? "timeout" : "connection closed");
		return end == PS_TIMEOUT ? V_TIMEOUT : V_ERROR;
	}
	if (n == 1 && codes[0] / 100 == 2) {
		snprintf(note, notelen, "one message (%d): the smuggled commands stayed in its body",
			 codes[0]);
		return V_NOT_SMUGGLED;
	}
	if (n == 1) {
		snprintf(note, notelen, "the message was refused (%d)", codes[0]);
		return V_DENIED;
	}
	/* more than one reply: the smuggled commands were read as commands */
	for (size_t i = 1; i < n; i++) {
		if (codes[i] != 354)
			continue;
		for (size_t k = i + 1; k < n; k++) {
			if (codes[k] / 100 == 2) {
				snprintf(note, notelen, "the message ended at the fake end-of-data and "
					 "the smuggled message was accepted (replies %s)", list);
				return V_SMUGGLING_ACCEPTED;
			}
		}
		break;
	}
	snprintf(note, notelen, "the message ended at the fake end-of-data (replies %s), but the "
		 "smuggled message was refused", list);
	return V_WARNING;
}

enum probe_arrival probe_smuggle_arrival(const char *buf, size_t len, const char *outer_token,
					 const char *smuggled_token)
{
	bool outer = probe_token_in(buf, len, outer_token);
	bool smuggled = probe_token_in(buf, len, smuggled_token);
	if (outer && smuggled)
		return ARR_WHOLE;
	return outer ? ARR_OUTER : smuggled ? ARR_SMUGGLED : ARR_NONE;
}

void probe_eod_name(const char *eod, size_t len, char *out, size_t outlen)
{
	struct strbuf sb;
	strbuf_init(&sb);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)eod[i];
		if (c == '\r')
			strbuf_puts(&sb, "<CR>");
		else if (c == '\n')
			strbuf_puts(&sb, "<LF>");
		else if (c == '\0')
			strbuf_puts(&sb, "<NUL>");
		else if (c < 0x20 || c >= 0x7f)
			strbuf_printf(&sb, "\\x%02x", c);
		else
			strbuf_append(&sb, (const char *)&eod[i], 1);
	}
	rg_strlcpy(out, sb.data ? sb.data : "", outlen);
	strbuf_free(&sb);
}

const char *probe_target_verdict_name(enum probe_target_verdict v)
{
	switch (v) {
	case TV_VULNERABLE: return "vulnerable";
	case TV_CLOSED: return "closed";
	case TV_OPEN: return "open";
	case TV_SUSPICIOUS: return "suspicious";
	case TV_INCONCLUSIVE: return "inconclusive";
	case TV_UNREACHABLE: return "unreachable";
	}
	return "?";
}

enum probe_target_verdict probe_target_verdict(const enum probe_verdict *v, size_t n,
					       bool reachable)
{
	if (!reachable)
		return TV_UNREACHABLE;
	bool ambiguous = false, unsure = false, smuggled = false;
	for (size_t i = 0; i < n; i++) {
		switch (v[i]) {
		case V_RELAY_ACCEPTED:
		case V_RELAY_CONFIRMED:
			return TV_OPEN;
		case V_SMUGGLING_ACCEPTED:
			smuggled = true;
			break;
		case V_ACCEPTED_AMBIGUOUS:
			ambiguous = true;
			break;
		case V_PENDING:
		case V_DEFERRED:
		case V_INCONCLUSIVE:
		case V_ERROR:
		case V_TIMEOUT:
			unsure = true;
			break;
		default:
			break;
		}
	}
	if (smuggled)
		return TV_VULNERABLE;
	return ambiguous ? TV_SUSPICIOUS : unsure ? TV_INCONCLUSIVE : TV_CLOSED;
}

int probe_exit_code(enum probe_target_verdict v)
{
	switch (v) {
	case TV_OPEN: return 1;
	case TV_VULNERABLE: return 4;
	case TV_SUSPICIOUS: return 3;
	case TV_INCONCLUSIVE:
	case TV_UNREACHABLE: return 2;
	case TV_CLOSED: return 0;
	}
	return 2;
}

bool probe_source_loopback(const char *source, const struct sockaddr_storage *target)
{
	struct rg_ip ip;
	if (source != NULL)
		return ip_parse(source, &ip) && ip_is_loopback(&ip);
	return ip_from_sockaddr((const struct sockaddr *)target, &ip) && ip_is_loopback(&ip);
}

static int exit_rank(int code)
{
	return code == 1 ? 4 : code == 4 ? 3 : code == 3 ? 2 : code == 2 ? 1 : 0;
}

int probe_worse_exit(int a, int b)
{
	return exit_rank(a) >= exit_rank(b) ? a : b;
}

static bool parse_port(const char *s, int *port)
{
	uint64_t v;
	if (!rg_parse_u64(s, &v) || v == 0 || v > 65535)
		return false;
	*port = (int)v;
	return true;
}

bool probe_parse_target(const char *s, int default_port, char *host, size_t hostlen, int *port,
			char *err, size_t errlen)
{
	*port = default_port;
	const char *h = s;
	size_t hn;
	const char *rest;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL) {
			snprintf(err, errlen, "\"%s\": missing ']'", s);
			return false;
		}
		h = s + 1;
		hn = (size_t)(close - h);
		rest = close + 1;
		if (*rest != '\0' && *rest != ':') {
			snprintf(err, errlen, "\"%s\": expected ':port' after ']'", s);
			return false;
		}
	} else {
		const char *colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			hn = strlen(s); /* a bare IPv6 address: no port */
			rest = s + hn;
		} else {
			hn = colon ? (size_t)(colon - s) : strlen(s);
			rest = s + hn;
		}
	}
	if (hn == 0 || hn >= hostlen) {
		snprintf(err, errlen, "\"%s\": %s host", s, hn ? "too long a" : "no");
		return false;
	}
	for (size_t i = 0; i < hn; i++) {
		char c = h[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '-' || c == ':' || c == '_';
		if (!ok) {
			snprintf(err, errlen, "\"%s\": invalid character in the host", s);
			return false;
		}
	}
	memcpy(host, h, hn);
	host[hn] = '\0';
	struct rg_ip ip;
	if (memchr(h, ':', hn) != NULL && !ip_parse(host, &ip)) {
		/* a name with ':' would go to DNS: it is an IPv6 address or a mistake */
		snprintf(err, errlen, "\"%s\": not an IPv6 address (write [v6addr]:port)", s);
		return false;
	}
	if (*rest == ':' && !parse_port(rest + 1, port)) {
		snprintf(err, errlen, "\"%s\": the port must be 1..65535", s);
		return false;
	}
	return true;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-';
}

void probe_reply_name(const char *reply_text, char *out, size_t outlen)
{
	out[0] = '\0';
	if (strlen(reply_text) < 5)
		return;
	const char *p = reply_text + 4;
	size_t n = 0;
	while (is_name_char(p[n]))
		n++;
	bool has_letter = false, has_dot = false;
	for (size_t i = 0; i < n; i++) {
		has_letter |= (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z');
		has_dot |= p[i] == '.';
	}
	/* a name ends at a blank, the end of the line or the end of the text */
	if (n == 0 || n >= outlen || !has_letter || !has_dot || p[0] == '.' || p[0] == '-' ||
	    (p[n] != '\0' && p[n] != ' ' && p[n] != '\n' && p[n] != '\r'))
		return;
	memcpy(out, p, n);
	out[n] = '\0';
	while (n > 0 && out[n - 1] == '.')
		out[--n] = '\0';
	rg_str_lower(out);
}

static bool token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

bool probe_token_in(const char *buf, size_t len, const char *token)
{
	size_t n = strlen(token);
	const char *p = buf, *end = buf + len;
	while (n > 0 && (size_t)(end - p) >= n) {
		const char *hit = memmem(p, (size_t)(end - p), token, n);
		if (hit == NULL)
			return false;
		bool starts = hit == buf || !token_char(hit[-1]);
		bool ends = hit + n == end || !token_char(hit[n]);
		if (starts && ends)
			return true;
		p = hit + 1;
	}
	return false;
}

size_t probe_domain_candidates(const char *name, char out[][PROBE_NAME_MAX], size_t max)
{
	size_t n = 0;
	if (name[0] == '\0' || max == 0 || strlen(name) >= PROBE_NAME_MAX)
		return 0;
	rg_strlcpy(out[n++], name, PROBE_NAME_MAX);
	const char *dot = strchr(name, '.');
	if (n < max && dot != NULL && strchr(dot + 1, '.') != NULL)
		rg_strlcpy(out[n++], dot + 1, PROBE_NAME_MAX);
	return n;
}
