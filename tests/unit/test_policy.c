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
 *
 * Rows for SMTP AUTH add the login name and the port: on a submission port
 * submission_{client,sender}_restrictions replace smtpd_{client,sender}_
 * restrictions, and MAIL rows check policy_check_mail() as the session does
 * at MAIL FROM. In main.cf texts "LOGINS" stands for the path of login_table.
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
	C_LOGINS,  /* (i) smtpd_sender_login_maps; submission lists at their defaults */
	C_AUTHMM,  /* (j) reject_authenticated_sender_login_mismatch on port 25 */
	C_UNAUTHMM, /* (k) reject_unauthenticated_sender_login_mismatch on port 25 */
	C_BOTHMM,  /* (l) reject_sender_login_mismatch on port 25 */
	C_SUBLISTS, /* (m) submission lists of its own; smtpd_sender_restrictions = reject */
	C_TWOMAPS, /* (n) two smtpd_sender_login_maps */
	C_HOSTED,  /* (o) aliases and hosted domains forwarding outside (issue 12) */
	C_SPF,     /* (p) the SPF restrictions (issue 9): spf_rows[] */
	N_CFG,
};

static const char *const cfg_name[N_CFG] = {
	"default", "backup", "broad", "strict", "access", "defer", "helo", "permits",
	"logins", "authmm", "unauthmm", "bothmm", "sublists", "twomaps", "hosted", "spf",
};

/* alias_maps for C_HOSTED: forwards to an outside address. */
static const char aliases_table[] =
	"fwd: friend@example.net\n"
	"team: alice, friend@example.net\n";

/* The access table for C_ACCESS; the first matching network wins. */
static const char access_table[] =
	"# test table: host entries before the network that contains them\n"
	"127.0.0.66 REJECT go away\n"
	"192.0.2.77 DEFER try later\n"
	"192.0.2.78 521 closed for you\n"
	"192.0.2.79 REJECT\n"
	"192.0.2.80 DUNNO\n"
	"192.0.2.0/24 OK\n";

/* smtpd_sender_login_maps for C_LOGINS and after: who may send as whom. Our
 * domains there are localhost and example.com; example.org/.net are not ours. */
static const char login_table[] =
	"# sender address           logins that own it\n"
	"alice@example.com          alice@example.com\n"
	"shared@example.com         alice@example.com, bob@example.com\n"
	"team@example.com           bob@example.com\tcarol@example.com,alice@example.com\n"
	"postmaster                 admin@example.com\n"
	"@example.net               carol@example.com\n"
	"ceo@example.org            ceo@example.org\n";

#define LOGIN_DOMAINS "mydestination = localhost example.com\n" \
		      "smtpd_sender_login_maps = texthash:LOGINS\n"

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
	[C_LOGINS] = LOGIN_DOMAINS,
	[C_AUTHMM] = LOGIN_DOMAINS
		     "smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch\n",
	[C_UNAUTHMM] = LOGIN_DOMAINS
		       "smtpd_sender_restrictions = reject_unauthenticated_sender_login_mismatch\n",
	[C_BOTHMM] = LOGIN_DOMAINS "smtpd_sender_restrictions = reject_sender_login_mismatch\n",
	[C_SUBLISTS] = LOGIN_DOMAINS
		       "smtpd_sender_restrictions = reject\n"
		       "submission_client_restrictions = permit_mynetworks, permit_sasl_authenticated,"
		       " reject\n"
		       "submission_sender_restrictions = reject_authenticated_sender_login_mismatch\n",
	/* every kind of our domain, each with an alias that forwards outside */
	[C_HOSTED] = "mydestination = localhost ourdomain.example\n"
		     "myorigin = ourdomain.example\n"
		     "local_recipient_maps = inline:{ alice, postmaster }\n"
		     "alias_maps = ALIASES\n"
		     "virtual_alias_domains = virt.example catch.example\n"
		     "virtual_alias_maps = inline:{ info@virt.example=friend@example.net,\n"
		     "  @catch.example=friend@example.net,\n"
		     "  loop1@virt.example=loop2@virt.example, loop2@virt.example=loop1@virt.example,\n"
		     "  fwd@mbox.example=friend@example.net }\n"
		     "virtual_mailbox_domains = mbox.example\n"
		     "virtual_mailbox_maps = inline:{ bob@mbox.example=mbox.example/bob/ }\n"
		     "recipient_delimiter = +\n",
	/* permits first in the recipient list; the sender list has none */
	[C_SPF] = "mydestination = localhost example.net\nlocal_recipient_maps =\n"
		  "smtpd_sender_restrictions = reject_spf_permerror\n"
		  "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,"
		  " reject_spf_fail, defer_spf_temperror\n",
	[C_TWOMAPS] = "mydestination = localhost example.com\n"
		      "smtpd_sender_login_maps = inline:{ @example.com=boss@example.com },\n"
		      "    texthash:LOGINS\n",
};

/* Where the decision was made (policy_decision.list). */
enum list { L_CLIENT, L_HELO, L_SENDER, L_RELAY, L_RCPT, L_UNLISTED, L_ADDRESS, L_SUB_CLIENT,
	    L_SUB_SENDER, L_OWNERS, L_EXPANSION };
