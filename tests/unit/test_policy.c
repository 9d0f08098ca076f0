/*
 * test_policy.c - the relay decision, end to end from the text of main.cf.
 *
 * Each row is one RCPT TO as a server would check it: the configuration (a
 * main.cf written to a temporary file and loaded with config_load()), the
 * client (address, SASL, HELO), MAIL FROM and RCPT TO exactly as sent, and
 * the expected action, reply prefix, deciding restriction and list. Paths go
 * through address_parse() and address_resolve() with policy_domains(), so
 * these rows also prove that no address trick reaches an authorised
 * destination by the route a real session takes.
 */
#include "address/address.h"
#include "check.h"
#include "config/config.h"
#include "policy/policy.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The configurations under test; main.cf text in cfg_text[]. */
enum {
	C_DEFAULT, /* (a) the embedded default */
	C_BACKUP,  /* (b) backup MX for backup.example with a recipient table */
	C_BROAD,   /* (c) mynetworks = everything: an open relay on purpose */
	C_STRICT,  /* (d) two local domains, a user table, non-FQDN rejects */
	C_ACCESS,  /* (e) check_client_access cidr: in the client list */
	C_DEFER,   /* (f) defer_unauth_destination instead of reject */
	C_HELO,    /* (g) HELO restrictions */
	C_PERMITS, /* (h) "permit" in every other list cannot open the relay list */
	N_CFG,
};

static const char *const cfg_name[N_CFG] = {
	"default", "backup", "broad", "strict", "access", "defer", "helo", "permits",
};

/* The access table for C_ACCESS; the first matching network wins. */
static const char access_table[] =
	"# test table: host entries before the network that contains them\n"
	"127.0.0.66 REJECT go away\n"
	"192.0.2.77 DEFER try later\n"
	"192.0.2.78 521 closed for you\n"
	"192.0.2.79 REJECT\n"
	"192.0.2.80 DUNNO\n"
	"192.0.2.0/24 OK\n";

static const char *const cfg_text[N_CFG] = {
	[C_DEFAULT] = NULL,
	[C_BACKUP] = "relay_domains = backup.example\n"
		     "relay_recipient_maps = inline:{ known@backup.example }\n",
	[C_BROAD] = "mynetworks = 0.0.0.0/0 [::]/0\n",
	/* myorigin is pinned so unqualified addresses do not depend on the host name */
	[C_STRICT] = "mydestination = localhost ourdomain.example\n"
		     "myorigin = mail.ourdomain.example\n"
		     "local_recipient_maps = inline:{ alice, postmaster }\n"
		     "smtpd_recipient_restrictions = reject_non_fqdn_recipient,\n"
		     "    reject_non_fqdn_sender\n",
	[C_ACCESS] = NULL, /* names the table's temporary path: see config_text() */
	[C_DEFER] = "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,\n"
		    "\tdefer_unauth_destination\n",
	[C_HELO] = "smtpd_helo_restrictions = reject_invalid_helo_hostname,\n"
		   "  reject_non_fqdn_helo_hostname\n",
	[C_PERMITS] = "smtpd_client_restrictions = permit\n"
		      "smtpd_helo_restrictions = permit\n"
		      "smtpd_sender_restrictions = permit\n"
		      "smtpd_recipient_restrictions = permit\n",
};

/* Where the decision was made (policy_decision.list). */
enum list { L_CLIENT, L_HELO, L_SENDER, L_RELAY, L_RCPT, L_UNLISTED, L_ADDRESS };
static const char *const list_name[] = {
	"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
	"smtpd_relay_restrictions", "smtpd_recipient_restrictions",
	"smtpd_reject_unlisted_recipient", "address",
};

struct row {
	int line;
	int cfg;
	const char *ip;
	bool sasl;
	const char *helo; /* NULL: no HELO/EHLO was given */
	const char *from, *to;
	enum policy_action action;
	const char *reply; /* prefix of the reply */
	const char *restriction;
	enum list list;
};

#define OUT "192.0.2.9"   /* untrusted in every configuration but C_BROAD */
#define OUT6 "2001:db8::9"
#define IN "127.0.0.1"    /* in the default mynetworks */
#define IN6 "::1"
#define ATTACK "attacker.com", "<ceo@paypal.com>"

