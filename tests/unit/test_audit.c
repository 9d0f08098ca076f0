/*
 * test_audit.c - the audit engine and the Postfix reader, as tables.
 *
 * Postfix configurations are directories under tests/audit/postfix/ (one per
 * classic mistake, plus Debian's default and a Mailcow-style setup); the
 * relayguard ones are written to a temporary file. Each row says the verdict,
 * the findings that must be named, and stranger tests that must (or must not)
 * be relayed or undecided. Run from the repository root.
 */
#include "audit/audit.h"
#include "check.h"
#include "files.h"

#include <stdlib.h>
#include <string.h>

#define PF "tests/audit/postfix/"

/* outcome_of_test - the outcome of a test for a class on the first service
 * with that name prefix (AO_SKIPPED + 1 when absent). */
static int outcome_of_test(const struct audit_report *r, const char *svc, enum audit_class cls,
			   const char *id)
{
	for (size_t i = 0; i < r->n_services; i++) {
		if (svc && strncmp(r->services[i].svc->name, svc, strlen(svc)) != 0)
			continue;
		for (size_t k = 0; k < r->services[i].n_cases; k++) {
			const struct audit_case *c = &r->services[i].cases[k];
			if (c->cls == cls && strcmp(c->test->id, id) == 0)
				return c->outcome;
		}
	}
	return AO_SKIPPED + 1;
}

static bool has_finding(const struct audit_report *r, const char *id)
{
	for (size_t k = 0; k < r->n_findings; k++)
		if (strcmp(r->findings[k].id, id) == 0)
			return true;
	return false;
}

static size_t count_outcome(const struct audit_report *r, enum audit_class cls,
			    enum audit_outcome o)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_services; i++)
		for (size_t k = 0; k < r->services[i].n_cases; k++)
			n += r->services[i].cases[k].cls == cls && r->services[i].cases[k].outcome == o;
	return n;
}

struct pf_row {
	int line;
	const char *dir;
	enum audit_verdict verdict;
	const char *findings;  /* space-separated ids that must be there */
	const char *relayed;   /* stranger tests that must be relayed (space-separated) */
	const char *undecided; /* stranger tests that must be undecided */
	size_t n_services;
};

