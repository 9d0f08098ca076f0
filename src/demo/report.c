/*
 * report.c - the demo's story: terminal lines as they happen, HTML at the end.
 *
 * Owns: the told lines and how they look (see report.h).
 * Must not: run anything, or put anything unescaped into the page.
 */
#include "demo/report.h"
#include "demo/demo.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Terminal prefixes and HTML classes, one row per kind. */
static const struct {
	const char *prefix, *css;
} kinds[] = {
	[REP_STEP] = {"", "step"},      [REP_SAY] = {"  ", "say"},
	[REP_SEND] = {"  C: ", "send"}, [REP_RECV] = {"  S: ", "recv"},
	[REP_LOG] = {"  | ", "log"},    [REP_HEADER] = {"  > ", "hdr"},
	[REP_VERDICT] = {"  = ", "verdict"}, [REP_OK] = {"  [ok] ", "ok"},
	[REP_FAIL] = {"  [FAILED] ", "fail"},
};

/* rep_init - an empty story. */
void rep_init(struct report *r)
{
	memset(r, 0, sizeof(*r));
}

/* rep_free - every kept line. */
void rep_free(struct report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->items[i].who);
		free(r->items[i].text);
	}
	free(r->items);
	memset(r, 0, sizeof(*r));
}

/* print_item - one line on the terminal, flushed: a person is watching. */
static void print_item(const struct rep_item *it)
{
	if (it->kind == REP_STEP && it->step == 0)
		printf("\n== Set-up: %s\n", it->text);
	else if (it->kind == REP_STEP)
		printf("\n== Step %d: %s\n", it->step, it->text);
	else if (it->who != NULL && (it->kind == REP_LOG || it->kind == REP_RECV))
		printf("%s%s: %s\n", kinds[it->kind].prefix, it->who, it->text);
	else
		printf("%s%s\n", kinds[it->kind].prefix, it->text);
	fflush(stdout);
}

/* keep - append a line (taking text), print it unless quiet. */
static void keep(struct report *r, enum rep_kind k, const char *who, char *text)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->items = xrealloc(r->items, r->cap * sizeof(*r->items));
	}
	struct rep_item *it = &r->items[r->n++];
	it->kind = k;
	it->step = r->step;
	it->who = who ? xstrdup(who) : NULL;
	it->text = text;
	if (!r->quiet)
		print_item(it);
}

void rep_step(struct report *r, int n, const char *title)
{
	r->step = n;
	keep(r, REP_STEP, NULL, xstrdup(title));
}

void rep_add(struct report *r, enum rep_kind k, const char *who, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		text = xstrdup("(out of memory)");
	va_end(ap);
	keep(r, k, who, text);
}

bool rep_check(struct report *r, bool ok, const char *what)
{
	keep(r, ok ? REP_OK : REP_FAIL, NULL, xstrdup(what));
	if (!ok) {
		r->failed++;
		if (r->step >= 0 && r->step < 32)
			r->failed_steps |= 1u << r->step;
	}
	return ok;
}

void html_escape_append(struct strbuf *sb, const char *text)
{
	for (const char *p = text; *p != '\0'; p++) {
		switch (*p) {
		case '&': strbuf_puts(sb, "&amp;"); break;
		case '<': strbuf_puts(sb, "&lt;"); break;
		case '>': strbuf_puts(sb, "&gt;"); break;
		case '"': strbuf_puts(sb, "&quot;"); break;
		case '\'': strbuf_puts(sb, "&#39;"); break;
		default: strbuf_append(sb, p, 1);
		}
	}
}

static const char page_head[] =
	"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<title>relayguard demo: an open relay, abused and fixed</title>\n<style>\n"
	"body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}\n"
	"section{border:1px solid #ccc;border-radius:6px;padding:0 1em 1em;margin:1em 0}\n"
	"pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;margin:.2em 0}\n"
	"pre.send{color:#a00}pre.recv{color:#05a}pre.log{color:#555}\n"
	"pre.hdr{background:#fff8e0}pre.verdict{background:#eef}\n"
	"p.ok{color:#070;font-weight:bold}p.fail{color:#c00;font-weight:bold}\n"
	"</style></head><body>\n"
	"<h1>relayguard demo: an open relay, abused and fixed</h1>\n"
	"<p>Played on loopback: a DNS zone (dnsmasq), a misconfigured relay and the "
	"victim's mail server, all <code>relayguard serve</code>.</p>\n";