/* The outer macros only expand ATTACK (two columns) before the inner ones count. */
#define ACCEPT(...) ACCEPT_(__VA_ARGS__)
#define REJECT(...) REJECT_(__VA_ARGS__)
#define DEFER(...) DEFER_(__VA_ARGS__)
#define ACCEPT_(cfg, ip, sasl, helo, from, to, restriction)                        \
	{__LINE__, cfg, ip, sasl, helo, from, to, POLICY_ACCEPT, "250 2.1.5 Ok", restriction, \
	 L_RELAY}
#define REJECT_(cfg, ip, sasl, helo, from, to, reply, restriction, list) \
	{__LINE__, cfg, ip, sasl, helo, from, to, POLICY_REJECT, reply, restriction, list}
#define DEFER_(cfg, ip, sasl, helo, from, to, reply, restriction, list) \
	{__LINE__, cfg, ip, sasl, helo, from, to, POLICY_DEFER, reply, restriction, list}

/* An address trick sent by an untrusted client: always Relay access denied. */
#define DENIED(cfg, path)                                                           \
	REJECT(cfg, OUT, false, ATTACK, "<" path ">",                                 \
	       "554 5.7.1 <" path ">: Relay access denied", "reject_unauth_destination", \
	       L_RELAY)
#define USER_UNKNOWN(path) "550 5.1.1 <" path ">: Recipient address rejected: User unknown in "

