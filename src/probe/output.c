/*
 * output.c - what the operator reads: a table per target, or one JSON
 * object per target and line, and the advice that explains the verdict.
 *
 * Every string that came from the network (banner, replies) is escaped:
 * JSON strings with \uXXXX for control characters, the table with '?' for
 * anything that is not printable ASCII, so a server cannot paint a terminal.
 */
#include "probe/probe.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* probe_json_string - kept for callers of probe.h; the escaper is util/json.c. */
void probe_json_string(struct strbuf *sb, const char *s)
{
	json_string(sb, s);
}

static void kv(struct strbuf *sb, const char *key, const char *value, bool comma)
{
	strbuf_printf(sb, "%s\"%s\":", comma ? "," : "", key);
	json_string(sb, value ? value : "");
}

static void json_result(struct strbuf *sb, const struct probe_result *r)
{
	strbuf_puts(sb, "{");
	kv(sb, "id", r->test->id, false);
	kv(sb, "name", r->test->name, true);
	kv(sb, "source", r->test->source, true);
	kv(sb, "helo", r->helo, true);
	kv(sb, "mail_from", r->mail, true);
	kv(sb, "rcpt_to", r->rcpt, true);
	kv(sb, "verdict", probe_verdict_name(r->verdict), true);
	kv(sb, "note", r->note, true);
	if (r->token[0] && (r->data_accepted || r->smuggle_sent))
		kv(sb, "token", r->token, true);
	if (r->smuggle_sent) /* sent, whatever became of it: look for it yourself */
		kv(sb, "smuggled_token", r->smuggle_token, true);
	strbuf_puts(sb, ",\"transcript\":[");
	for (size_t i = 0; i < r->n_transcript; i++) {
		strbuf_printf(sb, "%s{\"%s\":", i ? "," : "", r->transcript[i].client ? "c" : "s");
		json_string(sb, r->transcript[i].text);
		strbuf_puts(sb, "}");
	}
	strbuf_puts(sb, "]}");
}

void probe_print_json(const struct probe_target *t)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_puts(&sb, "{");
	kv(&sb, "target", t->spec, false);
	kv(&sb, "host", t->host, true);
	strbuf_printf(&sb, ",\"port\":%d", t->port);
	kv(&sb, "address", t->addr_text, true);
	kv(&sb, "tls", t->tls ? t->tls : "none", true);
	kv(&sb, "banner", t->banner, true);
	kv(&sb, "domain", t->domain, true);
	kv(&sb, "verdict", probe_target_verdict_name(t->verdict), true);
	strbuf_printf(&sb, ",\"loopback_trusted\":%s", t->loopback_trusted ? "true" : "false");
	if (t->error[0])
		kv(&sb, "error", t->error, true);
	strbuf_puts(&sb, ",\"relayed\":[");
	bool first = true;
	for (size_t i = 0; i < t->n_results; i++) {
		enum probe_verdict v = t->results[i].verdict;
		if (v != V_RELAY_ACCEPTED && v != V_RELAY_CONFIRMED)
			continue;
		if (!first)
			strbuf_puts(&sb, ",");
		json_string(&sb, t->results[i].test->id);
		first = false;
	}
	strbuf_puts(&sb, "],\"advice\":[");
	first = true;
	const char *a = t->advice.data ? t->advice.data : "";
	while (*a) {
		const char *nl = strchr(a, '\n');
		size_t n = nl ? (size_t)(nl - a) : strlen(a);
		char *line = xstrndup(a, n);
		if (!first)
			strbuf_puts(&sb, ",");
		json_string(&sb, line);
		free(line);
		first = false;
		a += n + (nl != NULL);
	}
	strbuf_puts(&sb, "],\"tests\":[");
	for (size_t i = 0; i < t->n_results; i++) {
		if (i)
			strbuf_puts(&sb, ",");
		json_result(&sb, &t->results[i]);
	}
	strbuf_printf(&sb, "],\"elapsed_ms\":%llu}\n", (unsigned long long)t->elapsed_ms);
	fputs(sb.data, stdout);
	strbuf_free(&sb);
}

