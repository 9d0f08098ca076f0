/*
 * test_config.c - main.cf syntax, $name expansion, typed validation and the
 * refusal of configurations that could never deny a relay attempt.
 *
 * Every row writes its main.cf (and, when it has one, a cidr: table) into a
 * fresh mkdtemp directory. In the texts and expected messages "TABLE" stands
 * for the table's path; in expected messages "FILE" stands for main.cf's path,
 * so "FILE:3: unknown parameter" asserts the exact file:line of the error.
 */
#include "check.h"
#include "config/config.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPEN_RELAY "neither smtpd_relay_restrictions nor smtpd_recipient_restrictions can refuse"

/* A file that must not load: each of want[] is in the report, never[] is not. */
struct err_row {
	int line;
	const char *text;
	const char *table; /* contents of TABLE, or NULL */
	const char *want[3];
	const char *never;
};

#define ERR_ROW(text, table, never, ...) {__LINE__, text, table, {__VA_ARGS__}, never}

static const struct err_row err_rows[] = {
	/* misspelt parameter: file:line and a did-you-mean hint */
	ERR_ROW("# relay control\nmydomain = example.com\nmynetwork = 10.0.0.0/8\n", NULL, NULL,
		"FILE:3: unknown parameter \"mynetwork\" (did you mean \"mynetworks\"?)"),
	ERR_ROW("smtpd_relay_restriction = permit_mynetworks\n", NULL, NULL,
		"FILE:1: unknown parameter \"smtpd_relay_restriction\" (did you mean "
		"\"smtpd_relay_restrictions\"?)"),
	/* nothing close: no hint */
	ERR_ROW("frobnicate = 1\n", NULL, "did you mean",
		"FILE:1: unknown parameter \"frobnicate\""),
	/* parameter names are case-sensitive, as in Postfix */
	ERR_ROW("MyNetworks = 10.0.0.0/8\n", NULL, NULL,
		"FILE:1: unknown parameter \"MyNetworks\" (did you mean \"mynetworks\"?)"),
	/* every unknown name is reported, each with its own line */
	ERR_ROW("mynetwork = 10.0.0.0/8\n\nfoo = bar\n", NULL, NULL,
		"FILE:1: unknown parameter \"mynetwork\"", "FILE:3: unknown parameter \"foo\""),
	/* a CIDR with host bits set is almost always a typo for something wider */
	ERR_ROW("mynetworks = 127.0.0.0/8 10.0.0.1/8\n", NULL, NULL,
		"FILE:1: mynetworks: \"10.0.0.1/8\" has host bits set beyond /8 (did you mean "
		"10.0.0.0/8?)"),
	ERR_ROW("mynetworks = [2001:db8::1]/32\n", NULL, NULL,
		"FILE:1: mynetworks: \"[2001:db8::1]/32\" has host bits set"),
	ERR_ROW("mynetworks = 10.0.0.0/33\n", NULL, NULL,
		"FILE:1: mynetworks: \"10.0.0.0/33\": prefix length must be 0..32"),
	ERR_ROW("mynetworks = mail.example.com\n", NULL, NULL,
		"FILE:1: mynetworks: \"mail.example.com\" is not an IP address or network"),
	/* numbers */
	ERR_ROW("message_size_limit = 10MB\n", NULL, NULL,
		"FILE:1: message_size_limit: \"10MB\" is not a whole number"),
	ERR_ROW("smtpd_recipient_limit = -1\n", NULL, NULL,
		"FILE:1: smtpd_recipient_limit: \"-1\" is not a whole number"),
	ERR_ROW("smtpd_hard_error_limit = 99999999999999999999999\n", NULL, NULL,
		"FILE:1: smtpd_hard_error_limit: \"99999999999999999999999\" is not a whole "
		"number"),
	ERR_ROW("smtpd_recipient_limit = 0\n", NULL, NULL,
		"FILE:1: smtpd_recipient_limit: 0 is out of range (1..100000)"),
	ERR_ROW("hopcount_limit = 0\n", NULL, NULL,
		"FILE:1: hopcount_limit: 0 is out of range (1..100000)"),
	ERR_ROW("header_size_limit = 100\n", NULL, NULL,
		"FILE:1: header_size_limit: 100 is out of range (1024..1073741824)"),
	ERR_ROW("hopcount_limit = many\n", NULL, NULL,
		"FILE:1: hopcount_limit: \"many\" is not a whole number"),
	/* durations */
	ERR_ROW("smtpd_timeout = 5x\n", NULL, NULL,
		"FILE:1: smtpd_timeout: \"5x\" is not a time (e.g. 300s, 5m, 1h)"),
	ERR_ROW("smtpd_timeout = m\n", NULL, NULL, "FILE:1: smtpd_timeout: \"m\" is not a time"),
	ERR_ROW("smtpd_timeout = 2d\n", NULL, NULL,
		"FILE:1: smtpd_timeout: 2d is out of range (1..86400)"),
	/* restrictions */
	ERR_ROW("smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destinaton\n", NULL,
		NULL, "FILE:1: smtpd_relay_restrictions: unknown restriction "
		"\"reject_unauth_destinaton\""),
	ERR_ROW("smtpd_client_restrictions = check_client_access texthash:/etc/x\n", NULL, NULL,
		"FILE:1: smtpd_client_restrictions: check_client_access needs a cidr:/path table "
		"after it"),
	ERR_ROW("smtpd_client_restrictions = check_client_access\n", NULL, NULL,
		"FILE:1: smtpd_client_restrictions: check_client_access needs a cidr:/path table"),
	/* Postfix restrictions relayguard lacks: said so, one error with the argument */
	ERR_ROW("smtpd_sender_restrictions = check_sender_access hash:/etc/postfix/access\n", NULL,
		"unknown restriction", "FILE:1: smtpd_sender_restrictions: \"check_sender_access\" "
		"is a Postfix restriction relayguard does not support yet (see README, Known "
		"limitations)"),
	ERR_ROW("smtpd_client_restrictions = permit_mynetworks,\n"
		"    reject_rbl_client zen.spamhaus.org\n", NULL, "unknown restriction",
		"FILE:1: smtpd_client_restrictions: \"reject_rbl_client\" is a Postfix restriction "
		"relayguard does not support yet"),
	/* an argument left out does not swallow the next restriction */
	ERR_ROW("smtpd_recipient_restrictions = check_policy_service,\n"
		"    Reject_Unknown_Sender_Domain, check_recipient_access hash:/x\n", NULL,
		"unknown restriction", "\"check_policy_service\" is a Postfix restriction",
		"\"reject_unknown_sender_domain\" is a Postfix restriction",
		"\"check_recipient_access\" is a Postfix restriction"),
	ERR_ROW("smtpd_client_restrictions = check_client_access hash:/etc/postfix/access\n", NULL,
		"unknown restriction", "FILE:1: smtpd_client_restrictions: check_client_access needs "
		"a cidr:/path table after it (\"hash:/etc/postfix/access\": relayguard reads no "
		"other access table yet, see README, Known limitations)"),
	/* line syntax */
	ERR_ROW("mynetworks 127.0.0.0/8\n", NULL, NULL, "FILE:1: expected \"name = value\""),
	ERR_ROW("mydomain = example.com\n= value\n", NULL, NULL,
		"FILE:2: expected \"name = value\""),
	ERR_ROW("# comment first\n\tlocalhost\n", NULL, NULL,
		"FILE:2: continuation line without a parameter before it"),
	/* $name expansion */
	ERR_ROW("myhostname = mx.$nosuch\n", NULL, NULL,
		"FILE:1: parameter myhostname: unknown parameter $nosuch"),
	ERR_ROW("mydomain = example.com\nmyorigin = ${nosuch}\n", NULL, NULL,
		"FILE:2: parameter myorigin: unknown parameter $nosuch"),
	ERR_ROW("myhostname = $myorigin\nmyorigin = $myhostname\n", NULL, NULL,
		"FILE:1: parameter myhostname: $name expansion loops",
		"FILE:2: parameter myorigin: $name expansion loops"),
	ERR_ROW("mydomain = sub.$(mydomain)\n", NULL, NULL,
		"FILE:1: parameter mydomain: $name expansion loops"),
	/* exponential expansion ("billion laughs") is stopped, not computed */
	ERR_ROW("mail_owner = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
		"smtpd_banner = $mail_owner$mail_owner$mail_owner$mail_owner$mail_owner$mail_owner\n"
		"myorigin = $smtpd_banner$smtpd_banner$smtpd_banner$smtpd_banner$smtpd_banner\n"
		"mydomain = $myorigin$myorigin$myorigin$myorigin$myorigin$myorigin$myorigin\n"
		"myhostname = $mydomain$mydomain$mydomain$mydomain$mydomain$mydomain$mydomain"
		"$mydomain$mydomain$mydomain$mydomain$mydomain\n", NULL, NULL,
		"FILE:5: parameter myhostname: $name expansion longer than 65536 bytes"),
	/* an unterminated ${ is an error at that line, whatever the wording */
	ERR_ROW("myorigin = ${mydomain\n", NULL, NULL, "FILE:1: parameter myorigin:"),
	/* names and domains */
	ERR_ROW("myhostname = -bad.example\n", NULL, NULL,
		"FILE:1: myhostname: \"-bad.example\" is not a valid host or domain name"),
	ERR_ROW("mydestination = localhost bad_domain\n", NULL, NULL,
		"FILE:1: mydestination: \"bad_domain\" is not a domain name"),
	ERR_ROW("mydestination = .example.com\n", NULL, NULL,
		"FILE:1: mydestination: \".example.com\" is not a domain name (only relay_domains "
		"takes \".parent\" patterns)"),
	ERR_ROW("mydestination = [127.0.0.1]\n", NULL, NULL,
		"FILE:1: mydestination: \"[127.0.0.1]\" is not a domain name"),
	ERR_ROW("smtpd_listen = 127.0.0.1\n", NULL, NULL,
		"FILE:1: smtpd_listen: \"127.0.0.1\" is not address:port"),
	ERR_ROW("local_recipient_maps = cidr:TABLE\n", "127.0.0.1 OK\n", NULL,
		"FILE:1: local_recipient_maps: a cidr: table cannot list recipients"),
	ERR_ROW("local_recipient_maps = hash:/etc/postfix/users\n", NULL, NULL,
		"FILE:1: local_recipient_maps: unsupported table \"hash:/etc/postfix/users\""),

	/* --- open relay: refused, naming the file, the line and the fix --- */
	ERR_ROW("smtpd_relay_restrictions = permit\n", NULL, NULL, "FILE:1: " OPEN_RELAY,
		"reject_unauth_destination"),
	ERR_ROW("# relay\nmynetworks = 127.0.0.0/8\nsmtpd_relay_restrictions = permit_mynetworks,\n"
		"    permit_sasl_authenticated\n", NULL, NULL, "FILE:3: " OPEN_RELAY,
		"reject_unauth_destination"),
	ERR_ROW("smtpd_relay_restrictions =\n", NULL, NULL, "FILE:1: " OPEN_RELAY,
		"reject_unauth_destination"),
	ERR_ROW("smtpd_recipient_restrictions = permit_mynetworks\nsmtpd_relay_restrictions = "
		"permit_auth_destination\n", NULL, NULL, "FILE:2: " OPEN_RELAY,
		"reject_unauth_destination"),
	/* only the recipient list set: the error points at it */
	ERR_ROW("smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit\n", NULL, NULL,
		"FILE:1: " OPEN_RELAY),
	/* a refusal that stands after an unconditional permit is never reached (see report) */
	ERR_ROW("smtpd_relay_restrictions = permit, reject_unauth_destination\n", NULL, NULL,
		"FILE:1: " OPEN_RELAY, "reject_unauth_destination"),
	ERR_ROW("smtpd_relay_restrictions = permit_mynetworks, permit, reject\n", NULL, NULL,
		"FILE:1: " OPEN_RELAY),

	/* relay_domains patterns that cover a public suffix relay for the world */
	ERR_ROW("relay_domains = .com\n", NULL, NULL,
		"FILE:1: relay_domains: \".com\" would relay for every domain under the public "
		"suffix \"com\""),
	ERR_ROW("relay_domains = backup.example, .co.uk\n", NULL, NULL,
		"FILE:1: relay_domains: \".co.uk\" would relay"),
	ERR_ROW("dns_servers = not-an-ip\n", NULL, NULL,
		"FILE:1: dns_servers: \"not-an-ip\" is not ip or ip:port"),
	ERR_ROW("smtpd_listen = []:2525\n", NULL, NULL,
		"FILE:1: smtpd_listen: \"[]:2525\" is not address:port"),
	ERR_ROW("mynetworks = [::ffff:10.0.0.0]/104\n", NULL, NULL,
		"FILE:1: mynetworks: \"[::ffff:10.0.0.0]/104\": prefix length must be 0..32 "
		"(IPv4-mapped"),

	/* --- cidr: access tables report their own file:line --- */
	ERR_ROW("smtpd_client_restrictions = check_client_access cidr:TABLE\n",
		"# bad network on line 3\n127.0.0.66 REJECT go away\n10.0.0.1/8 OK\n", NULL,
		"FILE:1: smtpd_client_restrictions: TABLE:3: \"10.0.0.1/8\" has host bits set"),
	ERR_ROW("smtpd_client_restrictions = check_client_access cidr:TABLE\n",
		"127.0.0.66\n", NULL,
		"FILE:1: smtpd_client_restrictions: TABLE:1: \"127.0.0.66\" needs an action"),
	ERR_ROW("smtpd_client_restrictions = check_client_access cidr:TABLE\n",
		"127.0.0.66 FROB\n", NULL,
		"FILE:1: smtpd_client_restrictions: cidr:TABLE: unknown action \"FROB\""),
	ERR_ROW("smtpd_client_restrictions = check_client_access cidr:TABLE.missing\n", NULL,
		NULL, "FILE:1: smtpd_client_restrictions: cannot open table TABLE.missing"),
};