/* The hops, as an inline SVG: no external resources. */
static const char diagram[] =
	"<svg id=\"hops\" role=\"img\" aria-label=\"attacker to relay to victim MX\" "
	"width=\"720\" height=\"120\" viewBox=\"0 0 720 120\" font-size=\"13\">\n"
	"<defs><marker id=\"arr\" markerWidth=\"10\" markerHeight=\"10\" refX=\"9\" refY=\"3\" "
	"orient=\"auto\"><path d=\"M0,0 L9,3 L0,6 z\" fill=\"#333\"/></marker></defs>\n"
	"<rect x=\"5\" y=\"30\" width=\"160\" height=\"60\" rx=\"8\" fill=\"#fdd\" stroke=\"#a00\"/>\n"
	"<text x=\"85\" y=\"55\" text-anchor=\"middle\">attacker</text>\n"
	"<text x=\"85\" y=\"75\" text-anchor=\"middle\">" DEMO_ATTACKER_IP "</text>\n"
	"<rect x=\"280\" y=\"30\" width=\"160\" height=\"60\" rx=\"8\" fill=\"#ffd\" stroke=\"#a80\"/>\n"
	"<text x=\"360\" y=\"55\" text-anchor=\"middle\">relay.example</text>\n"
	"<text x=\"360\" y=\"75\" text-anchor=\"middle\">" DEMO_RELAY_IP " (the relay)</text>\n"
	"<rect x=\"555\" y=\"30\" width=\"160\" height=\"60\" rx=\"8\" fill=\"#dfd\" stroke=\"#070\"/>\n"
	"<text x=\"635\" y=\"55\" text-anchor=\"middle\">mx.gmail.example</text>\n"
	"<text x=\"635\" y=\"75\" text-anchor=\"middle\">" DEMO_MX_IP " (victim MX)</text>\n"
	"<line x1=\"165\" y1=\"60\" x2=\"278\" y2=\"60\" stroke=\"#333\" marker-end=\"url(#arr)\"/>\n"
	"<text x=\"222\" y=\"50\" text-anchor=\"middle\">SMTP</text>\n"
	"<line x1=\"440\" y1=\"60\" x2=\"553\" y2=\"60\" stroke=\"#333\" marker-end=\"url(#arr)\"/>\n"
	"<text x=\"497\" y=\"50\" text-anchor=\"middle\">by MX</text>\n"
	"<text x=\"360\" y=\"112\" text-anchor=\"middle\">From: ceo@paypal.example "
	"(SPF allows only " DEMO_PAYPAL_IP "; DMARC p=reject)</text>\n</svg>\n";

/* html_item - one told line as HTML. */
static void html_item(struct strbuf *sb, const struct rep_item *it)
{
	if (it->kind == REP_STEP) {
		if (it->step == 0)
			strbuf_puts(sb, "<h2>Set-up: ");
		else
			strbuf_printf(sb, "<h2>Step %d: ", it->step);
		html_escape_append(sb, it->text);
		strbuf_puts(sb, "</h2>\n");
		return;
	}
	bool para = it->kind == REP_SAY || it->kind == REP_OK || it->kind == REP_FAIL;
	strbuf_printf(sb, "<%s class=\"%s\">", para ? "p" : "pre", kinds[it->kind].css);
	if (it->kind == REP_OK || it->kind == REP_FAIL)
		strbuf_puts(sb, it->kind == REP_OK ? "&#10004; " : "&#10008; FAILED: ");
	else if (it->kind == REP_SEND || it->kind == REP_RECV)
		strbuf_puts(sb, it->kind == REP_SEND ? "C: " : "S: ");
	if (it->who != NULL && it->kind == REP_LOG) {
		html_escape_append(sb, it->who);
		strbuf_puts(sb, ": ");
	}
	html_escape_append(sb, it->text);
	strbuf_printf(sb, "</%s>\n", para ? "p" : "pre");
}

char *rep_html(const struct report *r)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_puts(&sb, page_head);
	strbuf_puts(&sb, diagram);
	int open = -1;
	for (size_t i = 0; i < r->n; i++) {
		const struct rep_item *it = &r->items[i];
		if (it->step != open) {
			strbuf_puts(&sb, open >= 0 ? "</section>\n" : "");
			strbuf_printf(&sb, "<section id=\"step%d\">\n", it->step);
			open = it->step;
		}
		html_item(&sb, it);
	}
	strbuf_puts(&sb, open >= 0 ? "</section>\n" : "");
	strbuf_printf(&sb, "<p id=\"outcome\" class=\"%s\">%s</p>\n</body></html>\n",
		      r->failed ? "fail" : "ok",
		      r->failed ? "Some steps did not have the expected outcome."
				: "Every step had the expected outcome.");
	return strbuf_steal(&sb);
}
