/*
 * output.c - the audit's and explain's text and JSON (see audit.h).
 *
 * DESCRIPTION
 *	Into a strbuf: the caller writes it out. Strings from the configuration
 *	go through json_string, the project's one escaper.
 */
#include "audit/audit.h"
#include "util/json.h"

#include <string.h>

/* severity_name - for text and JSON. */
static const char *severity_name(enum audit_severity s)
{
	static const char *names[] = {"info", "undecided", "suspicious", "open"};
	return names[s];
}

/* ids_of - the test ids of one class with one outcome, comma-separated. */
static size_t ids_of(const struct audit_service_report *sr, enum audit_class cls,
		     enum audit_outcome o, struct strbuf *out)
{
	size_t n = 0;
	for (size_t i = 0; i < sr->n_cases; i++)
		if (sr->cases[i].cls == cls && sr->cases[i].outcome == o)
			strbuf_printf(out, "%s%s", n++ ? ", " : "", sr->cases[i].test->id);
	return n;
}

/* case_line - one test: envelope, where it goes, the reply and what decided. */
static void case_line(const struct audit_case *c, struct strbuf *out)
{
	strbuf_printf(out, "    %-18s HELO %s, <%s> -> <%s>", c->test->id, c->helo, c->mail, c->rcpt);
	if (c->resolved[0])
		strbuf_printf(out, " (goes to %s)", c->resolved);
	strbuf_printf(out, ": %s", c->reply[0] ? c->reply : "-");
	if (c->restriction)
		strbuf_printf(out, " [%s in %s]", c->restriction, c->list ? c->list : "-");
	if (c->why)
		strbuf_printf(out, " (%s)", c->why);
	strbuf_puts(out, "\n");
}

/* class_text - counts per outcome, then the tests that matter (all with -v). */
static void class_text(const struct audit_service_report *sr, enum audit_class cls, bool verbose,
		       struct strbuf *out)
{
	static const enum audit_outcome shown[] = {AO_RELAYED, AO_UNDECIDED, AO_BACKSCATTER,
						   AO_LOCAL, AO_REFUSED, AO_DEFERRED, AO_SKIPPED};
	strbuf_printf(out, "  %s:", audit_class_name(cls));
	for (size_t k = 0; k < RG_ARRAY_LEN(shown); k++) {
		struct strbuf ids;
		strbuf_init(&ids);
		size_t n = ids_of(sr, cls, shown[k], &ids);
		if (n > 0)
			strbuf_printf(out, " %zu %s;", n, audit_outcome_name(shown[k]));
		strbuf_free(&ids);
	}
	strbuf_puts(out, "\n");
	for (size_t i = 0; i < sr->n_cases; i++) {
		const struct audit_case *c = &sr->cases[i];
		bool worth = c->outcome == AO_RELAYED || c->outcome == AO_UNDECIDED ||
			     c->outcome == AO_BACKSCATTER;
		if (c->cls != cls || c->outcome == AO_SKIPPED ||
		    !(verbose || (cls == AC_STRANGER && worth)))
			continue;
		case_line(c, out);
		if (cls == AC_STRANGER && c->outcome == AO_RELAYED)
			strbuf_printf(out, "      fix: %s\n", c->test->fix);
	}
}

void audit_print_text(const struct audit_report *r, bool verbose, struct strbuf *out)
{
	strbuf_printf(out, "relayguard audit: %s (%zu service%s, offline: no mail sent)\n",
		      r->model->origin, r->n_services, r->n_services == 1 ? "" : "s");
	for (size_t i = 0; i < r->n_services; i++) {
		const struct audit_service_report *sr = &r->services[i];
		strbuf_printf(out, "\nservice %s: %s\n", sr->svc->name, audit_verdict_name(sr->verdict));
		if (sr->svc->refuses_all)
			strbuf_puts(out, "  no list can refuse an unauthorised destination (before a "
					 "bare permit): Postfix's smtpd will not run\n");
		for (size_t cls = 0; cls < AC_COUNT; cls++)
			class_text(sr, (enum audit_class)cls, verbose, out);
	}
	if (r->n_findings > 0)
		strbuf_puts(out, "\nfindings:\n");
	for (size_t k = 0; k < r->n_findings; k++) {
		const struct audit_finding *f = &r->findings[k];
		strbuf_printf(out, "  [%s] %s%s%s: %s\n", severity_name(f->severity), f->id,
			      f->service ? " on " : "", f->service ? f->service : "", f->text);
		if (f->fix)
			strbuf_printf(out, "      fix: %s\n", f->fix);
	}
	strbuf_printf(out, "\nverdict: %s\n", audit_verdict_name(r->verdict));
}