/* A file that must load: param's effective value (as "relayguard config" prints it). */
struct value_row {
	int line;
	const char *text;
	const char *param, *want;
};

#define VALUE_ROW(text, param, want) {__LINE__, text, param, want}
#define EXPAND_CF "mydomain = Example.COM\nmyhostname = mx.$mydomain\nmyorigin = ${mydomain}\n" \
		  "smtpd_banner = $(myhostname) ESMTP $$5 $mail_owner\n"
#define CONT_CF "# our domains\nmydestination = localhost,\n  ourdomain.example\n" \
		"\t# a comment inside a continued value\n\n   other.example\n"           \
		"mynetworks = 10.0.0.0/8\n"

static const struct value_row value_rows[] = {
	/* $name, ${name}, $(name) and $$ */
	VALUE_ROW(EXPAND_CF, "myhostname", "mx.Example.COM"),
	VALUE_ROW(EXPAND_CF, "myorigin", "Example.COM"),
	VALUE_ROW(EXPAND_CF, "smtpd_banner", "mx.Example.COM ESMTP $5 relayguard"),
	/* continuation lines join with one blank; comments and blank lines vanish */
	VALUE_ROW(CONT_CF, "mydestination", "localhost, ourdomain.example other.example"),
	VALUE_ROW(CONT_CF, "mynetworks", "10.0.0.0/8"),
	/* the last setting wins */
	VALUE_ROW("mynetworks = 10.0.0.0/8\nmynetworks = 192.168.0.0/16\n", "mynetworks",
		  "192.168.0.0/16"),
	/* CRLF files and blanks around '=' */
	VALUE_ROW("mynetworks=10.0.0.0/8\r\nrelay_domains   =   backup.example  \r\n", "mynetworks",
		  "10.0.0.0/8"),
	VALUE_ROW("mynetworks=10.0.0.0/8\r\nrelay_domains   =   backup.example  \r\n",
		  "relay_domains", "backup.example"),
	/* a permit before the refusal in the RECIPIENT list is fine: relay list still denies */
	VALUE_ROW("smtpd_recipient_restrictions = permit\n", "smtpd_recipient_restrictions",
		  "permit"),
	/* Postfix < 2.10 style: everything in smtpd_recipient_restrictions */
	VALUE_ROW("smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks, "
		  "reject_unauth_destination\n", "smtpd_relay_restrictions", ""),
	VALUE_ROW("smtpd_relay_restrictions = permit_mynetworks, reject\n",
		  "smtpd_relay_restrictions", "permit_mynetworks, reject"),
	VALUE_ROW("smtpd_relay_restrictions = permit_mynetworks defer_unauth_destination\n",
		  "smtpd_relay_restrictions", "permit_mynetworks defer_unauth_destination"),
	VALUE_ROW("smtpd_timeout = 5m\n", "smtpd_timeout", "5m"),
	/* 0 connections per client means no limit, as in Postfix */
	VALUE_ROW("smtpd_client_connection_count_limit = 0\n",
		  "smtpd_client_connection_count_limit", "0"),
	/* Postfix's defaults */
	VALUE_ROW("mynetworks = 10.0.0.0/8\n", "hopcount_limit", "50"),
	VALUE_ROW("mynetworks = 10.0.0.0/8\n", "header_size_limit", "102400"),
	VALUE_ROW("hopcount_limit = 20\nheader_size_limit = 4096\n", "header_size_limit", "4096"),
};

