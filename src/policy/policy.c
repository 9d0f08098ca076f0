/*
 * policy.c - restriction lists (see policy.h).
 *
 * DESCRIPTION
 *	Each restriction is a small function returning DUNNO (no opinion), OK
 *	(this list permits) or REJECT/DEFER with a reply. The lists are walked
 *	in Postfix order: client, helo, sender, relay, recipient. Reply codes
 *	and texts are Postfix's defaults, so operators' greps keep working:
 *	    554 5.7.1 <victim@example.net>: Relay access denied
 */
#include "policy/policy.h"
#include "address/expand.h"
#include "delivery/maildir.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

enum result { DUNNO, OK, REJECT, DEFER };

/* What a list is about, for the generic "reject"/"defer" replies. */
enum subject { SUBJ_CLIENT, SUBJ_HELO, SUBJ_SENDER, SUBJ_RECIPIENT };

struct eval {
	const struct config *cfg;
	const struct policy_request *req;
	struct policy_decision *out;
};

static const char *subject_words[] = {
	"Client host rejected", "Helo command rejected", "Sender address rejected",
	"Recipient address rejected",
};

/* subject_text - the <...> a reply names: client, HELO name or address. */
static void subject_text(const struct eval *ev, enum subject s, char *buf, size_t len)
{
	const struct policy_client *c = ev->req->client;
	switch (s) {
	case SUBJ_CLIENT:
		snprintf(buf, len, "%s[%s]", c->name ? c->name : "unknown", c->ip_text);
		break;
	case SUBJ_HELO:
		snprintf(buf, len, "%s", c->helo ? c->helo : "");
		break;
	case SUBJ_SENDER:
		snprintf(buf, len, "%s", ev->req->sender ? ev->req->sender->text : "");
		break;
	case SUBJ_RECIPIENT:
		snprintf(buf, len, "%s", ev->req->rcpt->text);
		break;
	}
}

/* reply - fill the decision; status is the enhanced code, text follows "<subject>: ". */
static enum result reply(struct eval *ev, enum result r, int code, const char *status,
			 enum subject s, const char *text)
{
	char subj[ADDR_PATH_MAX + 80];
	subject_text(ev, s, subj, sizeof(subj));
	snprintf(ev->out->reply, sizeof(ev->out->reply), "%d %s <%s>: %s", code, status, subj,
		 text);
	return r;
}

static enum result generic_reject(struct eval *ev, enum subject s, bool defer)
{
	char text[128];
	snprintf(text, sizeof(text), "%s: Access denied", subject_words[s]);
	return defer ? reply(ev, DEFER, 450, "4.7.1", s, text)
		     : reply(ev, REJECT, 554, "5.7.1", s, text);
}

bool policy_auth_destination(const struct addr_resolution *r)
{
	return !r->routed && (r->cls == ADDR_CLASS_LOCAL || r->cls == ADDR_CLASS_RELAY);
}

static bool fqdn(const char *domain)
{
	return domain[0] == '[' || strchr(domain, '.') != NULL;
}

/* helo_valid - a hostname or an address literal, as RFC 5321 allows. */
static bool helo_valid(const char *helo)
{
	struct address a;
	const char *rest;
	char err[128], path[300];
	if (strlen(helo) > ADDR_DOMAIN_MAX)
		return false;
	snprintf(path, sizeof(path), "<x@%s>", helo);
	return address_parse(path, &a, &rest, err, sizeof(err)) == ADDR_OK && rest[0] == '\0';
}

static enum result check_client_access(struct eval *ev, const struct map *table)
{
	const char *value = map_lookup_ip(table, &ev->req->client->ip);
	struct access_result ar;
	if (value == NULL || !map_access_parse(value, &ar) || ar.action == ACCESS_DUNNO)
		return DUNNO;
	if (ar.action == ACCESS_OK)
		return OK;
	bool defer = ar.action == ACCESS_DEFER;
	char text[300];
	snprintf(text, sizeof(text), "%s: %s", subject_words[SUBJ_CLIENT],
		 ar.text[0] ? ar.text : "Access denied");
	return reply(ev, defer ? DEFER : REJECT, ar.code, defer ? "4.7.1" : "5.7.1",
		     SUBJ_CLIENT, text);
}

