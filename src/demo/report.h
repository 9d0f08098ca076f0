/*
 * report - the demo's story as it is told: printed to the terminal line by
 * line while it happens, kept, and written at the end as one HTML page.
 *
 * Owns: the list of told lines (step headings, SMTP commands and replies,
 * log lines, headers, verdicts, outcomes), the terminal format, the HTML
 * page (inline CSS and SVG, every value escaped) and the tally of outcomes.
 * Must not: run anything or decide an outcome; story.c does.
 */
#ifndef RG_DEMO_REPORT_H
#define RG_DEMO_REPORT_H

#include <stdbool.h>
#include <stddef.h>

enum rep_kind {
	REP_STEP,    /* a step's title */
	REP_SAY,     /* narration */
	REP_SEND,    /* a command the client sent */
	REP_RECV,    /* the server's reply */
	REP_LOG,     /* a line of a server's log */
	REP_HEADER,  /* a header field of a delivered message */
	REP_VERDICT, /* a line of probe's or audit's verdict */
	REP_OK,      /* an expected outcome seen */
	REP_FAIL,    /* an expected outcome missing */
};

struct rep_item {
	enum rep_kind kind;
	int step;
	char *who; /* whose log or reply ("relay", "mx"), or NULL */
	char *text;
};

struct report {
	struct rep_item *items;
	size_t n, cap;
	int step;         /* the current step, 0 before the first */
	int failed;       /* REP_FAIL lines so far */
	unsigned failed_steps; /* bit n: step n had an outcome missing */
	bool quiet;       /* keep, do not print (unit tests) */
};

void rep_init(struct report *r);
void rep_free(struct report *r);
/* rep_step - start step n with a title. */
void rep_step(struct report *r, int n, const char *title);
/* rep_add - one line (printf format) of kind k; who may be NULL. */
void rep_add(struct report *r, enum rep_kind k, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* rep_check - an expected outcome: REP_OK when ok, else REP_FAIL; returns ok. */
bool rep_check(struct report *r, bool ok, const char *what);
/* rep_html - the whole story as a self-contained HTML page in a string. */
char *rep_html(const struct report *r);
/* html_escape_append - text with & < > " ' escaped, appended to a strbuf. */
struct strbuf;
void html_escape_append(struct strbuf *sb, const char *text);

#endif