/* subst - s with FILE and TABLE replaced by the paths. */
static char *subst(const char *s, const char *file, const char *table)
{
	struct strbuf out;
	strbuf_init(&out);
	while (*s) {
		if (strncmp(s, "FILE", 4) == 0) {
			strbuf_puts(&out, file);
			s += 4;
		} else if (strncmp(s, "TABLE", 5) == 0) {
			strbuf_puts(&out, table);
			s += 5;
		} else {
			strbuf_append(&out, s++, 1);
		}
	}
	return strbuf_steal(&out);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL, "cannot create %s", path);
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

/* The temporary directory and the two files every row may use. */
static char tmpdir[] = "/tmp/rg-test-config-XXXXXX";
static char *cf_path, *table_path;

/* load_text - config_load() of text written as main.cf (and table as TABLE). */
static struct config *load_text(const char *text, const char *table, char **errors)
{
	char *cf = subst(text, cf_path, table_path);
	write_file(cf_path, cf);
	free(cf);
	if (table != NULL)
		write_file(table_path, table);
	struct config *cfg = config_load(cf_path, errors);
	unlink(cf_path);
	unlink(table_path);
	return cfg;
}

static void check_err_row(const struct err_row *w)
{
	char *errors = NULL;
	struct config *cfg = load_text(w->text, w->table, &errors);
	CHECK_AT(w->line, cfg == NULL, "loaded, but must be refused:\n%s", w->text);
	for (size_t k = 0; k < RG_ARRAY_LEN(w->want) && w->want[k] != NULL; k++) {
		char *want = subst(w->want[k], cf_path, table_path);
		CHECK_AT(w->line, errors != NULL && strstr(errors, want) != NULL,
			 "want \"%s\" in errors:\n%s", want, errors ? errors : "(none)");
		free(want);
	}
	if (w->never != NULL)
		CHECK_AT(w->line, errors == NULL || strstr(errors, w->never) == NULL,
			 "\"%s\" must not be in errors:\n%s", w->never, errors);
	/* every line of the report is "file...: message\n" */
	for (const char *p = errors; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		CHECK_AT(w->line, strncmp(p, cf_path, strlen(cf_path)) == 0 && nl != NULL,
			 "error line does not start with the file name: %s", p);
		p = nl ? nl + 1 : NULL;
	}
	config_free(cfg);
	free(errors);
}

