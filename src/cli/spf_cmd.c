/*
 * spf_cmd.c - relayguard spf check --ip ADDR --sender ADDR --helo NAME
 *	[--identity mailfrom|helo] [--dns HOST:PORT] [--receiver NAME] [-c FILE]
 *
 * Prints "result: R", the domain, identity, problem and explanation, and the
 * Received-SPF field. Exit 0 when a result was reached (whatever it is),
 * 64 usage, 78 configuration, 1 when the resolver cannot start.
 */
#include "cli/spf_cmd.h"
#include "cli/cli.h"
#include "dns/dns.h"
#include "msgauth/spf.h"
#include "msgauth/spf_dns.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define SPF_CLI_TIMEOUT_MS 1500

static const char usage_spf[] =
	"usage: relayguard spf check --ip ADDR --sender ADDR --helo NAME\n"
	"           [--identity mailfrom|helo] [--dns HOST:PORT] [--receiver NAME] [-c FILE]\n"
	"\n"
	"Evaluate SPF (RFC 7208) for a client address and envelope, as the server\n"
	"would, and print the result and the Received-SPF header field. --sender \"\"\n"
	"is the null sender (the HELO identity is checked). --dns: the resolver to ask\n"
	"(default: dns_servers of the configuration, else /etc/resolv.conf).\n";

struct spf_cli {
	const char *ip, *sender, *helo, *dns, *receiver, *config;
	bool helo_identity;
	struct event_base *base;
	int done;
};

static void on_done(void *arg, const struct spf_outcome *o)
{
	struct spf_cli *c = arg;
	char hdr[2048];
	printf("result: %s\n", spf_result_name(o->result));
	printf("identity: %s\n", o->identity);
	printf("domain: %s\n", o->domain);
	if (o->problem[0] != '\0')
		printf("problem: %s\n", o->problem);
	if (o->explanation[0] != '\0')
		printf("explanation: %s\n", o->explanation);
	spf_received_header(o, hdr, sizeof(hdr));
	printf("%s\n", hdr);
	c->done = 1;
	event_base_loopbreak(c->base);
}

/* parse_args - false on a usage error. */
static bool parse_args(int argc, char **argv, struct spf_cli *c)
{
	if (argc < 1 || strcmp(argv[0], "check") != 0)
		return false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **slot = strcmp(a, "--ip") == 0 ? &c->ip
				    : strcmp(a, "--sender") == 0 ? &c->sender
				    : strcmp(a, "--helo") == 0 ? &c->helo
				    : strcmp(a, "--dns") == 0 ? &c->dns
				    : strcmp(a, "--receiver") == 0 ? &c->receiver
				    : strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ? &c->config
				    : NULL;
		if (strcmp(a, "--identity") == 0 && v != NULL &&
		    (strcmp(v, "helo") == 0 || strcmp(v, "mailfrom") == 0)) {
			c->helo_identity = strcmp(v, "helo") == 0;
			i++;
			continue;
		}
		if (slot == NULL || v == NULL)
			return false;
		*slot = v;
		i++;
	}
	return c->ip != NULL && c->sender != NULL && c->helo != NULL;
}

/* evaluate - run the check on a loop of its own; the exit status. */
static int evaluate(struct spf_cli *c, const struct rg_ip *ip, const char *servers,
		    const char *receiver)
{
	char err[256];
	c->base = event_base_new();
	struct dns *d = dns_new(c->base, servers, SPF_CLI_TIMEOUT_MS, err, sizeof(err));
	if (d == NULL) {
		fprintf(stderr, "relayguard: %s\n", err);
		event_base_free(c->base);
		return 1;
	}
	struct spf_check *chk =
		c->helo_identity
			? spf_helo_check_start(&spf_dns_resolver, d, ip, c->helo, receiver, on_done, c)
			: spf_check_start(&spf_dns_resolver, d, ip, c->sender, c->helo, receiver,
					  on_done, c);
	if (chk != NULL && !c->done)
		event_base_dispatch(c->base);
	dns_free(d);
	event_base_free(c->base);
	return c->done ? 0 : 1;
}

int spf_main(int argc, char **argv)
{
	struct spf_cli c = {0};
	struct rg_ip ip;
	if (cli_asks_help(argc, argv)) {
		fputs(usage_spf, stdout);
		return 0;
	}
	if (!parse_args(argc, argv, &c) || !ip_parse(c.ip, &ip)) {
		fputs(usage_spf, stderr);
		return EXIT_USAGE;
	}
	struct config *cfg = cli_load_config(c.config, false);
	if (cfg == NULL)
		return EXIT_CONFIG;
	const char *servers = c.dns != NULL ? c.dns
			      : cfg->dns_servers[0] != '\0' ? cfg->dns_servers : NULL;
	int rc = evaluate(&c, &ip, servers, c.receiver != NULL ? c.receiver : cfg->myhostname);
	config_free(cfg);
	return rc;
}
