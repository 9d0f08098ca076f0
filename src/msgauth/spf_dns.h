/*
 * spf_dns - the SPF evaluator's resolver on the DNS module (c-ares).
 *
 * Owns: turning dns_lookup() answers into struct spf_dns_answer.
 * Must not: cache, or decide anything about SPF.
 */
#ifndef RG_SPF_DNS_H
#define RG_SPF_DNS_H

#include "msgauth/spf.h"

/* Pass the struct dns * as rctx: spf_check_start(&spf_dns_resolver, dns, ...). */
extern const struct spf_resolver spf_dns_resolver;

#endif