/* json_field - ,"name":"value" (or null). */
static void json_field(struct strbuf *out, const char *name, const char *value, bool first)
{
	strbuf_printf(out, "%s\"%s\":", first ? "" : ",", name);
	if (value == NULL)
		strbuf_puts(out, "null");
	else
		json_string(out, value);
}

/* case_json - one test as an object. */
static void case_json(const struct audit_case *c, struct strbuf *out)
{
	strbuf_puts(out, "{");
	json_field(out, "id", c->test->id, true);
	json_field(out, "class", audit_class_name(c->cls), false);
	json_field(out, "outcome", audit_outcome_name(c->outcome), false);
	json_field(out, "helo", c->helo, false);
	json_field(out, "mail_from", c->mail, false);
	json_field(out, "rcpt_to", c->rcpt, false);
	json_field(out, "resolved", c->resolved[0] ? c->resolved : NULL, false);
	json_field(out, "reply", c->reply[0] ? c->reply : NULL, false);
	json_field(out, "restriction", c->restriction, false);
	json_field(out, "list", c->list, false);
	json_field(out, "why", c->why, false);
	json_field(out, "fix", c->outcome == AO_RELAYED ? c->test->fix : NULL, false);
	strbuf_puts(out, "}");
}

/* class_json - the test ids of one class by outcome. */
static void class_json(const struct audit_service_report *sr, enum audit_class cls,
		       struct strbuf *out)
{
	strbuf_printf(out, "\"%s\":{", audit_class_name(cls));
	for (int o = AO_RELAYED; o <= AO_SKIPPED; o++) {
		strbuf_printf(out, "%s\"%s\":[", o ? "," : "", audit_outcome_name(o));
		size_t n = 0;
		for (size_t i = 0; i < sr->n_cases; i++)
			if (sr->cases[i].cls == cls && (int)sr->cases[i].outcome == o) {
				strbuf_puts(out, n++ ? "," : "");
				json_string(out, sr->cases[i].test->id);
			}
		strbuf_puts(out, "]");
	}
	strbuf_puts(out, "}");
}

/* service_json - one service: verdict, classes, every test that ran. */
static void service_json(const struct audit_service_report *sr, struct strbuf *out)
{
	strbuf_puts(out, "{");
	json_field(out, "name", sr->svc->name, true);
	json_field(out, "verdict", audit_verdict_name(sr->verdict), false);
	strbuf_printf(out, ",\"sasl\":%s,\"submission\":%s,\"classes\":{",
		      sr->svc->sasl ? "true" : "false", sr->svc->submission_like ? "true" : "false");
	for (size_t cls = 0; cls < AC_COUNT; cls++) {
		strbuf_puts(out, cls ? "," : "");
		class_json(sr, (enum audit_class)cls, out);
	}
	strbuf_puts(out, "},\"tests\":[");
	size_t n = 0;
	for (size_t i = 0; i < sr->n_cases; i++) {
		if (sr->cases[i].outcome == AO_SKIPPED)
			continue;
		strbuf_puts(out, n++ ? "," : "");
		case_json(&sr->cases[i], out);
	}
	strbuf_puts(out, "]}");
}

void audit_print_json(const struct audit_report *r, struct strbuf *out)
{
	strbuf_puts(out, "{");
	json_field(out, "origin", r->model->origin, true);
	json_field(out, "verdict", audit_verdict_name(r->verdict), false);
	strbuf_printf(out, ",\"exit\":%d,\"services\":[", audit_exit_code(r->verdict));
	for (size_t i = 0; i < r->n_services; i++) {
		strbuf_puts(out, i ? "," : "");
		service_json(&r->services[i], out);
	}
	strbuf_puts(out, "],\"findings\":[");
	for (size_t k = 0; k < r->n_findings; k++) {
		const struct audit_finding *f = &r->findings[k];
		strbuf_puts(out, k ? ",{" : "{");
		json_field(out, "id", f->id, true);
		json_field(out, "severity", severity_name(f->severity), false);
		json_field(out, "service", f->service, false);
		json_field(out, "text", f->text, false);
		json_field(out, "fix", f->fix, false);
		strbuf_puts(out, "}");
	}
	strbuf_puts(out, "]}\n");
}

/* action_name - accept, reject, defer or undecided. */
static const char *action_name(const struct audit_explain *e)
{
	if (!e->syntax_ok || e->auth_refused)
		return "reject";
	if (e->undecided)
		return "undecided";
	switch (e->decision.action) {
	case POLICY_ACCEPT: return "accept";
	case POLICY_REJECT: return "reject";
	case POLICY_DEFER: return "defer";
	}
	return "?";
}