static const struct pf_row pf_rows[] = {
	{__LINE__, "debian-default", AV_CLOSED, "", "", "", 1},
	{__LINE__, "mailcow", AV_SUSPICIOUS, "mynetworks-nat-docker-vpn not-audited unreadable", "",
	 "", 4},
	{__LINE__, "open-mynetworks", AV_OPEN, "mynetworks-covers-internet",
	 "plain null-sender percent-host bang-domain route-domain ipv4-literal", "", 1},
	{__LINE__, "docker-mynetworks", AV_SUSPICIOUS, "mynetworks-nat-docker-vpn", "", "", 1},
	{__LINE__, "permit-first", AV_CLOSED, "permit-before-reject_unauth_destination", "", "", 1},
	{__LINE__, "relay-public-suffix", AV_OPEN, "relay-domains-public-suffix", "", "", 1},
	{__LINE__, "relay-overlap", AV_SUSPICIOUS, "relay-domains-overlap-local", "", "", 1},
	/* relaytest%example.net@example.org is taken for the relay domain and forwarded */
	{__LINE__, "untrusted-routing", AV_OPEN, "allow-untrusted-routing", "", "", 1},
	/* an @domain catch-all in relay_recipient_maps takes it too; listed users do not */
	{__LINE__, "untrusted-routing-catchall", AV_OPEN, "allow-untrusted-routing", "", "", 1},
	{__LINE__, "untrusted-routing-listed", AV_SUSPICIOUS, "allow-untrusted-routing", "", "", 1},
	{__LINE__, "submission-permit", AV_CLOSED, "permit-before-reject_unauth_destination", "",
	 "", 2},
	{__LINE__, "submission-nosasl", AV_SUSPICIOUS, "submission-without-sasl", "", "", 2},
	{__LINE__, "recipient-override", AV_OPEN, "recipient-restrictions-override",
	 "sender-domain", "", 1},
	{__LINE__, "alias-forward", AV_SUSPICIOUS, "alias-forward-outside", "", "", 1},
	{__LINE__, "catchall-forward", AV_SUSPICIOUS, "catch-all-forward-outside", "", "", 1},
	{__LINE__, "policy-service", AV_UNDECIDED, "", "", "plain percent-host", 1},
	{__LINE__, "pcre-sender", AV_UNDECIDED, "", "", "plain sender-domain", 1},
	/* Postfix matches parent domains in access tables and qualifies the bare
	 * sender with myorigin: the lab's sender-hole, exactly */
	{__LINE__, "sender-hole", AV_OPEN, "", "sender-domain sender-host sender-unqualified", "", 1},
	{__LINE__, "compat0-recipient-list", AV_CLOSED, "", "", "", 1},
	{__LINE__, "milter", AV_UNDECIDED, "not-audited", "", "", 1},
	{__LINE__, "unreadable-include", AV_UNDECIDED, "unreadable", "", "", 1},
	/* a stranger chooses his HELO, his sender and a recipient's local part */
	{__LINE__, "partner-helo", AV_OPEN, "forgeable-permit", "", "", 1},
	{__LINE__, "partner-sender", AV_OPEN, "forgeable-permit", "", "", 1},
	{__LINE__, "recipient-postmaster", AV_OPEN, "forgeable-permit", "", "", 1},
	{__LINE__, "recipient-own", AV_CLOSED, "", "", "", 1},
	/* access(5): RELAY and an all-numeric value are OK; a class name is not DUNNO */
	{__LINE__, "relay-action", AV_OPEN, "", "sender-domain", "", 1},
	{__LINE__, "numeric-action", AV_OPEN, "", "sender-domain", "", 1},
	{__LINE__, "restr-class-value", AV_UNDECIDED, "", "", "plain", 1},
	/* a class holding reject_unauth_destination is looked into */
	{__LINE__, "restr-class-required", AV_OPEN, "forgeable-permit", "plain", "", 1},
	{__LINE__, "client-half", AV_OPEN, "forgeable-permit", "plain", "", 1},
	{__LINE__, "long-list", AV_CLOSED, "", "", "", 1},
	/* $name expansion: bounded, loops found, Postfix's conditional forms */
	{__LINE__, "expand-bomb", AV_UNDECIDED, "unreadable", "", "", 1},
	{__LINE__, "expand-loop", AV_UNDECIDED, "unreadable", "", "", 1},
	{__LINE__, "cond-set", AV_OPEN, "forgeable-permit", "sender-domain", "", 1},
	{__LINE__, "cond-unset", AV_OPEN, "forgeable-permit", "sender-domain", "", 1},
	{__LINE__, "cond-compare", AV_UNDECIDED, "unreadable", "", "", 1},
	/* master.cf: -oNAME=VALUE, and no limit on the number of services */
	{__LINE__, "o-attached", AV_OPEN, "forgeable-permit", "sender-domain", "", 1},
	{__LINE__, "many-services", AV_OPEN, "forgeable-permit", "", "", 33},
	/* a client that may claim another address: XCLIENT from anywhere, PROXY */
	{__LINE__, "xclient-anyone", AV_OPEN, "client-address-forgeable", "", "", 1},
	{__LINE__, "xclient-own", AV_CLOSED, "", "", "", 1},
	{__LINE__, "proxy-protocol", AV_SUSPICIOUS, "client-address-forgeable", "", "", 1},
	/* what the model holds once, overridden per service; tables we cannot read */
	{__LINE__, "o-mynetworks", AV_UNDECIDED, "not-audited", "", "", 1},
	{__LINE__, "virtual-regexp", AV_UNDECIDED, "unreadable", "", "", 1},
	{__LINE__, "sasl-anonymous", AV_SUSPICIOUS, "sasl-anonymous", "", "", 1},
};

/* check_words - every word of LIST is a stranger test with outcome O. */
static void check_words(const struct pf_row *row, const struct audit_report *r, const char *list,
			enum audit_outcome o)
{
	char *copy = xstrdup(list), *save = NULL;
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		CHECK_AT(row->line, outcome_of_test(r, NULL, AC_STRANGER, w) == (int)o,
			 "%s: stranger %s: got %s, want %s", row->dir, w,
			 audit_outcome_name(outcome_of_test(r, NULL, AC_STRANGER, w)),
			 audit_outcome_name(o));
	free(copy);
}

