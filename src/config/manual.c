/*
 * manual.c - relayguard.conf(5), written in mdoc from the parameter table.
 *
 * Owns: the text of the manual page around the table: syntax, value types,
 * one entry per params.def row (meaning, type, default, limits, Postfix
 * equivalent, example), restrictions, tables. doc/relayguard.conf.5 is this
 * output (`relayguard config --man`; `make man`), and a test compares them.
 * Must not: depend on the machine it runs on (no host names, no dates): the
 * page is the same wherever it is generated.
 */
#include "config/params.h"

#include <stdarg.h>
#include <string.h>

#define MANUAL_DATE "December 4, 2026"

/* put_escaped - s with mdoc's special characters made plain. */
static void put_escaped(FILE *out, const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (s[k] == '\\')
			fputs("\\e", out);
		else
			fputc(s[k], out);
	}
}

/* put_line - one text line of at most 80 bytes (mandoc's style), broken
 * at blanks; a line never starts with a control character. */
static void put_line(FILE *out, const char *s, size_t n)
{
	while (n > 0) {
		size_t take = n;
		if (take > 80) {
			for (take = 80; take > 1 && s[take] != ' '; take--)
				;
			if (take <= 1)
				take = n; /* one long word: keep it whole */
		}
		if (*s == '.' || *s == '\'')
			fputs("\\&", out);
		put_escaped(out, s, take);
		fputc('\n', out);
		for (s += take, n -= take; n > 0 && *s == ' '; s++, n--)
			;
	}
}

/* put_text - text lines, one sentence a line (mdoc's rule). */
static void put_text(FILE *out, const char *s)
{
	while (*s == ' ')
		s++;
	while (*s) {
		const char *end = strstr(s, ". ");
		size_t n = end ? (size_t)(end - s) + 1 : strlen(s);
		put_line(out, s, n);
		for (s += n; *s == ' '; s++)
			;
	}
}

