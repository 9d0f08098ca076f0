/*
 * audit.c - the battery, offline, through the server's own decisions (see audit.h).
 *
 * DESCRIPTION
 *	For every service and client class, each envelope test of the probe
 *	battery is expanded with the model's names, parsed and resolved with
 *	address_parse()/address_resolve() and decided by policy_check_mail() /
 *	policy_check_rcpt(), in the order the session calls them. The service's
 *	lists are first lowered to relayguard restrictions for that request
 *	(lower()); items that cannot be evaluated are tried as permit, DUNNO and
 *	reject, and a test whose decision changes with them is undecided.
 *	Pure: everything the engine needs was loaded into the model.
 */
#include "audit/audit.h"
#include "address/expand.h"
#include "util/util.h"

#include <libpsl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VICTIM_LOCAL "relaytest"
#define VICTIM_DOMAIN "example.net"
#define SENDER_LOCAL "relayprobe"
#define NOBODY "audit-nobody-3f9c"
#define DEFAULT_HELO "probe.example.org"
#define STRANGERS_MAX 5 /* one per IPv4 quarter, one IPv6 */

const char *audit_class_name(enum audit_class c)
{
	static const char *names[] = {"stranger", "mynetworks", "authenticated"};
	return c < AC_COUNT ? names[c] : "?";
}

const char *audit_outcome_name(enum audit_outcome o)
{
	static const char *names[] = {"relayed", "local", "backscatter", "refused",
				      "deferred", "undecided", "skipped"};
	return o <= AO_SKIPPED ? names[o] : "?";
}

const char *audit_verdict_name(enum audit_verdict v)
{
	static const char *names[] = {"closed", "open", "suspicious", "undecided"};
	return v <= AV_UNDECIDED ? names[v] : "?";
}

int audit_exit_code(enum audit_verdict v)
{
	switch (v) {
	case AV_OPEN: return AUDIT_EXIT_OPEN;
	case AV_SUSPICIOUS: return AUDIT_EXIT_SUSPICIOUS;
	case AV_UNDECIDED: return AUDIT_EXIT_UNDECIDED;
	case AV_CLOSED: return AUDIT_EXIT_CLOSED;
	}
	return AUDIT_EXIT_UNDECIDED;
}

/* worse - open > suspicious > undecided > closed, as the probe ranks its exits. */
static enum audit_verdict worse(enum audit_verdict a, enum audit_verdict b)
{
	static const int rank[] = {[AV_CLOSED] = 0, [AV_UNDECIDED] = 1, [AV_SUSPICIOUS] = 2,
				   [AV_OPEN] = 3};
	return rank[b] > rank[a] ? b : a;
}

/* ---- one request ---- */

/* The facts a request is lowered with. */
struct request {
	const struct policy_client *client;
	const struct addr_resolution *sender_res; /* NULL: before MAIL */
	const struct address *sender;
	const struct addr_resolution *rcpt_res;   /* NULL: at MAIL */
};

/* key_parents - look up NAME, then each parent domain (bare and with a dot). */
static const char *key_parents(const struct map *t, const char *prefix, const char *name)
{
	char key[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 4];
	for (const char *d = name; d != NULL && *d; d = strchr(d + 1, '.')) {
		const char *v;
		snprintf(key, sizeof(key), "%s%s", prefix, d[0] == '.' ? d + 1 : d);
		if ((v = map_lookup(t, key)) != NULL)
			return v;
		if (d != name && (v = map_lookup(t, d)) != NULL)
			return v; /* ".example.com" */
	}
	return NULL;
}

