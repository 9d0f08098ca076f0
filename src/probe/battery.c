/*
 * battery.c - the relay tests: one row each, and how a row becomes commands.
 *
 * DESCRIPTION
 *	Placeholders: {vl}@{vd} is VICTIM (an outside address, example.net by
 *	default), {V} the same in mixed case, {d} TARGET_DOMAIN, {s} the name
 *	the server gave itself, {ip} the literal of the address we connected
 *	to, {u} a local part nobody has, {sl} our sender's local part, {h} the
 *	default HELO name. nmap's smtp-open-relay uses its EHLO domain where we
 *	use {vd}, "antispam" where we use {sl}, "relaytest" for {vl}.
 *
 *	The kind column says what a 2xx at RCPT means; probe_classify_rcpt()
 *	derives it from the address itself and the unit tests check that the
 *	two agree for every row.
 */
#include "probe/probe.h"
#include "address/address.h"

#include <stdio.h>
#include <string.h>

#define FIX_RELAY "the server relays for this client: refuse unauthorised destinations " \
	"(Postfix: smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, " \
	"reject_unauth_destination) and check that mynetworks does not cover the probe's address"
#define FIX_SENDER "relaying is granted by the sender address, which anyone can forge: " \
	"never permit relaying on MAIL FROM (Postfix: no check_sender_access OK / permit_sender_* " \
	"before reject_unauth_destination)"
#define FIX_HELO "relaying is granted by the HELO name, which anyone can forge: never " \
	"permit relaying on HELO (Postfix: no check_helo_access OK before reject_unauth_destination)"
#define FIX_ROUTING "sender-specified routing in the local part is honoured: refuse it " \
	"(Postfix: allow_untrusted_routing = no, the default; Sendmail: FEATURE(`loose_relay_check') " \
	"off; Exim: percent_hack_domains unset)"
#define FIX_SOURCE_ROUTE "source routes are followed to an outside domain: treat " \
	"<@relay:user@domain> as user@domain and apply the relay check to that (RFC 5321 appendix C)"
#define FIX_LITERAL "mail to address literals or numeric domains is relayed: refuse " \
	"destinations that are not yours, whatever their form"
#define FIX_SUBMISSION "the submission port relays without AUTH: require authentication " \
	"(Postfix master.cf: -o smtpd_relay_restrictions=permit_sasl_authenticated,reject)"
#define FIX_BACKSCATTER "unknown users of your domain are accepted at RCPT and will bounce " \
	"later (backscatter): reject them at RCPT (Postfix: local_recipient_maps, " \
	"reject_unlisted_recipient)"
#define FIX_AUTH_PLAIN "AUTH is processed on an unencrypted connection: offer it only after " \
	"STARTTLS (Postfix: smtpd_tls_auth_only = yes; Exim: auth_advertise_hosts = ${if eq{$tls_cipher}{}{}{*}})"
#define FIX_XCLIENT "XCLIENT from this client changes who the server thinks it is talking to: " \
	"allow it only from your own filters (Postfix: smtpd_authorized_xclient_hosts)"
#define FIX_PROXY "a PROXY protocol header from any client is believed: accept it only from " \
	"your load balancer (Postfix: postscreen_upstream_proxy_protocol only behind a proxy)"
#define FIX_NULL "bounces (MAIL FROM:<>) are relayed: the relay check must not depend on the sender"

#define FIX_SMUGGLE "the server ends a message at something other than <CR><LF>.<CR><LF>, so " \
	"a message relayed through another provider can carry a second, smuggled message with a " \
	"forged sender (SMTP smuggling): end DATA only at <CR><LF>.<CR><LF> and refuse bare <CR> " \
	"and <LF> (Postfix: smtpd_forbid_bare_newline = normalize, 3.9+ and the 3.5.23/3.6.13/" \
	"3.7.9/3.8.4 backports; short of that smtpd_data_restrictions = reject_unauth_pipelining; " \
	"Exim: 4.97.1 or later)"