static const char *const list_name[] = {
	"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
	"smtpd_relay_restrictions", "smtpd_recipient_restrictions",
	"smtpd_reject_unlisted_recipient", "address", "submission_client_restrictions",
	"submission_sender_restrictions", "smtpd_sender_login_maps", "address expansion",
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
	/* SMTP AUTH rows (zero in the others) */
	const char *login; /* the SASL login name; not NULL: authenticated */
	bool submission;   /* on a submission port */
	bool mail;         /* checked at MAIL FROM (policy_check_mail), to is NULL */
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
	 L_RELAY, NULL, false, false}
#define REJECT_(cfg, ip, sasl, helo, from, to, reply, restriction, list)                \
	{__LINE__, cfg, ip, sasl, helo, from, to, POLICY_REJECT, reply, restriction, list, NULL, \
	 false, false}
#define DEFER_(cfg, ip, sasl, helo, from, to, reply, restriction, list)                \
	{__LINE__, cfg, ip, sasl, helo, from, to, POLICY_DEFER, reply, restriction, list, NULL, \
	 false, false}

/* An address trick sent by an untrusted client: always Relay access denied. */
#define DENIED(cfg, path)                                                           \
	REJECT(cfg, OUT, false, ATTACK, "<" path ">",                                 \
	       "554 5.7.1 <" path ">: Relay access denied", "reject_unauth_destination", \
	       L_RELAY)
#define USER_UNKNOWN(path) "550 5.1.1 <" path ">: Recipient address rejected: User unknown in "

/* SMTP AUTH rows: the port, the login (NULL: not authenticated), then as above. */
#define MTA false
#define SUB true
#define AUTH_ACCEPT(cfg, port, ip, login, from, to, restriction)                            \
	{__LINE__, cfg, ip, false, "client.example", from, to, POLICY_ACCEPT, "250 2.1.5 Ok", \
	 restriction, L_RELAY, login, port, false}
#define AUTH_REJECT(cfg, port, ip, login, from, to, reply, restriction, list)          \
	{__LINE__, cfg, ip, false, "client.example", from, to, POLICY_REJECT, reply,     \
	 restriction, list, login, port, false}
/* ... and at MAIL FROM, where an accepted sender names no restriction */
#define MAIL_ACCEPT(cfg, port, ip, login, from)                                             \
	{__LINE__, cfg, ip, false, "client.example", from, NULL, POLICY_ACCEPT, "250 2.1.0 Ok", \
	 "none", (port) ? L_SUB_CLIENT : L_CLIENT, login, port, true}
#define MAIL_REJECT(cfg, port, ip, login, from, reply, restriction, list)              \
	{__LINE__, cfg, ip, false, "client.example", from, NULL, POLICY_REJECT, reply,   \
	 restriction, list, login, port, true}
/* the submission port's verdict on a sender its login does not own */
#define SPOOF(cfg, login, path)                                                         \
	MAIL_REJECT(cfg, SUB, OUT, login, "<" path ">", NOT_OWNED(path, login),            \
		    "reject_sender_login_mismatch", L_SUB_SENDER)
#define OWNED(cfg, login, path) MAIL_ACCEPT(cfg, SUB, OUT, login, "<" path ">")
#define NOT_OWNED(path, login) \
	"553 5.7.1 <" path ">: Sender address rejected: not owned by user " login
#define IMPLICIT_MISMATCH "reject_authenticated_sender_login_mismatch"
#define NOT_LOGGED_IN(path) "553 5.7.1 <" path ">: Sender address rejected: not logged in"
#define CLIENT_DENIED(ip) "554 5.7.1 <unknown[" ip "]>: Client host rejected: Access denied"
/* The pickup socket (relayguard sendmail): the login is the Unix user the kernel
 * named; it owns user@myorigin and what the login maps give it; root owns all. */
#define PICKUP_OWNED(cfg, root, login, path)                                               \
	{{__LINE__, cfg, IN, false, "localhost", "<" path ">", NULL, POLICY_ACCEPT,          \
	  "250 2.1.0 Ok", "none", L_SUB_CLIENT, login, SUB, true}, root}
#define PICKUP_SPOOF(cfg, login, path)                                                     \
	{{__LINE__, cfg, IN, false, "localhost", "<" path ">", NULL, POLICY_REJECT,          \
	  NOT_OWNED(path, login), "reject_sender_login_mismatch", L_SUB_SENDER, login, SUB,  \
	  true}, false}
