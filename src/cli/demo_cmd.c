/*
 * demo_cmd.c - relayguard demo [--html FILE] [--step] [--keep DIR].
 *
 * Owns: option parsing and the usage text; demo_run() does the rest.
 * Must not: start anything before the options are known to be good.
 */
#include "cli/demo_cmd.h"
#include "cli/cli.h"
#include "demo/demo.h"

#include <stdio.h>
#include <string.h>

static const char usage_demo[] =
	"usage: relayguard demo [--html FILE] [--step] [--keep DIR]\n"
	"\n"
	"Play the open-relay attack on loopback, in under a minute: a DNS zone\n"
	"(dnsmasq) for paypal.example, gmail.example and relay.example, a relay with\n"
	"mynetworks = 0.0.0.0/0 and the victim's MX (both relayguard serve). Step 1:\n"
	"the attacker's session; 2: the relay delivers it, the relay's address in\n"
	"Received:; 3: relayguard probe and audit say open; 4: the fix, reloaded\n"
	"(SIGHUP): the attack is refused, probe and audit say closed, an\n"
	"authenticated submission still goes through. Everything it starts is\n"
	"stopped at the end or on Ctrl-C. Only 127.0.0.x and .example names.\n"
	"\n"
	"Options:\n"
	"  --html FILE   also write the story as one self-contained HTML page\n"
	"  --step        wait for Enter between steps (when stdin is a terminal)\n"
	"  --keep DIR    make the lab under DIR and keep it (configurations, logs, Maildirs)\n"
	"  -h, --help    this text\n"
	"\n"
	"Exit status: 0 every step had the expected outcome, 1 not (the last line\n"
	"says which), 64 usage error, 69 dnsmasq missing (Debian: dnsmasq-base).\n";

/* parse - the options into o; -1 help, 0 ok, 1 error. */
static int parse(int argc, char **argv, struct demo_opts *o)
{
	if (cli_asks_help(argc, argv)) /* even after a bad option */
		return -1;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--html") == 0 && i + 1 < argc)
			o->html_file = argv[++i];
		else if (strcmp(a, "--keep") == 0 && i + 1 < argc)
			o->keep_dir = argv[++i];
		else if (strcmp(a, "--step") == 0)
			o->step = true;
		else {
			fprintf(stderr, "relayguard demo: unknown or incomplete option \"%s\" "
				"(try --help)\n", a);
			return 1;
		}
	}
	return 0;
}

int demo_main(int argc, char **argv)
{
	struct demo_opts o = {0};
	int rc = parse(argc, argv, &o);
	if (rc != 0) {
		fputs(usage_demo, rc < 0 ? stdout : stderr);
		return rc < 0 ? 0 : EXIT_USAGE;
	}
	return demo_run(&o);
}
