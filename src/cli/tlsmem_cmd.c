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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_USAGE 64
#define EXIT_CONFIG 78
#define REPLY_MAX (64u << 20)
#define REPLY_TIMEOUT_SECONDS 30

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

/* ctl_ask - one request to the running server; 1 ok, 0 refused (reason in
 * reply), -1 no server listens, -2 broken (errno or reply says why). */
static int ctl_ask(const char *qdir, const char *request, struct strbuf *reply)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", qdir,
			     CONTROL_SOCKET_NAME) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -2;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return e == ENOENT || e == ECONNREFUSED ? -1 : -2;
	}
	struct timeval tv = {REPLY_TIMEOUT_SECONDS, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char *line = xasprintf("%s\n", request);
	ssize_t sent = send(fd, line, strlen(line), MSG_NOSIGNAL);
	free(line);
	char buf[8192];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0 && reply->len + (size_t)n <= REPLY_MAX)
		strbuf_append(reply, buf, (size_t)n);
	close(fd);
	if (sent < 0 || n != 0 || reply->len == 0 || reply->data[reply->len - 1] != '\n')
		return -2;
	reply->data[--reply->len] = '\0';
	char *last = strrchr(reply->data, '\n');
	last = last ? last + 1 : reply->data;
	bool ok = strcmp(last, "ok") == 0;
	if (ok)
		*last = '\0';
	else if (strncmp(last, "error ", 6) == 0)
		memmove(reply->data, last + 6, strlen(last + 6) + 1);
	return ok ? 1 : 0;
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
		fputs(out.data ? out.data : "", stdout);
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
	int r = ctl_ask(qdir, request, &reply), rc = 0;
	if (r == 1) {
		fputs(reply.data ? reply.data : "", stdout);
	} else if (r == 0) {
		fprintf(stderr, "relayguard: %s\n", reply.data);
		rc = 1;
	} else if (r == -1) {
		rc = offline(qdir, forget);
	} else {
		fprintf(stderr, "relayguard: %s/%s: %s\n", qdir, CONTROL_SOCKET_NAME,
			errno == EACCES ? "permission denied (root or mail_owner's group)"
					: "no complete reply from the server");
		rc = 1;
	}
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
	if (argc > 0 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
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
	char *errors = NULL;
	struct config *cfg = config_load(config_file, &errors);
	if (cfg == NULL) {
		fputs(errors ? errors : "", stderr);
		free(errors);
		return EXIT_CONFIG;
	}
	struct strbuf reply;
	strbuf_init(&reply);
	int r = ctl_ask(cfg->queue_directory, "tls-report-send", &reply), rc = r == 1 ? 0 : 1;
	if (r == 1)
		printf("%s\n", reply.data ? reply.data : "");
	else if (r == 0)
		fprintf(stderr, "relayguard: %s\n", reply.data);
	else
		fprintf(stderr, "relayguard: %s/%s: the server is not running or does not answer\n",
			cfg->queue_directory, CONTROL_SOCKET_NAME);
	strbuf_free(&reply);
	config_free(cfg);
	return rc;
}

int tlsmem_main(int argc, char **argv)
{
	const char *config_file = NULL, *domain = NULL;
	bool forget = argc > 0 && strcmp(argv[0], "forget") == 0;
	bool list = argc > 0 && strcmp(argv[0], "list") == 0;
	if (argc > 0 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
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
	char *errors = NULL;
	struct config *cfg = config_load(config_file, &errors);
	if (cfg == NULL) {
		fputs(errors ? errors : "", stderr);
		free(errors);
		return EXIT_CONFIG;
	}
	int rc = run(cfg->queue_directory, domain);
	basedir_close_all();
	config_free(cfg);
	return rc;
}