#define ALICE "alice@example.com"
#define BOB "bob@example.com"
#define CAROL "carol@example.com"

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

	/* --- (i) SMTP AUTH: logins, owners and the submission port --- */
	/* port 25: an outside client relays only when authenticated */
	AUTH_REJECT(C_LOGINS, MTA, OUT, NULL, "<" ALICE ">", "<victim@gmail.com>",
		    "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
		    L_RELAY),
	AUTH_ACCEPT(C_LOGINS, MTA, OUT, ALICE, "<" ALICE ">", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),
	AUTH_ACCEPT(C_LOGINS, MTA, OUT6, BOB, "<>", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),
	/* port 25 holds an authenticated client to its addresses too (stricter than
	 * Postfix, where that needs reject_sender_login_mismatch in a list) */
	AUTH_REJECT(C_LOGINS, MTA, OUT, ALICE, "<ceo@example.org>", "<victim@gmail.com>",
		    NOT_OWNED("ceo@example.org", ALICE), IMPLICIT_MISMATCH, L_OWNERS),
	MAIL_REJECT(C_LOGINS, MTA, OUT, ALICE, "<ceo@example.org>",
		    NOT_OWNED("ceo@example.org", ALICE), IMPLICIT_MISMATCH, L_OWNERS),
	MAIL_REJECT(C_DEFAULT, MTA, OUT, ALICE, "<ceo@paypal.com>",
		    NOT_OWNED("ceo@paypal.com", ALICE), IMPLICIT_MISMATCH, L_OWNERS),
	AUTH_REJECT(C_DEFAULT, MTA, OUT, ALICE, "<ceo@paypal.com>", "<victim@gmail.com>",
		    NOT_OWNED("ceo@paypal.com", ALICE), IMPLICIT_MISMATCH, L_OWNERS),
	/* ... from mynetworks as well, and whatever permits the lists hold */
	AUTH_REJECT(C_DEFAULT, MTA, IN, ALICE, "<ceo@paypal.com>", "<victim@gmail.com>",
		    NOT_OWNED("ceo@paypal.com", ALICE), IMPLICIT_MISMATCH, L_OWNERS),
	AUTH_REJECT(C_PERMITS, MTA, OUT, ALICE, "<" BOB ">", "<postmaster@localhost>",
		    NOT_OWNED(BOB, ALICE), IMPLICIT_MISMATCH, L_OWNERS),
	MAIL_ACCEPT(C_DEFAULT, MTA, OUT, ALICE, "<" ALICE ">"),
	MAIL_ACCEPT(C_DEFAULT, MTA, OUT, ALICE, "<>"),
	MAIL_ACCEPT(C_DEFAULT, MTA, IN, NULL, "<ceo@paypal.com>"),
	MAIL_ACCEPT(C_LOGINS, MTA, OUT, NULL, "<" ALICE ">"),
	/* the submission port: no mail without AUTH, not even from mynetworks */
	MAIL_REJECT(C_LOGINS, SUB, OUT, NULL, "<" ALICE ">", CLIENT_DENIED(OUT), "reject",
		    L_SUB_CLIENT),
	MAIL_REJECT(C_LOGINS, SUB, IN, NULL, "<" ALICE ">", CLIENT_DENIED(IN), "reject",
		    L_SUB_CLIENT),
	MAIL_REJECT(C_LOGINS, SUB, OUT, NULL, "<>", CLIENT_DENIED(OUT), "reject", L_SUB_CLIENT),
	AUTH_REJECT(C_LOGINS, SUB, OUT, NULL, "<" ALICE ">", "<postmaster@localhost>",
		    CLIENT_DENIED(OUT), "reject", L_SUB_CLIENT),
	AUTH_REJECT(C_LOGINS, SUB, IN, NULL, "<" ALICE ">", "<victim@gmail.com>",
		    CLIENT_DENIED(IN), "reject", L_SUB_CLIENT),
	/* an authenticated user sends as an address the login owns */
	OWNED(C_LOGINS, ALICE, ALICE),
	OWNED(C_LOGINS, ALICE, "Alice@Example.COM"),
	OWNED(C_LOGINS, "ALICE@example.com", ALICE), /* login names in any case */
	AUTH_ACCEPT(C_LOGINS, SUB, OUT, ALICE, "<" ALICE ">", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),
	AUTH_ACCEPT(C_LOGINS, SUB, OUT, ALICE, "<" ALICE ">", "<postmaster@localhost>",
		    "permit_sasl_authenticated"),
	/* ... or the null sender */
	OWNED(C_LOGINS, ALICE, ""),
	AUTH_ACCEPT(C_LOGINS, SUB, OUT, CAROL, "<>", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),
	/* owners listed with commas, blanks and tabs: each of them, nobody else */
	OWNED(C_LOGINS, ALICE, "shared@example.com"),
	OWNED(C_LOGINS, BOB, "shared@example.com"),
	SPOOF(C_LOGINS, CAROL, "shared@example.com"),
	SPOOF(C_LOGINS, "bob", "shared@example.com"),
	SPOOF(C_LOGINS, "bob@example.co", "shared@example.com"),
	SPOOF(C_LOGINS, "com", "shared@example.com"),
	OWNED(C_LOGINS, ALICE, "team@example.com"),
	OWNED(C_LOGINS, BOB, "team@example.com"),
	OWNED(C_LOGINS, CAROL, "team@example.com"),
	SPOOF(C_LOGINS, "admin@example.com", "team@example.com"),
	/* @domain: every address of the domain without an entry of its own */
	OWNED(C_LOGINS, CAROL, "anyone@example.net"),
	OWNED(C_LOGINS, CAROL, "Anyone@EXAMPLE.NET"),
	SPOOF(C_LOGINS, ALICE, "anyone@example.net"),
	SPOOF(C_LOGINS, CAROL, "anyone@sub.example.net"),
	/* a login owns what the table gives it, not itself: bob is not listed for bob@ */
	SPOOF(C_LOGINS, BOB, BOB),
	/* an address nobody owns, or somebody else's */
	SPOOF(C_LOGINS, ALICE, "nobody@example.com"),
	SPOOF(C_LOGINS, ALICE, "ceo@example.org"),
	SPOOF(C_LOGINS, ALICE, "victim@gmail.com"),
	SPOOF(C_LOGINS, BOB, ALICE),
	OWNED(C_LOGINS, "ceo@example.org", "ceo@example.org"),
	/* the spoof also fails at RCPT, before the relay list would permit it */
	AUTH_REJECT(C_LOGINS, SUB, OUT, ALICE, "<ceo@example.org>", "<victim@gmail.com>",
		    NOT_OWNED("ceo@example.org", ALICE), "reject_sender_login_mismatch",
		    L_SUB_SENDER),
	AUTH_REJECT(C_LOGINS, SUB, OUT6, BOB, "<" ALICE ">", "<postmaster@localhost>",
		    NOT_OWNED(ALICE, BOB), "reject_sender_login_mismatch", L_SUB_SENDER),
	/* routed senders are resolved first: the owner of the final address decides */
	SPOOF(C_LOGINS, ALICE, "\"ceo@example.org\"@example.com"),
	SPOOF(C_LOGINS, ALICE, "ceo%example.org@example.com"),
	SPOOF(C_LOGINS, ALICE, "ceo%example.org@localhost"),
	SPOOF(C_LOGINS, ALICE, "example.org!ceo@example.com"),
	SPOOF(C_LOGINS, ALICE, "ceo@example.org@localhost"),
	SPOOF(C_LOGINS, ALICE, "@example.com:ceo@example.org"),
	SPOOF(C_LOGINS, CAROL, "ceo%example.org@example.com"),
	OWNED(C_LOGINS, "ceo@example.org", "\"ceo@example.org\"@example.com"),
	OWNED(C_LOGINS, "ceo@example.org", "ceo%example.org@localhost"),
	OWNED(C_LOGINS, ALICE, "alice%example.com@localhost"),
	/* ... and routing through a domain the login owns does not reach another */
	SPOOF(C_LOGINS, CAROL, "ceo%example.org%example.com@localhost"),
	/* in a domain that is not ours nothing is undone: "alice@example.com"@example.org
	 * is an address of example.org, and alice does not own it */
	SPOOF(C_LOGINS, ALICE, "\"alice@example.com\"@example.org"),
	SPOOF(C_LOGINS, ALICE, "alice%example.com@example.org"),
	/* the bare-user entry "postmaster" is only for our domains */
	SPOOF(C_LOGINS, "admin@example.com", "postmaster@example.org"),
	/* ... and it is for our domains: admin owns postmaster@ there */
	OWNED(C_LOGINS, "admin@example.com", "postmaster@example.com"),
	OWNED(C_LOGINS, "admin@example.com", "postmaster@localhost"),
	/* with no table a login that is an address owns exactly that address */
	OWNED(C_DEFAULT, ALICE, ALICE),
	OWNED(C_DEFAULT, "Alice@Example.com", "alice@EXAMPLE.com"),
	OWNED(C_DEFAULT, "alice@localhost", "alice@localhost."),
	OWNED(C_DEFAULT, ALICE, ""),
	OWNED(C_DEFAULT, ALICE, "\"alice@example.com\"@localhost"),
	SPOOF(C_DEFAULT, ALICE, "bob@example.com"),
	SPOOF(C_DEFAULT, ALICE, "alice@example.com.evil.example"),
	SPOOF(C_DEFAULT, ALICE, "alice@sub.example.com"),
	SPOOF(C_DEFAULT, ALICE, "xalice@example.com"),
	SPOOF(C_DEFAULT, "alice", "alice@localhost"),
	SPOOF(C_DEFAULT, "alice", "alice"),
	SPOOF(C_DEFAULT, "alice@localhost", "\"ceo@example.org\"@localhost"),
	SPOOF(C_DEFAULT, "alice@localhost", "ceo%example.org@localhost"),
	SPOOF(C_DEFAULT, ALICE, "\"alice@example.com\"@example.org"),
	AUTH_REJECT(C_DEFAULT, SUB, OUT, ALICE, "<ceo@example.org>", "<victim@gmail.com>",
		    NOT_OWNED("ceo@example.org", ALICE), "reject_sender_login_mismatch",
		    L_SUB_SENDER),
	AUTH_ACCEPT(C_DEFAULT, SUB, OUT, ALICE, "<" ALICE ">", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),
	MAIL_REJECT(C_DEFAULT, SUB, IN, NULL, "<" ALICE ">", CLIENT_DENIED(IN), "reject",
		    L_SUB_CLIENT),
	/* a submission login that is a bare name owns no name@myorigin (the
	 * pickup socket's rule is only for pickup sessions) */
	SPOOF(C_STRICT, "alice", "alice@mail.ourdomain.example"),
	/* the submission port ignores smtpd_client_restrictions (C_ACCESS rejects
	 * 127.0.0.66 there) and uses its own */
	AUTH_REJECT(C_ACCESS, MTA, "127.0.0.66", ALICE, "<" ALICE ">", "<victim@gmail.com>",
		    "554 5.7.1 <unknown[127.0.0.66]>: Client host rejected: go away",
		    "check_client_access", L_CLIENT),
	AUTH_ACCEPT(C_ACCESS, SUB, "127.0.0.66", ALICE, "<" ALICE ">", "<victim@gmail.com>",
		    "permit_mynetworks"),
	MAIL_REJECT(C_ACCESS, SUB, "192.0.2.80", NULL, "<" ALICE ">", CLIENT_DENIED("192.0.2.80"),
		    "reject", L_SUB_CLIENT),

	/* --- (j) reject_authenticated_sender_login_mismatch on port 25 --- */
	AUTH_REJECT(C_AUTHMM, MTA, OUT, ALICE, "<ceo@example.org>", "<victim@gmail.com>",
		    NOT_OWNED("ceo@example.org", ALICE),
		    "reject_authenticated_sender_login_mismatch", L_SENDER),
	MAIL_REJECT(C_AUTHMM, MTA, OUT, ALICE, "<ceo%example.org@example.com>",
		    NOT_OWNED("ceo%example.org@example.com", ALICE),
		    "reject_authenticated_sender_login_mismatch", L_SENDER),
	AUTH_ACCEPT(C_AUTHMM, MTA, OUT, ALICE, "<shared@example.com>", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),
	/* unauthenticated clients are not its business: the relay list decides */
	AUTH_ACCEPT(C_AUTHMM, MTA, OUT, NULL, "<" ALICE ">", "<postmaster@localhost>",
		    "none (our destination)"),
	AUTH_REJECT(C_AUTHMM, MTA, OUT, NULL, "<" ALICE ">", "<victim@gmail.com>",
		    "554 5.7.1 <victim@gmail.com>: Relay access denied", "reject_unauth_destination",
		    L_RELAY),

	/* --- (k) reject_unauthenticated_sender_login_mismatch on port 25 --- */
	/* an address with an owner needs its owner logged in */
	AUTH_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<" ALICE ">", "<postmaster@localhost>",
		    NOT_LOGGED_IN(ALICE), "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	MAIL_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<Alice@Example.Com>",
		    NOT_LOGGED_IN("Alice@Example.Com"),
		    "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	MAIL_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<anyone@example.net>",
		    NOT_LOGGED_IN("anyone@example.net"),
		    "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	/* bare "postmaster" owns postmaster@ in our domains */
	MAIL_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<postmaster@localhost>",
		    NOT_LOGGED_IN("postmaster@localhost"),
		    "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	MAIL_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<postmaster@example.com>",
		    NOT_LOGGED_IN("postmaster@example.com"),
		    "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	MAIL_ACCEPT(C_UNAUTHMM, MTA, OUT, NULL, "<postmaster@example.org>"),
	/* routed forms of an owned address are still owned */
	MAIL_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<\"alice@example.com\"@localhost>",
		    NOT_LOGGED_IN("\"alice@example.com\"@localhost"),
		    "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	MAIL_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<ceo%example.org@example.com>",
		    NOT_LOGGED_IN("ceo%example.org@example.com"),
		    "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	MAIL_REJECT(C_UNAUTHMM, MTA, OUT, NULL, "<@localhost:alice@example.com>",
		    NOT_LOGGED_IN("@localhost:alice@example.com"),
		    "reject_unauthenticated_sender_login_mismatch", L_SENDER),
	/* addresses nobody owns, and bounces, pass */
	MAIL_ACCEPT(C_UNAUTHMM, MTA, OUT, NULL, "<nobody@example.com>"),
	MAIL_ACCEPT(C_UNAUTHMM, MTA, OUT, NULL, "<>"),
	AUTH_ACCEPT(C_UNAUTHMM, MTA, OUT, NULL, "<>", "<postmaster@localhost>",
		    "none (our destination)"),
	/* authenticated clients are not its business, but the implicit rule's */
	AUTH_REJECT(C_UNAUTHMM, MTA, OUT, BOB, "<" ALICE ">", "<victim@gmail.com>",
		    NOT_OWNED(ALICE, BOB), IMPLICIT_MISMATCH, L_OWNERS),
	AUTH_ACCEPT(C_UNAUTHMM, MTA, OUT, BOB, "<shared@example.com>", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),

	/* --- (l) reject_sender_login_mismatch on port 25: both --- */
	MAIL_REJECT(C_BOTHMM, MTA, OUT, NULL, "<shared@example.com>",
		    NOT_LOGGED_IN("shared@example.com"), "reject_sender_login_mismatch", L_SENDER),
	MAIL_REJECT(C_BOTHMM, MTA, OUT, BOB, "<" ALICE ">", NOT_OWNED(ALICE, BOB),
		    "reject_sender_login_mismatch", L_SENDER),
	MAIL_ACCEPT(C_BOTHMM, MTA, OUT, BOB, "<shared@example.com>"),
	MAIL_ACCEPT(C_BOTHMM, MTA, OUT, NULL, "<nobody@example.com>"),
	/* even a trusted client cannot send as an owned address without logging in */
	AUTH_REJECT(C_BOTHMM, MTA, IN, NULL, "<" ALICE ">", "<victim@gmail.com>",
		    NOT_LOGGED_IN(ALICE), "reject_sender_login_mismatch", L_SENDER),

	/* --- (m) submission lists of its own --- */
	/* permit_mynetworks in submission_client_restrictions lets trusted clients in */
	MAIL_ACCEPT(C_SUBLISTS, SUB, IN, NULL, "<" ALICE ">"),
	MAIL_REJECT(C_SUBLISTS, SUB, OUT, NULL, "<" ALICE ">", CLIENT_DENIED(OUT), "reject",
		    L_SUB_CLIENT),
	MAIL_ACCEPT(C_SUBLISTS, SUB, OUT, ALICE, "<" ALICE ">"),
	MAIL_REJECT(C_SUBLISTS, SUB, OUT, ALICE, "<" BOB ">", NOT_OWNED(BOB, ALICE),
		    "reject_authenticated_sender_login_mismatch", L_SUB_SENDER),
	/* smtpd_sender_restrictions (reject) applies on port 25 only */
	AUTH_ACCEPT(C_SUBLISTS, SUB, OUT, ALICE, "<" ALICE ">", "<victim@gmail.com>",
		    "permit_sasl_authenticated"),
	AUTH_REJECT(C_SUBLISTS, MTA, OUT, ALICE, "<" ALICE ">", "<victim@gmail.com>",
		    "554 5.7.1 <alice@example.com>: Sender address rejected: Access denied", "reject",
		    L_SENDER),
	/* a trusted client let in there relays by permit_mynetworks, as on port 25 */
	AUTH_ACCEPT(C_SUBLISTS, SUB, IN, NULL, "<" ALICE ">", "<victim@gmail.com>",
		    "permit_mynetworks"),
	AUTH_REJECT(C_SUBLISTS, SUB, "192.0.2.10", NULL, "<" ALICE ">", "<victim@gmail.com>",
		    CLIENT_DENIED("192.0.2.10"), "reject", L_SUB_CLIENT),

	/* --- (n) two tables: both are searched --- */
	OWNED(C_TWOMAPS, "boss@example.com", "nobody@example.com"),
	OWNED(C_TWOMAPS, CAROL, "anyone@example.net"),
	OWNED(C_TWOMAPS, "ceo@example.org", "ceo@example.org"),
	SPOOF(C_TWOMAPS, ALICE, "ceo@example.org"),
	SPOOF(C_TWOMAPS, "boss@example.com", "anyone@example.net"),
	/* Postfix looks each key up in every table before it tries the next key
	 * (user@domain, then user, then @domain): alice@example.com's own entry in the
	 * second table wins over the first table's @example.com */
	OWNED(C_TWOMAPS, ALICE, ALICE),
	SPOOF(C_TWOMAPS, "boss@example.com", ALICE),
	/* --- (o) aliases and hosted domains: forwarding for our users, never a relay --- */
	/* anyone may write to our users, even those whose alias forwards outside */
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<fwd@ourdomain.example>", "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<team@ourdomain.example>", "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<fwd+tag@ourdomain.example>",
	       "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<alice+news@ourdomain.example>",
	       "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<info@virt.example>", "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<Info+x@VIRT.example>", "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<anyone@catch.example>", "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<bob@mbox.example>", "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<bob+tag@mbox.example>", "none (our destination)"),
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<fwd@mbox.example>", "none (our destination)"),
	/* quotes alone route nowhere: the same user */
	ACCEPT(C_HOSTED, OUT, false, ATTACK, "<\"fwd\"@ourdomain.example>",
	       "none (our destination)"),
	/* unknown users of every kind of domain: 550 at RCPT */
	REJECT(C_HOSTED, OUT, false, ATTACK, "<nobody@virt.example>",
	       USER_UNKNOWN("nobody@virt.example") "virtual alias table",
	       "reject_unlisted_recipient", L_UNLISTED),
	REJECT(C_HOSTED, OUT, false, ATTACK, "<carol@mbox.example>",
	       USER_UNKNOWN("carol@mbox.example") "virtual mailbox table",
	       "reject_unlisted_recipient", L_UNLISTED),
	REJECT(C_HOSTED, OUT, false, ATTACK, "<postmaster@mbox.example>",
	       USER_UNKNOWN("postmaster@mbox.example") "virtual mailbox table",
	       "reject_unlisted_recipient", L_UNLISTED),
	REJECT(C_HOSTED, OUT, false, ATTACK, "<nobody@ourdomain.example>",
	       USER_UNKNOWN("nobody@ourdomain.example") "local recipient table",
	       "reject_unlisted_recipient", L_UNLISTED),
	/* ... trusted clients too: the table is the same for everyone */
	REJECT(C_HOSTED, IN, false, ATTACK, "<nobody@virt.example>",
	       USER_UNKNOWN("nobody@virt.example") "virtual alias table",
	       "reject_unlisted_recipient", L_UNLISTED),
	/* a looping table defers (the operator fixes it), it does not bounce */
	DEFER(C_HOSTED, OUT, false, ATTACK, "<loop1@virt.example>",
	      "451 4.3.0 <loop1@virt.example>: Temporary lookup failure: alias loop",
	      "virtual_alias_maps", L_EXPANSION),
	/* the outside address itself is still somebody else's */
	DENIED(C_HOSTED, "friend@example.net"),
	/* routed forms through forwarding aliases and hosted domains: all denied */
	DENIED(C_HOSTED, "friend%example.net@ourdomain.example"),
	DENIED(C_HOSTED, "fwd%ourdomain.example@ourdomain.example"),
	DENIED(C_HOSTED, "info%virt.example@virt.example"),
	DENIED(C_HOSTED, "friend%example.net@virt.example"),
	DENIED(C_HOSTED, "friend%example.net@catch.example"),
	DENIED(C_HOSTED, "friend%example.net@mbox.example"),
	DENIED(C_HOSTED, "@virt.example:friend@example.net"),
	DENIED(C_HOSTED, "@ourdomain.example:fwd@ourdomain.example"),
	DENIED(C_HOSTED, "@catch.example,@virt.example:info@virt.example"),
	DENIED(C_HOSTED, "example.net!friend@virt.example"),
	DENIED(C_HOSTED, "example.net!friend@catch.example"),
	DENIED(C_HOSTED, "virt.example!info@ourdomain.example"),
	DENIED(C_HOSTED, "\"friend@example.net\"@virt.example"),
	DENIED(C_HOSTED, "\"friend@example.net\"@catch.example"),
	DENIED(C_HOSTED, "\"info@virt.example\"@ourdomain.example"),
	DENIED(C_HOSTED, "friend@example.net@catch.example"),
	DENIED(C_HOSTED, "fwd+x%example.net@ourdomain.example"),
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

