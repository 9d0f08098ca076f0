/*
 * policy - the relay decision: a pure function of (config, client, envelope).
 *
 * Owns: evaluating smtpd_{client,helo,sender,relay,recipient}_restrictions
 * with Postfix >= 3.6 semantics (smtpd_delay_reject = yes: all lists are
 * evaluated at RCPT; inside a list the first OK or REJECT wins; a REJECT in
 * any list rejects), two implicit rules after the lists - unknown users in our
 * domains are rejected (hosted domains and aliases: address/expand.h; an alias
 * table that loops defers), and an authenticated client may send only as
 * addresses its login owns (smtpd_sender_login_maps; a local user on the pickup
 * socket also owns user@myorigin, root every address), on every port - and the
 * exact reply and the name of the restriction that decided.
 * Must not: parse addresses (the address module has resolved them) or do any
 * I/O, so the probe and a configuration auditor can call the same code.
 */
#ifndef RG_POLICY_H
#define RG_POLICY_H

#include <stdbool.h>

#include "address/address.h"
#include "config/config.h"
#include "msgauth/spf.h"
#include "net/net.h"

struct policy_client {
	struct rg_ip ip;
	const char *ip_text;
	const char *name; /* "unknown" when it has no verified name */
	const char *helo; /* NULL before HELO/EHLO */
	bool sasl_authenticated;
	const char *sasl_username; /* the login name, when authenticated */
	bool submission;  /* on a submission port: submission_*_restrictions apply */
	bool pickup;      /* the pickup socket (relayguard sendmail): sasl_username is a
			   Unix user name, who also owns name@myorigin */
	bool pickup_any_sender; /* ... and that user is root: any sender */
};

struct policy_request {
	const struct policy_client *client;
	const struct address *sender;
	const struct address *rcpt;
	const struct addr_resolution *sender_res;
	const struct addr_resolution *rcpt_res;
	enum spf_result spf;   /* the SPF check at MAIL (SPF_NONE: none or not run) */
};

enum policy_action { POLICY_ACCEPT, POLICY_REJECT, POLICY_DEFER };

struct policy_decision {
	enum policy_action action;
	char reply[512];         /* "554 5.7.1 <a@b>: Relay access denied" (no CRLF) */
	const char *restriction; /* what decided, e.g. "reject_unauth_destination" */
	const char *list;        /* where it stood, e.g. "smtpd_relay_restrictions" */
};

/* The address-resolution context matching cfg (lists point into cfg). */
void policy_domains(const struct config *cfg, const struct rg_ip *local_ips, size_t n_ips,
		    struct addr_domains *d);

void policy_check_rcpt(const struct config *cfg, const struct policy_request *req,
		       struct policy_decision *out);

/*
 * policy_check_mail - the client, HELO and sender lists at MAIL time (req->rcpt
 * and rcpt_res NULL; restrictions about the recipient have no opinion yet).
 * Used on submission ports, which refuse early: 530 before AUTH, 553 for a
 * sender the login does not own.
 */
void policy_check_mail(const struct config *cfg, const struct policy_request *req,
		       struct policy_decision *out);

/*
 * policy_sender_owned - the implicit ownership rule alone (for MAIL FROM on
 * ports whose lists wait for RCPT): false, with OUT filled (553 5.7.1), when an
 * authenticated client names a sender its login does not own.
 */
bool policy_sender_owned(const struct config *cfg, const struct policy_request *req,
			 struct policy_decision *out);

/*
 * policy_restriction_result - what restriction R alone says to REQ, as its
 * list sees it: "DUNNO", "OK", "REJECT" or "DEFER". No other list and none of
 * the implicit rules after the lists (explain's per-step trace).
 */
const char *policy_restriction_result(const struct config *cfg, const struct policy_request *req,
				      const struct restriction *r);

/* Does LOGIN own the address LOCAL@DOMAIN under smtpd_sender_login_maps? OURS: the
 * domain is one of our own (mydestination), so a bare "local" key counts too. */
bool policy_login_owns(const struct config *cfg, const char *login, const char *local,
		       const char *domain, bool ours);

/* Is the resolved recipient an authorised destination (ours, not routed)? */
bool policy_auth_destination(const struct addr_resolution *r);

#endif
