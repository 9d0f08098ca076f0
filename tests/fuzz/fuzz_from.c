/*
 * fuzz_from.c - libFuzzer target: any bytes as a From: field value.
 *
 * Besides "no crash, no UB, no leak", it checks what DMARC relies on: the
 * outcome agrees with the counts (FROM_OK is exactly one author domain,
 * FROM_MULTIPLE_DOMAINS at least two, FROM_EMPTY no mailbox), and every
 * domain kept is a lower-case DNS name within the limits.
 */
#include "msgauth/from.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_domain - what from.h promises about a kept domain. */
static void check_domain(const char *d)
{
	size_t n = strnlen(d, FROM_DOMAIN_MAX + 1);
	if (n == 0 || n > FROM_DOMAIN_MAX || d[0] == '.' || d[n - 1] == '.' || strstr(d, ".."))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((d[i] >= 'A' && d[i] <= 'Z') || strchr("@<>()\" ,;:\\[]", d[i]) != NULL)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct from_result r;
	enum from_status st = from_parse((const char *)data, size, &r);
	if (st != r.status)
		abort();
	if (st == FROM_OK && (r.ndomains != 1 || r.mailboxes == 0))
		abort();
	if (st == FROM_MULTIPLE_DOMAINS && r.ndomains < 2)
		abort();
	if (st == FROM_EMPTY && (r.mailboxes != 0 || r.ndomains != 0))
		abort();
	if (st != FROM_SYNTAX)
		for (size_t i = 0; i < r.ndomains && i < FROM_DOMAINS_MAX; i++)
			check_domain(r.domain[i]);
	if (strnlen(r.detail, sizeof(r.detail)) == sizeof(r.detail))
		abort();
	return 0;
}