/* address_lookup - Postfix's access(5) order: user@domain, domain, parents, user@. */
static const char *address_lookup(const struct map *t, const struct address *a,
				  const struct addr_resolution *r)
{
	if (a != NULL && a->null)
		return map_lookup(t, "<>"); /* smtpd_null_access_lookup_key */
	/* Postfix looks up [192.0.2.1] as written; our resolver names it after
	 * our first domain, which must not match that domain's entries */
	const char *domain = a != NULL && a->literal && a->routing == 0 ? a->domain : r->domain;
	char key[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
	snprintf(key, sizeof(key), "%s@%s", r->local, domain);
	const char *v = map_lookup(t, key);
	if (v == NULL)
		v = key_parents(t, "", domain);
	if (v == NULL) {
		snprintf(key, sizeof(key), "%s@", r->local);
		v = map_lookup(t, key);
	}
	return v;
}

/* client_lookup - cidr tables by address; others by address and its octet prefixes. */
static const char *client_lookup(const struct map *t, const struct policy_client *c)
{
	if (t->type == MAP_CIDR)
		return map_lookup_ip(t, &c->ip);
	char key[RG_IP_STRLEN];
	rg_strlcpy(key, c->ip_text, sizeof(key));
	for (;;) {
		const char *v = map_lookup(t, key);
		char *cut = strrchr(key, c->ip.family == AF_INET ? '.' : ':');
		if (v != NULL || cut == NULL)
			return v;
		*cut = '\0';
	}
}

bool audit_access_parse(const char *v, struct access_result *ar)
{
	size_t n = strcspn(v, " \t");
	if (n > 0 && strspn(v, "0123456789") == n && !(n == 3 && (v[0] == '4' || v[0] == '5'))) {
		*ar = (struct access_result){ACCESS_OK, 0, ""}; /* all-numeric: OK */
		return true;
	}
	if (n == 5 && rg_strncasecmp(v, "RELAY", 5) == 0) {
		*ar = (struct access_result){ACCESS_OK, 0, ""};
		return true;
	}
	return map_access_parse(v, ar);
}

/* access_action - what an access table says about this request (DUNNO when
 * silent); false for an action the audit does not know (a restriction class). */
static bool access_action(const struct audit_item *it, const struct request *q,
			  enum access_action *out)
{
	const char *v = NULL;
	switch (it->subject) {
	case AS_CLIENT: v = client_lookup(it->table, q->client); break;
	case AS_HELO:
		v = q->client->helo ? key_parents(it->table, "", q->client->helo) : NULL;
		break;
	case AS_SENDER:
		v = q->sender_res ? address_lookup(it->table, q->sender, q->sender_res) : NULL;
		break;
	case AS_RECIPIENT:
		v = q->rcpt_res ? address_lookup(it->table, NULL, q->rcpt_res) : NULL;
		break;
	}
	struct access_result ar;
	*out = ACCESS_DUNNO;
	if (v == NULL)
		return true;
	if (!audit_access_parse(v, &ar))
		return false;
	*out = ar.action;
	return true;
}

/* Undecided items are tried as each of these in turn. */
enum variant { VAR_PERMIT, VAR_DUNNO, VAR_REJECT, VAR_COUNT };

/* lower_item - the relayguard restriction an item is for this request; false: none. */
static bool lower_item(const struct audit_item *it, const struct request *q, enum variant var,
		       struct restriction *out)
{
	static const enum restriction_kind by_access[] = {
		[ACCESS_OK] = R_PERMIT, [ACCESS_REJECT] = R_REJECT, [ACCESS_DEFER] = R_DEFER};
	*out = (struct restriction){R_PERMIT, it->text, NULL};
	switch (it->kind) {
	case AI_NATIVE:
		*out = it->native;
		return true;
	case AI_PASS:
		return false;
	case AI_ACCESS: {
		enum access_action a;
		if (!access_action(it, q, &a))
			break; /* an action we do not know: tried as each variant */
		out->kind = by_access[a];
		return a != ACCESS_DUNNO;
	}
	case AI_UNDECIDED:
		break;
	}
	out->kind = var == VAR_PERMIT ? R_PERMIT : R_REJECT;
	return var != VAR_DUNNO;
}


/* The lowered lists are sized as the service's own (never truncated: a long
 * list ending in reject_unauth_destination must keep it). */
struct lowered {
	struct restriction *items[AL_COUNT];
	struct config cfg;
};

/* lowered_new - storage for the service's lists, lowered. */
static struct lowered *lowered_new(const struct audit_service *s)
{
	struct lowered *lw = xcalloc(1, sizeof(*lw));
	for (size_t l = 0; l < AL_COUNT; l++)
		lw->items[l] = xcalloc(s->lists[l].n + 1, sizeof(struct restriction));
	return lw;
}

static void lowered_free(struct lowered *lw)
{
	for (size_t l = 0; l < AL_COUNT; l++)
		free(lw->items[l]);
	free(lw);
}

/* lower - the model's config with the service's lists lowered for this request. */
static void lower(const struct audit_model *m, const struct audit_service *s,
		  const struct request *q, enum variant var, struct lowered *lw)
{
	lw->cfg = m->cfg;
	struct restriction_list *dst[AL_COUNT] = {&lw->cfg.client, &lw->cfg.helo, &lw->cfg.sender,
						  &lw->cfg.relay, &lw->cfg.recipient};
	for (size_t l = 0; l < AL_COUNT; l++) {
		const struct audit_list *src = &s->lists[l];
		size_t n = 0;
		for (size_t k = 0; k < src->n; k++)
			if (lower_item(&src->items[k], q, var, &lw->items[l][n]))
				n++;
		*dst[l] = (struct restriction_list){src->param, lw->items[l], n};
	}
	/* the policy picks these on submission ports: they are the service's lists */
	lw->cfg.submission_client = lw->cfg.client;
	lw->cfg.submission_sender = lw->cfg.sender;
}

/* has_undecided - does any list of the service hold an item we cannot evaluate? */
static const char *first_undecided(const struct audit_service *s)
{
	for (size_t l = 0; l < AL_COUNT; l++)
		for (size_t k = 0; k < s->lists[l].n; k++)
			if (s->lists[l].items[k].kind == AI_UNDECIDED ||
			    (s->lists[l].items[k].kind == AI_ACCESS && s->lists[l].items[k].why))
				return s->lists[l].items[k].why;
	return NULL;
}

/* decide - MAIL (rcpt NULL) or RCPT, every variant; false when they disagree. */
static bool decide(const struct audit_model *m, const struct audit_service *s,
		   const struct policy_request *pr, struct policy_decision *out)
{
	struct request q = {pr->client, pr->sender_res, pr->sender, pr->rcpt_res};
	size_t nvar = first_undecided(s) ? VAR_COUNT : 1;
	bool same = true;
	struct lowered *lw = lowered_new(s);
	for (size_t v = 0; v < nvar; v++) {
		struct policy_decision d;
		lower(m, s, &q, (enum variant)v, lw);
		if (pr->rcpt != NULL)
			policy_check_rcpt(&lw->cfg, pr, &d);
		else if (s->submission)
			policy_check_mail(&lw->cfg, pr, &d);
		else if (policy_sender_owned(&lw->cfg, pr, &d))
			d.action = POLICY_ACCEPT;
		if (v == 0)
			*out = d;
		else if (d.action != out->action)
			same = false;
	}
	lowered_free(lw);
	return same;
}

/* ---- the battery ---- */

struct run_ctx {
	const struct audit_model *m;
	const struct audit_service *s;
	struct addr_domains domains;
	struct rg_ip local_ip;
	struct policy_client client;
	char ip_text[RG_IP_STRLEN];
	char login[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
};

/* vars_for - the battery's placeholders for this model and service. */
static void vars_for(const struct run_ctx *x, struct probe_vars *v)
{
	*v = (struct probe_vars){VICTIM_LOCAL, VICTIM_DOMAIN, x->m->domain, x->m->cfg.myhostname,
				 x->s->ip, NOBODY, SENDER_LOCAL, DEFAULT_HELO};
}

/* skip_reason - why a battery row is not an envelope test here (NULL: run it). */
static const char *skip_reason(const struct probe_test *t, const struct audit_service *s,
			       enum audit_class cls)
{
	if (t->kind == PK_SMUGGLE)
		return "SMTP smuggling is about how DATA ends, not about the relay decision";
	if (t->kind == PK_AUTH_PLAIN)
		return "about AUTH before TLS, a session property";
	if (t->flags & (PF_XCLIENT | PF_PROXY))
		return "a connection trick (XCLIENT, PROXY): relayguard has neither; Postfix only "
		       "with smtpd_authorized_xclient_hosts or smtpd_upstream_proxy_protocol";
	if ((t->flags & PF_SUBMISSION) && !s->submission_like)
		return "only on submission services";
	if (t->kind == PK_AUTH_RELAY && cls != AC_AUTHENTICATED)
		return "only for authenticated users";
	return NULL;
}

/* parse_path - "<path>" through the server's parser. */
static bool parse_path(const char *path, struct address *a)
{
	char arg[ADDR_PATH_MAX + 8], err[128];
	const char *params;
	snprintf(arg, sizeof(arg), "<%s>", path);
	return address_parse(arg, a, &params, err, sizeof(err)) == ADDR_OK && params[0] == '\0';
}

/* refused_syntax - the 501 the session gives for a path it cannot parse. */
static void refused_syntax(struct audit_case *c, const char *what)
{
	c->outcome = AO_REFUSED;
	snprintf(c->reply, sizeof(c->reply), "501 5.1.3 Bad %s address syntax", what);
	c->restriction = "address_parse";
	c->list = "address";
}

/* outcome_of - what an RCPT decision means for this test. */
static enum audit_outcome outcome_of(const struct probe_test *t, const struct policy_decision *d,
				     const struct addr_resolution *r)
{
	if (d->action == POLICY_REJECT)
		return AO_REFUSED;
	if (d->action == POLICY_DEFER)
		return AO_DEFERRED;
	if (r->cls == ADDR_CLASS_REMOTE)
		return AO_RELAYED;
	return t->kind == PK_LOCAL ? AO_BACKSCATTER : AO_LOCAL;
}

/* take_decision - the reply and what decided, from the policy. */
/* session_reply - the reply the session really sends at MAIL: on submission ports
 * a client list's refusal before AUTH is "530 5.7.0 Authentication required". */
static void session_reply(const struct audit_service *s, const struct policy_request *pr,
			  struct policy_decision *d)
{
	if (s->submission && d->action == POLICY_REJECT && !pr->client->sasl_authenticated &&
	    d->list != NULL && strcmp(d->list, s->lists[AL_CLIENT].param) == 0)
		snprintf(d->reply, sizeof(d->reply), "530 5.7.0 Authentication required");
}

static void take_decision(struct audit_case *c, const struct policy_decision *d)
{
	rg_strlcpy(c->reply, d->reply, sizeof(c->reply));
	c->restriction = d->restriction;
	c->list = d->list;
}

/* mail_step - MAIL FROM as the session handles it; false when the test ends there. */
static bool mail_step(struct run_ctx *x, struct audit_case *c, struct address *from,
		      struct addr_resolution *fres)
{
	struct probe_vars v;
	vars_for(x, &v);
	bool parsed = parse_path(c->mail, from);
	if (parsed) {
		address_resolve(from, &x->domains, fres);
		snprintf(x->login, sizeof(x->login), "%s@%s", from->null ? SENDER_LOCAL : fres->local,
			 from->null ? x->m->domain : fres->domain);
		struct policy_request pr = {&x->client, from, NULL, fres, NULL, SPF_NONE};
		struct policy_decision d;
		bool same = decide(x->m, x->s, &pr, &d);
		if (same && d.action == POLICY_ACCEPT)
			return true;
		session_reply(x->s, &pr, &d);
		if (!same || (c->test->flags & PF_SENDER)) {
			c->outcome = !same ? AO_UNDECIDED
				     : d.action == POLICY_DEFER ? AO_DEFERRED : AO_REFUSED;
			c->why = !same ? first_undecided(x->s) : NULL;
			take_decision(c, &d);
			return false;
		}
	} else if (c->test->flags & PF_SENDER) {
		refused_syntax(c, "sender");
		return false;
	}
	/* the probe goes on with a plain sender when MAIL was refused */
	probe_expand("{sl}@{vd}", &v, c->mail, sizeof(c->mail));
	parse_path(c->mail, from);
	address_resolve(from, &x->domains, fres);
	snprintf(x->login, sizeof(x->login), "%s@%s", fres->local, fres->domain);
	return true;
}

/* run_case - one test for one class on one service. */
static void run_case(struct run_ctx *x, struct audit_case *c)
{
	struct probe_vars v;
	vars_for(x, &v);
	probe_expand(c->test->helo ? c->test->helo : "{h}", &v, c->helo, sizeof(c->helo));
	probe_expand(c->test->mail, &v, c->mail, sizeof(c->mail));
	probe_expand(c->test->rcpt, &v, c->rcpt, sizeof(c->rcpt));
	x->client.helo = c->helo;
	x->client.sasl_username = x->login;
	struct address from, to;
	struct addr_resolution fres, tres;
	if (!mail_step(x, c, &from, &fres))
		return;
	if (!parse_path(c->rcpt, &to)) {
		refused_syntax(c, "recipient");
		return;
	}
	address_resolve(&to, &x->domains, &tres);
	snprintf(c->resolved, sizeof(c->resolved), "%s@%s", tres.local, tres.domain);
	struct policy_request pr = {&x->client, &from, &to, &fres, &tres, SPF_NONE};
	struct policy_decision d;
	bool same = decide(x->m, x->s, &pr, &d);
	take_decision(c, &d);
	c->outcome = same ? outcome_of(c->test, &d, &tres) : AO_UNDECIDED;
	if (!same)
		c->why = first_undecided(x->s);
	if (x->s->refuses_all && same) { /* never turns an undecided test closed */
		c->outcome = AO_DEFERRED;
		snprintf(c->reply, sizeof(c->reply), "(no SMTP service: Postfix's smtpd will not run)");
		c->restriction = "(no list can refuse an unauthorised destination)";
	}
}

/* in_mynetworks - is IP one of the trusted networks? */
static bool in_mynetworks(const struct config *cfg, const struct rg_ip *ip)
{
	for (size_t k = 0; k < cfg->n_mynetworks; k++)
		if (cidr_match(&cfg->mynetworks[k], ip))
			return true;
	return false;
}

/* pick_strangers - Internet clients outside mynetworks: one in each quarter of
 * IPv4 (a client table that trusts half the Internet shows with one of them)
 * and a global IPv6 address. A quarter whose candidates (in different /8s)
 * are all in mynetworks is trusted wholesale: its first one is taken. */
static size_t pick_strangers(const struct config *cfg, const char **out)
{
	static const char *const quarters[STRANGERS_MAX][5] = {
		{"20.0.0.9", "45.0.0.9", "8.0.0.9", "33.0.0.9", "60.0.0.9"},
		{"80.0.0.9", "93.0.0.9", "66.0.0.9", "110.0.0.9", "126.0.0.9"},
		{"151.0.0.9", "130.0.0.9", "185.0.0.9", "160.0.0.9", "190.0.0.9"},
		{"203.0.113.9", "198.51.100.9", "192.0.2.9", "200.0.0.9", "220.0.0.9"},
		{"2a00:1450::9", "2001:db8::9", "2600::9", "2400::9", "2c0f::9"}};
	for (size_t q = 0; q < STRANGERS_MAX; q++) {
		out[q] = quarters[q][0];
		for (size_t k = 0; k < RG_ARRAY_LEN(quarters[q]); k++) {
			struct rg_ip ip;
			if (ip_parse(quarters[q][k], &ip) && !in_mynetworks(cfg, &ip)) {
				out[q] = quarters[q][k];
				break;
			}
		}
	}
	return STRANGERS_MAX;
}

/* class_client - the client facts of a class; false when the class cannot exist here. */
static bool class_client(struct run_ctx *x, enum audit_class cls, const char *stranger,
			 const char **why)
{
	const struct config *cfg = &x->m->cfg;
	x->client = (struct policy_client){.name = "unknown", .submission = x->s->submission};
	const char *ip = stranger;
	if (cls == AC_MYNETWORKS) {
		if (cfg->n_mynetworks == 0) {
			*why = "mynetworks is empty";
			return false;
		}
		struct rg_ip net = cfg->mynetworks[0].net;
		unsigned max = net.family == AF_INET ? 32 : 128;
		if (cfg->mynetworks[0].prefix < max)
			net.addr[net.family == AF_INET ? 3 : 15] |= 1; /* a host, not the network */
		ip_format(&net, x->ip_text, sizeof(x->ip_text));
		ip = x->ip_text;
	}
	if (cls == AC_AUTHENTICATED && !x->s->sasl) {
		*why = "AUTH is not offered on this service";
		return false;
	}
	rg_strlcpy(x->ip_text, ip, sizeof(x->ip_text));
	ip_parse(x->ip_text, &x->client.ip);
	x->client.ip_text = x->ip_text;
	x->client.sasl_authenticated = cls == AC_AUTHENTICATED;
	return true;
}

/* stranger_rank - which of a test's stranger runs is reported: the worst. */
static int stranger_rank(enum audit_outcome o)
{
	return o == AO_RELAYED ? 2 : o == AO_UNDECIDED ? 1 : 0;
}

/* run_one - one test for one class, as the client at IP. */
static void run_one(struct run_ctx *x, enum audit_class cls, const char *ip,
		    struct audit_case *c)
{
	const char *no_class = NULL;
	class_client(x, cls, ip, &no_class);
	rg_strlcpy(c->client, x->ip_text, sizeof(c->client));
	run_case(x, c);
}

/* run_test - one battery row for one class; a stranger from every address. */
static void run_test(struct run_ctx *x, enum audit_class cls, const char *const *strangers,
		     size_t n_strangers, struct audit_case *c)
{
	run_one(x, cls, strangers[0], c);
	for (size_t k = 1; cls == AC_STRANGER && k < n_strangers; k++) {
		struct audit_case other = {.test = c->test, .cls = cls};
		run_one(x, cls, strangers[k], &other);
		if (stranger_rank(other.outcome) > stranger_rank(c->outcome))
			*c = other;
	}
}

/* run_service - every test for every class on one service. */
static void run_service(const struct audit_model *m, const struct audit_service *s,
			struct audit_service_report *sr)
{
	struct run_ctx x = {.m = m, .s = s};
	bool have_ip = ip_parse(s->ip, &x.local_ip);
	policy_domains(&m->cfg, have_ip ? &x.local_ip : NULL, have_ip ? 1 : 0, &x.domains);
	const char *strangers[STRANGERS_MAX];
	size_t n_strangers = pick_strangers(&m->cfg, strangers);
	sr->svc = s;
	sr->cases = xcalloc(probe_battery_len * AC_COUNT, sizeof(struct audit_case));
	for (size_t cls = 0; cls < AC_COUNT; cls++) {
		const char *no_class = NULL;
		bool exists = class_client(&x, (enum audit_class)cls, strangers[0], &no_class);
		for (size_t i = 0; i < probe_battery_len; i++) {
			struct audit_case *c = &sr->cases[sr->n_cases++];
			*c = (struct audit_case){.test = &probe_battery[i], .cls = cls};
			c->why = exists ? skip_reason(c->test, s, cls) : no_class;
			if (c->why != NULL) {
				c->outcome = AO_SKIPPED;
				continue;
			}
			run_test(&x, (enum audit_class)cls, strangers, n_strangers, c);
		}
	}
}

/* ---- the classic mistakes ---- */

struct net_rule {
	const char *net;
	const char *what;
};

/* covers_internet - a network wider than any one organisation's (a /7 or more
 * of IPv4, or one holding global-unicast IPv6 samples beyond a /16). */
static bool covers_internet(const struct cidr *c)
{
	static const char *samples[] = {"2001:db8::1", "2a00::1", "2600::1", "2400::1"};
	if (c->net.family == AF_INET)
		return c->prefix < 8;
	for (size_t k = 0; c->prefix < 16 && k < RG_ARRAY_LEN(samples); k++) {
		struct rg_ip ip;
		if (ip_parse(samples[k], &ip) && cidr_match(c, &ip))
			return true;
	}
	return false;
}

bool audit_network_public(const struct cidr *c)
{
	static const char *private[] = {"10.0.0.0/8",	  "127.0.0.0/8",  "169.254.0.0/16",
					"172.16.0.0/12",  "192.168.0.0/16", "100.64.0.0/10",
					"[fc00::]/7",	  "[fe80::]/10",  "[::1]/128"};
	for (size_t k = 0; k < RG_ARRAY_LEN(private); k++) {
		struct cidr rule;
		char err[64];
		if (cidr_parse(private[k], &rule, err, sizeof(err)) &&
		    rule.net.family == c->net.family && cidr_contains(&rule, c))
			return false;
	}
	return true;
}

bool audit_wide_public(const struct cidr *c)
{
	return c->prefix <= (c->net.family == AF_INET ? 16 : 32) && audit_network_public(c);
}

/* mynetworks_findings - networks that make strangers look trusted. */
static void mynetworks_findings(const struct audit_model *m, struct audit_report *r)
{
	static const struct net_rule nat[] = {
		{"172.16.0.0/12", "Docker's and other container bridges' range"},
		{"100.64.0.0/10", "the carrier-grade NAT range VPNs such as Tailscale use"},
		{"[fc00::]/7", "unique-local IPv6, used by container and VPN networks"}};
	for (size_t k = 0; k < m->cfg.n_mynetworks; k++) {
		const struct cidr *c = &m->cfg.mynetworks[k];
		char text[80];
		cidr_format(c, text, sizeof(text));
		if (covers_internet(c)) {
			audit_add_finding(&r->findings, &r->n_findings, "mynetworks-covers-internet",
					  SEV_OPEN, NULL, "list only your own hosts' networks in mynetworks",
					  "mynetworks contains %s: clients on the Internet count as "
					  "trusted and may relay", text);
			continue;
		}
		if (audit_wide_public(c))
			audit_add_finding(&r->findings, &r->n_findings, "mynetworks-wide-public",
					  SEV_SUSPICIOUS, NULL,
					  "list only your own hosts' networks in mynetworks (Postfix: "
					  "mynetworks_style = host, or an explicit mynetworks)",
					  "mynetworks contains %s, a provider-sized public network "
					  "(mynetworks_style = class trusts a public address's whole "
					  "class A or B network): every host in it may relay", text);
		for (size_t n = 0; n < RG_ARRAY_LEN(nat); n++) {
			struct cidr rule;
			char err[64];
			cidr_parse(nat[n].net, &rule, err, sizeof(err));
			if (rule.net.family != c->net.family ||
			    !(cidr_contains(&rule, c) || cidr_contains(c, &rule)))
				continue;
			audit_add_finding(&r->findings, &r->n_findings, "mynetworks-nat-docker-vpn",
					  SEV_SUSPICIOUS, NULL,
					  "keep NAT, container and proxy networks out of mynetworks; "
					  "let users authenticate (permit_sasl_authenticated) instead",
					  "mynetworks contains %s, in %s: behind NAT, Docker's userland "
					  "proxy or a reverse proxy every outside client appears to come "
					  "from such an address and may relay", text, nat[n].what);
			break;
		}
	}
}

/* relay_domains_findings - a pattern that covers a public suffix relays for the world. */
static void relay_domains_findings(const struct audit_model *m, struct audit_report *r)
{
	for (size_t k = 0; m->cfg.relay_domains && m->cfg.relay_domains[k]; k++) {
		const char *d = m->cfg.relay_domains[k];
		const char *bare = d[0] == '.' ? d + 1 : d;
		if (d[0] == '.' && k > 0 && strcmp(m->cfg.relay_domains[k - 1], bare) == 0)
			continue; /* the subdomain pattern the Postfix reader added for it */
		if (!m->postfix && d[0] != '.')
			continue; /* relayguard matches a bare entry exactly: only that one domain */
		if (!psl_is_public_suffix2(psl_builtin(), bare, PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE))
			continue;
		audit_add_finding(&r->findings, &r->n_findings, "relay-domains-public-suffix",
				  SEV_OPEN, NULL, "list only the domains you are backup MX for",
				  "relay_domains contains %s, a public suffix: mail for every domain "
				  "under it is relayed for anyone", d);
	}
}

/* permits_before_deny - an unconditional permit before anything refuses a destination. */
static bool permits_before_deny(const struct audit_list *l)
{
	for (size_t k = 0; k < l->n; k++) {
		const struct audit_item *it = &l->items[k];
		if (it->kind != AI_NATIVE)
			continue;
		switch (it->native.kind) {
		case R_PERMIT:
			return true;
		case R_REJECT_UNAUTH_DESTINATION:
		case R_DEFER_UNAUTH_DESTINATION:
		case R_REJECT:
		case R_DEFER:
			return false;
		default:
			break;
		}
	}
	return false;
}

/* can_deny - does the list hold anything that refuses a destination? */
static bool can_deny(const struct audit_list *l)
{
	for (size_t k = 0; k < l->n; k++) {
		const struct audit_item *it = &l->items[k];
		if (it->kind == AI_NATIVE && (it->native.kind == R_REJECT_UNAUTH_DESTINATION ||
					      it->native.kind == R_DEFER_UNAUTH_DESTINATION ||
					      it->native.kind == R_REJECT || it->native.kind == R_DEFER))
			return true;
	}
	return false;
}

/* item_table - the table of an access item, native (check_client_access) or read. */
static const struct map *item_table(const struct audit_item *it, enum audit_subject *subject)
{
	if (it->kind == AI_ACCESS) {
		*subject = it->subject;
		return it->table;
	}
	*subject = AS_CLIENT;
	return it->kind == AI_NATIVE && it->native.kind == R_CHECK_CLIENT_ACCESS ? it->native.table
										  : NULL;
}

/* entry_permits - does this table entry say OK (RELAY, all-numeric)? */
static bool entry_permits(const struct map_entry *e)
{
	struct access_result ar;
	return audit_access_parse(e->value, &ar) && ar.action == ACCESS_OK;
}

/* stops_strangers - an item that ends a relay list for a stranger's foreign RCPT. */
static bool stops_strangers(const struct audit_item *it)
{
	return it->kind == AI_NATIVE && (it->native.kind == R_REJECT_UNAUTH_DESTINATION ||
					 it->native.kind == R_DEFER_UNAUTH_DESTINATION ||
					 it->native.kind == R_REJECT || it->native.kind == R_DEFER);
}

/* forged_key - a recipient-table key that a stranger's foreign RCPT can match:
 * "user@" (any domain) or a domain that is not ours. */
static bool forged_key(const struct config *cfg, const char *key)
{
	const char *at = strrchr(key, '@');
	const char *domain = at ? at + 1 : key;
	if (domain[0] == '\0')
		return true;
	if (domain[0] == '.')
		domain++;
	return !address_domain_listed(domain, (const char *const *)cfg->mydestination) &&
	       !address_domain_listed(domain, (const char *const *)cfg->relay_domains);
}

/* forgeable_entry - the first permitting entry a stranger can reach, or NULL. */
static const char *forgeable_entry(const struct audit_model *m, const struct audit_item *it)
{
	enum audit_subject subj;
	const struct map *t = item_table(it, &subj);
	for (size_t k = 0; t != NULL && k < t->n; k++) {
		const struct map_entry *e = &t->entries[k];
		if (!entry_permits(e))
			continue;
		if (subj == AS_CLIENT && t->type == MAP_CIDR && covers_internet(&e->net))
			return "a network wider than any organisation's";
		if ((subj == AS_HELO || subj == AS_SENDER) && e->key != NULL)
			return e->key; /* the client chooses its HELO and its sender */
		if (subj == AS_RECIPIENT && e->key != NULL && forged_key(&m->cfg, e->key))
			return e->key;
	}
	return NULL;
}

/* forgeable_findings - a permit a stranger can reach before the list refuses
 * a foreign destination: a HELO or sender he writes himself, a recipient key
 * matching any domain, a client network covering the Internet. */
static void forgeable_findings(const struct audit_model *m, const struct audit_service *s,
			       const struct audit_list *l, struct audit_report *r)
{
	for (size_t k = 0; k < l->n && !stops_strangers(&l->items[k]); k++) {
		const char *key = forgeable_entry(m, &l->items[k]);
		if (key == NULL)
			continue;
		audit_add_finding(&r->findings, &r->n_findings, "forgeable-permit", SEV_OPEN, s->name,
				  "permit only what a client cannot choose (permit_mynetworks, "
				  "permit_sasl_authenticated) before reject_unauth_destination",
				  "%s: %s permits %s before any refusal of a foreign destination: a "
				  "stranger can match it and relay", l->param, l->items[k].text, key);
		return;
	}
}

/* class_relayed - did any test of this class relay on this service? */
static bool class_relayed(const struct audit_service_report *sr, enum audit_class cls)
{
	for (size_t i = 0; i < sr->n_cases; i++)
		if (sr->cases[i].cls == cls && sr->cases[i].outcome == AO_RELAYED)
			return true;
	return false;
}

/* stranger_relayed - did any stranger test relay on this service? */
static bool stranger_relayed(const struct audit_service_report *sr)
{
	return class_relayed(sr, AC_STRANGER);
}

/* service_findings - the mistakes that belong to one service's lists. */
static void service_findings(const struct audit_service_report *sr, struct audit_report *r)
{
	const struct audit_service *s = sr->svc;
	const struct audit_list *relay = &s->lists[AL_RELAY], *rcpt = &s->lists[AL_RECIPIENT];
	const struct audit_list *bad = permits_before_deny(relay) ? relay
				       : permits_before_deny(rcpt) ? rcpt : NULL;
	if (bad != NULL)
		audit_add_finding(&r->findings, &r->n_findings, "permit-before-reject_unauth_destination",
				  s->refuses_all ? SEV_INFO : SEV_OPEN, s->name,
				  "remove the bare permit; end the list with reject_unauth_destination",
				  "%s has a bare permit before reject_unauth_destination: %s", bad->param,
				  s->refuses_all ? "Postfix's smtpd refuses to run with it (fatal: specify "
				  "at least one working instance of reject_unauth_destination ...), so "
				  "this service takes no mail at all" : "anyone may relay");
	if (!can_deny(relay) && rcpt->n > 0 && stranger_relayed(sr))
		audit_add_finding(&r->findings, &r->n_findings, "recipient-restrictions-override",
				  SEV_OPEN, s->name, "keep the relay decision in smtpd_relay_restrictions "
				  "(permit_mynetworks, permit_sasl_authenticated, "
				  "reject_unauth_destination)",
				  "%s cannot refuse a destination, so %s decides relaying, and it lets "
				  "strangers relay", relay->param, rcpt->param);
	if (!s->refuses_all) {
		forgeable_findings(r->model, s, relay, r);
		if (!can_deny(relay))
			forgeable_findings(r->model, s, rcpt, r);
	}
	if (s->submission_like && stranger_relayed(sr))
		audit_add_finding(&r->findings, &r->n_findings, "submission-relays-without-auth",
				  SEV_OPEN, s->name, "on submission: -o smtpd_relay_restrictions="
				  "permit_sasl_authenticated,reject",
				  "this submission service relays for clients that did not log in");
	/* relayguard's submission lists refuse everyone without AUTH: only a note there */
	if (s->submission_like && !s->sasl)
		audit_add_finding(&r->findings, &r->n_findings, "submission-without-sasl",
				  r->model->postfix ? SEV_SUSPICIOUS : SEV_INFO, s->name, "-o smtpd_sasl_auth_enable=yes on this service",
				  "this submission service offers no AUTH: users cannot log in, so "
				  "it only works by trusting addresses");
	if (s->client_trick != NULL) {
		bool trusted_relays = class_relayed(sr, AC_MYNETWORKS);
		audit_add_finding(&r->findings, &r->n_findings, "client-address-forgeable",
				  s->trick_anyone && trusted_relays ? SEV_OPEN : SEV_SUSPICIOUS,
				  s->name, "allow XCLIENT only from your own proxies' addresses; keep "
				  "a PROXY-protocol port reachable only by the proxy",
				  "%s%s", s->client_trick, trusted_relays ? ", and mynetworks clients "
				  "relay here" : "");
	}
	if (s->undecided != NULL)
		audit_add_finding(&r->findings, &r->n_findings, "not-audited", SEV_UNDECIDED, s->name,
				  "audit it by hand, or run relayguard probe against the live server",
				  "%s", s->undecided);
}

/* service_verdict - from its cases and the findings about it (or about everything). */
static enum audit_verdict service_verdict(const struct audit_report *r,
					  const struct audit_service_report *sr)
{
	enum audit_verdict v = AV_CLOSED;
	for (size_t i = 0; i < sr->n_cases; i++) {
		const struct audit_case *c = &sr->cases[i];
		if (c->cls == AC_STRANGER && c->outcome == AO_RELAYED)
			v = worse(v, AV_OPEN);
		else if (c->cls == AC_STRANGER && c->outcome == AO_UNDECIDED)
			v = worse(v, AV_UNDECIDED);
	}
	static const enum audit_verdict by_sev[] = {
		[SEV_INFO] = AV_CLOSED, [SEV_UNDECIDED] = AV_UNDECIDED,
		[SEV_SUSPICIOUS] = AV_SUSPICIOUS, [SEV_OPEN] = AV_OPEN};
	for (size_t k = 0; k < r->n_findings; k++) {
		const struct audit_finding *f = &r->findings[k];
		if (f->service == NULL || strcmp(f->service, sr->svc->name) == 0)
			v = worse(v, by_sev[f->severity]);
	}
	return v;
}

/* copy_findings - the reader's findings go into the report's own list. */
static void copy_findings(const struct audit_model *m, struct audit_report *r)
{
	for (size_t k = 0; k < m->n_findings; k++) {
		const struct audit_finding *f = &m->findings[k];
		audit_add_finding(&r->findings, &r->n_findings, f->id, f->severity, f->service,
				  f->fix, "%s", f->text);
	}
}

struct audit_report *audit_run(const struct audit_model *m)
{
	struct audit_report *r = xcalloc(1, sizeof(*r));
	r->model = m;
	copy_findings(m, r);
	mynetworks_findings(m, r);
	relay_domains_findings(m, r);
	r->services = xcalloc(m->n_services + 1, sizeof(struct audit_service_report));
	for (size_t i = 0; i < m->n_services; i++) {
		run_service(m, &m->services[i], &r->services[i]);
		service_findings(&r->services[i], r);
		r->n_services++;
	}
	r->verdict = AV_CLOSED;
	for (size_t i = 0; i < r->n_services; i++) {
		r->services[i].verdict = service_verdict(r, &r->services[i]);
		r->verdict = worse(r->verdict, r->services[i].verdict);
	}
	return r;
}

void audit_report_free(struct audit_report *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_services; i++)
		free(r->services[i].cases);
	free(r->services);
	for (size_t k = 0; k < r->n_findings; k++) {
		free(r->findings[k].text);
		free(r->findings[k].fix);
	}
	free(r->findings);
	free(r);
}

/* ---- one request, explained ---- */

/* step_result - one restriction alone, as its list sees it: what the policy
 * says of it, without the rules after the lists (they decide after the trace). */
static const char *step_result(const struct audit_model *m, const struct audit_item *it,
			       const struct policy_request *pr, const struct request *q)
{
	if (it->kind == AI_PASS)
		return "PASS";
	enum access_action a;
	if (it->kind == AI_UNDECIDED || (it->kind == AI_ACCESS && !access_action(it, q, &a)))
		return "UNDECIDED";
	struct restriction one;
	if (!lower_item(it, q, VAR_PERMIT, &one))
		return "DUNNO";
	return policy_restriction_result(&m->cfg, pr, &one);
}

/* trace - the first N_LISTS lists in the session's order, each item until one
 * says OK (the list is done), ending at a REJECT or DEFER; PR is the request
 * the session evaluates them with (rcpt NULL at MAIL). */
static void trace(const struct audit_model *m, const struct audit_service *s,
		  const struct policy_request *pr, size_t n_lists, struct audit_explain *e)
{
	struct request q = {pr->client, pr->sender_res, pr->sender, pr->rcpt_res};
	e->n_steps = 0;
	for (size_t l = 0; l < n_lists; l++) {
		for (size_t k = 0; k < s->lists[l].n && e->n_steps < AUDIT_TRACE_MAX; k++) {
			const struct audit_item *it = &s->lists[l].items[k];
			const char *res = step_result(m, it, pr, &q);
			e->steps[e->n_steps++] = (struct audit_step){s->lists[l].param, it->text, res};
			if (strcmp(res, "REJECT") == 0 || strcmp(res, "DEFER") == 0)
				return;
			if (strcmp(res, "OK") == 0)
				break;
		}
	}
}

/* explain_expansion - where an accepted recipient's mail really goes: the
 * alias steps and the final addresses, as the session queues them. */
static void explain_expansion(const struct audit_model *m, const struct addr_domains *dom,
			      struct audit_explain *e)
{
	struct expansion x;
	if (e->decision.action != POLICY_ACCEPT || e->rcpt_res.cls == ADDR_CLASS_INVALID)
		return;
	expand_recipient(&m->cfg, dom, e->rcpt_res.local, e->rcpt_res.domain, e->rcpt_res.cls,
			 &x);
	if (x.expanded && x.status == EXPAND_OK) {
		rg_strlcpy(e->expansion, x.trace.data ? x.trace.data : "", sizeof(e->expansion));
		for (size_t i = 0; i < x.n; i++) {
			size_t used = strlen(e->delivers_to);
			snprintf(e->delivers_to + used, sizeof(e->delivers_to) - used, "%s%s@%s",
				 i ? ", " : "", x.targets[i].local, x.targets[i].domain);
		}
		e->forwards_outside = x.outside;
	}
	expansion_free(&x);
}

#define AUDIT_LOCAL_IPS 80

/* local_ips - our addresses for [literal] recipients, as the server takes
 * them (server_bind): every listener's, of all roles, and each interface's
 * for a "*" listener; a model without listeners (Postfix) has the service's. */
static size_t local_ips(const struct audit_model *m, const struct audit_service *s,
			struct rg_ip out[AUDIT_LOCAL_IPS])
{
	size_t n = 0;
	for (size_t i = 0; i < m->cfg.n_listen && n < AUDIT_LOCAL_IPS; i++) {
		const char *host = m->cfg.listen[i].host;
		if (strcmp(host, "*") == 0) {
			struct host_network hn[64];
			size_t nh = host_networks(hn, RG_ARRAY_LEN(hn));
			for (size_t k = 0; k < nh && n < AUDIT_LOCAL_IPS; k++)
				out[n++] = hn[k].addr;
		} else if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 &&
			   ip_parse(host, &out[n])) {
			n++;
		}
	}
	if (n == 0 && ip_parse(s->ip, &out[0]))
		n = 1;
	return n;
}