/* recipient_listed - Postfix lookup order: user@domain, user (local only), @domain. */
static bool recipient_listed(struct map *const *maps, const struct addr_resolution *r,
			     bool local)
{
	if (local && !maildir_component_ok(r->local))
		return false; /* "../x", ".hidden", "a/b": never a mailbox here */
	if (maps == NULL || maps[0] == NULL)
		return true; /* no table: every user of the domain exists */
	if (local && strcmp(r->local, "postmaster") == 0)
		return true; /* RFC 5321 4.5.1 */
	char key[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
	for (size_t k = 0; maps[k] != NULL; k++) {
		snprintf(key, sizeof(key), "%s@%s", r->local, r->domain);
		if (map_lookup(maps[k], key) != NULL)
			return true;
		if (local && map_lookup(maps[k], r->local) != NULL)
			return true;
		snprintf(key, sizeof(key), "@%s", r->domain);
		if (map_lookup(maps[k], key) != NULL)
			return true;
	}
	return false;
}

/* hosted_unknown - the verdict of aliases and hosted domains (expand.h):
 * REJECT for an unknown user of a hosted domain, OK for an alias or a
 * mailbox, DUNNO to ask local_recipient_maps. */
static enum result hosted_unknown(struct eval *ev, const struct addr_resolution *r)
{
	char base[ADDR_LOCAL_MAX + 1];
	switch (expand_recipient_known(ev->cfg, r->local, r->domain)) {
	case KNOWN_YES:
		return OK;
	case KNOWN_NO_VALIAS:
		return reply(ev, REJECT, 550, "5.1.1", SUBJ_RECIPIENT,
			     "Recipient address rejected: User unknown in virtual alias table");
	case KNOWN_NO_VMAILBOX:
		return reply(ev, REJECT, 550, "5.1.1", SUBJ_RECIPIENT,
			     "Recipient address rejected: User unknown in virtual mailbox table");
	case KNOWN_LOCAL_TABLE: /* user+ext: user's entry counts too */
		if (expand_strip_extension(ev->cfg, r->local, base, sizeof(base))) {
			struct addr_resolution stripped = *r;
			rg_strlcpy(stripped.local, base, sizeof(stripped.local));
			if (recipient_listed(ev->cfg->local_recipient_maps, &stripped, true))
				return OK;
		}
		return DUNNO;
	default:
		return DUNNO;
	}
}

static enum result reject_unlisted_recipient(struct eval *ev)
{
	/* routed or not, the final address must exist (Postfix checks it too) */
	const struct addr_resolution *r = ev->req->rcpt_res;
	enum result hosted = r->cls == ADDR_CLASS_LOCAL ? hosted_unknown(ev, r) : DUNNO;
	if (hosted != DUNNO)
		return hosted == OK ? DUNNO : hosted;
	if (r->cls == ADDR_CLASS_LOCAL &&
	    !recipient_listed(ev->cfg->local_recipient_maps, r, true))
		return reply(ev, REJECT, 550, "5.1.1", SUBJ_RECIPIENT,
			     "Recipient address rejected: User unknown in local recipient table");
	if (r->cls == ADDR_CLASS_RELAY &&
	    !recipient_listed(ev->cfg->relay_recipient_maps, r, false))
		return reply(ev, REJECT, 550, "5.1.1", SUBJ_RECIPIENT,
			     "Recipient address rejected: User unknown in relay recipient table");
	return DUNNO;
}

/* owners_of - the login names smtpd_sender_login_maps gives the address, or NULL.
 * Postfix's lookup order: each key in every table before the next key
 * (user@domain, then user for our own domains, then @domain). */
static const char *owners_of(const struct config *cfg, const char *local, const char *domain,
			     bool ours)
{
	char full[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2], at[ADDR_DOMAIN_MAX + 2];
	snprintf(full, sizeof(full), "%s@%s", local, domain);
	snprintf(at, sizeof(at), "@%s", domain);
	const char *keys[] = {full, ours ? local : NULL, at};
	for (size_t i = 0; i < RG_ARRAY_LEN(keys); i++) {
		for (size_t k = 0; keys[i] != NULL && cfg->smtpd_sender_login_maps[k]; k++) {
			const char *v = map_lookup(cfg->smtpd_sender_login_maps[k], keys[i]);
			if (v != NULL)
				return v;
		}
	}
	return NULL;
}

/* list_has - is NAME one of the comma/blank separated words of LIST (any case)? */
static bool list_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		p += strspn(p, ", \t");
		size_t w = strcspn(p, ", \t");
		if (w == n && w > 0 && rg_strncasecmp(p, name, n) == 0)
			return true;
		p += w;
	}
	return false;
}