static const struct row rows[] = {
	/* --- (a) the default configuration --- */
	/* the classic attack */
	REJECT(C_DEFAULT, OUT, false, ATTACK, "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	/* the same from IPv6 and from a v4-mapped IPv6 socket address */
	DENIED(C_DEFAULT, "victim@gmail.com"),
	REJECT(C_DEFAULT, OUT6, false, ATTACK, "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	REJECT(C_DEFAULT, "::ffff:192.0.2.9", false, ATTACK, "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	/* every address trick, through every name for us */
	DENIED(C_DEFAULT, "u%victim.example@localhost"),
	DENIED(C_DEFAULT, "u%victim.example@[127.0.0.1]"),
	DENIED(C_DEFAULT, "u%victim.example@[IPv6:::1]"),
	DENIED(C_DEFAULT, "u%victim.example@[IPv6:::ffff:127.0.0.1]"),
	DENIED(C_DEFAULT, "u%victim.example@LOCALHOST."),
	DENIED(C_DEFAULT, "u%victim.example%localhost@localhost"),
	DENIED(C_DEFAULT, "u%victim.example%localhost"),
	DENIED(C_DEFAULT, "u@victim.example@localhost"),
	DENIED(C_DEFAULT, "\"u@victim.example\"@localhost"),
	DENIED(C_DEFAULT, "\"u@victim.example\"@[127.0.0.1]"),
	DENIED(C_DEFAULT, "\"u\\@victim.example\"@localhost"),
	DENIED(C_DEFAULT, "\"u%victim.example\""),
	DENIED(C_DEFAULT, "\"u@victim.example\""),
	DENIED(C_DEFAULT, "victim.example!u"),
	DENIED(C_DEFAULT, "victim.example!u@localhost"),
	DENIED(C_DEFAULT, "victim.example!u@[127.0.0.1]"),
	DENIED(C_DEFAULT, "localhost!victim.example!u@localhost"),
	DENIED(C_DEFAULT, "@localhost:u@victim.example"),
	DENIED(C_DEFAULT, "@a.example,@b.example:u@victim.example"),
	DENIED(C_DEFAULT, "@localhost:\"u@victim.example\"@localhost"),
	DENIED(C_DEFAULT, "u@[192.0.2.1]"),
	DENIED(C_DEFAULT, "u@[127.0.0.2]"),
	DENIED(C_DEFAULT, "u@[IPv6:2001:db8::1]"),
	DENIED(C_DEFAULT, "u@192.0.2.1"),
	DENIED(C_DEFAULT, "u@127.0.0.1"),
	DENIED(C_DEFAULT, "u@victim.example."),
	DENIED(C_DEFAULT, "u@localhost.victim.example"),
	DENIED(C_DEFAULT, "postmaster%victim.example"),
	/* routing that ends at us is still routing: never an authorised destination */
	DENIED(C_DEFAULT, "postmaster%localhost@localhost"),
	DENIED(C_DEFAULT, "@a.example:postmaster@localhost"),
	/* routing that leads nowhere */
	DENIED(C_DEFAULT, "u%@localhost"),
	DENIED(C_DEFAULT, "\"u%[garbage\"@localhost"),
	/* relay_domains is empty by default */
	DENIED(C_DEFAULT, "u@backup.example"),
	/* nothing about the sender or the HELO name grants relaying */
	REJECT(C_DEFAULT, OUT, false, "attacker.com", "<>", "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	REJECT(C_DEFAULT, OUT, false, "attacker.com", "<postmaster@localhost>",
	       "<victim@gmail.com>", "554 5.7.1 <victim@gmail.com>: Relay access denied",
	       "reject_unauth_destination", L_RELAY),
	REJECT(C_DEFAULT, OUT, false, "localhost", "<postmaster@localhost>", "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	REJECT(C_DEFAULT, OUT, false, "[127.0.0.1]", "<>", "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	REJECT(C_DEFAULT, OUT, false, NULL, "<u@[127.0.0.1]>", "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	/* trusted clients (mynetworks) may relay, also with a v4-mapped socket address */
	ACCEPT(C_DEFAULT, IN, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),
	ACCEPT(C_DEFAULT, "127.0.0.9", false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),
	ACCEPT(C_DEFAULT, IN6, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),
	ACCEPT(C_DEFAULT, "::ffff:127.0.0.1", false, ATTACK, "<victim@gmail.com>",
	       "permit_mynetworks"),
	/* a trusted client's routed address is honoured, as in Postfix */
	ACCEPT(C_DEFAULT, IN, false, ATTACK, "<u%victim.example@localhost>", "permit_mynetworks"),
	/* ... but where it ends at us, the final user must exist (Postfix checks it too) */
	REJECT(C_DEFAULT, IN, false, ATTACK, "<nobody%localhost@localhost>",
	       USER_UNKNOWN("nobody%localhost@localhost") "local recipient table",
	       "reject_unlisted_recipient", L_UNLISTED),
	REJECT(C_DEFAULT, IN, false, ATTACK, "<\"../../x%localhost\"@localhost>",
	       USER_UNKNOWN("\"../../x%localhost\"@localhost") "local recipient table",
	       "reject_unlisted_recipient", L_UNLISTED),
	ACCEPT(C_DEFAULT, IN, false, ATTACK, "<postmaster%localhost@localhost>",
	       "permit_mynetworks"),
	/* ... unless it leads nowhere */
	REJECT(C_DEFAULT, IN, false, ATTACK, "<u%@localhost>",
	       "501 5.1.3 <u%@localhost>: Recipient address rejected: its routing leads to no "
	       "valid address", "address_resolve", L_ADDRESS),
	REJECT(C_DEFAULT, IN, false, ATTACK, "<\"u%[garbage\"@localhost>",
	       "501 5.1.3 <\"u%[garbage\"@localhost>: Recipient address rejected: its routing "
	       "leads to no valid address", "address_resolve", L_ADDRESS),
	/* SASL-authenticated clients from anywhere may relay */
	ACCEPT(C_DEFAULT, OUT, true, ATTACK, "<victim@gmail.com>", "permit_sasl_authenticated"),
	ACCEPT(C_DEFAULT, OUT6, true, NULL, "<>", "<victim@gmail.com>",
	       "permit_sasl_authenticated"),
	/* postmaster exists without being listed (RFC 5321 4.5.1) */
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<postmaster@localhost>", "none (our destination)"),
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<Postmaster@LocalHost>", "none (our destination)"),
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<postmaster@localhost.>", "none (our destination)"),
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<postmaster>", "none (our destination)"),
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<Postmaster>", "none (our destination)"),
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<postmaster@[127.0.0.1]>", "none (our destination)"),
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<postmaster@[IPv6:::1]>", "none (our destination)"),
	ACCEPT(C_DEFAULT, OUT, false, ATTACK, "<\"postmaster\"@localhost>", "none (our destination)"),
	/* unknown local users are refused, whoever asks */
	REJECT(C_DEFAULT, OUT, false, ATTACK, "<bob@localhost>",
	       USER_UNKNOWN("bob@localhost") "local recipient table", "reject_unlisted_recipient",
	       L_UNLISTED),
	REJECT(C_DEFAULT, IN, false, ATTACK, "<bob@localhost>",
	       USER_UNKNOWN("bob@localhost") "local recipient table", "reject_unlisted_recipient",
	       L_UNLISTED),
	REJECT(C_DEFAULT, OUT, true, ATTACK, "<bob@localhost>",
	       USER_UNKNOWN("bob@localhost") "local recipient table", "reject_unlisted_recipient",
	       L_UNLISTED),
	REJECT(C_DEFAULT, OUT, false, ATTACK, "<u@[127.0.0.1]>",
	       USER_UNKNOWN("u@[127.0.0.1]") "local recipient table", "reject_unlisted_recipient",
	       L_UNLISTED),

	/* --- (b) backup MX --- */
	ACCEPT(C_BACKUP, OUT, false, ATTACK, "<known@backup.example>", "none (our destination)"),
	ACCEPT(C_BACKUP, OUT, false, ATTACK, "<Known@Backup.Example.>", "none (our destination)"),
	REJECT(C_BACKUP, OUT, false, ATTACK, "<other@backup.example>",
	       USER_UNKNOWN("other@backup.example") "relay recipient table",
	       "reject_unlisted_recipient", L_UNLISTED),
	/* postmaster is only implicit in OUR domains, not in those we relay for */
	REJECT(C_BACKUP, OUT, false, ATTACK, "<postmaster@backup.example>",
	       USER_UNKNOWN("postmaster@backup.example") "relay recipient table",
	       "reject_unlisted_recipient", L_UNLISTED),
	/* an exact relay_domains entry does not cover subdomains */
	DENIED(C_BACKUP, "known@x.backup.example"),
	/* routing into the relay domain is still routing */
	DENIED(C_BACKUP, "known%backup.example@localhost"),
	DENIED(C_BACKUP, "\"known@backup.example\"@localhost"),
	DENIED(C_BACKUP, "@backup.example:victim@gmail.com"),
	DENIED(C_BACKUP, "victim@gmail.com"),
	ACCEPT(C_BACKUP, IN, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),

	/* --- (c) mynetworks = 0.0.0.0/0 [::]/0: an open relay, configured on purpose --- */
	ACCEPT(C_BROAD, OUT, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),
	ACCEPT(C_BROAD, OUT6, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),
	ACCEPT(C_BROAD, "198.51.100.1", false, ATTACK, "<u%victim.example@localhost>",
	       "permit_mynetworks"),
	/* still no mail for users that do not exist */
	REJECT(C_BROAD, OUT, false, ATTACK, "<bob@localhost>",
	       USER_UNKNOWN("bob@localhost") "local recipient table", "reject_unlisted_recipient",
	       L_UNLISTED),

	/* --- (d) two local domains, a user table, non-FQDN rejects --- */
	ACCEPT(C_STRICT, OUT, false, ATTACK, "<alice@ourdomain.example>", "none (our destination)"),
	ACCEPT(C_STRICT, OUT, false, ATTACK, "<ALICE@OurDomain.Example>", "none (our destination)"),
	ACCEPT(C_STRICT, OUT, false, "attacker.com", "<>", "<alice@ourdomain.example>",
	       "none (our destination)"),
	ACCEPT(C_STRICT, OUT, false, ATTACK, "<postmaster@ourdomain.example>", "none (our destination)"),
	REJECT(C_STRICT, OUT, false, ATTACK, "<bob@ourdomain.example>",
	       USER_UNKNOWN("bob@ourdomain.example") "local recipient table",
	       "reject_unlisted_recipient", L_UNLISTED),
	/* localhost is ours, but not a fully-qualified name */
	REJECT(C_STRICT, OUT, false, ATTACK, "<alice@localhost>",
	       "504 5.5.2 <alice@localhost>: Recipient address rejected: need fully-qualified "
	       "address", "reject_non_fqdn_recipient", L_RCPT),
	/* an unqualified recipient from a trusted client passes relay, not FQDN */
	REJECT(C_STRICT, IN, false, ATTACK, "<alice>",
	       "504 5.5.2 <alice>: Recipient address rejected: need fully-qualified address",
	       "reject_non_fqdn_recipient", L_RCPT),
	/* ... and from outside it is not even ours (myorigin is not in mydestination) */
	DENIED(C_STRICT, "alice"),
	REJECT(C_STRICT, OUT, false, "attacker.com", "<ceo>", "<alice@ourdomain.example>",
	       "504 5.5.2 <ceo>: Sender address rejected: need fully-qualified address",
	       "reject_non_fqdn_sender", L_RCPT),
	REJECT(C_STRICT, OUT, false, "attacker.com", "<ceo@paypal>", "<alice@ourdomain.example>",
	       "504 5.5.2 <ceo@paypal>: Sender address rejected: need fully-qualified address",
	       "reject_non_fqdn_sender", L_RCPT),
	/* the relay list is evaluated before the recipient list */
	REJECT(C_STRICT, OUT, false, "attacker.com", "<ceo>", "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	/* the tricks through the second local domain */
	DENIED(C_STRICT, "u%victim.example@ourdomain.example"),
	DENIED(C_STRICT, "u@victim.example@ourdomain.example"),
	DENIED(C_STRICT, "\"u@victim.example\"@ourdomain.example"),
	DENIED(C_STRICT, "victim.example!u@ourdomain.example"),
	DENIED(C_STRICT, "@ourdomain.example:u@victim.example"),
	DENIED(C_STRICT, "alice%ourdomain.example@localhost"),
	ACCEPT(C_STRICT, IN, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),

	/* --- (e) check_client_access cidr: in smtpd_client_restrictions --- */
	REJECT(C_ACCESS, "127.0.0.66", false, ATTACK, "<postmaster@localhost>",
	       "554 5.7.1 <unknown[127.0.0.66]>: Client host rejected: go away",
	       "check_client_access", L_CLIENT),
	/* the client list rejects even a client that mynetworks would trust */
	REJECT(C_ACCESS, "127.0.0.66", false, ATTACK, "<victim@gmail.com>",
	       "554 5.7.1 <unknown[127.0.0.66]>: Client host rejected: go away",
	       "check_client_access", L_CLIENT),
	REJECT(C_ACCESS, "::ffff:127.0.0.66", false, ATTACK, "<postmaster@localhost>",
	       "554 5.7.1 <unknown[::ffff:127.0.0.66]>: Client host rejected: go away",
	       "check_client_access", L_CLIENT),
	DEFER(C_ACCESS, "192.0.2.77", false, ATTACK, "<postmaster@localhost>",
	      "450 4.7.1 <unknown[192.0.2.77]>: Client host rejected: try later",
	      "check_client_access", L_CLIENT),
	REJECT(C_ACCESS, "192.0.2.78", false, ATTACK, "<postmaster@localhost>",
	       "521 5.7.1 <unknown[192.0.2.78]>: Client host rejected: closed for you",
	       "check_client_access", L_CLIENT),
	REJECT(C_ACCESS, "192.0.2.79", false, ATTACK, "<postmaster@localhost>",
	       "554 5.7.1 <unknown[192.0.2.79]>: Client host rejected: Access denied",
	       "check_client_access", L_CLIENT),
	/* DUNNO and OK in the client list decide nothing about relaying */
	ACCEPT(C_ACCESS, "192.0.2.80", false, ATTACK, "<postmaster@localhost>", "none (our destination)"),
	ACCEPT(C_ACCESS, OUT, false, ATTACK, "<postmaster@localhost>", "none (our destination)"),
	DENIED(C_ACCESS, "victim@gmail.com"),
	REJECT(C_ACCESS, "192.0.2.80", false, ATTACK, "<victim@gmail.com>",
	       "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
	       L_RELAY),
	/* clients the table does not list are untouched */
	ACCEPT(C_ACCESS, "127.0.0.9", false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),

	/* --- (f) defer_unauth_destination --- */
	DEFER(C_DEFER, OUT, false, ATTACK, "<victim@gmail.com>",
	      "454 4.7.1 <victim@gmail.com>: Relay access denied", "defer_unauth_destination",
	      L_RELAY),
	DEFER(C_DEFER, OUT, false, ATTACK, "<u%victim.example@localhost>",
	      "454 4.7.1 <u%victim.example@localhost>: Relay access denied",
	      "defer_unauth_destination", L_RELAY),
	ACCEPT(C_DEFER, OUT, false, ATTACK, "<postmaster@localhost>", "none (our destination)"),
	ACCEPT(C_DEFER, IN, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),
	ACCEPT(C_DEFER, OUT, true, ATTACK, "<victim@gmail.com>", "permit_sasl_authenticated"),

	/* --- (g) HELO restrictions --- */
	REJECT(C_HELO, OUT, false, "attacker", "<ceo@paypal.com>", "<postmaster@localhost>",
	       "504 5.5.2 <attacker>: Helo command rejected: need fully-qualified hostname",
	       "reject_non_fqdn_helo_hostname", L_HELO),
	REJECT(C_HELO, OUT, false, "bad_name.example", "<ceo@paypal.com>",
	       "<postmaster@localhost>",
	       "501 5.5.2 <bad_name.example>: Helo command rejected: Invalid name",
	       "reject_invalid_helo_hostname", L_HELO),
	REJECT(C_HELO, OUT, false, "mx.example> x", "<ceo@paypal.com>", "<postmaster@localhost>",
	       "501 5.5.2 <mx.example> x>: Helo command rejected: Invalid name",
	       "reject_invalid_helo_hostname", L_HELO),
	/* HELO restrictions apply to trusted clients too */
	REJECT(C_HELO, IN, false, "localhost", "<>", "<victim@gmail.com>",
	       "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
	       "reject_non_fqdn_helo_hostname", L_HELO),
	ACCEPT(C_HELO, OUT, false, "[192.0.2.9]", "<>", "<postmaster@localhost>",
	       "none (our destination)"),
	ACCEPT(C_HELO, OUT, false, "mail.example.org", "<>", "<postmaster@localhost>",
	       "none (our destination)"),
	ACCEPT(C_HELO, OUT, false, NULL, "<>", "<postmaster@localhost>", "none (our destination)"),
	/* a valid HELO name grants nothing */
	DENIED(C_HELO, "victim@gmail.com"),

	/* --- (h) "permit" everywhere else cannot bypass the relay list --- */
	DENIED(C_PERMITS, "victim@gmail.com"),
	DENIED(C_PERMITS, "u%victim.example@localhost"),
	ACCEPT(C_PERMITS, OUT, false, ATTACK, "<postmaster@localhost>", "none (our destination)"),
	ACCEPT(C_PERMITS, IN, false, ATTACK, "<victim@gmail.com>", "permit_mynetworks"),
};

/* The server's own addresses, for [literal] destinations. */
static struct rg_ip local_ips[2];

/* parse_resolve - what the session does with MAIL FROM / RCPT TO arguments. */
static bool parse_resolve(const struct row *w, const char *arg, const struct addr_domains *d,
			  struct address *a, struct addr_resolution *r)
{
	const char *params;
	char err[256];
	enum addr_error e = address_parse(arg, a, &params, err, sizeof(err));
	CHECK_AT(w->line, e == ADDR_OK, "%s: address_parse: %s", arg, err);
	if (e != ADDR_OK)
		return false;
	address_resolve(a, d, r);
	return true;
}

static void check_row(const struct row *w, struct config *const *cfgs)
{
	const struct config *cfg = cfgs[w->cfg];
	struct policy_client client = {
		.ip_text = w->ip, .name = "unknown", .helo = w->helo,
		.sasl_authenticated = w->sasl,
	};
	CHECK_AT(w->line, ip_parse(w->ip, &client.ip), "ip_parse(%s)", w->ip);
	struct addr_domains d;
	policy_domains(cfg, local_ips, RG_ARRAY_LEN(local_ips), &d);
	struct address from, to;
	struct addr_resolution from_res, to_res;
	if (!parse_resolve(w, w->from, &d, &from, &from_res) ||
	    !parse_resolve(w, w->to, &d, &to, &to_res))
		return;
	struct policy_request req = {&client, &from, &to, &from_res, &to_res};
	struct policy_decision out;
	policy_check_rcpt(cfg, &req, &out);

	static const char *const action_name[] = {"accept", "reject", "defer"};
	CHECK_AT(w->line, out.action == w->action, "[%s] %s %s: %s, want %s (reply \"%s\")",
		 cfg_name[w->cfg], w->ip, w->to, action_name[out.action], action_name[w->action],
		 out.reply);
	CHECK_AT(w->line, strncmp(out.reply, w->reply, strlen(w->reply)) == 0,
		 "[%s] %s %s: reply \"%s\", want \"%s...\"", cfg_name[w->cfg], w->ip, w->to,
		 out.reply, w->reply);
	CHECK_STR_AT(w->line, out.restriction, w->restriction, "restriction");
	CHECK_STR_AT(w->line, out.list, list_name[w->list], "list");
}

/* policy_auth_destination - ours and unrouted, nothing else. */
static void check_auth_destination(void)
{
	static const struct {
		int line;
		enum addr_class cls;
		bool routed, want;
	} t[] = {
		{__LINE__, ADDR_CLASS_LOCAL, false, true},
		{__LINE__, ADDR_CLASS_RELAY, false, true},
		{__LINE__, ADDR_CLASS_REMOTE, false, false},
		{__LINE__, ADDR_CLASS_INVALID, false, false},
		{__LINE__, ADDR_CLASS_LOCAL, true, false},
		{__LINE__, ADDR_CLASS_RELAY, true, false},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		struct addr_resolution r = {.cls = t[k].cls, .routed = t[k].routed};
		CHECK_AT(t[k].line, policy_auth_destination(&r) == t[k].want,
			 "policy_auth_destination(%s, routed=%d)", address_class_name(t[k].cls),
			 t[k].routed);
	}
}

/* config_text - the main.cf of configuration k; NULL for the embedded default. */
static char *config_text(int k, const char *table)
{
	if (k == C_ACCESS)
		return xasprintf("smtpd_client_restrictions = check_client_access cidr:%s\n",
				 table);
	return cfg_text[k] ? xstrdup(cfg_text[k]) : NULL;
}

static char *write_file(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL, "cannot create %s", path);
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

/* load_configs - every configuration from its main.cf text; the files are removed. */
static bool load_configs(struct config **cfgs)
{
	char dir[] = "/tmp/rg-test-policy-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		CHECK(false, "mkdtemp failed");
		return false;
	}
	char *table = write_file(dir, "access.cidr", access_table);
	bool ok = true;
	for (int k = 0; k < N_CFG; k++) {
		char *errors = NULL, *path = NULL;
		char *text = config_text(k, table);
		if (text != NULL)
			path = write_file(dir, "main.cf", text);
		free(text);
		cfgs[k] = config_load(path, &errors);
		CHECK(cfgs[k] != NULL, "config %s does not load: %s", cfg_name[k],
		      errors ? errors : "");
		ok = ok && cfgs[k] != NULL;
		free(errors);
		if (path != NULL)
			unlink(path);
		free(path);
	}
	unlink(table);
	free(table);
	rmdir(dir);
	return ok;
}

int main(void)
{
	struct config *cfgs[N_CFG] = {NULL};
	CHECK(ip_parse("127.0.0.1", &local_ips[0]) && ip_parse("::1", &local_ips[1]), "ip_parse");
	if (load_configs(cfgs)) {
		for (size_t k = 0; k < RG_ARRAY_LEN(rows); k++)
			check_row(&rows[k], cfgs);
	}
	check_auth_destination();
	for (int k = 0; k < N_CFG; k++)
		config_free(cfgs[k]);
	return check_summary("policy");
}