static void test_postfix_rows(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(pf_rows); i++) {
		const struct pf_row *row = &pf_rows[i];
		char err[256], *dir = xasprintf(PF "%s", row->dir);
		struct audit_model *m = audit_model_from_postfix(dir, err, sizeof(err));
		free(dir);
		CHECK_AT(row->line, m != NULL, "%s: %s", row->dir, err);
		if (m == NULL)
			continue;
		struct audit_report *r = audit_run(m);
		CHECK_AT(row->line, r->verdict == row->verdict, "%s: verdict %s, want %s", row->dir,
			 audit_verdict_name(r->verdict), audit_verdict_name(row->verdict));
		CHECK_AT(row->line, m->n_services == row->n_services, "%s: %zu services", row->dir,
			 m->n_services);
		char *copy = xstrdup(row->findings), *save = NULL;
		for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
			CHECK_AT(row->line, has_finding(r, w), "%s: finding %s missing", row->dir, w);
		free(copy);
		check_words(row, r, row->relayed, AO_RELAYED);
		check_words(row, r, row->undecided, AO_UNDECIDED);
		if (row->verdict != AV_OPEN)
			CHECK_AT(row->line, count_outcome(r, AC_STRANGER, AO_RELAYED) == 0,
				 "%s: a stranger relays in a %s configuration", row->dir,
				 audit_verdict_name(row->verdict));
		audit_report_free(r);
		audit_model_free(m);
	}
}

/* The Postfix reader's own facts: defaults by compatibility level, -o overrides,
 * the lists as Postfix would read them. */
static void test_postfix_reader(void)
{
	char err[256];
	struct audit_model *m = audit_model_from_postfix(PF "mailcow", err, sizeof(err));
	CHECK(m != NULL, "mailcow: %s", err);
	if (m == NULL)
		return;
	/* master.cf: postscreen's smtpd pass service, submission, smtps, 588 */
	CHECK_STR_AT(__LINE__, m->services[0].name, "master.cf smtpd (pass)", "first service");
	CHECK(!m->services[0].sasl, "-o smtpd_sasl_auth_enable=no on smtpd pass");
	CHECK(m->services[1].sasl && m->services[1].submission_like, "submission: SASL from main.cf");
	CHECK(m->services[1].lists[AL_CLIENT].n == 2, "-o smtpd_client_restrictions=a,b: two items");
	CHECK(m->cfg.n_mynetworks == 6, "mynetworks: %zu networks", m->cfg.n_mynetworks);
	struct audit_report *r = audit_run(m);
	/* inside mynetworks the submission service still wants AUTH */
	CHECK(outcome_of_test(r, "master.cf submission", AC_MYNETWORKS, "plain") == AO_REFUSED,
	      "mynetworks client on submission without AUTH");
	CHECK(outcome_of_test(r, "master.cf submission", AC_AUTHENTICATED, "plain") == AO_RELAYED,
	      "authenticated user relays on submission");
	CHECK(outcome_of_test(r, "master.cf smtpd", AC_AUTHENTICATED, "plain") == AO_SKIPPED + 0,
	      "no AUTH on port 25: no authenticated class");
	audit_report_free(r);
	audit_model_free(m);

	m = audit_model_from_postfix(PF "compat0-recipient-list", err, sizeof(err));
	CHECK(m != NULL && m->services[0].lists[AL_RELAY].n == 0,
	      "compatibility_level 0: smtpd_relay_restrictions is empty");
	CHECK(m != NULL && address_domain_listed("sub.example.com",
						 (const char *const *)m->cfg.relay_domains),
	      "compatibility_level 0: relay_domains = $mydestination, subdomains matched");
	audit_model_free(m);

	m = audit_model_from_postfix(PF "debian-default", err, sizeof(err));
	CHECK(m != NULL && m->services[0].lists[AL_RELAY].n == 3, "Debian's relay list");
	CHECK(m != NULL && m->cfg.n_mynetworks == 3, "[::ffff:127.0.0.0]/104 read as 127.0.0.0/8");
	audit_model_free(m);

	/* only a missing master.cf is Postfix's default; one we cannot read is an error */
	m = audit_model_from_postfix(PF "master-dir", err, sizeof(err));
	CHECK(m == NULL && strstr(err, "master.cf") != NULL, "master.cf a directory: %s",
	      m ? "read" : err);
	audit_model_free(m);
	m = audit_model_from_postfix(PF "main-dir", err, sizeof(err));
	CHECK(m == NULL && strstr(err, "main.cf") != NULL, "main.cf a directory: %s",
	      m ? "read" : err);
	audit_model_free(m);
	m = audit_model_from_postfix(PF "expand-bomb", err, sizeof(err));
	struct audit_report *bomb = m ? audit_run(m) : NULL;
	CHECK(bomb != NULL && bomb->n_findings > 0 && strstr(bomb->findings[0].text, "64 KiB"),
	      "an expansion bomb is cut at 64 KiB and said");
	audit_report_free(bomb);
	audit_model_free(m);

	m = audit_model_from_postfix(PF "no-such-directory", err, sizeof(err));
	CHECK(m == NULL && strstr(err, "main.cf") != NULL, "missing main.cf: %s", err);
}

