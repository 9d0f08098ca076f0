/*
 * test_dsn_param.c - RFC 3461 parameters of MAIL and RCPT, as tables.
 */
#include "check.h"
#include "smtp/dsn_param.h"
#include "util/util.h"

typedef bool (*parse_fn)(const char *value, char *out, size_t outlen);

struct row {
	int line;
	parse_fn fn;
	const char *in;
	const char *want; /* NULL: refused */
};

static const struct row rows[] = {
	{__LINE__, dsn_param_ret, "FULL", "FULL"},
	{__LINE__, dsn_param_ret, "hdrs", "HDRS"},
	{__LINE__, dsn_param_ret, "NONE", NULL},
	{__LINE__, dsn_param_ret, "", NULL},
	{__LINE__, dsn_param_envid, "QQ314159", "QQ314159"},
	{__LINE__, dsn_param_envid, "a+2Bb+3Dc", "a+b=c"},
	{__LINE__, dsn_param_envid, "a+20b", "a b"},
	{__LINE__, dsn_param_envid, "a+0Db", NULL},      /* CR never reaches a file */
	{__LINE__, dsn_param_envid, "a+0db", NULL},      /* upper-case hex only */
	{__LINE__, dsn_param_envid, "a+2", NULL},        /* cut escape */
	{__LINE__, dsn_param_envid, "a=b", NULL},        /* '=' must be escaped */
	{__LINE__, dsn_param_envid, "", NULL},
	{__LINE__, dsn_param_envid,
	 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	 NULL},                                          /* 101 characters */
	{__LINE__, dsn_param_notify, "NEVER", "NEVER"},
	{__LINE__, dsn_param_notify, "failure,success", "SUCCESS,FAILURE"},
	{__LINE__, dsn_param_notify, "DELAY", "DELAY"},
	{__LINE__, dsn_param_notify, "DELAY,FAILURE", "FAILURE,DELAY"},
	{__LINE__, dsn_param_notify, "SUCCESS,DELAY", "SUCCESS,DELAY"},
	{__LINE__, dsn_param_notify, "NEVER,SUCCESS", NULL},  /* NEVER stands alone */
	{__LINE__, dsn_param_notify, "SUCCESS,SUCCESS", NULL},
	{__LINE__, dsn_param_notify, "SUCCESS,", NULL},
	{__LINE__, dsn_param_notify, "", NULL},
	{__LINE__, dsn_param_notify, "ALWAYS", NULL},
	{__LINE__, dsn_param_orcpt, "rfc822;bob@example.com", "rfc822;bob@example.com"},
	{__LINE__, dsn_param_orcpt, "RFC822;b+2Bob@example.com", "rfc822;b+ob@example.com"},
	{__LINE__, dsn_param_orcpt, "rfc822;", NULL},
	{__LINE__, dsn_param_orcpt, ";bob@example.com", NULL},
	{__LINE__, dsn_param_orcpt, "bob@example.com", NULL},
	{__LINE__, dsn_param_orcpt, "rfc 822;bob@example.com", NULL},
	{__LINE__, dsn_param_orcpt, "rfc822;bob+0A@example.com", NULL},
};

int main(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		const struct row *r = &rows[i];
		char out[600] = "";
		bool ok = r->fn(r->in, out, sizeof(out));
		CHECK_AT(r->line, ok == (r->want != NULL), "\"%s\": %s", r->in,
			 ok ? "accepted" : "refused");
		if (ok && r->want)
			CHECK_STR_AT(r->line, out, r->want, r->in);
	}
	return check_summary("dsn_param");
}
