/*
 * cli.c - the command line of relayguard probe.
 *
 * Owns: option parsing and checking, the target list (arguments and -f
 * files), --list. Exit statuses: 0 no relay found, 1 relay, 2 inconclusive
 * or unreachable, 3 suspicious, 4 a smuggled message accepted (no relay),
 * 64 usage error (worst over all targets in the order 1 > 4 > 3 > 2 > 0).
 */
#include "probe/probe.h"

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 64

static const char usage[] =
	"usage: relayguard probe [OPTIONS] TARGET...\n"
	"\n"
	"Test whether SMTP servers relay mail for strangers. TARGET is host, host:port\n"
	"or [v6addr]:port. Safe by default: never sends DATA (see --confirm-data).\n"
	"\n"
	"Options:\n"
	"  --port N           port when a target has none (default 25; 465 with --tls)\n"
	"  --starttls         STARTTLS before the tests (automatic on port 587 when offered)\n"
	"  --tls              implicit TLS (port 465)\n"
	"  --json             one JSON object per target and line, with transcripts\n"
	"  -f FILE            read targets from FILE, one a line (# comments)\n"
	"  --auth USER:PASS   also check that relaying works after AUTH\n"
	"  --source ADDR      connect from this local address (test from outside mynetworks)\n"
	"  --dns-server LIST  resolve target names with these DNS servers (ADDR[:PORT],...;\n"
	"                     default /etc/hosts, then /etc/resolv.conf)\n"
	"  --domain D         a domain the target is the final destination for\n"
	"                     (default: from its banner/EHLO name or that name's parent)\n"
	"  --victim ADDR      the outside address (default relaytest@example.net)\n"
	"  --helo NAME        our HELO name (default probe.example.org)\n"
	"  --timeout S        seconds per reply (default 10)\n"
	"  --retry-after S    wait before retrying a 4xx once (default 3)\n"
	"  --confirm-data     send a message with a unique token for each accepted test\n"
	"  --canary-dir DIR   look for the tokens under DIR: relay-confirmed / not-relayed\n"
	"  --local-dir DIR    the target's own mailboxes: a token there is delivered-locally\n"
	"  --canary-wait S    how long to look for tokens (default 10)\n"
	"  --smuggle          also run the smuggle-* tests (SMTP smuggling; they send two\n"
	"                     messages to postmaster each, so they need --confirm-data)\n"
	"  --concurrency N    targets tested at the same time (default 10; one that only\n"
	"                     waits to retry a 4xx leaves its slot to the next)\n"
	"  --lanes N          parallel connections per target (default 3)\n"
	"  --only ID[,ID..]   run only these tests (see --list)\n"
	"  --list             print the battery: id, name, source\n"
	"  -h, --help         this text\n"
	"\n"
	"Exit status: 0 no relay found, 1 relay, 2 inconclusive or unreachable,\n"
	"3 suspicious (only ambiguous forms accepted), 4 a smuggled message was\n"
	"accepted (no relay), 64 usage error.\n";

enum {
	O_PORT = 256, O_STARTTLS, O_TLS, O_JSON, O_AUTH, O_SOURCE, O_DOMAIN, O_VICTIM, O_HELO,
	O_TIMEOUT, O_RETRY, O_CONFIRM, O_CANARY, O_LOCAL, O_CANARY_WAIT, O_CONC, O_ONLY, O_LIST,
	O_LANES, O_DNS, O_SMUGGLE,
};

static const struct option longopts[] = {
	{"port", required_argument, NULL, O_PORT},
	{"starttls", no_argument, NULL, O_STARTTLS},
	{"tls", no_argument, NULL, O_TLS},
	{"json", no_argument, NULL, O_JSON},
	{"auth", required_argument, NULL, O_AUTH},
	{"source", required_argument, NULL, O_SOURCE},
	{"dns-server", required_argument, NULL, O_DNS},
	{"domain", required_argument, NULL, O_DOMAIN},
	{"victim", required_argument, NULL, O_VICTIM},
	{"helo", required_argument, NULL, O_HELO},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"retry-after", required_argument, NULL, O_RETRY},
	{"confirm-data", no_argument, NULL, O_CONFIRM},
	{"canary-dir", required_argument, NULL, O_CANARY},
	{"local-dir", required_argument, NULL, O_LOCAL},
	{"canary-wait", required_argument, NULL, O_CANARY_WAIT},
	{"concurrency", required_argument, NULL, O_CONC},
	{"lanes", required_argument, NULL, O_LANES},
	{"only", required_argument, NULL, O_ONLY},
	{"smuggle", no_argument, NULL, O_SMUGGLE},
	{"list", no_argument, NULL, O_LIST},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static bool seconds(const char *s, unsigned *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || !isfinite(v) || v < 0 || v > 86400)
		return false;
	*ms = (unsigned)(v * 1000.0 + 0.5);
	return true;
}