/* Pickup-socket rows: the same checks, for a session whose login is a Unix user. */
struct pickup_row {
	struct row r;
	bool root; /* uid 0 */
};

static const struct pickup_row pickup_rows[] = {
	/* the pickup socket: C_STRICT's myorigin is mail.ourdomain.example */
	PICKUP_OWNED(C_STRICT, false, "alice", "alice@mail.ourdomain.example"),
	PICKUP_OWNED(C_STRICT, false, "alice", "ALICE@Mail.OurDomain.Example"),
	PICKUP_OWNED(C_STRICT, false, "alice", ""),
	PICKUP_SPOOF(C_STRICT, "alice", "bob@mail.ourdomain.example"),
	PICKUP_SPOOF(C_STRICT, "alice", "alice@ourdomain.example"),
	PICKUP_SPOOF(C_STRICT, "alice", "ceo@paypal.example"),
	PICKUP_SPOOF(C_STRICT, "alice", "alice@mail.ourdomain.example.evil.example"),
	PICKUP_SPOOF(C_STRICT, "alice", "\"ceo@paypal.example\"@mail.ourdomain.example"),
	PICKUP_SPOOF(C_STRICT, "www-data", "alice@mail.ourdomain.example"),
	PICKUP_OWNED(C_STRICT, true, "root", "ceo@paypal.example"),
	PICKUP_OWNED(C_STRICT, true, "root", "alice@mail.ourdomain.example"),
	/* with login maps: what they give the user name, not an address login's */
	PICKUP_SPOOF(C_LOGINS, "alice", "alice@example.com"),
	PICKUP_SPOOF(C_LOGINS, "admin", "postmaster@example.com"),
	PICKUP_OWNED(C_LOGINS, true, "root", "shared@example.com"),
};