/* put_textf - put_text of a formatted line. */
static void put_textf(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_textf(FILE *out, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	put_text(out, line);
}

/* put_macro - ".Mc "arg" tail": one quoted argument. */
static void put_macro(FILE *out, const char *macro, const char *arg, const char *tail)
{
	fprintf(out, ".%s \"", macro);
	for (const char *p = arg; *p; p++) {
		if (*p == '"')
			fputs("\"\"", out);
		else
			put_escaped(out, p, 1);
	}
	fprintf(out, "\"%s\n", tail);
}

static void put_default(FILE *out, const struct param_def *p)
{
	if (p->def == NULL) {
		put_textf(out, "Default: %s.", p->def_doc);
		return;
	}
	if (p->def[0] == '\0') {
		put_textf(out, "Default: empty%s%s%s.", p->def_doc ? " (" : "",
			  p->def_doc ? p->def_doc : "", p->def_doc ? ")" : "");
		return;
	}
	fputs("Default:\n", out);
	put_macro(out, "Ql", p->def, " .");
}

static void put_limits(FILE *out, const struct param_def *p)
{
	static const char *const units[PT_COUNT_TYPES] = {
		[PT_SIZE] = " bytes", [PT_DURATION] = " seconds"};
	if (p->type == PT_COUNT || p->type == PT_SIZE || p->type == PT_DURATION)
		fprintf(out, "Range: %llu to %llu%s.\n", (unsigned long long)p->min,
			(unsigned long long)p->max, units[p->type] ? units[p->type] : "");
	if (p->type != PT_CHOICE)
		return;
	fputs("Values:", out);
	for (size_t k = 0; p->choices[k].name; k++)
		fprintf(out, " %s%s", p->choices[k].name, p->choices[k + 1].name ? "," : ".\n");
}

static void put_postfix(FILE *out, const struct param_def *p)
{
	if (p->postfix == PF_SAME)
		fputs("Postfix: the parameter of the same name.\n", out);
	else if (p->postfix == PF_LIKE)
		put_textf(out, "Postfix: the parameter of the same name (%s).", p->pf_note);
	else if (p->pf_note == NULL || p->pf_note[0] == '\0')
		fputs("Postfix: none, this is relayguard's own.\n", out);
	else
		put_textf(out, "Postfix: none; the nearest is %s.", p->pf_note);
}

static void put_param(FILE *out, const struct param_def *p)
{
	fprintf(out, ".It Va %s Pq %s\n", p->name, config_param_type_name(p->type));
	put_text(out, p->meaning);
	put_default(out, p);
	put_limits(out, p);
	put_postfix(out, p);
	if (p->reloads)
		fputs("A reload (SIGHUP) applies it: sessions that start after it, and deliveries\n"
		      "routed after it, use the new value.\n", out);
	fputs("Example:\n", out);
	char line[512];
	snprintf(line, sizeof(line), "%s = %s", p->name, p->example);
	put_macro(out, "Dl", line, "");
}

static const char head[] =
	".Dd " MANUAL_DATE "\n"
	".Dt RELAYGUARD.CONF 5\n"
	".Os\n"
	".Sh NAME\n"
	".Nm relayguard.conf\n"
	".Nd configuration file of the relayguard mail server\n"
	".Sh DESCRIPTION\n"
	"The configuration of\n"
	".Xr relayguard 8\n"
	"is one file in the syntax of Postfix's\n"
	".Pa main.cf ,\n"
	"named with\n"
	".Fl c Ar file ;\n"
	"without it an embedded default is used.\n"
	"Parameter names and meanings are Postfix's where Postfix has the parameter.\n"
	".Pp\n"
	"Each line is\n"
	".Dq Ar name No = Ar value .\n"
	"A line starting with white space continues the previous one; a line whose\n"
	"first non-blank character is\n"
	".Sq #\n"
	"is a comment.\n"
	".Li $name ,\n"
	".Li ${name}\n"
	"and\n"
	".Li $(name)\n"
	"are replaced by the value of another parameter;\n"
	".Li $$\n"
	"is a dollar sign.\n"
	"Lists are separated by commas and/or white space.\n"
	".Pp\n"
	"An unknown name (with a\n"
	".Dq did you mean\n"
	"hint), a bad value or a configuration on which a stranger could relay stops\n"
	"the start with\n"
	".Dq Ar file : Ns Ar line : what is wrong ,\n"
	"one line per problem.\n"
	".Ic relayguard config\n"
	"prints every parameter's effective value.\n"
	".Ss Value types\n"
	".Bl -tag -width Ds\n"
	".It time\n"
	"A number with an optional unit: s (the default), m, h, d or w.\n"
	".It bytes , number\n"
	"A whole number.\n"
	".It yes or no\n"
	".Cm yes\n"
	"or\n"
	".Cm true ,\n"
	".Cm no\n"
	"or\n"
	".Cm false .\n"
	".It list of networks\n"
	"IPv4 and IPv6 networks such as\n"
	".Li 192.0.2.0/24\n"
	"and\n"
	".Li [2001:db8::]/32 .\n"
	".It list of tables\n"
	"Tables:\n"
	".Li /path\n"
	"or\n"
	".Li texthash:/path\n"
	"(one\n"
	".Dq key value\n"
	"a line),\n"
	".Li inline:{ key, key=value } ,\n"
	"and\n"
	".Li cidr:/path\n"
	"(one\n"
	".Dq network action\n"
	"a line) for\n"
	".Cm check_client_access .\n"
	".El\n"
	".Sh PARAMETERS\n";

static const char tail[] =
	".Sh FILES\n"
	".Bl -tag -width Ds\n"
	".It Pa /etc/relayguard/main.cf\n"
	"the configuration file of an installed server\n"
	".El\n"
	".Sh EXAMPLES\n"
	"A server for example.com that relays for its users once they have logged in:\n"
	".Bd -literal -offset indent\n"
	"myhostname = mx.example.com\n"
	"mydestination = $myhostname, example.com\n"
	"local_recipient_maps = texthash:/etc/relayguard/users\n"
	"smtpd_listen = *:25\n"
	"submission_listen = *:587\n"
	"submissions_listen = *:465\n"
	"smtpd_sasl_auth_enable = yes\n"
	"smtpd_sasl_path = /etc/relayguard/passwd\n"
	"smtpd_tls_cert_file = /etc/letsencrypt/live/mx.example.com/fullchain.pem\n"
	"smtpd_tls_key_file = /etc/letsencrypt/live/mx.example.com/privkey.pem\n"
	".Ed\n"
	".Sh SEE ALSO\n"
	".Xr postconf 5 ,\n"
	".Xr relayguard 8\n";

/* put_restrictions - the words a restriction list takes, from convert.c. */
static void put_restrictions(FILE *out)
{
	fputs(".Sh RESTRICTIONS\n"
	      "The restriction lists take these words, evaluated at RCPT in the order\n"
	      "client, helo, sender, relay, recipient (Postfix 3.6 or later with\n"
	      ".Cm smtpd_delay_reject = yes ) ;\n"
	      "inside a list the first permit or reject wins:\n"
	      ".Bl -bullet -compact\n", out);
	for (size_t k = 0; config_restriction_name(k) != NULL; k++)
		fprintf(out, ".It\n.Cm %s%s\n", config_restriction_name(k),
			strcmp(config_restriction_name(k), "check_client_access") == 0
				? " Ar cidr:/path" : "");
	fputs(".El\n", out);
}

void config_print_manual(FILE *out)
{
	fputs(".\\\" Generated by `relayguard config --man' from src/config/params.def:\n"
	      ".\\\" edit that table, then run `make man'.\n", out);
	fputs(head, out);
	bool open = false;
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const struct param_def *p = &config_params[i];
		if (p->group != NULL || !open) {
			if (open)
				fputs(".El\n", out);
			fprintf(out, ".Ss %s\n.Bl -tag -width Ds\n", p->group ? p->group : "General");
			open = true;
		}
		put_param(out, p);
	}
	fputs(".El\n", out);
	put_restrictions(out);
	fputs(tail, out);
}
