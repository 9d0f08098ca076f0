/*
 * audit_cmd.c - relayguard audit / relayguard explain (see audit_cmd.h).
 *
 * SYNOPSIS
 *	relayguard audit [-c main.cf] [--postfix DIR] [--json] [--verbose]
 *	relayguard explain [-c FILE] --client IP [--helo NAME] [--login USER]
 *	                   [--port smtpd|submission] --from A --to B [--json]
 */
#include "cli/audit_cmd.h"
#include "cli/cli.h"
#include "audit/audit.h"
#include "config/config.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_audit[] =
	"usage: relayguard audit [-c FILE] [--postfix DIR] [--json] [--verbose]\n"
	"\n"
	"Could this configuration relay, for whom, and why? Offline: no mail is sent.\n"
	"Every test of 'relayguard probe' runs, for every listener (or master.cf smtpd\n"
	"service) and for a stranger, a client inside mynetworks and an authenticated\n"
	"user, through the server's own address resolution and relay policy. Prints\n"
	"what each class could do, the restriction and list that decided, the fix, and\n"
	"the classic mistakes by name.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   relayguard's configuration (default: the embedded one)\n"
	"  --postfix DIR       audit a Postfix configuration (DIR/main.cf, DIR/master.cf)\n"
	"  --json              one JSON object\n"
	"  -v, --verbose       every test of every class, not only the ones that matter\n"
	"\n"
	"Exit: 0 closed, 1 open (a stranger relays), 3 suspicious, 2 undecided\n"
	"(something it cannot evaluate, e.g. a policy service), 64 usage,\n"
	"78 unreadable configuration.\n";

static const char usage_explain[] =
	"usage: relayguard explain [-c FILE] --client IP [--helo NAME] [--login USER]\n"
	"                          [--port smtpd|submission] --from A --to B [--json]\n"
	"\n"
	"The decision the server would make at RCPT for this client and envelope, and\n"
	"why: the addresses as resolved (routing undone), each restriction in order\n"
	"with its result, the one that decided and the exact reply.\n"
	"Exit: 0 accepted, 1 refused or deferred, 2 undecided, 64 usage, 78 config.\n";

struct cmd_opts {
	const char *config, *postfix, *client, *helo, *login, *port, *from, *to;
	bool json, verbose;
};

/* take - "--name VALUE"; true when argv[*i] was NAME (and VALUE existed). */
static bool take(int argc, char **argv, int *i, const char *s, const char *l, const char **out)
{
	if (strcmp(argv[*i], l) != 0 && (s == NULL || strcmp(argv[*i], s) != 0))
		return false;
	if (*i + 1 >= argc)
		return false;
	*out = argv[++*i];
	return true;
}

/* parse - returns -1 for help, 0 ok, 1 usage error. */
static int parse(int argc, char **argv, struct cmd_opts *o)
{
	if (cli_asks_help(argc, argv)) /* even after a bad option */
		return -1;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0)
			o->json = true;
		else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
			o->verbose = true;
		else if (!take(argc, argv, &i, "-c", "--config", &o->config) &&
			 !take(argc, argv, &i, NULL, "--postfix", &o->postfix) &&
			 !take(argc, argv, &i, NULL, "--client", &o->client) &&
			 !take(argc, argv, &i, NULL, "--helo", &o->helo) &&
			 !take(argc, argv, &i, NULL, "--login", &o->login) &&
			 !take(argc, argv, &i, NULL, "--port", &o->port) &&
			 !take(argc, argv, &i, NULL, "--from", &o->from) &&
			 !take(argc, argv, &i, NULL, "--to", &o->to)) {
			fprintf(stderr, "relayguard: unknown or incomplete option \"%s\" (try --help)\n", a);
			return 1;
		}
	}
	return 0;
}

/* load - the model, or NULL after saying why (exit 78). *cfg keeps relayguard's config. */
static struct audit_model *load(const struct cmd_opts *o, struct config **cfg)
{
	*cfg = NULL;
	if (o->postfix != NULL) {
		char err[1024];
		struct audit_model *m = audit_model_from_postfix(o->postfix, err, sizeof(err));
		if (m == NULL)
			fprintf(stderr, "relayguard: %s\n", err);
		return m;
	}
	*cfg = cli_load_config(o->config, false);
	if (*cfg == NULL)
		return NULL;
	return audit_model_from_config(*cfg);
}