static const char *param_value(const struct config *cfg, const char *name)
{
	for (size_t k = 0; k < cfg->n_params; k++)
		if (strcmp(cfg->names[k], name) == 0)
			return cfg->values[k];
	return NULL;
}

static void check_value_row(const struct value_row *w)
{
	char *errors = NULL;
	struct config *cfg = load_text(w->text, NULL, &errors);
	CHECK_AT(w->line, cfg != NULL && errors == NULL, "does not load: %s",
		 errors ? errors : "");
	if (cfg != NULL)
		CHECK_STR_AT(w->line, param_value(cfg, w->param), w->want, w->param);
	config_free(cfg);
	free(errors);
}

/* Typed fields of the files above: lists lowered and split, origins, seconds. */
static void check_typed(void)
{
	char *errors = NULL;
	const char *text = EXPAND_CF CONT_CF "smtpd_timeout = 5m\n"
			   "relay_domains = .Sub.Example backup.example.\n";
	struct config *cfg = load_text(text, NULL, &errors);
	CHECK(cfg != NULL, "typed: does not load: %s", errors ? errors : "");
	free(errors);
	if (cfg == NULL)
		return;
	CHECK_STR_AT(__LINE__, cfg->myhostname, "mx.example.com", "myhostname (lower case)");
	CHECK_STR_AT(__LINE__, cfg->myorigin, "example.com", "myorigin (lower case)");
	/* commas and blanks both separate items */
	const char *const dest[] = {"localhost", "ourdomain.example", "other.example"};
	for (size_t k = 0; k < 3; k++)
		CHECK_STR_AT(__LINE__, cfg->mydestination[k], dest[k], "mydestination item");
	CHECK(cfg->mydestination[3] == NULL, "mydestination has 3 items");
	CHECK_STR_AT(__LINE__, cfg->relay_domains[0], ".sub.example", "relay_domains[0]");
	CHECK_STR_AT(__LINE__, cfg->relay_domains[1], "backup.example", "relay_domains[1]");
	CHECK(cfg->n_mynetworks == 1 && cfg->mynetworks[0].prefix == 8, "mynetworks 10.0.0.0/8");
	CHECK(cfg->smtpd_timeout == 300, "smtpd_timeout 5m = %llu s",
	      (unsigned long long)cfg->smtpd_timeout);
	/* origins: mynetworks is on line 11 of the combined text, myorigin on 3 */
	for (size_t k = 0; k < cfg->n_params; k++) {
		if (strcmp(cfg->names[k], "mynetworks") == 0)
			CHECK(cfg->origins[k].line == 11 && cfg->origins[k].file != NULL,
			      "origin of mynetworks: line %u", cfg->origins[k].line);
		if (strcmp(cfg->names[k], "queue_directory") == 0)
			CHECK(cfg->origins[k].file == NULL,
			      "queue_directory is a built-in default");
	}
	config_free(cfg);
}