/* 70 restrictions ending in reject_unauth_destination: none may be lost */
#define R10 "reject_non_fqdn_recipient, reject_non_fqdn_recipient, reject_non_fqdn_recipient, " \
	"reject_non_fqdn_recipient, reject_non_fqdn_recipient, reject_non_fqdn_recipient, " \
	"reject_non_fqdn_recipient, reject_non_fqdn_recipient, reject_non_fqdn_recipient, " \
	"reject_non_fqdn_recipient, "
#define LONG_LIST "smtpd_relay_restrictions = permit_mynetworks, " R10 R10 R10 R10 R10 R10 R10 \
	"reject_unauth_destination\n"

/* relayguard's own configurations, through config_load. */
struct rg_row {
	int line;
	const char *text; /* NULL: the embedded default */
	enum audit_verdict verdict;
	const char *relayed;
};

static const struct rg_row rg_rows[] = {
	{__LINE__, NULL, AV_CLOSED, ""},
	{__LINE__, "mynetworks = 0.0.0.0/0\n", AV_OPEN, "plain helo-localhost ipv6-literal"},
	{__LINE__, "mynetworks = 127.0.0.0/8 172.17.0.0/16\n", AV_SUSPICIOUS, ""},
	{__LINE__, "mydestination = example.com\nrelay_domains = example.org\n", AV_CLOSED, ""},
	/* relayguard matches a bare relay_domains entry exactly: only dyndns.org itself */
	{__LINE__, "relay_domains = dyndns.org\n", AV_CLOSED, ""},
	/* a trusted network holding the documentation range: the stranger is elsewhere */
	{__LINE__, "mynetworks = 127.0.0.0/8 203.0.113.0/24\n", AV_CLOSED, ""},
	{__LINE__, "mynetworks = 127.0.0.0/8 192.0.0.0/2\n", AV_OPEN, "plain"},
	/* a provider's class A or B (mynetworks_style = class on a public address) */
	{__LINE__, "mynetworks = 127.0.0.0/8 20.0.0.0/8\n", AV_SUSPICIOUS, ""},
	{__LINE__, "mynetworks = 127.0.0.0/8 151.101.0.0/16\n", AV_SUSPICIOUS, ""},
	{__LINE__, "mynetworks = 127.0.0.0/8 [2a00:1450::]/32\n", AV_SUSPICIOUS, ""},
	/* a site's own networks: private, or public and small */
	{__LINE__, "mynetworks = 127.0.0.0/8 10.0.0.0/8 192.168.0.0/16\n", AV_CLOSED, ""},
	{__LINE__, "mynetworks = 127.0.0.0/8 151.101.64.0/18 [2a00:1450:4001::]/48\n", AV_CLOSED,
	 ""},
	/* a client table trusting half the Internet: strangers in 0/2 and 64/2 relay */
	{__LINE__, "smtpd_relay_restrictions = permit_mynetworks, check_client_access "
		   "cidr:/tmp/rg-audit-half.cidr, reject_unauth_destination\n", AV_OPEN, "plain"},
	{__LINE__, LONG_LIST, AV_CLOSED, ""},
};

