/*
 * audit - could this configuration relay, for whom, and why? Answered offline.
 *
 * Owns: a model of a mail server's relay-relevant configuration (one entry per
 * listener or master.cf smtpd service, with its own restriction lists), built
 * from relayguard's own struct config (model.c) or from a Postfix main.cf +
 * master.cf (postfix.c, the only file here that reads files); the engine
 * (audit.c) that runs every envelope test of the probe battery for three
 * client classes (a stranger, a client inside mynetworks, an authenticated
 * user) through address_resolve() and policy_check_rcpt(), the very code the
 * server runs; the named classic mistakes; the verdict and exit code; and
 * the per-restriction trace `relayguard explain` prints (audit_explain), and
 * the text and JSON output (output.c, into a strbuf).
 * Postfix restrictions relayguard does not have are lowered, per request, to
 * ones it has (an access table hit becomes permit/reject, a reject-only check
 * a stranger can pass is dropped); what cannot be known offline (a policy
 * service, a milter, a pcre: table, an unreadable file) is evaluated as
 * permit, DUNNO and reject in turn, and the test is undecided when they differ.
 * Must not: do I/O outside postfix.c (the reader loads every table first),
 * send mail, or guess "safe" for anything it cannot evaluate.
 */
#ifndef RG_AUDIT_H
#define RG_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "policy/policy.h"
#include "probe/probe.h"
#include "util/util.h"

/* Exit codes, as the probe's. */
enum { AUDIT_EXIT_CLOSED = 0, AUDIT_EXIT_OPEN = 1, AUDIT_EXIT_UNDECIDED = 2,
       AUDIT_EXIT_SUSPICIOUS = 3, AUDIT_EXIT_USAGE = 64, AUDIT_EXIT_CONFIG = 78 };

/* What a restriction list item is to the engine. */
enum audit_item_kind {
	AI_NATIVE,    /* a relayguard restriction: evaluated by policy as it is */
	AI_ACCESS,    /* check_{client,helo,sender,recipient}_access with a table we read */
	AI_PASS,      /* can only reject, and a stranger can pass it (reject_rbl_client...) */
	AI_UNDECIDED, /* cannot be evaluated offline (check_policy_service, pcre:, ...) */
};
enum audit_subject { AS_CLIENT, AS_HELO, AS_SENDER, AS_RECIPIENT };

struct audit_item {
	enum audit_item_kind kind;
	struct restriction native;   /* AI_NATIVE */
	enum audit_subject subject;  /* AI_ACCESS */
	const struct map *table;     /* AI_ACCESS */
	const char *text;            /* as written, e.g. "check_sender_access inline:{...}" */
	const char *why;             /* AI_UNDECIDED: the reason; AI_ACCESS: set when
				      * the table holds actions the audit cannot evaluate */
};

struct audit_list {
	const char *param; /* "smtpd_relay_restrictions" */
	struct audit_item *items;
	size_t n;
};

enum { AL_CLIENT, AL_HELO, AL_SENDER, AL_RELAY, AL_RECIPIENT, AL_COUNT };

struct audit_service {
	const char *name;          /* "smtpd_listen 127.0.0.1:2525", "master.cf smtp (inet)" */
	const char *ip;            /* the address the server answers on, for {ip} tests */
	bool submission;           /* relayguard's submission role (submission_* lists) */
	bool submission_like;      /* meant for users (587, 465, "submission" service) */
	bool sasl;                 /* AUTH offered here */
	bool auth_needs_tls;       /* AUTH is on, but only under TLS, which this port lacks */
	bool refuses_all;          /* Postfix: no list can deny, so every RCPT gets 451 */
	const char *undecided;     /* a reason that holds for the whole service (a milter) */
	const char *client_trick;  /* XCLIENT or PROXY accepted here: a client may claim
				    * another address (a trusted one) */
	bool trick_anyone;         /* ... and a stranger may use it */
	struct audit_list lists[AL_COUNT];
};

enum audit_severity { SEV_INFO, SEV_UNDECIDED, SEV_SUSPICIOUS, SEV_OPEN };

struct audit_finding {
	const char *id;      /* "mynetworks-covers-internet", ... (static) */
	enum audit_severity severity;
	const char *service; /* NULL: the whole configuration */
	char *text;
	char *fix;
};

/* The relay-relevant configuration. cfg holds the policy inputs (domains,
 * networks, recipient and login maps); its restriction lists are rebuilt
 * from each service's audit lists for every request. */
struct audit_model {
	const char *origin;      /* "relayguard /etc/relayguard/main.cf", "Postfix /etc/postfix" */
	bool postfix;
	struct config cfg;       /* shallow: lists and tables owned by the model or its source */
	const char *domain;      /* {d}: the first of our domains */
	struct audit_service *services;
	size_t n_services;
	struct audit_finding *findings; /* found by the reader (aliases, unreadable files) */
	size_t n_findings;
	/* storage the model owns */
	void **owned;
	size_t n_owned;
	struct map **owned_maps;
	size_t n_owned_maps;
};

/* ---- building models ---- */

/* A model of relayguard's own configuration (borrows from cfg; pure). */
struct audit_model *audit_model_from_config(const struct config *cfg);
/* A model of the Postfix configuration in DIR (main.cf, master.cf); NULL with
 * err filled when main.cf cannot be read (exit 78). */
struct audit_model *audit_model_from_postfix(const char *dir, char *err, size_t errlen);
/* The network Postfix's mynetworks_style (host, subnet, class) trusts for one
 * of the host's interfaces; postfix.c reads them when mynetworks is unset. */
struct cidr audit_style_network(const char *style, const struct host_network *hn);
/* mynetworks_style = subnet (or class, on IPv6) trusts an interface's whole
 * subnet: one of public addresses wider than a /24 (IPv6: a /64), and not
 * already provider-sized (audit_wide_public), is a suspicious finding
 * "mynetworks-style-wide-subnet" added to F (see docs/audit.md for why). */