static bool count(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	uint64_t v;
	if (!rg_parse_u64(s, &v) || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

/* a simple name: letters, digits, dots, hyphens (what goes into EHLO and paths) */
static bool simple_name(const char *s)
{
	if (s[0] == '\0' || strlen(s) >= PROBE_NAME_MAX - 32)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '-' || *p == '_'))
			return false;
	return true;
}

static void list_battery(void)
{
	printf("%-19s %-40s %s\n", "ID", "NAME", "SOURCE");
	for (size_t i = 0; i < probe_battery_len; i++)
		printf("%-19s %-40s %s\n", probe_battery[i].id, probe_battery[i].name,
		       probe_battery[i].source);
}

struct targets {
	char **v;
	size_t n, cap;
};

static void add_target(struct targets *t, const char *s)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n++] = xstrdup(s);
}

/* read_targets - one target a line, whole lines however long (a line cut in
 * two would make its tail a target of its own); "no targets" is an error. */
static bool read_targets(const char *file, struct targets *t)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (f == NULL) {
		fprintf(stderr, "relayguard probe: cannot read %s\n", file);
		return false;
	}
	char *line = NULL;
	size_t cap = 0, before = t->n;
	while (getline(&line, &cap, f) != -1) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = rg_str_trim(line);
		if (*s)
			add_target(t, s);
	}
	bool failed = ferror(f) != 0;
	free(line);
	if (f != stdin)
		fclose(f);
	if (failed) {
		fprintf(stderr, "relayguard probe: cannot read %s\n", file);
		return false;
	}
	if (t->n == before) {
		fprintf(stderr, "relayguard probe: no targets in %s\n", file);
		return false;
	}
	return true;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("relayguard probe: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (try --help)\n", stderr);
	va_end(ap);
	return EXIT_USAGE;
}