static void test_relayguard_rows(void)
{
	FILE *half = fopen("/tmp/rg-audit-half.cidr", "w");
	CHECK(half != NULL, "cannot write /tmp/rg-audit-half.cidr");
	if (half) {
		fputs("0.0.0.0/1 OK\n", half);
		fclose(half);
	}
	for (size_t i = 0; i < RG_ARRAY_LEN(rg_rows); i++) {
		const struct rg_row *row = &rg_rows[i];
		char path[] = "/tmp/rg-audit-XXXXXX";
		char *errors = NULL;
		struct config *cfg;
		if (row->text) {
			int fd = mkstemp(path);
			if (fd < 0 || write(fd, row->text, strlen(row->text)) < 0)
				CHECK_AT(row->line, false, "cannot write %s", path);
			close(fd);
			cfg = config_load(path, &errors);
			unlink(path);
		} else {
			cfg = config_load(NULL, &errors);
		}
		CHECK_AT(row->line, cfg != NULL, "config: %s", errors ? errors : "");
		free(errors);
		if (cfg == NULL)
			continue;
		struct audit_model *m = audit_model_from_config(cfg);
		struct audit_report *r = audit_run(m);
		CHECK_AT(row->line, r->verdict == row->verdict, "verdict %s, want %s",
			 audit_verdict_name(r->verdict), audit_verdict_name(row->verdict));
		struct pf_row as_pf = {row->line, "relayguard", 0, "", "", "", 0};
		check_words(&as_pf, r, row->relayed, AO_RELAYED);
		audit_report_free(r);
		audit_model_free(m);
		config_free(cfg);
	}
	unlink("/tmp/rg-audit-half.cidr");
}

/* explain: the same engine, one request, with its trace. */
struct ex_row {
	int line;
	const char *ip, *login, *from, *to;
	enum policy_action action;
	const char *decider;
	size_t n_steps;
	const char *last_result;
};

static const struct ex_row ex_rows[] = {
	{__LINE__, "203.0.113.9", NULL, "a@example.net", "victim@example.net", POLICY_REJECT,
	 "reject_unauth_destination", 3, "REJECT"},
	{__LINE__, "203.0.113.9", NULL, "a@example.net", "victim%example.net@localhost",
	 POLICY_REJECT, "reject_unauth_destination", 3, "REJECT"},
	{__LINE__, "127.0.0.1", NULL, "a@example.net", "victim@example.net", POLICY_ACCEPT,
	 "permit_mynetworks", 1, "OK"},
	{__LINE__, "203.0.113.9", NULL, "a@example.net", "postmaster@localhost", POLICY_ACCEPT,
	 "none (our destination)", 3, "DUNNO"},
	{__LINE__, "203.0.113.9", NULL, "a@example.net", "nobody@localhost", POLICY_REJECT,
	 "reject_unlisted_recipient", 3, "DUNNO"},
	/* permit_mynetworks says OK even when a rule after the lists refuses */
	{__LINE__, "127.0.0.1", NULL, "a@example.net", "nobody@localhost", POLICY_REJECT,
	 "reject_unlisted_recipient", 1, "OK"},
};

/* explain_submission - the trace is the session's: on a submission port MAIL runs
 * the client, HELO and sender lists; each step shows what that restriction said
 * (permit_sasl_authenticated is OK for a logged-in client, whatever follows), and
 * the trace ends at the step that decided. */