/* explain_expansion_text - the alias steps, one a line, and where mail goes. */
static void explain_expansion_text(const struct audit_explain *e, struct strbuf *out)
{
	if (e->expansion[0] == '\0')
		return;
	const char *p = e->expansion;
	while (*p) {
		size_t n = strcspn(p, "\n");
		strbuf_printf(out, "expansion: %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
	strbuf_printf(out, "delivers to: %s%s\n", e->delivers_to,
		      e->forwards_outside ? " (forwarded outside: our user's alias, not a relay)"
					  : "");
}

void audit_explain_text(const struct audit_model *m, size_t svc, const struct audit_request *rq,
			const struct audit_explain *e, struct strbuf *out)
{
	strbuf_printf(out, "service:   %s\nclient:    %s%s%s%s%s\n", m->services[svc].name,
		      rq->client_ip, rq->helo ? " HELO " : "", rq->helo ? rq->helo : "",
		      rq->login ? " login " : "", rq->login ? rq->login : "");
	if (!e->syntax_ok || e->auth_refused) {
		strbuf_printf(out, "reply:     %s\ndecision:  reject\n", e->error);
		return;
	}
	char routing[64];
	address_routing_names(e->routing, routing, sizeof(routing));
	if (rq->from[0] == '\0')
		strbuf_puts(out, "sender:    <> (the null sender)\n");
	else
		strbuf_printf(out, "sender:    <%s> = %s@%s (%s)\n", rq->from, e->sender_res.local,
			      e->sender_res.domain, address_class_name(e->sender_res.cls));
	strbuf_printf(out, "recipient: <%s> = %s@%s (%s, routing: %s%s)\n", rq->to,
		      e->rcpt_res.local, e->rcpt_res.domain, address_class_name(e->rcpt_res.cls),
		      routing, e->rcpt_res.routed ? ", sender-specified routing undone" : "");
	for (size_t k = 0; k < e->n_steps; k++)
		strbuf_printf(out, "  %-30s %-45s %s\n", e->steps[k].list, e->steps[k].restriction,
			      e->steps[k].result);
	strbuf_printf(out, "decided by: %s in %s%s\nreply:     %s\ndecision:  %s\n",
		      e->decision.restriction ? e->decision.restriction : "-",
		      e->decision.list ? e->decision.list : "-", e->at_mail ? " (at MAIL FROM)" : "",
		      e->decision.reply, action_name(e));
	if (e->undecided)
		strbuf_printf(out, "undecided: %s\n", e->undecided_why ? e->undecided_why : "?");
	explain_expansion_text(e, out);
}

void audit_explain_json(const struct audit_model *m, size_t svc, const struct audit_request *rq,
			const struct audit_explain *e, struct strbuf *out)
{
	strbuf_puts(out, "{");
	json_field(out, "service", m->services[svc].name, true);
	json_field(out, "client", rq->client_ip, false);
	json_field(out, "helo", rq->helo, false);
	json_field(out, "login", rq->login, false);
	json_field(out, "from", rq->from, false);
	json_field(out, "to", rq->to, false);
	json_field(out, "decision", action_name(e), false);
	if (!e->syntax_ok || e->auth_refused) {
		json_field(out, "reply", e->error, false);
		strbuf_puts(out, "}\n");
		return;
	}
	char routing[64];
	address_routing_names(e->routing, routing, sizeof(routing));
	strbuf_puts(out, ",\"recipient\":{");
	json_field(out, "local", e->rcpt_res.local, true);
	json_field(out, "domain", e->rcpt_res.domain, false);
	json_field(out, "class", address_class_name(e->rcpt_res.cls), false);
	json_field(out, "routing", routing, false);
	strbuf_printf(out, ",\"routed\":%s},\"steps\":[", e->rcpt_res.routed ? "true" : "false");
	for (size_t k = 0; k < e->n_steps; k++) {
		strbuf_puts(out, k ? ",{" : "{");
		json_field(out, "list", e->steps[k].list, true);
		json_field(out, "restriction", e->steps[k].restriction, false);
		json_field(out, "result", e->steps[k].result, false);
		strbuf_puts(out, "}");
	}
	strbuf_puts(out, "]");
	json_field(out, "restriction", e->decision.restriction, false);
	json_field(out, "list", e->decision.list, false);
	json_field(out, "reply", e->decision.reply, false);
	json_field(out, "stage", e->at_mail ? "MAIL" : "RCPT", false);
	json_field(out, "undecided", e->undecided ? e->undecided_why : NULL, false);
	json_field(out, "expansion", e->expansion[0] ? e->expansion : NULL, false);
	json_field(out, "delivers_to", e->delivers_to[0] ? e->delivers_to : NULL, false);
	if (e->expansion[0])
		strbuf_printf(out, ",\"forwards_outside\":%s", e->forwards_outside ? "true" : "false");
	strbuf_puts(out, "}\n");
}