/* emit - write and free the output. */
static void emit(struct strbuf *sb)
{
	fputs(sb->data ? sb->data : "", stdout);
	strbuf_free(sb);
}

int audit_main(int argc, char **argv)
{
	struct cmd_opts o = {0};
	int rc = parse(argc, argv, &o);
	if (rc != 0 || o.client || o.from || o.to || (o.config && o.postfix)) {
		fputs(usage_audit, rc < 0 ? stdout : stderr);
		return rc < 0 ? 0 : AUDIT_EXIT_USAGE;
	}
	struct config *cfg;
	struct audit_model *m = load(&o, &cfg);
	if (m == NULL)
		return AUDIT_EXIT_CONFIG;
	struct audit_report *r = audit_run(m);
	struct strbuf sb;
	strbuf_init(&sb);
	if (o.json)
		audit_print_json(r, &sb);
	else
		audit_print_text(r, o.verbose, &sb);
	emit(&sb);
	rc = audit_exit_code(r->verdict);
	audit_report_free(r);
	audit_model_free(m);
	config_free(cfg);
	return rc;
}

/* pick_service - the first service of the wanted kind. */
static bool pick_service(const struct audit_model *m, const char *port, size_t *svc)
{
	bool sub = port != NULL && strcmp(port, "submission") == 0;
	if (port != NULL && !sub && strcmp(port, "smtpd") != 0)
		return false;
	for (size_t i = 0; i < m->n_services; i++) {
		if (m->services[i].submission_like == sub) {
			*svc = i;
			return true;
		}
	}
	return false;
}

/* explain_usage_error - what is wrong with explain's options, named (NULL: nothing). */
static const char *explain_usage_error(const struct cmd_opts *o, char *buf, size_t len)
{
	if (o->verbose)
		return "-v/--verbose is audit's option";
	if (o->client && o->from && o->to)
		return NULL;
	snprintf(buf, len, "missing %s%s%s%s%s", o->client ? "" : "--client",
		 !o->client && (!o->from || !o->to) ? ", " : "", o->from ? "" : "--from",
		 !o->from && !o->to ? ", " : "", o->to ? "" : "--to");
	return buf;
}

int explain_main(int argc, char **argv)
{
	struct cmd_opts o = {0};
	char why[96];
	int rc = parse(argc, argv, &o);
	const char *wrong = rc == 0 ? explain_usage_error(&o, why, sizeof(why)) : NULL;
	if (wrong != NULL) {
		fprintf(stderr, "relayguard explain: %s (try --help)\n", wrong);
		return AUDIT_EXIT_USAGE;
	}
	if (rc != 0) {
		fputs(usage_explain, rc < 0 ? stdout : stderr);
		return rc < 0 ? 0 : AUDIT_EXIT_USAGE;
	}
	struct config *cfg;
	struct audit_model *m = load(&o, &cfg);
	if (m == NULL)
		return AUDIT_EXIT_CONFIG;
	size_t svc = 0;
	struct audit_request rq = {o.client, o.helo, o.login, o.from, o.to};
	struct audit_explain *e = xmalloc(sizeof(*e));
	rc = AUDIT_EXIT_USAGE;
	if (!pick_service(m, o.port, &svc))
		fprintf(stderr, "relayguard: no %s service in this configuration (--port smtpd "
			"or submission)\n", o.port ? o.port : "smtpd");
	else if (!audit_explain(m, svc, &rq, e))
		fprintf(stderr, "relayguard: --client %s is not an IP address\n", o.client);
	else {
		struct strbuf sb;
		strbuf_init(&sb);
		if (o.json)
			audit_explain_json(m, svc, &rq, e, &sb);
		else
			audit_explain_text(m, svc, &rq, e, &sb);
		emit(&sb);
		bool refused = !e->syntax_ok || e->auth_refused; /* before MAIL */
		rc = refused ? 1 : e->undecided ? 2 : e->decision.action == POLICY_ACCEPT ? 0 : 1;
	}
	free(e);
	audit_model_free(m);
	config_free(cfg);
	return rc;
}