/* printable - a copy safe for a terminal, cut at the first line. */
static void printable(const char *s, char *out, size_t outlen, size_t max)
{
	size_t n = 0;
	for (; s[n] && s[n] != '\n' && n + 1 < outlen && n < max; n++) {
		unsigned char c = (unsigned char)s[n];
		out[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[n] = '\0';
}

/* last_reply - the last server line of a transcript (the deciding reply). */
static const char *last_reply(const struct probe_result *r)
{
	for (size_t i = r->n_transcript; i > 0; i--) {
		const struct probe_transcript *e = &r->transcript[i - 1];
		if (e->client || strncmp(e->text, "221", 3) == 0)
			continue;
		if (i >= 2 && r->transcript[i - 2].client && strcmp(r->transcript[i - 2].text, "RSET") == 0)
			continue;
		const char *last = strrchr(e->text, '\n');
		return last ? last + 1 : e->text;
	}
	return "";
}

static const char *verdict_blurb(enum probe_target_verdict v)
{
	switch (v) {
	case TV_OPEN: return "OPEN RELAY";
	case TV_VULNERABLE: return "VULNERABLE (a smuggled message was accepted)";
	case TV_SUSPICIOUS: return "SUSPICIOUS (only ambiguous forms accepted)";
	case TV_INCONCLUSIVE: return "INCONCLUSIVE";
	case TV_UNREACHABLE: return "UNREACHABLE";
	case TV_CLOSED: return "closed (no test relayed)";
	}
	return "?";
}

void probe_print_table(const struct probe_target *t, const struct probe_options *o)
{
	(void)o;
	char banner[120], buf[100], rcpt[48];
	printable(t->banner, banner, sizeof(banner), 100);
	printf("%s port %d (%s, tls %s)\n", t->host, t->port, t->addr_text[0] ? t->addr_text : "?",
	       t->tls ? t->tls : "none");
	if (banner[0])
		printf("  banner: %s\n", banner);
	if (t->domain[0])
		printf("  TARGET_DOMAIN: %s\n", t->domain);
	if (t->error[0]) {
		printable(t->error, buf, sizeof(buf), 96);
		printf("  error: %s\n", buf);
	}
	if (t->n_results > 0 && t->reachable)
		printf("  %-19s %-19s %-44s %s\n", "TEST", "VERDICT", "RCPT TO", "REPLY");
	for (size_t i = 0; i < t->n_results && t->reachable; i++) {
		const struct probe_result *r = &t->results[i];
		printable(r->rcpt, rcpt, sizeof(rcpt), 42);
		printable(last_reply(r), buf, sizeof(buf), 60);
		if (r->verdict == V_SKIPPED)
			printable(r->note, buf, sizeof(buf), 60);
		printf("  %-19s %-19s <%s>%*s %s\n", r->test->id, probe_verdict_name(r->verdict), rcpt,
		       (int)(42 - strlen(rcpt)), "", buf);
	}
	printf("  verdict: %s  (%zu tests, %.1f s)\n", verdict_blurb(t->verdict), t->n_results,
	       (double)t->elapsed_ms / 1000.0);
	const char *a = t->advice.data ? t->advice.data : "";
	while (*a) {
		const char *nl = strchr(a, '\n');
		size_t n = nl ? (size_t)(nl - a) : strlen(a);
		printf("  - %.*s\n", (int)n, a);
		a += n + (nl != NULL);
	}
	printf("\n");
}

/* have_advice - was this fix already given? */
static bool have_advice(const struct strbuf *sb, const char *fix)
{
	return sb->data != NULL && strstr(sb->data, fix) != NULL;
}

/* plain_result - the plain test's result (outside sender, outside recipient), or NULL. */
static const struct probe_result *plain_result(const struct probe_target *t)
{
	const struct probe_test *plain = probe_find_test("plain");
	for (size_t i = 0; i < t->n_results; i++)
		if (t->results[i].test == plain)
			return &t->results[i];
	return NULL;
}

/* relayed - a verdict that counts as a relay (accepted, or its token arrived). */
static bool relayed(enum probe_verdict v)
{
	return v == V_RELAY_ACCEPTED || v == V_RELAY_CONFIRMED;
}

/* trust_advice - even the plain case relayed: that says whom the server trusts
 * more than how it can be tricked, so it comes first, with how to test as a
 * stranger. From loopback it is all but certain. */
static void trust_advice(struct strbuf *a, struct probe_target *t,
			 const struct probe_options *o, const struct probe_result *plain)
{
	t->loopback_trusted = probe_source_loopback(o->source, &t->addr);
	if (t->loopback_trusted) {
		strbuf_printf(a, "the probe connected from %s%s, and even the plain case relayed: "
			      "the server trusts this address (most likely mynetworks, which covers "
			      "127.0.0.0/8 by default in relayguard and Postfix), so this is what a "
			      "program on this host sees, not what a stranger on the internet sees; "
			      "to test as a stranger, probe from a host outside your networks, or "
			      "from an address of this host that mynetworks does not cover "
			      "(--source ADDR)\n", o->source ? o->source : "a loopback address",
			      o->source ? ", a loopback address" : "");
		return;
	}
	strbuf_printf(a, "even the plain case (MAIL FROM:<%s> RCPT TO:<%s>) relayed: either the "
		      "server relays for everyone, or it trusts this probe's address (mynetworks, "
		      "an access table); probe from an address it has no reason to trust "
		      "(--source ADDR outside mynetworks, or from outside your networks) to tell "
		      "which\n", plain->mail, plain->rcpt);
}

/* test_advice - each bad test's fix, once. While the plain case relays, the
 * other forms say nothing of their own (a trusted client may use them too):
 * one line instead of blaming routing or backscatter. */
static void test_advice(struct strbuf *a, const struct probe_target *t, bool plain_relays)
{
	size_t muddled = 0;
	for (size_t i = 0; i < t->n_results; i++) {
		const struct probe_result *r = &t->results[i];
		bool bad = relayed(r->verdict) || r->verdict == V_ACCEPTED_AMBIGUOUS ||
			   r->verdict == V_WARNING || r->verdict == V_SMUGGLING_ACCEPTED ||
			   r->verdict == V_AUTH_FAILED ||
			   (r->verdict == V_DENIED && r->test->kind == PK_AUTH_RELAY);
		if (plain_relays && (r->test->kind == PK_AMBIGUOUS || r->test->kind == PK_LOCAL)) {
			muddled += bad;
			continue;
		}
		if (plain_relays && r->test->kind == PK_RELAY)
			continue;
		if (bad && r->test->fix && !have_advice(a, r->test->fix))
			strbuf_printf(a, "%s\n", r->test->fix);
	}
	if (muddled)
		strbuf_printf(a, "%zu other test%s (routing in the local part, an unknown user) "
			      "accepted as well: while the plain case relays they prove nothing of "
			      "their own; judge them from an address the server does not trust\n",
			      muddled, muddled == 1 ? "" : "s");
}

void probe_build_advice(struct probe_target *t, const struct probe_options *o)
{
	struct strbuf ids;
	strbuf_init(&ids);
	size_t n_relayed = 0, ambiguous = 0, unsure = 0, temp = 0, smuggled = 0;
	for (size_t i = 0; i < t->n_results; i++) {
		const struct probe_result *r = &t->results[i];
		switch (r->verdict) {
		case V_RELAY_ACCEPTED:
		case V_RELAY_CONFIRMED:
			strbuf_printf(&ids, "%s%s", n_relayed++ ? ", " : "", r->test->id);
			break;
		case V_ACCEPTED_AMBIGUOUS: ambiguous++; break;
		case V_SMUGGLING_ACCEPTED: smuggled++; break;
		case V_DENIED_TEMPORARY: temp++; break;
		case V_INCONCLUSIVE:
		case V_ERROR:
		case V_TIMEOUT:
		case V_DEFERRED: unsure++; break;
		default: break;
		}
	}
	struct strbuf *a = &t->advice;
	const struct probe_result *plain = plain_result(t);
	bool plain_relays = plain != NULL && relayed(plain->verdict);
	if (plain_relays)
		trust_advice(a, t, o, plain);
	if (n_relayed)
		strbuf_printf(a, "relayed to %s in %zu test%s: %s\n", o->victim, n_relayed,
			      n_relayed == 1 ? "" : "s", ids.data);
	strbuf_free(&ids);
	/* when plain relaying works, the tricks add nothing but noise: one fix */
	if (plain_relays)
		strbuf_printf(a, "%s\n", plain->test->fix);
	test_advice(a, t, plain_relays);
	if (smuggled)
		strbuf_printf(a, "%zu smuggling test%s: a second message hidden in the first was "
			      "accepted\n", smuggled, smuggled == 1 ? "" : "s");
	if (ambiguous && !plain_relays)
		strbuf_printf(a, "%zu routed form%s at the server's own names %s accepted; they may "
			      "be delivered locally: rerun with --confirm-data --canary-dir DIR "
			      "(and --local-dir) to settle them\n",
			      ambiguous, ambiguous == 1 ? "" : "s", ambiguous == 1 ? "was" : "were");
	if (temp)
		strbuf_printf(a, "%zu test%s got a temporary refusal (X.7.1) twice: closed, but the "
			      "server defers instead of rejecting (Postfix: reject_unauth_destination "
			      "rather than defer_unauth_destination, soft_bounce = no)\n",
			      temp, temp == 1 ? "" : "s");
	if (unsure)
		strbuf_printf(a, "%zu test%s got no clear answer (see the transcripts with --json)\n",
			      unsure, unsure == 1 ? "" : "s");
	if (t->verdict == TV_CLOSED && !n_relayed)
		strbuf_puts(a, "no test relayed: the server refuses to relay for this client\n");
}