/* The embedded default: loads, is safe, and warns about nothing. */
static void check_default(void)
{
	/* a sentinel, so the check proves config_load() clears *errors on success */
	char unset[] = "unset";
	char *errors = unset;
	struct config *cfg = config_load(NULL, &errors);
	CHECK(cfg != NULL && errors == NULL, "default does not load: %s", errors ? errors : "");
	if (errors != unset)
		free(errors);
	if (cfg == NULL)
		return;
	CHECK(cfg->file == NULL, "default has no file");
	CHECK_STR_AT(__LINE__, param_value(cfg, "smtpd_relay_restrictions"),
		     "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
		     "default smtpd_relay_restrictions");
	CHECK(cfg->relay.n == 3 && cfg->relay.items[2].kind == R_REJECT_UNAUTH_DESTINATION,
	      "default relay list ends in reject_unauth_destination");
	CHECK_STR_AT(__LINE__, cfg->relay.param, "smtpd_relay_restrictions", "relay.param");
	CHECK_STR_AT(__LINE__, param_value(cfg, "mynetworks"), "127.0.0.0/8 [::1]/128",
		     "default mynetworks");
	CHECK(cfg->n_mynetworks == 2, "default mynetworks has 2 networks");
	CHECK_STR_AT(__LINE__, cfg->mydestination[0], "localhost", "default mydestination");
	CHECK(cfg->mydestination[1] == NULL, "default mydestination has one domain");
	CHECK(cfg->relay_domains[0] == NULL, "default relay_domains is empty");
	CHECK(cfg->smtpd_timeout == 300 && cfg->message_size_limit == 10240000,
	      "default limits");
	CHECK_STR_AT(__LINE__, cfg->myorigin, cfg->myhostname, "default myorigin = $myhostname");

	struct rg_ip ip;
	CHECK(ip_parse("127.0.0.1", &ip) && config_in_mynetworks(cfg, &ip), "127.0.0.1 trusted");
	CHECK(ip_parse("::ffff:127.0.0.5", &ip) && config_in_mynetworks(cfg, &ip),
	      "v4-mapped loopback trusted");
	CHECK(ip_parse("::1", &ip) && config_in_mynetworks(cfg, &ip), "::1 trusted");
	CHECK(ip_parse("192.0.2.9", &ip) && !config_in_mynetworks(cfg, &ip), "192.0.2.9 not");
	CHECK(ip_parse("::2", &ip) && !config_in_mynetworks(cfg, &ip), "::2 not");

	char *warnings = config_warnings(cfg);
	CHECK(warnings == NULL, "default config warns: %s", warnings);
	free(warnings);
	config_free(cfg);
}