static const struct sub_row {
	int line;
	const char *ip, *login, *from;
	bool at_mail;
	const char *decider, *list;
	const char *steps; /* "list restriction RESULT; ..." */
} sub_rows[] = {
	{__LINE__, "192.0.2.7", "alice@example.org", "ceo@example.org", true,
	 "reject_sender_login_mismatch", "submission_sender_restrictions",
	 "submission_client_restrictions permit_sasl_authenticated OK; "
	 "submission_sender_restrictions reject_sender_login_mismatch REJECT; "},
	{__LINE__, "192.0.2.7", "alice@example.org", "alice@example.org", false,
	 "permit_sasl_authenticated", "smtpd_relay_restrictions",
	 "submission_client_restrictions permit_sasl_authenticated OK; "
	 "submission_sender_restrictions reject_sender_login_mismatch DUNNO; "
	 "smtpd_relay_restrictions permit_mynetworks DUNNO; "
	 "smtpd_relay_restrictions permit_sasl_authenticated OK; "},
	{__LINE__, "192.0.2.7", NULL, "ceo@example.org", true, "reject",
	 "submission_client_restrictions",
	 "submission_client_restrictions permit_sasl_authenticated DUNNO; "
	 "submission_client_restrictions reject REJECT; "},
};

static void test_explain_submission(void)
{
	char *errors = NULL;
	struct config *cfg = config_load(NULL, &errors);
	free(errors);
	cfg->smtpd_sasl_auth_enable = true;
	struct audit_model *m = audit_model_from_config(cfg);
	size_t svc = 0;
	while (svc < m->n_services && !m->services[svc].submission)
		svc++;
	CHECK(svc < m->n_services, "a submission service by default");
	for (size_t i = 0; i < RG_ARRAY_LEN(sub_rows) && svc < m->n_services; i++) {
		const struct sub_row *row = &sub_rows[i];
		struct audit_request rq = {row->ip, NULL, row->login, row->from, "friend@example.net"};
		struct audit_explain e;
		CHECK_AT(row->line, audit_explain(m, svc, &rq, &e) && e.syntax_ok, "explain ran");
		CHECK_AT(row->line, e.at_mail == row->at_mail, "at MAIL: %d", e.at_mail);
		CHECK_STR_AT(row->line, e.decision.restriction, row->decider, "decider");
		CHECK_STR_AT(row->line, e.decision.list, row->list, "list");
		char steps[1024] = "";
		for (size_t k = 0; k < e.n_steps; k++) {
			size_t used = strlen(steps);
			snprintf(steps + used, sizeof(steps) - used, "%s %s %s; ", e.steps[k].list,
				 e.steps[k].restriction, e.steps[k].result);
		}
		CHECK_STR_AT(row->line, steps, row->steps, "trace");
	}
	audit_model_free(m);
	config_free(cfg);
}

/* explain_login - a login is only what the server allows: no AUTH offered,
 * no login (the reply to AUTH); a login that does not own the sender is
 * refused at MAIL, before any relay restriction is evaluated. */
static void test_explain_login(void)
{
	char *errors = NULL;
	struct config *cfg = config_load(NULL, &errors);
	free(errors);
	struct audit_model *m = audit_model_from_config(cfg);
	struct audit_request rq = {"203.0.113.9", NULL, "bob", "bob@localhost", "v@example.net"};
	struct audit_explain e;
	CHECK(audit_explain(m, 0, &rq, &e) && e.auth_refused, "AUTH is not offered by default");
	CHECK_STR_AT(__LINE__, e.error, "503 5.5.1 Error: authentication not enabled",
		     "the reply to AUTH");
	audit_model_free(m);
	cfg->smtpd_sasl_auth_enable = true;
	m = audit_model_from_config(cfg);
	CHECK(audit_explain(m, 0, &rq, &e) && !e.auth_refused, "AUTH offered");
	rq.from = "a@example.net";
	CHECK(audit_explain(m, 0, &rq, &e) && e.at_mail, "bob does not own a@example.net");
	CHECK(e.n_steps == 0, "%zu relay steps shown for a session refused at MAIL", e.n_steps);
	audit_model_free(m);
	config_free(cfg);
}