#define NMAP(n) "nmap smtp-open-relay #" #n
#define SRC_PERCENT "Sendmail percent hack; RFC 1123 5.2.16"
#define SRC_BANG "UUCP bang path (RFC 976)"
#define SRC_ROUTE "source route, RFC 5321 4.1.1.3 and appendix C"
#define S_IP "{sl}@[{ip}]"
#define NO_EOD NULL, 0
#define SRC_SMUGGLE "SMTP smuggling (SEC Consult, Dec 2023)"
#define SRC_SMUGGLE_OUT SRC_SMUGGLE ", outbound list of its scanner"
/* the carrier message goes to the target's own postmaster (RFC 5321 4.5.1),
 * the smuggled one too: accepting it proves only that the message was split */
#define SMUGGLE(id, name, src, eod) \
	{id, name, src, NULL, "{sl}@{vd}", "postmaster@{d}", PK_SMUGGLE, PF_FRESH | PF_SMUGGLE, \
	 FIX_SMUGGLE, eod, sizeof(eod) - 1}

const struct probe_test probe_battery[] = {
	/* plain relaying */
	{"plain", "third-party relay", NMAP(2) "; RFC 5321 3.6.2", NULL, "{sl}@{vd}", "{vl}@{vd}",
	 PK_RELAY, 0, FIX_RELAY, NO_EOD},
	{"null-sender", "null sender", NMAP(1), NULL, "", "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_NULL, NO_EOD},
	{"sender-host", "sender at the server's host name", NMAP(3), NULL, "{sl}@{s}", "{vl}@{vd}",
	 PK_RELAY, PF_SENDER, FIX_SENDER, NO_EOD},
	{"sender-ip", "sender at the server's IP literal", NMAP(4), NULL, S_IP, "{vl}@{vd}",
	 PK_RELAY, PF_SENDER, FIX_SENDER, NO_EOD},
	{"sender-domain", "sender at the target's domain", "forged local sender", NULL,
	 "{sl}@{d}", "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_SENDER, NO_EOD},
	{"sender-localhost", "sender at localhost", "forged local sender", NULL, "{sl}@localhost",
	 "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_SENDER, NO_EOD},
	{"sender-unqualified", "unqualified sender", "RFC 5321 4.1.2 (forged local user)", NULL,
	 "{sl}", "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_SENDER, NO_EOD},
	{"helo-localhost", "HELO localhost", "forged HELO", "localhost", "{sl}@{vd}", "{vl}@{vd}",
	 PK_RELAY, 0, FIX_HELO, NO_EOD},
	{"helo-self", "HELO as the target's own name", "forged HELO", "{s}", "{sl}@{vd}",
	 "{vl}@{vd}", PK_RELAY, 0, FIX_HELO, NO_EOD},
	{"helo-ip", "HELO as the target's IP literal", "forged HELO; RFC 5321 4.1.4", "[{ip}]",
	 "{sl}@{vd}", "{vl}@{vd}", PK_RELAY, 0, FIX_HELO, NO_EOD},
	{"mixed-case", "mixed-case outside domain", "case-sensitive relay checks", NULL,
	 "{sl}@{vd}", "{V}", PK_RELAY, 0, FIX_RELAY, NO_EOD},
	{"trailing-dot", "trailing dot on the domain", "RFC 1035 absolute names", NULL,
	 "{sl}@{vd}", "{vl}@{vd}.", PK_RELAY, 0, FIX_RELAY, NO_EOD},
	{"trailing-at", "trailing @", "malformed address", NULL, "{sl}@{vd}", "{vl}@{vd}@",
	 PK_RELAY, 0, FIX_RELAY, NO_EOD},
	{"ipv4-literal", "outside IPv4 address literal", "RFC 5321 4.1.3; RFC 1123 5.2.17", NULL,
	 "{sl}@{vd}", "{vl}@[192.0.2.1]", PK_RELAY, 0, FIX_LITERAL, NO_EOD},
	{"ipv6-literal", "outside IPv6 address literal", "RFC 5321 4.1.3 [IPv6:...]", NULL,
	 "{sl}@{vd}", "{vl}@[IPv6:2001:db8::25]", PK_RELAY, 0, FIX_LITERAL, NO_EOD},
	{"numeric-domain", "bare numeric domain", "IP address without brackets", NULL,
	 "{sl}@{vd}", "{vl}@192.0.2.1", PK_RELAY, 0, FIX_LITERAL, NO_EOD},
	/* percent hack */
	{"percent-ip", "percent hack via [ip]", NMAP(5) "; " SRC_PERCENT, NULL, S_IP,
	 "{vl}%{vd}@[{ip}]", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"percent-host", "percent hack via host name", NMAP(6) "; " SRC_PERCENT, NULL, S_IP,
	 "{vl}%{vd}@{s}", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"percent-domain", "percent hack via domain", SRC_PERCENT, NULL, "{sl}@{vd}",
	 "{vl}%{vd}@{d}", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	/* quoted local parts and multiple @ */
	{"quoted-unqualified", "quoted local part, unqualified", NMAP(7) "; RFC 5321 4.1.2",
	 NULL, S_IP, "\"{vl}@{vd}\"", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"quoted-percent", "quoted percent local part, unqualified", NMAP(8), NULL, S_IP,
	 "\"{vl}%{vd}\"", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"multi-at-ip", "multiple @ via [ip]", NMAP(9), NULL, S_IP, "{vl}@{vd}@[{ip}]",
	 PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"quoted-at-ip", "quoted local part via [ip]", NMAP(10), NULL, S_IP,
	 "\"{vl}@{vd}\"@[{ip}]", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"multi-at-host", "multiple @ via host name", NMAP(11), NULL, S_IP, "{vl}@{vd}@{s}",
	 PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"quoted-at-domain", "quoted local part via domain", "RFC 5321 4.1.2 Quoted-string", NULL,
	 "{sl}@{vd}", "\"{vl}@{vd}\"@{d}", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	/* source routes */
	{"route-ip", "source route via [ip]", NMAP(12) "; " SRC_ROUTE, NULL, S_IP,
	 "@[{ip}]:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE, NO_EOD},
	{"route-host", "source route via host name", NMAP(13) "; " SRC_ROUTE, NULL, S_IP,
	 "@{s}:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE, NO_EOD},
	{"route-domain", "source route via domain", SRC_ROUTE, NULL, "{sl}@{vd}",
	 "@{d}:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE, NO_EOD},
	{"route-multihop", "multi-hop source route", SRC_ROUTE, NULL, "{sl}@{vd}",
	 "@{s},@[{ip}]:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE, NO_EOD},
	{"route-nocolon", "malformed source route without colon", "malformed " SRC_ROUTE, NULL,
	 "{sl}@{vd}", "@{s},{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE, NO_EOD},
	/* bang paths */
	{"bang-bare", "bang path, unqualified", NMAP(14) "; " SRC_BANG, NULL, S_IP, "{vd}!{vl}",
	 PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"bang-ip", "bang path via [ip]", NMAP(15) "; " SRC_BANG, NULL, S_IP, "{vd}!{vl}@[{ip}]",
	 PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"bang-host", "bang path via host name", NMAP(16) "; " SRC_BANG, NULL, S_IP,
	 "{vd}!{vl}@{s}", PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	{"bang-domain", "bang path via domain", SRC_BANG, NULL, "{sl}@{vd}", "{vd}!{vl}@{d}",
	 PK_AMBIGUOUS, 0, FIX_ROUTING, NO_EOD},
	/* session tricks */
	{"submission-noauth", "submission without AUTH", "RFC 6409 4.3", NULL, "{sl}@{d}",
	 "{vl}@{vd}", PK_RELAY, PF_SUBMISSION | PF_SENDER, FIX_SUBMISSION, NO_EOD},
	{"auth-before-tls", "AUTH accepted before TLS", "RFC 4954 4; RFC 3207 6", NULL,
	 "{sl}@{vd}", "{vl}@{vd}", PK_AUTH_PLAIN, PF_FRESH | PF_PLAINTEXT | PF_AUTH_BOGUS,
	 FIX_AUTH_PLAIN, NO_EOD},
	{"xclient", "XCLIENT spoofing 127.0.0.1", "Postfix XCLIENT extension", NULL, "{sl}@{vd}",
	 "{vl}@{vd}", PK_RELAY, PF_FRESH | PF_XCLIENT, FIX_XCLIENT, NO_EOD},
	{"proxy-protocol", "PROXY header spoofing 127.0.0.1", "HAProxy PROXY protocol v1", NULL,
	 "{sl}@{vd}", "{vl}@{vd}", PK_RELAY, PF_FRESH | PF_PROXY, FIX_PROXY, NO_EOD},
	{"backscatter", "unknown user of the target's domain", "backscatter (RFC 5321 6.2)",
	 NULL, "{sl}@{vd}", "{u}@{d}", PK_LOCAL, 0, FIX_BACKSCATTER, NO_EOD},
	{"auth-relay", "relaying after AUTH (--auth)", "RFC 4954; RFC 6409", NULL, "{sl}@{d}",
	 "{vl}@{vd}", PK_AUTH_RELAY, PF_FRESH | PF_AUTH | PF_NEEDS_AUTH,
	 "relaying does not work even after AUTH: check the credentials and "
	 "permit_sasl_authenticated", NO_EOD},
	/* SMTP smuggling: the fake end-of-data follows the last body line directly,
	 * the smuggled MAIL FROM follows it directly */
	SMUGGLE("smuggle-lf-lf", "smuggling with <LF>.<LF>", SRC_SMUGGLE, "\n.\n"),
	SMUGGLE("smuggle-crlf-lf", "smuggling with <CR><LF>.<LF>", SRC_SMUGGLE, "\r\n.\n"),
	SMUGGLE("smuggle-lf-crlf", "smuggling with <LF>.<CR><LF>", SRC_SMUGGLE, "\n.\r\n"),
	SMUGGLE("smuggle-cr-crlf", "smuggling with <CR>.<CR><LF>", SRC_SMUGGLE, "\r.\r\n"),
	SMUGGLE("smuggle-crlf-cr", "smuggling with <CR><LF>.<CR>", SRC_SMUGGLE, "\r\n.\r"),
	SMUGGLE("smuggle-lf-cr", "smuggling with <LF>.<CR>", SRC_SMUGGLE, "\n.\r"),
	SMUGGLE("smuggle-cr-lf", "smuggling with <CR>.<LF>", SRC_SMUGGLE, "\r.\n"),
	SMUGGLE("smuggle-cr-cr", "smuggling with <CR>.<CR>", SRC_SMUGGLE, "\r.\r"),
	SMUGGLE("smuggle-nul", "smuggling with <CR><LF><NUL>.<CR><LF>", SRC_SMUGGLE,
		"\r\n\0.\r\n"),
	SMUGGLE("smuggle-crlf-crcrlf", "smuggling with <CR><LF>.<CR><CR><LF>", SRC_SMUGGLE_OUT,
		"\r\n.\r\r\n"),
	SMUGGLE("smuggle-crcrlf", "smuggling with <CR><CR><LF>.<CR><CR><LF>", SRC_SMUGGLE_OUT,
		"\r\r\n.\r\r\n"),
};
const size_t probe_battery_len = RG_ARRAY_LEN(probe_battery);

const struct probe_test *probe_find_test(const char *id)
{
	for (size_t i = 0; i < probe_battery_len; i++)
		if (strcmp(probe_battery[i].id, id) == 0)
			return &probe_battery[i];
	return NULL;
}

/* mixed_case - "relaytest@example.net" -> "ReLaYtEsT@ExAmPlE.NeT". */
static void mixed_case(const char *in, char *out, size_t outlen)
{
	size_t i = 0;
	bool up = true;
	for (; in[i] != '\0' && i + 1 < outlen; i++) {
		char c = in[i];
		if (c >= 'a' && c <= 'z') {
			out[i] = up ? (char)(c - 'a' + 'A') : c;
			up = !up;
		} else {
			out[i] = c;
			up = true;
		}
	}
	out[i] = '\0';
}

static const char *lookup(const char *name, size_t n, const struct probe_vars *v,
			  char *tmp, size_t tmplen)
{
	struct {
		const char *key;
		const char *value;
	} map[] = {{"vl", v->victim_local}, {"vd", v->victim_domain}, {"d", v->domain},
		   {"s", v->server},        {"ip", v->ip},              {"u", v->user},
		   {"sl", v->sender_local}, {"h", v->helo}};
	for (size_t i = 0; i < RG_ARRAY_LEN(map); i++)
		if (strlen(map[i].key) == n && memcmp(map[i].key, name, n) == 0)
			return map[i].value ? map[i].value : "";
	if (n == 1 && name[0] == 'V') {
		char plain[2 * PROBE_NAME_MAX];
		snprintf(plain, sizeof(plain), "%s@%s", v->victim_local, v->victim_domain);
		mixed_case(plain, tmp, tmplen);
		return tmp;
	}
	return NULL;
}

bool probe_expand(const char *tmpl, const struct probe_vars *v, char *out, size_t outlen)
{
	struct strbuf sb;
	strbuf_init(&sb);
	for (const char *p = tmpl; *p;) {
		const char *close = *p == '{' ? strchr(p, '}') : NULL;
		char tmp[2 * PROBE_NAME_MAX];
		const char *val = close ? lookup(p + 1, (size_t)(close - p - 1), v, tmp, sizeof(tmp))
					: NULL;
		if (val != NULL) {
			strbuf_puts(&sb, val);
			p = close + 1;
		} else {
			strbuf_append(&sb, p, 1);
			p++;
		}
	}
	bool fits = sb.len < outlen;
	rg_strlcpy(out, sb.data ? sb.data : "", outlen);
	strbuf_free(&sb);
	return fits;
}

static bool own_name(const char *domain, const char *const *own)
{
	for (size_t i = 0; own[i] != NULL; i++)
		if (own[i][0] != '\0' && rg_strcasecmp(domain, own[i]) == 0)
			return true;
	return false;
}

/* probe_classify_rcpt - outside, ambiguous or local, from the path alone. */
enum probe_kind probe_classify_rcpt(const char *path, const char *const *own, const char *own_ip)
{
	char arg[ADDR_PATH_MAX + 8];
	snprintf(arg, sizeof(arg), "<%s>", path);
	struct address a;
	const char *params;
	char err[128];
	if (address_parse(arg, &a, &params, err, sizeof(err)) != ADDR_OK) {
		/* unparseable: without trailing '@'s, the last '@' names where it goes */
		char copy[ADDR_PATH_MAX + 1];
		rg_strlcpy(copy, path, sizeof(copy));
		size_t n = strlen(copy);
		while (n > 0 && copy[n - 1] == '@')
			copy[--n] = '\0';
		const char *at = strrchr(copy, '@');
		return at != NULL && !own_name(at + 1, own) ? PK_RELAY : PK_AMBIGUOUS;
	}
	bool ours = a.domain[0] == '\0' || own_name(a.domain, own);
	if (a.literal && own_ip != NULL) {
		char lit[96];
		snprintf(lit, sizeof(lit), "[%s]", own_ip);
		struct address b;
		char larg[128];
		snprintf(larg, sizeof(larg), "<x@%s>", lit);
		ours = address_parse(larg, &b, &params, err, sizeof(err)) == ADDR_OK &&
		       ip_equal(&a.literal_ip, &b.literal_ip);
	}
	if (!ours)
		return PK_RELAY;
	return (a.routing & (ROUTE_AT | ROUTE_PERCENT | ROUTE_BANG)) || a.domain[0] == '\0'
		       ? PK_AMBIGUOUS
		       : PK_LOCAL;
}