/* config_warnings() - risky mynetworks are named; loopback alone is not. */
/* mydomain follows a configured myhostname, as in Postfix; errors come in file order */
static void check_derived(void)
{
	char *errors = NULL;
	struct config *cfg = load_text("myhostname = Mail.Example.Test\n", NULL, &errors);
	CHECK(cfg != NULL, "derived: does not load: %s", errors ? errors : "");
	free(errors);
	if (cfg != NULL) {
		CHECK_STR_AT(__LINE__, cfg->mydomain, "example.test", "mydomain from myhostname");
		config_free(cfg);
	}
	errors = NULL;
	cfg = load_text("smtpd_relay_restrictions = permit\nfoo = 1\nmynetworks = 10.0.0.1/8\n",
			NULL, &errors);
	CHECK(cfg == NULL && errors != NULL, "derived: must be refused");
	if (errors != NULL) {
		char *one = strstr(errors, ":1: "), *two = strstr(errors, ":2: ");
		char *three = strstr(errors, ":3: ");
		CHECK(one && two && three && one < two && two < three, "errors not in file order:\n%s",
		      errors);
	}
	free(errors);
	config_free(cfg);
	errors = NULL;
	cfg = load_text("smtpd_relay_restrictions = reject_unauth_destinaton\n", NULL, &errors);
	CHECK(errors && strstr(errors, "(did you mean \"reject_unauth_destination\"?)"),
	      "no hint for a misspelt restriction: %s", errors ? errors : "");
	free(errors);
	config_free(cfg);
}