static void test_explain(void)
{
	char *errors = NULL;
	struct config *cfg = config_load(NULL, &errors);
	free(errors);
	struct audit_model *m = audit_model_from_config(cfg);
	for (size_t i = 0; i < RG_ARRAY_LEN(ex_rows); i++) {
		const struct ex_row *row = &ex_rows[i];
		struct audit_request rq = {row->ip, "client.example.org", row->login, row->from,
					   row->to};
		struct audit_explain e;
		CHECK_AT(row->line, audit_explain(m, 0, &rq, &e) && e.syntax_ok, "explain ran");
		CHECK_AT(row->line, e.decision.action == row->action, "action %d", e.decision.action);
		CHECK_STR_AT(row->line, e.decision.restriction, row->decider, "decider");
		CHECK_AT(row->line, e.n_steps == row->n_steps, "%zu steps", e.n_steps);
		if (e.n_steps > 0)
			CHECK_STR_AT(row->line, e.steps[e.n_steps - 1].result, row->last_result,
				     "last step");
	}
	struct audit_request bad = {"not-an-ip", NULL, NULL, "a@example.net", "b@example.net"};
	struct audit_explain e;
	CHECK(!audit_explain(m, 0, &bad, &e), "a client that is not an address is refused");
	struct audit_request syn = {"203.0.113.9", NULL, NULL, "a@example.net", "b@@"};
	CHECK(audit_explain(m, 0, &syn, &e) && !e.syntax_ok, "bad recipient syntax");
	audit_model_free(m);
	config_free(cfg);
	test_explain_login();
	test_explain_submission();
}

/* mynetworks_style: what Postfix trusts for one interface when mynetworks is unset. */
static const struct {
	int line;
	const char *style, *addr, *subnet, *want;
} style_rows[] = {
	{__LINE__, "host", "192.0.2.7", "192.0.2.0/28", "192.0.2.7/32"},
	{__LINE__, "subnet", "192.0.2.7", "192.0.2.0/28", "192.0.2.0/28"},
	/* class: the whole class A, B or C network, whatever the netmask */
	{__LINE__, "class", "20.1.2.3", "20.1.2.0/24", "20.0.0.0/8"},
	{__LINE__, "class", "172.17.0.2", "172.17.0.0/24", "172.17.0.0/16"},
	{__LINE__, "class", "192.0.2.7", "192.0.2.0/28", "192.0.2.0/24"},
	{__LINE__, "class", "2001:db8::5", "[2001:db8::]/64", "[2001:db8::]/64"},
	{__LINE__, "host", "2001:db8::5", "[2001:db8::]/64", "[2001:db8::5]/128"},
};

static void test_mynetworks_style(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(style_rows); i++) {
		struct host_network hn = {0};
		char err[128], text[80];
		CHECK_AT(style_rows[i].line, ip_parse(style_rows[i].addr, &hn.addr) &&
			 cidr_parse(style_rows[i].subnet, &hn.cidr, err, sizeof(err)), "row");
		struct cidr c = audit_style_network(style_rows[i].style, &hn);
		cidr_format(&c, text, sizeof(text));
		CHECK_STR_AT(style_rows[i].line, text, style_rows[i].want, style_rows[i].style);
	}
}

/* mynetworks_style = subnet on a public address: wider than a /24 (IPv6 /64)
 * is suspicious; provider-sized ones are mynetworks-wide-public's. */