bool policy_login_owns(const struct config *cfg, const char *login, const char *local,
		       const char *domain, bool ours)
{
	if (cfg->smtpd_sender_login_maps[0] == NULL) {
		/* no table: a login that is an address owns exactly that address */
		char addr[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
		snprintf(addr, sizeof(addr), "%s@%s", local, domain);
		return rg_strcasecmp(addr, login) == 0;
	}
	const char *owners = owners_of(cfg, local, domain, ours);
	return owners != NULL && list_has(owners, login);
}

/* pickup_owns - a local user (the pickup socket) owns user@myorigin, the
 * address sendmail gives it, besides what the login maps give it; root any. */
static bool pickup_owns(const struct eval *ev, const char *login,
			const struct addr_resolution *r)
{
	const struct policy_client *c = ev->req->client;
	if (!c->pickup)
		return false;
	return c->pickup_any_sender || (rg_strcasecmp(r->local, login) == 0 &&
					rg_strcasecmp(r->domain, ev->cfg->myorigin) == 0);
}

/* sender_login_mismatch - the three reject_*sender_login_mismatch restrictions. */
static enum result sender_login_mismatch(struct eval *ev, bool check_auth, bool check_unauth)
{
	const struct policy_request *q = ev->req;
	if (q->sender == NULL || q->sender->null)
		return DUNNO; /* bounces: nobody's address */
	const struct addr_resolution *r = q->sender_res;
	const char *login = q->client->sasl_authenticated ? q->client->sasl_username : NULL;
	if (login != NULL && check_auth) {
		if (pickup_owns(ev, login, r) ||
		    policy_login_owns(ev->cfg, login, r->local, r->domain,
				      r->cls == ADDR_CLASS_LOCAL))
			return DUNNO;
		char text[300];
		snprintf(text, sizeof(text), "Sender address rejected: not owned by user %.200s",
			 login);
		return reply(ev, REJECT, 553, "5.7.1", SUBJ_SENDER, text);
	}
	if (login == NULL && check_unauth && ev->cfg->smtpd_sender_login_maps[0] != NULL &&
	    owners_of(ev->cfg, r->local, r->domain, r->cls == ADDR_CLASS_LOCAL) != NULL)
		return reply(ev, REJECT, 553, "5.7.1", SUBJ_SENDER,
			     "Sender address rejected: not logged in");
	return DUNNO;
}

/* sender_not_owned - relayguard's own rule, on every port and whatever the lists
 * say: an authenticated client sends only as addresses its login owns (Postfix
 * checks this only where reject_sender_login_mismatch is listed). */
static bool sender_not_owned(struct eval *ev)
{
	if (!ev->req->client->sasl_authenticated || ev->req->sender == NULL)
		return false;
	if (sender_login_mismatch(ev, true, false) != REJECT)
		return false;
	ev->out->action = POLICY_REJECT;
	ev->out->restriction = "reject_authenticated_sender_login_mismatch";
	ev->out->list = "smtpd_sender_login_maps";
	return true;
}

/* needs_recipient - restrictions that have no opinion before RCPT. */
static bool needs_recipient(enum restriction_kind k)
{
	switch (k) {
	case R_REJECT_UNAUTH_DESTINATION:
	case R_DEFER_UNAUTH_DESTINATION:
	case R_PERMIT_AUTH_DESTINATION:
	case R_REJECT_UNLISTED_RECIPIENT:
	case R_REJECT_NON_FQDN_RECIPIENT:
		return true;
	default:
		return false;
	}
}

/* spf_restriction - the SPF result of MAIL FROM (checked at MAIL, on the loop)
 * against the three SPF restrictions; the codes are RFC 7372's. */
static enum result spf_restriction(struct eval *ev, enum restriction_kind k)
{
	enum spf_result got = ev->req->spf;
	if (k == R_REJECT_SPF_FAIL && got == SPF_FAIL)
		return reply(ev, REJECT, 550, "5.7.23", SUBJ_SENDER,
			     "Sender address rejected: SPF fail: the client is not authorized "
			     "to send mail for this domain");
	if (k == R_DEFER_SPF_TEMPERROR && got == SPF_TEMPERROR)
		return reply(ev, DEFER, 451, "4.7.24", SUBJ_SENDER,
			     "Sender address rejected: SPF temporary error (DNS); try again later");
	if (k == R_REJECT_SPF_PERMERROR && got == SPF_PERMERROR)
		return reply(ev, REJECT, 550, "5.7.24", SUBJ_SENDER,
			     "Sender address rejected: SPF permanent error: the domain's SPF "
			     "record is broken");
	return DUNNO;
}

/* evaluate - one restriction. */
static enum result evaluate(struct eval *ev, const struct restriction *r, enum subject s)
{
	const struct policy_request *q = ev->req;
	if (q->rcpt_res == NULL && needs_recipient(r->kind))
		return DUNNO;
	switch (r->kind) {
	case R_PERMIT_MYNETWORKS:
		return config_in_mynetworks(ev->cfg, &q->client->ip) ? OK : DUNNO;
	case R_PERMIT_SASL_AUTHENTICATED:
		return q->client->sasl_authenticated ? OK : DUNNO;
	case R_REJECT_UNAUTH_DESTINATION:
	case R_DEFER_UNAUTH_DESTINATION:
		if (policy_auth_destination(q->rcpt_res))
			return DUNNO;
		if (r->kind == R_DEFER_UNAUTH_DESTINATION)
			return reply(ev, DEFER, 454, "4.7.1", SUBJ_RECIPIENT, "Relay access denied");
		return reply(ev, REJECT, 554, "5.7.1", SUBJ_RECIPIENT, "Relay access denied");
	case R_PERMIT_AUTH_DESTINATION:
		return policy_auth_destination(q->rcpt_res) ? OK : DUNNO;
	case R_REJECT_UNLISTED_RECIPIENT:
		return reject_unlisted_recipient(ev);
	case R_REJECT_NON_FQDN_SENDER:
		if (q->sender == NULL || q->sender->null ||
		    (fqdn(q->sender_res->domain) && !q->sender_res->unqualified))
			return DUNNO;
		return reply(ev, REJECT, 504, "5.5.2", SUBJ_SENDER,
			     "Sender address rejected: need fully-qualified address");
	case R_REJECT_NON_FQDN_RECIPIENT:
		if (fqdn(q->rcpt_res->domain) && !q->rcpt_res->unqualified)
			return DUNNO;
		return reply(ev, REJECT, 504, "5.5.2", SUBJ_RECIPIENT,
			     "Recipient address rejected: need fully-qualified address");
	case R_REJECT_NON_FQDN_HELO_HOSTNAME:
		if (q->client->helo == NULL || fqdn(q->client->helo))
			return DUNNO;
		return reply(ev, REJECT, 504, "5.5.2", SUBJ_HELO,
			     "Helo command rejected: need fully-qualified hostname");
	case R_REJECT_INVALID_HELO_HOSTNAME:
		if (q->client->helo == NULL || helo_valid(q->client->helo))
			return DUNNO;
		return reply(ev, REJECT, 501, "5.5.2", SUBJ_HELO, "Helo command rejected: Invalid name");
	case R_CHECK_CLIENT_ACCESS:
		return check_client_access(ev, r->table);
	case R_REJECT_SENDER_LOGIN_MISMATCH:
		return sender_login_mismatch(ev, true, true);
	case R_REJECT_AUTH_SENDER_LOGIN_MISMATCH:
		return sender_login_mismatch(ev, true, false);
	case R_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH:
		return sender_login_mismatch(ev, false, true);
	case R_PERMIT:
		return OK;
	case R_REJECT:
		return generic_reject(ev, s, false);
	case R_DEFER:
		return generic_reject(ev, s, true);
	case R_REJECT_SPF_FAIL:
	case R_DEFER_SPF_TEMPERROR:
	case R_REJECT_SPF_PERMERROR:
		return spf_restriction(ev, r->kind);
	}
	return DUNNO;
}

/* evaluate_list - first OK or REJECT/DEFER wins; the end of the list is OK. */
static enum result evaluate_list(struct eval *ev, const struct restriction_list *rl,
				 enum subject s, const char **decider)
{
	for (size_t k = 0; k < rl->n; k++) {
		enum result r = evaluate(ev, &rl->items[k], s);
		if (r != DUNNO) {
			*decider = rl->items[k].name;
			return r;
		}
	}
	*decider = NULL;
	return OK;
}

struct list_ref {
	const struct restriction_list *rl;
	enum subject s;
};

/* client_lists - the client, HELO and sender lists that apply on this port. */
static void client_lists(const struct config *cfg, const struct policy_client *c,
			 struct list_ref *lists)
{
	lists[0] = (struct list_ref){c->submission ? &cfg->submission_client : &cfg->client,
				     SUBJ_CLIENT};
	lists[1] = (struct list_ref){&cfg->helo, SUBJ_HELO};
	lists[2] = (struct list_ref){c->submission ? &cfg->submission_sender : &cfg->sender,
				     SUBJ_SENDER};
}

/* walk_lists - the lists in order; true when one rejected or deferred (OUT is
 * filled). *relay_decider gets what decided smtpd_relay_restrictions, if walked. */
static bool walk_lists(struct eval *ev, const struct list_ref *lists, size_t n,
		       const char **relay_decider)
{
	for (size_t k = 0; k < n; k++) {
		const char *decider;
		enum result r = evaluate_list(ev, lists[k].rl, lists[k].s, &decider);
		if (r == REJECT || r == DEFER) {
			ev->out->action = r == REJECT ? POLICY_REJECT : POLICY_DEFER;
			ev->out->restriction = decider;
			ev->out->list = lists[k].rl->param;
			return true;
		}
		if (lists[k].rl == &ev->cfg->relay)
			*relay_decider = decider;
	}
	return false;
}

void policy_check_mail(const struct config *cfg, const struct policy_request *req,
		       struct policy_decision *out)
{
	struct eval ev = {cfg, req, out};
	struct list_ref lists[3];
	const char *unused = NULL;
	client_lists(cfg, req->client, lists);
	memset(out, 0, sizeof(*out));
	if (walk_lists(&ev, lists, RG_ARRAY_LEN(lists), &unused) || sender_not_owned(&ev))
		return;
	out->action = POLICY_ACCEPT;
	out->restriction = "none";
	out->list = lists[0].rl->param;
	snprintf(out->reply, sizeof(out->reply), "250 2.1.0 Ok");
}

/* expansion_fails - an alias table that loops, nests too deep or names no
 * address: 451 4.3.0, as Postfix's cleanup defers, until it is fixed. */
static bool expansion_fails(struct eval *ev)
{
	const struct addr_resolution *r = ev->req->rcpt_res;
	struct addr_domains d;
	struct expansion x;
	if (r->cls == ADDR_CLASS_INVALID)
		return false;
	policy_domains(ev->cfg, NULL, 0, &d);
	expand_recipient(ev->cfg, &d, r->local, r->domain, r->cls, &x);
	bool failed = x.status != EXPAND_OK;
	if (failed) {
		char text[600];
		snprintf(text, sizeof(text), "Temporary lookup failure: %s", x.why);
		reply(ev, DEFER, 451, "4.3.0", SUBJ_RECIPIENT, text);
		ev->out->action = POLICY_DEFER;
		ev->out->restriction = "virtual_alias_maps";
		ev->out->list = "address expansion";
	}
	expansion_free(&x);
	return failed;
}

void policy_check_rcpt(const struct config *cfg, const struct policy_request *req,
		       struct policy_decision *out)
{
	struct eval ev = {cfg, req, out};
	struct list_ref lists[5];
	client_lists(cfg, req->client, lists);
	lists[3] = (struct list_ref){&cfg->relay, SUBJ_RECIPIENT};
	lists[4] = (struct list_ref){&cfg->recipient, SUBJ_RECIPIENT};
	memset(out, 0, sizeof(*out));
	const char *relay_decider = NULL;
	if (walk_lists(&ev, lists, RG_ARRAY_LEN(lists), &relay_decider) || sender_not_owned(&ev))
		return;
	/* smtpd_reject_unlisted_recipient = yes: never accept, then bounce */
	if (reject_unlisted_recipient(&ev) == REJECT) {
		out->action = POLICY_REJECT;
		out->restriction = "reject_unlisted_recipient";
		out->list = "smtpd_reject_unlisted_recipient";
		return;
	}
	if (expansion_fails(&ev))
		return;
	if (req->rcpt_res->cls == ADDR_CLASS_INVALID) {
		reply(&ev, REJECT, 501, "5.1.3", SUBJ_RECIPIENT,
		      "Recipient address rejected: its routing leads to no valid address");
		out->action = POLICY_REJECT;
		out->restriction = "address_resolve";
		out->list = "address";
		return;
	}
	out->action = POLICY_ACCEPT;
	/* no permit matched: accepted because nothing rejected our own destination */
	out->restriction = relay_decider ? relay_decider : "none (our destination)";
	out->list = cfg->relay.param;
	snprintf(out->reply, sizeof(out->reply), "250 2.1.5 Ok");
}

bool policy_sender_owned(const struct config *cfg, const struct policy_request *req,
			 struct policy_decision *out)
{
	struct eval ev = {cfg, req, out};
	memset(out, 0, sizeof(*out));
	return !sender_not_owned(&ev);
}

const char *policy_restriction_result(const struct config *cfg, const struct policy_request *req,
				      const struct restriction *r)
{
	static const char *names[] = {[DUNNO] = "DUNNO", [OK] = "OK", [REJECT] = "REJECT",
				      [DEFER] = "DEFER"};
	struct policy_decision unused;
	struct eval ev = {cfg, req, &unused};
	/* the subject only words a generic reply, which nobody reads here */
	return names[evaluate(&ev, r, req->rcpt != NULL ? SUBJ_RECIPIENT : SUBJ_SENDER)];
}

void policy_domains(const struct config *cfg, const struct rg_ip *local_ips, size_t n_ips,
		    struct addr_domains *d)
{
	d->mydestination = (const char *const *)cfg->mydestination;
	d->relay_domains = (const char *const *)cfg->relay_domains;
	d->local_ips = local_ips;
	d->n_local_ips = n_ips;
	d->myorigin = cfg->myorigin;
	d->virtual_alias_domains = (const char *const *)cfg->virtual_alias_domains;
	d->virtual_mailbox_domains = (const char *const *)cfg->virtual_mailbox_domains;
}
