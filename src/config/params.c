/*
 * params.c - the parameter table, built from params.def (see params.h).
 *
 * Owns: the word lists of the PT_CHOICE parameters and the macros that
 * turn a params.def row into a struct param_def.
 * Must not: parse values (config.c does) or print (manual.c, config.c).
 */
#include "config/params.h"
#include "config/config.h"

#include <stddef.h>

static const struct param_choice tls_levels[] = {
	{"none", TLS_NONE}, {"may", TLS_MAY}, {"encrypt", TLS_ENCRYPT}, {NULL, 0}};
static const struct param_choice submission_tls_levels[] = {
	{"may", TLS_MAY}, {"encrypt", TLS_ENCRYPT}, {NULL, 0}};
static const struct param_choice sasl_types[] = {
	{"passwd-file", SASL_PASSWD_FILE}, {"dovecot", SASL_DOVECOT}, {NULL, 0}};
static const struct param_choice smtp_tls_level_choices[] = {
	{"none", SMTP_TLS_NONE}, {"may", SMTP_TLS_MAY}, {"encrypt", SMTP_TLS_ENCRYPT},
	{"verify", SMTP_TLS_VERIFY}, {"secure", SMTP_TLS_SECURE}, {"dane", SMTP_TLS_DANE},
	{NULL, 0}};
static const struct param_choice inet_protocol_choices[] = {
	{"all", INET_ALL}, {"ipv4", INET_IPV4}, {"ipv6", INET_IPV6}, {NULL, 0}};
static const struct param_choice address_preference_choices[] = {
	{"any", INET_ALL}, {"ipv4", INET_IPV4}, {"ipv6", INET_IPV6}, {NULL, 0}};
static const struct param_choice selftest_modes[] = {
	{"enforce", SELFTEST_ENFORCE}, {"warn", SELFTEST_WARN}, {"off", SELFTEST_OFF}, {NULL, 0}};
static const struct param_choice dns_support_levels[] = {
	{"enabled", 0}, {"dnssec", 1}, {NULL, 0}};

#define FIELD_SIZE(f) sizeof(((struct config *)0)->f)
#define AT(f) .off = offsetof(struct config, f), .size = FIELD_SIZE(f)
#define NETS_AT(f) AT(f), .count_off = offsetof(struct config, n_##f)
#define RANGE(a, b) .min = (a), .max = (b)
#define CHOICES(c) .choices = (c)
#define ROLE(r) .role = (r)
#define SAME .postfix = PF_SAME
#define LIKE(note) .postfix = PF_LIKE, .pf_note = (note)
#define OWN(note) .postfix = PF_OWN, .pf_note = (note)
#define EG(v) .example = (v)
#define COMPUTED(words) .def_doc = (words)
#define GROUP(heading) .group = (heading)
#define SECRET .secret = true
#define RELOADS .reloads = true

const struct param_def config_params[PARAM_COUNT] = {
#define PARAM(n, t, d, m, ...) \
	[PARAM_##n] = {.name = #n, .type = PT_##t, .def = (d), .meaning = (m), __VA_ARGS__},
#include "config/params.def"
#undef PARAM
};

const char *config_param_type_name(enum param_type t)
{
	static const char *const names[PT_COUNT_TYPES] = {
		[PT_STRING] = "text", [PT_HOSTNAME] = "host name", [PT_PATH] = "directory",
		[PT_IPV4] = "IPv4 address", [PT_IPV6] = "IPv6 address", [PT_BOOL] = "yes or no",
		[PT_COUNT] = "number", [PT_SIZE] = "bytes", [PT_DURATION] = "time",
		[PT_CHOICE] = "one of a list", [PT_DOMAINS] = "list of domains",
		[PT_PARENT_DOMAINS] = "list of domains", [PT_NETWORKS] = "list of networks",
		[PT_MAPS] = "list of tables", [PT_ALIASES] = "list of aliases(5) files",
		[PT_RESTRICTIONS] = "list of restrictions",
		[PT_LISTEN] = "list of address:port", [PT_SASL_OPTIONS] = "list of options",
	};
	return (unsigned)t < PT_COUNT_TYPES ? names[t] : "?";
}