static const struct {
	int line;
	const char *style, *addr, *subnet;
	bool flagged;
} wide_subnet_rows[] = {
	{__LINE__, "subnet", "203.0.113.7", "203.0.112.0/20", true},  /* a provider's shared /20 */
	{__LINE__, "subnet", "203.0.113.7", "203.0.112.0/22", true},
	{__LINE__, "subnet", "203.0.113.7", "203.0.112.0/23", true},
	{__LINE__, "subnet", "203.0.113.7", "203.0.113.0/24", false}, /* an office, a rack */
	{__LINE__, "subnet", "203.0.113.7", "203.0.113.0/28", false},
	{__LINE__, "subnet", "151.101.5.5", "151.101.0.0/16", false}, /* wide-public's */
	{__LINE__, "subnet", "10.1.2.3", "10.1.0.0/16", false},       /* private */
	{__LINE__, "subnet", "100.64.1.2", "100.64.0.0/20", false},   /* CGNAT: nat-docker-vpn's */
	{__LINE__, "host", "203.0.113.7", "203.0.112.0/20", false},
	{__LINE__, "class", "203.0.113.7", "203.0.112.0/20", false}, /* its /24: class C */
	{__LINE__, "subnet", "2001:db8::5", "[2001:db8::]/64", false},
	{__LINE__, "subnet", "2001:db8::5", "[2001:db8::]/48", true},
	{__LINE__, "class", "2001:db8::5", "[2001:db8::]/56", true}, /* IPv6: class is subnet */
	{__LINE__, "subnet", "fd00::5", "[fd00::]/48", false},
	/* the edges: just narrower than a provider's block, just outside the
	 * ranges that are not the Internet's */
	{__LINE__, "subnet", "203.0.113.7", "203.0.0.0/17", true},
	{__LINE__, "subnet", "2001:db8::5", "[2001:db8::]/33", true},
	{__LINE__, "subnet", "2001:db8::5", "[2001:db8::]/63", true},
	{__LINE__, "subnet", "100.127.1.2", "100.127.0.0/20", false}, /* CGNAT's last /20 */
	{__LINE__, "subnet", "100.128.1.2", "100.128.0.0/20", true},  /* past CGNAT */
	{__LINE__, "subnet", "172.31.1.2", "172.31.0.0/20", false},   /* a cloud's default VPC */
	{__LINE__, "subnet", "172.32.1.2", "172.32.0.0/20", true},    /* past 172.16/12 */
	{__LINE__, "subnet", "169.254.1.2", "169.254.0.0/20", false}, /* link-local */
	{__LINE__, "subnet", "fe80::5", "[fe80::]/48", false},
	{__LINE__, "class", "150.1.2.3", "150.1.0.0/20", false}, /* its /16: wide-public's */
};

static void test_mynetworks_style_wide_subnet(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(wide_subnet_rows); i++) {
		struct host_network hn[2] = {0};
		char err[128];
		CHECK_AT(wide_subnet_rows[i].line, ip_parse(wide_subnet_rows[i].addr, &hn[1].addr) &&
			 cidr_parse(wide_subnet_rows[i].subnet, &hn[1].cidr, err, sizeof(err)), "row");
		rg_strlcpy(hn[1].ifname, "eth0", sizeof(hn[1].ifname));
		ip_parse("127.0.0.1", &hn[0].addr); /* lo: never a finding */
		cidr_parse("127.0.0.0/8", &hn[0].cidr, err, sizeof(err));
		struct audit_finding *f = NULL;
		size_t nf = 0;
		audit_style_findings(wide_subnet_rows[i].style, hn, 2, &f, &nf);
		CHECK_AT(wide_subnet_rows[i].line, nf == (wide_subnet_rows[i].flagged ? 1u : 0u),
			 "%s %s: %zu findings", wide_subnet_rows[i].style, wide_subnet_rows[i].subnet, nf);
		if (nf == 1)
			CHECK_AT(wide_subnet_rows[i].line,
				 strcmp(f[0].id, "mynetworks-style-wide-subnet") == 0 &&
				 f[0].severity == SEV_SUSPICIOUS && strstr(f[0].text, "eth0") &&
				 strstr(f[0].fix, "mynetworks_style = host"), "%s / %s", f[0].text,
				 f[0].fix);
		for (size_t k = 0; k < nf; k++) {
			free(f[k].text);
			free(f[k].fix);
		}
		free(f);
	}
}

/* The JSON output is one object and carries every service. */
static void test_json(void)
{
	char err[256];
	struct audit_model *m = audit_model_from_postfix(PF "sender-hole", err, sizeof(err));
	if (m == NULL) {
		CHECK(false, "%s", err);
		return;
	}
	struct audit_report *r = audit_run(m);
	struct strbuf sb;
	strbuf_init(&sb);
	audit_print_json(r, &sb);
	CHECK(sb.data[0] == '{' && strstr(sb.data, "\"verdict\":\"open\"") != NULL &&
	      strstr(sb.data, "\"relayed\":[\"sender-host\",\"sender-domain\",\"sender-unqualified\"]")
		      != NULL,
	      "json: %.300s", sb.data);
	strbuf_free(&sb);
	audit_report_free(r);
	audit_model_free(m);
}

int main(void)
{
	test_postfix_rows();
	test_postfix_reader();
	test_relayguard_rows();
	test_explain();
	test_json();
	test_mynetworks_style();
	test_mynetworks_style_wide_subnet();
	return check_summary("audit");
}