int probe_main(int argc, char **argv)
{
	struct probe_options o = {
		.port = 0, .victim = "relaytest@example.net", .helo = "probe.example.org",
		.timeout_ms = 10000, .retry_after_ms = 3000, .canary_wait_ms = 10000,
		.concurrency = 10, .lanes = 3, .rejections_per_conn = 3,
	};
	struct targets t = {0};
	char *auth = NULL;
	int rc = EXIT_USAGE, c;
	bool list = false;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hf:", longopts, NULL)) != -1) {
		unsigned port;
		switch (c) {
		case 'h': fputs(usage, stdout); rc = 0; goto out;
		case 'f': if (!read_targets(optarg, &t)) goto out; break;
		case O_PORT:
			if (!count(optarg, 1, 65535, &port)) { rc = usage_error("--port takes 1..65535, not \"%s\"", optarg); goto out; }
			o.port = (int)port;
			break;
		case O_STARTTLS: o.starttls = true; break;
		case O_TLS: o.implicit_tls = true; break;
		case O_JSON: o.json = true; break;
		case O_AUTH: free(auth); auth = xstrdup(optarg); break;
		case O_SOURCE: o.source = optarg; break;
		case O_DNS:
			if (optarg[0] == '\0' || strspn(optarg, "0123456789abcdefABCDEF.:[],") != strlen(optarg)) { rc = usage_error("--dns-server takes ADDR[:PORT][,...], not \"%s\"", optarg); goto out; }
			o.dns_servers = optarg;
			break;
		case O_DOMAIN:
			if (!simple_name(optarg)) { rc = usage_error("--domain takes a domain name, not \"%s\"", optarg); goto out; }
			o.domain = optarg;
			break;
		case O_VICTIM: o.victim = optarg; break;
		case O_HELO:
			if (!simple_name(optarg)) { rc = usage_error("--helo takes a host name, not \"%s\"", optarg); goto out; }
			o.helo = optarg;
			break;
		case O_TIMEOUT:
			if (!seconds(optarg, &o.timeout_ms) || o.timeout_ms == 0) { rc = usage_error("--timeout takes seconds, not \"%s\"", optarg); goto out; }
			break;
		case O_RETRY:
			if (!seconds(optarg, &o.retry_after_ms)) { rc = usage_error("--retry-after takes seconds, not \"%s\"", optarg); goto out; }
			break;
		case O_CANARY_WAIT:
			if (!seconds(optarg, &o.canary_wait_ms)) { rc = usage_error("--canary-wait takes seconds, not \"%s\"", optarg); goto out; }
			break;
		case O_CONFIRM: o.confirm_data = true; break;
		case O_SMUGGLE: o.smuggle = true; break;
		case O_CANARY: o.canary_dir = optarg; break;
		case O_LOCAL: o.local_dir = optarg; break;
		case O_CONC:
			if (!count(optarg, 1, 1000, &o.concurrency)) { rc = usage_error("--concurrency takes 1..1000, not \"%s\"", optarg); goto out; }
			break;
		case O_LANES:
			if (!count(optarg, 1, 8, &o.lanes)) { rc = usage_error("--lanes takes 1..8, not \"%s\"", optarg); goto out; }
			break;
		case O_ONLY: o.only = optarg; break;
		case O_LIST: list = true; break;
		case ':': rc = usage_error("%s needs a value", argv[optind - 1]); goto out;
		default: rc = usage_error("unknown option \"%s\"", argv[optind - 1]); goto out;
		}
	}
	if (list) {
		list_battery();
		rc = 0;
		goto out;
	}
	for (int i = optind; i < argc; i++)
		add_target(&t, argv[i]);
	if (t.n == 0) {
		fputs(usage, stderr);
		goto out;
	}
	if (o.starttls && o.implicit_tls) {
		rc = usage_error("%s", "--starttls and --tls exclude each other");
		goto out;
	}
	if (o.port == 0)
		o.port = o.implicit_tls ? 465 : 25;
	const char *at = strrchr(o.victim, '@');
	if (at == NULL || at == o.victim || !simple_name(at + 1) || strlen(o.victim) > 200 ||
	    strpbrk(o.victim, " <>\"\r\n\t") != NULL) {
		rc = usage_error("--victim takes an address local@domain, not \"%s\"", o.victim);
		goto out;
	}
	if (at - o.victim > 127) {
		rc = usage_error("--victim: the local part is longer than 127 bytes");
		goto out;
	}
	if (auth != NULL) {
		char *colon = strchr(auth, ':');
		if (colon == NULL || colon == auth || strlen(auth) > 400) {
			rc = usage_error("%s", "--auth takes USER:PASS");
			goto out;
		}
		*colon = '\0';
		o.auth_user = auth;
		o.auth_pass = colon + 1;
	}
	if (o.smuggle && !o.confirm_data) {
		rc = usage_error("%s", "--smuggle needs --confirm-data (it sends real messages)");
		goto out;
	}
	if ((o.canary_dir || o.local_dir) && !o.confirm_data) {
		rc = usage_error("%s", "--canary-dir and --local-dir need --confirm-data");
		goto out;
	}
	if (o.only != NULL) {
		char *copy = xstrdup(o.only);
		size_t ids = 0;
		for (char *save = NULL, *id = strtok_r(copy, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
			if (probe_find_test(id) == NULL) {
				rc = usage_error("--only: no test \"%s\" (see --list)", id);
				free(copy);
				goto out;
			}
			ids++;
		}
		free(copy);
		if (ids == 0) { /* zero tests would report every target closed */
			rc = usage_error("%s", "--only names no test (see --list)");
			goto out;
		}
	}
	for (size_t i = 0; i < t.n; i++) {
		char host[PROBE_NAME_MAX], err[300];
		int port;
		if (!probe_parse_target(t.v[i], o.port, host, sizeof(host), &port, err, sizeof(err))) {
			rc = usage_error("%s", err);
			goto out;
		}
	}
	o.progress = t.n > 1 && isatty(STDERR_FILENO);
	rc = probe_run(&o, t.v, t.n);
out:
	for (size_t i = 0; i < t.n; i++)
		free(t.v[i]);
	free(t.v);
	free(auth);
	return rc;
}