/* trick_text - one accepted trick, as an operator reads it. */
static char *trick_text(const struct audit_service_report *sr, const struct audit_case *c)
{
	return xasprintf("%s: %s (%s): client %s, HELO %s, MAIL FROM:<%s>, RCPT TO:<%s> "
			 "(goes to %s) accepted by %s in %s; fix: %s", sr->svc->name, c->test->id,
			 c->test->name, c->client, c->helo, c->mail, c->rcpt, c->resolved,
			 c->restriction ? c->restriction : "-", c->list ? c->list : "-",
			 c->test->fix);
}

/* Who asks for the self-test: the verdict's words and level depend on it. */
enum selftest_for {
	SELFTEST_FOR_START,  /* serve, before it binds: refused means not starting */
	SELFTEST_FOR_RELOAD, /* SIGHUP: refused means the running configuration stays */
	SELFTEST_FOR_CHECK,  /* relayguard config: what serve would do with the file */
};

static const struct {
	enum log_level level; /* of the open-relay lines and the verdict */
	const char *verdict;
} selftest_words[] = {
	[SELFTEST_FOR_START] = {LOG_FATAL,
		"a stranger could relay through this configuration; not starting "
		"(see 'relayguard audit -c FILE'; relay_selftest = warn starts anyway)"},
	/* the server runs on: no "fatal" for monitoring to take for its death */
	[SELFTEST_FOR_RELOAD] = {LOG_ERROR,
		"reload refused: a stranger could relay through the edited configuration; "
		"the running configuration stays (see 'relayguard audit -c FILE'; "
		"relay_selftest = warn takes it anyway)"},
	[SELFTEST_FOR_CHECK] = {LOG_FATAL,
		"a stranger could relay through this configuration; relayguard serve would "
		"not start with it, nor take it on reload (see 'relayguard audit -c FILE'; "
		"relay_selftest = warn starts anyway)"},
};

/* report_trick - refuse (at the asker's level) or warn (an open-relay-risk line). */
static void report_trick(const struct config *cfg, enum selftest_for why, const char *text)
{
	if (cfg->relay_selftest == SELFTEST_WARN)
		log_ev(LOG_WARNING, "open-relay-risk", {"selftest", "relayed"}, {"trick", text});
	else
		log_ev(selftest_words[why].level, "open-relay", {"trick", text});
}

/* report_open - every stranger relay and every open-relay mistake; the count. */
static size_t report_open(const struct config *cfg, enum selftest_for why,
			  const struct audit_report *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_services; i++) {
		const struct audit_service_report *sr = &r->services[i];
		for (size_t k = 0; k < sr->n_cases; k++) {
			const struct audit_case *c = &sr->cases[k];
			if (c->cls != AC_STRANGER || c->outcome != AO_RELAYED)
				continue;
			char *text = trick_text(sr, c);
			report_trick(cfg, why, text);
			free(text);
			n++;
		}
	}
	for (size_t k = 0; k < r->n_findings; k++) {
		if (r->findings[k].severity != SEV_OPEN)
			continue;
		char *text = xasprintf("%s: %s", r->findings[k].id, r->findings[k].text);
		report_trick(cfg, why, text);
		free(text);
		n++;
	}
	return n;
}

/* selftest - the audit of cfg, its lines logged for WHY; 0 or 78. */
static int selftest(const struct config *cfg, enum selftest_for why)
{
	if (cfg->relay_selftest == SELFTEST_OFF) {
		log_ev(LOG_WARNING, "relay-selftest-off",
		       {"text", "relay_selftest = off: an open relay would start without a word"});
		return 0;
	}
	struct audit_model *m = audit_model_from_config(cfg);
	struct audit_report *r = audit_run(m);
	size_t n = report_open(cfg, why, r);
	audit_report_free(r);
	audit_model_free(m);
	if (n == 0 || cfg->relay_selftest == SELFTEST_WARN)
		return 0;
	char count[32];
	snprintf(count, sizeof(count), "%zu", n);
	log_ev(selftest_words[why].level, "relay-selftest-failed", {"tricks", count},
	       {"text", selftest_words[why].verdict});
	return AUDIT_EXIT_CONFIG;
}

int audit_selftest(const struct config *cfg)
{
	return selftest(cfg, SELFTEST_FOR_START);
}

int audit_selftest_reload(const struct config *cfg)
{
	return selftest(cfg, SELFTEST_FOR_RELOAD);
}

int audit_selftest_check(const struct config *cfg)
{
	return selftest(cfg, SELFTEST_FOR_CHECK);
}