/* check_row_as - one row; PICKUP/ROOT: as a pickup-socket session would be. */
static void check_row_as(const struct row *w, struct config *const *cfgs, bool pickup, bool root)
{
	const struct config *cfg = cfgs[w->cfg];
	struct policy_client client = {
		.ip_text = w->ip, .name = "unknown", .helo = w->helo,
		.sasl_authenticated = w->sasl || w->login != NULL, .sasl_username = w->login,
		.submission = w->submission, .pickup = pickup, .pickup_any_sender = root,
	};
	CHECK_AT(w->line, ip_parse(w->ip, &client.ip), "ip_parse(%s)", w->ip);
	struct addr_domains d;
	policy_domains(cfg, local_ips, RG_ARRAY_LEN(local_ips), &d);
	struct address from, to;
	struct addr_resolution from_res, to_res;
	if (!parse_resolve(w, w->from, &d, &from, &from_res) ||
	    (!w->mail && !parse_resolve(w, w->to, &d, &to, &to_res)))
		return;
	struct policy_decision out;
	if (w->mail) {
		/* MAIL FROM: no recipient yet */
		struct policy_request req = {&client, &from, NULL, &from_res, NULL, SPF_NONE};
		policy_check_mail(cfg, &req, &out);
	} else {
		struct policy_request req = {&client, &from, &to, &from_res, &to_res, SPF_NONE};
		policy_check_rcpt(cfg, &req, &out);
	}

	static const char *const action_name[] = {"accept", "reject", "defer"};
	const char *what = w->mail ? w->from : w->to;
	CHECK_AT(w->line, out.action == w->action, "[%s] %s %s: %s, want %s (reply \"%s\")",
		 cfg_name[w->cfg], w->ip, what, action_name[out.action], action_name[w->action],
		 out.reply);
	CHECK_AT(w->line, strncmp(out.reply, w->reply, strlen(w->reply)) == 0,
		 "[%s] %s %s: reply \"%s\", want \"%s...\"", cfg_name[w->cfg], w->ip, what,
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
static char *config_text(int k, const char *table, const char *logins, const char *aliases)
{
	if (k == C_HOSTED) {
		const char *a = strstr(cfg_text[k], "ALIASES");
		return xasprintf("%.*s%s%s", (int)(a - cfg_text[k]), cfg_text[k], aliases, a + 7);
	}
	if (k == C_ACCESS)
		return xasprintf("smtpd_client_restrictions = check_client_access cidr:%s\n",
				 table);
	if (cfg_text[k] == NULL)
		return NULL;
	const char *p = strstr(cfg_text[k], "LOGINS");
	if (p == NULL)
		return xstrdup(cfg_text[k]);
	return xasprintf("%.*s%s%s", (int)(p - cfg_text[k]), cfg_text[k], logins, p + 6);
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
	char *logins = write_file(dir, "logins", login_table);
	char *aliases = write_file(dir, "aliases", aliases_table);
	bool ok = true;
	for (int k = 0; k < N_CFG; k++) {
		char *errors = NULL, *path = NULL;
		char *text = config_text(k, table, logins, aliases);
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
	unlink(logins);
	free(logins);
	unlink(aliases);
	free(aliases);
	rmdir(dir);
	return ok;
}

/* The SPF restrictions: the result of the check at MAIL against the lists,
 * with ordinary list semantics (a permit before them spares the client). */
static void check_spf_rows(struct config *const *cfgs)
{
	static const struct {
		int line;
		const char *ip;
		bool sasl;
		enum spf_result spf;
		enum policy_action action;
		const char *reply, *restriction;
		enum list list;
	} t[] = {
		{__LINE__, OUT, false, SPF_FAIL, POLICY_REJECT,
		 "550 5.7.23 <ceo@paypal.example>: Sender address rejected: SPF fail", "reject_spf_fail",
		 L_RCPT},
		{__LINE__, OUT, false, SPF_TEMPERROR, POLICY_DEFER,
		 "451 4.7.24 <ceo@paypal.example>: Sender address rejected: SPF temporary error",
		 "defer_spf_temperror", L_RCPT},
		{__LINE__, OUT, false, SPF_PERMERROR, POLICY_REJECT,
		 "550 5.7.24 <ceo@paypal.example>: Sender address rejected: SPF permanent error",
		 "reject_spf_permerror", L_SENDER},
		/* no permit before it in the sender list: mynetworks too */
		{__LINE__, IN, false, SPF_PERMERROR, POLICY_REJECT, "550 5.7.24", "reject_spf_permerror",
		 L_SENDER},
		{__LINE__, IN, false, SPF_FAIL, POLICY_ACCEPT, "250 2.1.5 Ok", "permit_mynetworks",
		 L_RELAY},
		{__LINE__, IN, false, SPF_TEMPERROR, POLICY_ACCEPT, "250 2.1.5 Ok", "permit_mynetworks",
		 L_RELAY},
		{__LINE__, OUT, true, SPF_FAIL, POLICY_ACCEPT, "250 2.1.5 Ok",
		 "permit_sasl_authenticated", L_RELAY},
		{__LINE__, OUT, false, SPF_SOFTFAIL, POLICY_ACCEPT, "250 2.1.5 Ok",
		 "none (our destination)", L_RELAY},
		{__LINE__, OUT, false, SPF_NEUTRAL, POLICY_ACCEPT, "250 2.1.5 Ok",
		 "none (our destination)", L_RELAY},
		{__LINE__, OUT, false, SPF_PASS, POLICY_ACCEPT, "250 2.1.5 Ok", "none (our destination)",
		 L_RELAY},
		{__LINE__, OUT, false, SPF_NONE, POLICY_ACCEPT, "250 2.1.5 Ok", "none (our destination)",
		 L_RELAY},
	};
	struct addr_domains d;
	policy_domains(cfgs[C_SPF], local_ips, RG_ARRAY_LEN(local_ips), &d);
	for (size_t i = 0; i < RG_ARRAY_LEN(t); i++) {
		struct policy_client client = {.ip_text = t[i].ip, .name = "unknown", .helo = "x.example",
					       .sasl_authenticated = t[i].sasl,
					       .sasl_username = t[i].sasl ? "ceo@paypal.example" : NULL};
		CHECK_AT(t[i].line, ip_parse(t[i].ip, &client.ip), "ip_parse");
		struct address from, to;
		struct addr_resolution from_res, to_res;
		const char *rest;
		char err[128];
		CHECK_AT(t[i].line, address_parse("<ceo@paypal.example>", &from, &rest, err,
						  sizeof(err)) == ADDR_OK &&
					    address_parse("<bob@example.net>", &to, &rest, err,
							  sizeof(err)) == ADDR_OK, "parse");
		address_resolve(&from, &d, &from_res);
		address_resolve(&to, &d, &to_res);
		struct policy_request req = {&client, &from, &to, &from_res, &to_res, t[i].spf};
		struct policy_decision out;
		policy_check_rcpt(cfgs[C_SPF], &req, &out);
		CHECK_AT(t[i].line, out.action == t[i].action, "spf=%s: action %d, reply \"%s\"",
			 spf_result_name(t[i].spf), out.action, out.reply);
		CHECK_AT(t[i].line, strncmp(out.reply, t[i].reply, strlen(t[i].reply)) == 0,
			 "reply \"%s\", want \"%s...\"", out.reply, t[i].reply);
		CHECK_STR_AT(t[i].line, out.restriction, t[i].restriction, "restriction");
		CHECK_STR_AT(t[i].line, out.list, list_name[t[i].list], "list");
	}
}

int main(void)
{
	struct config *cfgs[N_CFG] = {NULL};
	CHECK(ip_parse("127.0.0.1", &local_ips[0]) && ip_parse("::1", &local_ips[1]), "ip_parse");
	if (load_configs(cfgs)) {
		for (size_t k = 0; k < RG_ARRAY_LEN(rows); k++)
			check_row_as(&rows[k], cfgs, false, false);
		for (size_t k = 0; k < RG_ARRAY_LEN(pickup_rows); k++)
			check_row_as(&pickup_rows[k].r, cfgs, true, pickup_rows[k].root);
		check_spf_rows(cfgs);
	}
	check_auth_destination();
	for (int k = 0; k < N_CFG; k++)
		config_free(cfgs[k]);
	return check_summary("policy");
}