#define AUDIT_SUBNET_WIDE_V4 24
#define AUDIT_SUBNET_WIDE_V6 64
void audit_style_findings(const char *style, const struct host_network *hn, size_t n,
			  struct audit_finding **f, size_t *nf);
/* Not private, loopback, link-local, CGNAT or unique-local: Internet addresses. */
bool audit_network_public(const struct cidr *c);
/* Public and as wide as a provider's block (a /16 or more; IPv6: a /32 or
 * more): what mynetworks_style = class makes of a public interface address. */
bool audit_wide_public(const struct cidr *c);
void audit_model_free(struct audit_model *m);

/* model helpers shared by the readers */
void *audit_keep(struct audit_model *m, void *p); /* freed with the model */
const char *audit_strdup(struct audit_model *m, const char *s);
const struct map *audit_keep_map(struct audit_model *m, struct map *map);
void audit_add_finding(struct audit_finding **f, size_t *n, const char *id,
		       enum audit_severity sev, const char *service, const char *fix,
		       const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* An access(5) value as Postfix reads it: OK/PERMIT, RELAY and an all-numeric
 * value permit; false for an action the audit does not evaluate (a
 * restriction class name, FILTER, HOLD, ...): never read as DUNNO. */
bool audit_access_parse(const char *value, struct access_result *out);

/* ---- running the battery (pure) ---- */

enum audit_class { AC_STRANGER, AC_MYNETWORKS, AC_AUTHENTICATED, AC_COUNT };
const char *audit_class_name(enum audit_class c);

enum audit_outcome {
	AO_RELAYED,     /* accepted, and it goes to an outside domain */
	AO_LOCAL,       /* accepted for one of our own domains */
	AO_BACKSCATTER, /* an unknown user of ours accepted at RCPT */
	AO_REFUSED,     /* 5xx */
	AO_DEFERRED,    /* 4xx */
	AO_UNDECIDED,   /* depends on something that cannot be evaluated offline */
	AO_SKIPPED,     /* not an envelope test, or not for this service/class */
};
const char *audit_outcome_name(enum audit_outcome o);

struct audit_case {
	const struct probe_test *test;
	enum audit_class cls;
	enum audit_outcome outcome;
	char helo[PROBE_NAME_MAX], mail[PROBE_NAME_MAX + 8], rcpt[PROBE_NAME_MAX + 8];
	char client[RG_IP_STRLEN]; /* the client address (strangers: several are tried,
				    * the worst outcome is kept) */
	char resolved[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2]; /* where RCPT really goes */
	char reply[512];
	const char *restriction; /* what decided */
	const char *list;        /* where it stood */
	const char *why;         /* AO_UNDECIDED / AO_SKIPPED: the reason */
};

enum audit_verdict { AV_CLOSED, AV_OPEN, AV_SUSPICIOUS, AV_UNDECIDED };
const char *audit_verdict_name(enum audit_verdict v);

struct audit_service_report {
	const struct audit_service *svc;
	enum audit_verdict verdict;
	struct audit_case *cases;
	size_t n_cases;
};

struct audit_report {
	const struct audit_model *model;
	enum audit_verdict verdict;
	struct audit_service_report *services;
	size_t n_services;
	struct audit_finding *findings; /* the model's and the engine's */
	size_t n_findings;
};

struct audit_report *audit_run(const struct audit_model *m);
void audit_report_free(struct audit_report *r);
int audit_exit_code(enum audit_verdict v);

/* ---- one request, explained (pure) ---- */

struct audit_request {
	const char *client_ip;
	const char *helo;  /* NULL: none */
	const char *login; /* NULL: not authenticated */
	const char *from;  /* path without <> ("" for the null sender) */
	const char *to;
};

#define AUDIT_TRACE_MAX 64
struct audit_step {
	const char *list;
	const char *restriction;
	const char *result; /* "DUNNO", "OK", "REJECT", "DEFER", "UNDECIDED", "PASS" */
};

struct audit_explain {
	bool syntax_ok;          /* both paths parsed */
	bool auth_refused;       /* --login where AUTH is not offered: no session gets there */
	char error[256];         /* either way: the reply the server gives (501, 503) */
	struct addr_resolution sender_res, rcpt_res;
	unsigned routing;        /* ROUTE_* of the recipient */
	struct audit_step steps[AUDIT_TRACE_MAX];
	size_t n_steps;          /* only what the session evaluates before it decides */
	struct policy_decision decision;
	bool at_mail;            /* refused at MAIL FROM (the RCPT is never reached) */
	bool undecided;
	const char *undecided_why;
	/* aliases and hosted domains (address/expand.h): where an accepted
	 * recipient's mail goes; "" when no table matched */
	char expansion[1024];    /* "a@x -> b@y (virtual_alias_maps)\n" per step */
	char delivers_to[1024];  /* the final addresses, ", " separated */
	bool forwards_outside;   /* one of them is not ours */
};

/* Run one request against service SVC of the model; false when the client
 * address does not parse. */
bool audit_explain(const struct audit_model *m, size_t svc, const struct audit_request *rq,
		   struct audit_explain *out);

/* ---- output (output.c) ---- */
void audit_print_text(const struct audit_report *r, bool verbose, struct strbuf *out);
void audit_print_json(const struct audit_report *r, struct strbuf *out);
void audit_explain_text(const struct audit_model *m, size_t svc, const struct audit_request *rq,
			const struct audit_explain *e, struct strbuf *out);
void audit_explain_json(const struct audit_model *m, size_t svc, const struct audit_request *rq,
			const struct audit_explain *e, struct strbuf *out);

#endif