static void check_warnings(void)
{
	static const struct {
		int line;
		const char *text;
		const char *want[2]; /* NULL want[0]: no warning at all */
	} t[] = {
		{__LINE__, "mynetworks = 0.0.0.0/0 [::]/0\n",
		 {"mynetworks contains 0.0.0.0/0: EVERY client on the Internet may relay; this "
		  "server is an open relay", "mynetworks contains [::]/0: EVERY client"}},
		{__LINE__, "mynetworks = 127.0.0.0/8 0.0.0.0/0\n", {"0.0.0.0/0", "open relay"}},
		/* TEST-NET-3 is nobody's interface: neither loopback nor ours */
		{__LINE__, "mynetworks = 127.0.0.0/8 203.0.113.0/24\n",
		 {"mynetworks contains 203.0.113.0/24, which is neither loopback nor a network of "
		  "this host", NULL}},
		{__LINE__, "mynetworks = 127.0.0.0/8 [::1]/128\n", {NULL, NULL}},
		{__LINE__, "mynetworks = 127.0.0.1/32\n", {NULL, NULL}},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		char *errors = NULL;
		struct config *cfg = load_text(t[k].text, NULL, &errors);
		CHECK_AT(t[k].line, cfg != NULL, "does not load: %s", errors ? errors : "");
		free(errors);
		if (cfg == NULL)
			continue;
		char *w = config_warnings(cfg);
		if (t[k].want[0] == NULL)
			CHECK_AT(t[k].line, w == NULL, "unexpected warning: %s", w);
		for (size_t j = 0; j < 2 && t[k].want[j] != NULL; j++)
			CHECK_AT(t[k].line, w != NULL && strstr(w, t[k].want[j]) != NULL,
				 "want \"%s\" in warnings: %s", t[k].want[j], w ? w : "(none)");
		free(w);
		config_free(cfg);
	}
}

/* A file that cannot be opened is an error naming it. */
static void check_missing_file(void)
{
	char *errors = NULL;
	char *path = xasprintf("%s/no-such-main.cf", tmpdir);
	struct config *cfg = config_load(path, &errors);
	char *want = xasprintf("%s: cannot open", path);
	CHECK(cfg == NULL && errors != NULL && strstr(errors, want) != NULL,
	      "missing file: %s", errors ? errors : "(no error)");
	config_free(cfg);
	free(errors);
	free(want);
	free(path);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		CHECK(false, "mkdtemp failed");
		return check_summary("config");
	}
	cf_path = xasprintf("%s/main.cf", tmpdir);
	table_path = xasprintf("%s/access.cidr", tmpdir);
	for (size_t k = 0; k < RG_ARRAY_LEN(err_rows); k++)
		check_err_row(&err_rows[k]);
	for (size_t k = 0; k < RG_ARRAY_LEN(value_rows); k++)
		check_value_row(&value_rows[k]);
	check_typed();
	check_default();
	check_warnings();
	check_derived();
	check_missing_file();
	free(cf_path);
	free(table_path);
	rmdir(tmpdir);
	return check_summary("config");
}
