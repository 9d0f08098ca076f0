/*
 * fuzz_address.c - libFuzzer target: any bytes as the argument of RCPT TO:.
 *
 * Besides "no crash, no UB, no leak", it checks the invariants the relay
 * decision rests on: parsed strings stay within the RFC limits, and an
 * address with any routing is never an authorised destination.
 */
#include "address/address.h"
#include "policy/policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mydest[] = {"localhost", "ourdomain.example", NULL};
	static const char *const relay[] = {"backup.example", ".sub.example", NULL};
	struct rg_ip ips[2];
	ip_parse("127.0.0.1", &ips[0]);
	ip_parse("::1", &ips[1]);
	struct addr_domains d = {mydest, relay, ips, 2, "mail.ourdomain.example"};

	char *arg = malloc(size + 1);
	memcpy(arg, data, size);
	arg[size] = '\0';
	struct address a;
	struct addr_resolution r;
	const char *params;
	char err[160];
	if (address_parse(arg, &a, &params, err, sizeof(err)) == ADDR_OK) {
		if (strlen(a.text) > ADDR_PATH_MAX - 2 || strlen(a.local) > ADDR_LOCAL_MAX ||
		    strlen(a.domain) > ADDR_DOMAIN_MAX)
			abort();
		address_resolve(&a, &d, &r);
		if (a.routing != 0 && policy_auth_destination(&r))
			abort(); /* a routed address must never be ours to accept */
		if (r.cls == ADDR_CLASS_LOCAL && strpbrk(r.local, "@%!") != NULL)
			abort(); /* routing left in a local mailbox name */
	}
	free(arg);
	return 0;
}
