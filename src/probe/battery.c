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

#define NMAP(n) "nmap smtp-open-relay #" #n
#define SRC_PERCENT "Sendmail percent hack; RFC 1123 5.2.16"
#define SRC_BANG "UUCP bang path (RFC 976)"
#define SRC_ROUTE "source route, RFC 5321 4.1.1.3 and appendix C"
#define S_IP "{sl}@[{ip}]"

const struct probe_test probe_battery[] = {
	/* plain relaying */
	{"plain", "third-party relay", NMAP(2) "; RFC 5321 3.6.2", NULL, "{sl}@{vd}", "{vl}@{vd}",
	 PK_RELAY, 0, FIX_RELAY},
	{"null-sender", "null sender", NMAP(1), NULL, "", "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_NULL},
	{"sender-host", "sender at the server's host name", NMAP(3), NULL, "{sl}@{s}", "{vl}@{vd}",
	 PK_RELAY, PF_SENDER, FIX_SENDER},
	{"sender-ip", "sender at the server's IP literal", NMAP(4), NULL, S_IP, "{vl}@{vd}",
	 PK_RELAY, PF_SENDER, FIX_SENDER},
	{"sender-domain", "sender at the target's domain", "forged local sender", NULL,
	 "{sl}@{d}", "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_SENDER},
	{"sender-localhost", "sender at localhost", "forged local sender", NULL, "{sl}@localhost",
	 "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_SENDER},
	{"sender-unqualified", "unqualified sender", "RFC 5321 4.1.2 (forged local user)", NULL,
	 "{sl}", "{vl}@{vd}", PK_RELAY, PF_SENDER, FIX_SENDER},
	{"helo-localhost", "HELO localhost", "forged HELO", "localhost", "{sl}@{vd}", "{vl}@{vd}",
	 PK_RELAY, 0, FIX_HELO},
	{"helo-self", "HELO as the target's own name", "forged HELO", "{s}", "{sl}@{vd}",
	 "{vl}@{vd}", PK_RELAY, 0, FIX_HELO},
	{"helo-ip", "HELO as the target's IP literal", "forged HELO; RFC 5321 4.1.4", "[{ip}]",
	 "{sl}@{vd}", "{vl}@{vd}", PK_RELAY, 0, FIX_HELO},
	{"mixed-case", "mixed-case outside domain", "case-sensitive relay checks", NULL,
	 "{sl}@{vd}", "{V}", PK_RELAY, 0, FIX_RELAY},
	{"trailing-dot", "trailing dot on the domain", "RFC 1035 absolute names", NULL,
	 "{sl}@{vd}", "{vl}@{vd}.", PK_RELAY, 0, FIX_RELAY},
	{"trailing-at", "trailing @", "malformed address", NULL, "{sl}@{vd}", "{vl}@{vd}@",
	 PK_RELAY, 0, FIX_RELAY},
	{"ipv4-literal", "outside IPv4 address literal", "RFC 5321 4.1.3; RFC 1123 5.2.17", NULL,
	 "{sl}@{vd}", "{vl}@[192.0.2.1]", PK_RELAY, 0, FIX_LITERAL},
	{"ipv6-literal", "outside IPv6 address literal", "RFC 5321 4.1.3 [IPv6:...]", NULL,
	 "{sl}@{vd}", "{vl}@[IPv6:2001:db8::25]", PK_RELAY, 0, FIX_LITERAL},
	{"numeric-domain", "bare numeric domain", "IP address without brackets", NULL,
	 "{sl}@{vd}", "{vl}@192.0.2.1", PK_RELAY, 0, FIX_LITERAL},
	/* percent hack */
	{"percent-ip", "percent hack via [ip]", NMAP(5) "; " SRC_PERCENT, NULL, S_IP,
	 "{vl}%{vd}@[{ip}]", PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"percent-host", "percent hack via host name", NMAP(6) "; " SRC_PERCENT, NULL, S_IP,
	 "{vl}%{vd}@{s}", PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"percent-domain", "percent hack via domain", SRC_PERCENT, NULL, "{sl}@{vd}",
	 "{vl}%{vd}@{d}", PK_AMBIGUOUS, 0, FIX_ROUTING},
	/* quoted local parts and multiple @ */
	{"quoted-unqualified", "quoted local part, unqualified", NMAP(7) "; RFC 5321 4.1.2",
	 NULL, S_IP, "\"{vl}@{vd}\"", PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"quoted-percent", "quoted percent local part, unqualified", NMAP(8), NULL, S_IP,
	 "\"{vl}%{vd}\"", PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"multi-at-ip", "multiple @ via [ip]", NMAP(9), NULL, S_IP, "{vl}@{vd}@[{ip}]",
	 PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"quoted-at-ip", "quoted local part via [ip]", NMAP(10), NULL, S_IP,
	 "\"{vl}@{vd}\"@[{ip}]", PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"multi-at-host", "multiple @ via host name", NMAP(11), NULL, S_IP, "{vl}@{vd}@{s}",
	 PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"quoted-at-domain", "quoted local part via domain", "RFC 5321 4.1.2 Quoted-string", NULL,
	 "{sl}@{vd}", "\"{vl}@{vd}\"@{d}", PK_AMBIGUOUS, 0, FIX_ROUTING},
	/* source routes */
	{"route-ip", "source route via [ip]", NMAP(12) "; " SRC_ROUTE, NULL, S_IP,
	 "@[{ip}]:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE},
	{"route-host", "source route via host name", NMAP(13) "; " SRC_ROUTE, NULL, S_IP,
	 "@{s}:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE},
	{"route-domain", "source route via domain", SRC_ROUTE, NULL, "{sl}@{vd}",
	 "@{d}:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE},
	{"route-multihop", "multi-hop source route", SRC_ROUTE, NULL, "{sl}@{vd}",
	 "@{s},@[{ip}]:{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE},
	{"route-nocolon", "malformed source route without colon", "malformed " SRC_ROUTE, NULL,
	 "{sl}@{vd}", "@{s},{vl}@{vd}", PK_RELAY, 0, FIX_SOURCE_ROUTE},
	/* bang paths */
	{"bang-bare", "bang path, unqualified", NMAP(14) "; " SRC_BANG, NULL, S_IP, "{vd}!{vl}",
	 PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"bang-ip", "bang path via [ip]", NMAP(15) "; " SRC_BANG, NULL, S_IP, "{vd}!{vl}@[{ip}]",
	 PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"bang-host", "bang path via host name", NMAP(16) "; " SRC_BANG, NULL, S_IP,
	 "{vd}!{vl}@{s}", PK_AMBIGUOUS, 0, FIX_ROUTING},
	{"bang-domain", "bang path via domain", SRC_BANG, NULL, "{sl}@{vd}", "{vd}!{vl}@{d}",
	 PK_AMBIGUOUS, 0, FIX_ROUTING},
	/* session tricks */
	{"submission-noauth", "submission without AUTH", "RFC 6409 4.3", NULL, "{sl}@{d}",
	 "{vl}@{vd}", PK_RELAY, PF_SUBMISSION | PF_SENDER, FIX_SUBMISSION},
	{"auth-before-tls", "AUTH accepted before TLS", "RFC 4954 4; RFC 3207 6", NULL,
	 "{sl}@{vd}", "{vl}@{vd}", PK_AUTH_PLAIN, PF_FRESH | PF_PLAINTEXT | PF_AUTH_BOGUS,
	 FIX_AUTH_PLAIN},
	{"xclient", "XCLIENT spoofing 127.0.0.1", "Postfix XCLIENT extension", NULL, "{sl}@{vd}",
	 "{vl}@{vd}", PK_RELAY, PF_FRESH | PF_XCLIENT, FIX_XCLIENT},
	{"proxy-protocol", "PROXY header spoofing 127.0.0.1", "HAProxy PROXY protocol v1", NULL,
	 "{sl}@{vd}", "{vl}@{vd}", PK_RELAY, PF_FRESH | PF_PROXY, FIX_PROXY},
	{"backscatter", "unknown user of the target's domain", "backscatter (RFC 5321 6.2)",
	 NULL, "{sl}@{vd}", "{u}@{d}", PK_LOCAL, 0, FIX_BACKSCATTER},
	{"auth-relay", "relaying after AUTH (--auth)", "RFC 4954; RFC 6409", NULL, "{sl}@{d}",
	 "{vl}@{vd}", PK_AUTH_RELAY, PF_FRESH | PF_AUTH | PF_NEEDS_AUTH,
	 "relaying does not work even after AUTH: check the credentials and "
	 "permit_sasl_authenticated"},
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