bool audit_explain(const struct audit_model *m, size_t svc, const struct audit_request *rq,
		   struct audit_explain *e)
{
	const struct audit_service *s = &m->services[svc];
	memset(e, 0, sizeof(*e));
	e->syntax_ok = true;
	struct policy_client client = {.name = "unknown", .helo = rq->helo,
				       .sasl_authenticated = rq->login != NULL,
				       .sasl_username = rq->login, .submission = s->submission,
				       .ip_text = rq->client_ip};
	if (!ip_parse(rq->client_ip, &client.ip))
		return false;
	if (rq->login != NULL && !s->sasl) { /* the session answers AUTH so */
		e->auth_refused = true;
		snprintf(e->error, sizeof(e->error), "%s", s->auth_needs_tls
			 ? "538 5.7.11 Encryption required for requested authentication mechanism"
			 : "503 5.5.1 Error: authentication not enabled");
		return true;
	}
	struct rg_ip local[AUDIT_LOCAL_IPS];
	struct addr_domains dom;
	policy_domains(&m->cfg, local, local_ips(m, s, local), &dom);
	struct address from, to;
	if (!parse_path(rq->from, &from) || !parse_path(rq->to, &to)) {
		e->syntax_ok = false;
		snprintf(e->error, sizeof(e->error), "501 5.1.3 Bad %s address syntax",
			 parse_path(rq->from, &from) ? "recipient" : "sender");
		return true;
	}
	address_resolve(&from, &dom, &e->sender_res);
	address_resolve(&to, &dom, &e->rcpt_res);
	e->routing = to.routing;
	struct policy_request pr = {&client, &from, &to, &e->sender_res, &e->rcpt_res, SPF_NONE};
	/* MAIL first, as the session does: a refusal there is the reply */
	struct policy_request at_mail = {&client, &from, NULL, &e->sender_res, NULL, SPF_NONE};
	e->undecided = !decide(m, s, &at_mail, &e->decision);
	e->at_mail = !e->undecided && e->decision.action != POLICY_ACCEPT;
	if (e->at_mail) {
		/* what the session ran at MAIL: on a submission port its client,
		 * HELO and sender lists, on an MTA port only the ownership rule */
		if (s->submission)
			trace(m, s, &at_mail, AL_RELAY, e);
		session_reply(s, &at_mail, &e->decision);
		return true;
	}
	/* at RCPT every list runs again, with the recipient */
	trace(m, s, &pr, AL_COUNT, e);
	e->undecided = !decide(m, s, &pr, &e->decision);
	e->undecided_why = e->undecided ? first_undecided(s) : NULL;
	explain_expansion(m, &dom, e);
	return true;
}
