/*
 * tlsmem_cmd.c - relayguard tls-memory list|forget DOMAIN (see tlsmem_cmd.h).
 *
 * SYNOPSIS
 *	relayguard tls-memory list [-c FILE]
 *	relayguard tls-memory forget DOMAIN [-c FILE]
 *	relayguard tls-report send --now [-c FILE]
 *
 * DESCRIPTION
 *	Every destination domain remembered with the best TLS that delivery saw
 *	(plain, tls, verified). Once a domain has shown verified TLS, mail to it
 *	is deferred rather than sent with less; forget lets the next delivery
 *	go with whatever the domain offers now. A running server is asked over
 *	queue_directory/control; without one, the file is read (list) or
 *	changed under the queue lock (forget).
 *	tls-report send --now asks the running server to send its TLS-RPT
 *	reports (RFC 8460) now instead of at the end of the day.
 *
 * DIAGNOSTICS
 *	Exit 0 ok, 64 usage, 78 configuration error, 1 anything else.
 */
#include "cli/tlsmem_cmd.h"
#include "cli/cli.h"
#include "cli/ctl_client.h"
#include "config/config.h"
#include "control/control.h"
#include "tlspol/tlsmem.h"
#include "util/basedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>


static const char usage_tlsmem[] =
	"usage: relayguard tls-memory list|forget DOMAIN [-c FILE]\n"
	"\n"
	"The TLS downgrade memory: per destination domain, the best TLS outbound\n"
	"delivery has seen (plain, tls, verified). After verified TLS, mail to the\n"
	"domain is deferred instead of sent with less (smtp_tls_memory_lifetime).\n"
	"\n"
	"  list            every remembered domain, its level, since when, last seen\n"
	"  forget DOMAIN   forget a domain (say, after it really dropped TLS)\n"
	"\n"
	"  -c, --config FILE  the server's configuration (default: the embedded one)\n";

/* put_list - the listing, or a line saying that it is empty (not silence). */
static void put_list(const struct strbuf *list)
{
	if (list->data != NULL && list->len > 0)
		fputs(list->data, stdout);
	else
		puts("no destination domain remembered: the TLS downgrade memory is empty");
}

/* offline - no server runs: the file itself (forget under the queue lock). */
static int offline(const char *qdir, const char *forget)
{
	char err[512];
	if (!basedir_open(qdir) || (forget && flock(basedir_fd(qdir), LOCK_EX | LOCK_NB) != 0)) {
		fprintf(stderr, "relayguard: %s: %s\n", qdir,
			errno == EWOULDBLOCK ? "a server holds the queue lock but does not answer"
					     : strerror(errno));
		return 1;
	}
	struct tlsmem *m = tlsmem_open(NULL, qdir, err, sizeof(err));
	if (m == NULL) {
		fprintf(stderr, "relayguard: %s\n", err);
		return 1;
	}
	fputs("server not running: read from the tls-memory file\n", stderr);
	struct strbuf out;
	strbuf_init(&out);
	int rc = 0;
	if (forget == NULL) {
		tlsmem_list(m, &out);
		put_list(&out);
	} else if (!tlsmem_forget(m, forget)) {
		fprintf(stderr, "relayguard: %s is not remembered\n", forget);
		rc = 1;
	} else if (!tlsmem_save_now(m, err, sizeof(err))) {
		fprintf(stderr, "relayguard: %s\n", err);
		rc = 1;
	} else {
		printf("forgot %s\n", forget);
	}
	strbuf_free(&out);
	tlsmem_free(m);
	return rc;
}

static int run(const char *qdir, const char *forget)
{
	char *request = forget ? xasprintf("tls-memory-forget %s", forget)
			       : xstrdup("tls-memory-list");
	struct strbuf reply;
	strbuf_init(&reply);
	char err[512];
	enum ctl_result r = ctl_request(qdir, request, &reply, err, sizeof(err));
	int rc = 0;
	if (r == CTL_OK && forget == NULL)
		put_list(&reply);
	else if (r == CTL_OK)
		fputs(reply.data ? reply.data : "", stdout);
	else if (r == CTL_ABSENT)
		rc = offline(qdir, forget);
	else
		rc = ctl_say_failure(qdir, r, err);
	strbuf_free(&reply);
	free(request);
	return rc;
}

static const char usage_tlsreport[] =
	"usage: relayguard tls-report send --now [-c FILE]\n"
	"\n"
	"Send the TLS-RPT reports (RFC 8460) of the running server now: one per policy\n"
	"domain with sessions since the last report, to the rua=mailto: of its\n"
	"_smtp._tls TXT record, through the queue.\n";

int tlsreport_main(int argc, char **argv)
{
	const char *config_file = NULL;
	bool now = false, ok = argc > 0 && strcmp(argv[0], "send") == 0;
	if (cli_asks_help(argc, argv)) {
		fputs(usage_tlsreport, stdout);
		return 0;
	}
	for (int i = 1; i < argc && ok; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			config_file = argv[++i];
		else if (strcmp(argv[i], "--now") == 0)
			now = true;
		else
			ok = false;
	}
	if (!ok || !now) {
		fputs(usage_tlsreport, stderr);
		return EXIT_USAGE;
	}
	struct config *cfg = cli_load_config(config_file, false);
	if (cfg == NULL)
		return EXIT_CONFIG;
	struct strbuf reply;
	strbuf_init(&reply);
	char err[512];
	enum ctl_result r = ctl_request(cfg->queue_directory, "tls-report-send", &reply, err,
					sizeof(err));
	int rc = r == CTL_OK ? 0 : 1;
	if (r == CTL_OK)
		fputs(reply.data ? reply.data : "", stdout);
	else if (r == CTL_ABSENT)
		fprintf(stderr, "relayguard: %s/%s: the server is not running\n",
			cfg->queue_directory, CONTROL_SOCKET_NAME);
	else
		rc = ctl_say_failure(cfg->queue_directory, r, err);
	strbuf_free(&reply);
	config_free(cfg);
	return rc;
}

int tlsmem_main(int argc, char **argv)
{
	const char *config_file = NULL, *domain = NULL;
	bool forget = argc > 0 && strcmp(argv[0], "forget") == 0;
	bool list = argc > 0 && strcmp(argv[0], "list") == 0;
	if (cli_asks_help(argc, argv)) {
		fputs(usage_tlsmem, stdout);
		return 0;
	}
	for (int i = 1; i < argc && (list || forget); i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			config_file = argv[++i];
		else if (forget && domain == NULL && argv[i][0] != '-')
			domain = argv[i];
		else
			list = forget = false;
	}
	if ((!list && !forget) || (forget && (domain == NULL || !tlsmem_domain_valid(domain)))) {
		fputs(usage_tlsmem, stderr);
		return EXIT_USAGE;
	}
	struct config *cfg = cli_load_config(config_file, false);
	if (cfg == NULL)
		return EXIT_CONFIG;
	int rc = run(cfg->queue_directory, domain);
	basedir_close_all();
	config_free(cfg);
	return rc;
}
