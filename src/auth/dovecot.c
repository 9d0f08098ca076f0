/*
 * dovecot.c - placeholder until the Dovecot protocol client lands: every
 * request fails temporarily. (Replaced by the real client.)
 */
#include "auth/dovecot.h"
#include "util/util.h"

#include <stdio.h>

struct dovecot_auth {
	int unused;
};

struct dovecot_auth *dovecot_auth_new(struct event_base *base, const char *path,
				      int timeout_seconds, char *err, size_t errlen)
{
	(void)base;
	(void)path;
	(void)timeout_seconds;
	snprintf(err, errlen, "smtpd_sasl_type = dovecot is not available in this build");
	return NULL;
}

void dovecot_auth_free(struct dovecot_auth *da)
{
	(void)da;
}

struct dovecot_req *dovecot_auth_verify(struct dovecot_auth *da, const char *user,
					const char *pass, const struct dovecot_req_info *info,
					auth_done_fn *done, void *arg)
{
	(void)da, (void)user, (void)pass, (void)info, (void)done, (void)arg;
	return NULL;
}

void dovecot_auth_cancel(struct dovecot_req *r)
{
	(void)r;
}
