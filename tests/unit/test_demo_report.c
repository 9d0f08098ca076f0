/*
 * test_demo_report.c - the demo's story as HTML: every value escaped, one
 * section per step, the outcome tally that decides the exit status.
 */
#include "check.h"
#include "demo/report.h"
#include "util/util.h"

#include <stdlib.h>

static const struct {
	int line;
	const char *in, *want;
} escapes[] = {
	{__LINE__, "plain text", "plain text"},
	{__LINE__, "<ceo@paypal.example>", "&lt;ceo@paypal.example&gt;"},
	{__LINE__, "\"PayPal CEO\" & 'co'", "&quot;PayPal CEO&quot; &amp; &#39;co&#39;"},
	{__LINE__, "</pre><script>alert(1)</script>",
	 "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"},
	{__LINE__, "&amp;", "&amp;amp;"},
	{__LINE__, "", ""},
};

/* test_escape - each row's text, escaped. */
static void test_escape(void)
{
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		struct strbuf sb;
		strbuf_init(&sb);
		html_escape_append(&sb, escapes[i].in);
		strbuf_append(&sb, "", 0);
		CHECK_STR_AT(escapes[i].line, sb.data, escapes[i].want, "escaped");
		strbuf_free(&sb);
	}
}

/* a story: set-up, step 1 with a reply, step 2 with a hostile header, step 4 failing */
static void tell(struct report *r)
{
	rep_init(r);
	r->quiet = true;
	rep_step(r, 0, "the lab");
	rep_check(r, true, "dnsmasq answers");
	rep_step(r, 1, "the attacker's session");
	rep_add(r, REP_SEND, NULL, "MAIL FROM:<ceo@paypal.example>");
	rep_add(r, REP_RECV, "relay", "250 2.1.0 Ok");
	rep_step(r, 2, "delivered");
	rep_add(r, REP_HEADER, NULL, "Subject: </pre><img src=x onerror=alert(1)>");
	rep_add(r, REP_LOG, "relay", "info delivered to=<victim@gmail.example>");
	rep_step(r, 4, "the fix");
	rep_check(r, false, "the attack is refused at RCPT");
}

static const struct {
	int line;
	const char *needle;
	bool present;
} page_rows[] = {
	{__LINE__, "<section id=\"step0\">\n<h2>Set-up: the lab</h2>", true},
	{__LINE__, "<h2>Step 1: the attacker&#39;s session</h2>", true},
	{__LINE__, "<pre class=\"send\">C: MAIL FROM:&lt;ceo@paypal.example&gt;</pre>", true},
	{__LINE__, "<pre class=\"recv\">S: 250 2.1.0 Ok</pre>", true},
	{__LINE__, "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;", true},
	{__LINE__, "<img", false},
	{__LINE__, "<pre class=\"log\">relay: info delivered to=&lt;victim@gmail.example&gt;", true},
	{__LINE__, "<section id=\"step4\">", true},
	{__LINE__, "<section id=\"step3\">", false},
	{__LINE__, "<p class=\"fail\">&#10008; FAILED: the attack is refused at RCPT</p>", true},
	{__LINE__, "<p id=\"outcome\" class=\"fail\">", true},
	{__LINE__, "<svg id=\"hops\"", true},
	{__LINE__, "http", false},
};

/* test_page - the page holds (or not) each row's text; the tally. */
static void test_page(void)
{
	struct report r;
	tell(&r);
	char *page = rep_html(&r);
	for (size_t i = 0; i < sizeof(page_rows) / sizeof(page_rows[0]); i++)
		CHECK_AT(page_rows[i].line, (strstr(page, page_rows[i].needle) != NULL) ==
					    page_rows[i].present,
			 "%s %s in the page", page_rows[i].needle,
			 page_rows[i].present ? "missing" : "present");
	CHECK(r.failed == 1, "one failure counted, got %d", r.failed);
	CHECK(r.failed_steps == 1u << 4, "step 4 failed, got mask %#x", r.failed_steps);
	free(page);
	rep_free(&r);
}

int main(void)
{
	test_escape();
	test_page();
	return check_summary("demo_report");
}
