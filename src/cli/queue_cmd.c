/*
 * queue_cmd.c - relayguard queue list|show|flush|delete|hold|release.
 *
 * SYNOPSIS
 *	relayguard queue list [--json] [-c FILE]
 *	relayguard queue show ID [--body] [-c FILE]
 *	relayguard queue flush [ID] [-c FILE]
 *	relayguard queue delete ID|--all|--login LOGIN [-c FILE]
 *	relayguard queue hold ID [-c FILE]
 *	relayguard queue release ID|--login LOGIN [-c FILE]
 *	relayguard lockout list|stats [-c FILE]
 *	relayguard lockout clear IP [-c FILE]
 *
 * DESCRIPTION
 *	The queue is found through queue_directory of the configuration. A
 *	running server is asked over queue_directory/control (control.h). When
 *	none answers, list and show read the queue files, delete, hold and
 *	release change them under the queue lock (which proves that no server
 *	runs), and flush says that it needs the server. show always reads the
 *	file.
 *
 * DIAGNOSTICS
 *	Exit 0 ok, 64 usage (including a malformed queue id), 78 configuration
 *	error, 1 anything else (no such message, not running, permission denied).
 */
#include "cli/queue_cmd.h"
#include "cli/cli.h"
#include "cli/ctl_client.h"
#include "config/config.h"
#include "control/control.h"
#include "abuse/hijack_state.h"
#include "abuse/shared.h"
#include "net/net.h"
#include "queue/qctl.h"
#include "queue/queue_admin.h"
#include "util/basedir.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>


static const char usage_queue[] =
	"usage: relayguard queue COMMAND [ARGS] [-c FILE]\n"
	"\n"
	"Look at and manage the mail queue of relayguard serve (the same -c FILE\n"
	"tells where queue_directory is). A running server is asked over its control\n"
	"socket, queue_directory/control (mode 0660: root and mail_owner's group).\n"
	"\n"
	"Commands:\n"
	"  list [--json]      every message, like mailq: id ('*' being delivered,\n"
	"                     '!' held), size, arrival time, sender, recipients not yet\n"
	"                     delivered; --json: a JSON array\n"
	"  status             what delivery is doing: messages in delivery, the backlog,\n"
	"                     whether in-flow control is slowing acceptance (needs the\n"
	"                     running server)\n"
	"  show ID [--body]   envelope (with the next try and each recipient's last\n"
	"                     reply) and headers of one message; --body: all its text\n"
	"  flush [ID]         retry now (needs the running server)\n"
	"  delete ID|--all    remove a message, or every message\n"
	"  hold ID            keep a message from delivery until it is released\n"
	"  release ID         let a held message be delivered again\n"
	"  release --login L  every message held for login L (suspended as hijacked),\n"
	"                     and lift L's suspension; delete --login L removes them\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE  the server's configuration (default: the embedded one)\n"
	"  -h, --help         this text\n"
	"\n"
	"Without a running server, list and show read the queue files, and delete,\n"
	"hold and release change them directly. Exit status: 0 ok, 64 usage error,\n"
	"78 configuration error, 1 other failure.\n";

struct qargs {
	const char *cmd, *config_file, *id, *login;
	const char *shared_state; /* the configuration's: "" none */
	bool json, body, all;
};

/* What a running server said, or why it said nothing. */

/* parse_args - argv[0] is the command; -1 help, 0 ok, 1 usage error (printed). */
static int parse_args(int argc, char **argv, struct qargs *a)
{
	a->cmd = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0)
			return -1;
		if ((strcmp(s, "-c") == 0 || strcmp(s, "--config") == 0) && i + 1 < argc)
			a->config_file = argv[++i];
		else if (strcmp(s, "--json") == 0 && strcmp(a->cmd, "list") == 0)
			a->json = true;
		else if (strcmp(s, "--body") == 0 && strcmp(a->cmd, "show") == 0)
			a->body = true;
		else if (strcmp(s, "--all") == 0 && strcmp(a->cmd, "delete") == 0)
			a->all = true;
		else if (strcmp(s, "--login") == 0 && i + 1 < argc &&
			 (strcmp(a->cmd, "delete") == 0 || strcmp(a->cmd, "release") == 0))
			a->login = argv[++i];
		else if (s[0] != '-' && a->id == NULL)
			a->id = s;
		else {
			fprintf(stderr, "relayguard queue %s: unexpected \"%s\" (try --help)\n", a->cmd, s);
			return 1;
		}
	}
	return 0;
}

/* login_ok - L may be a login: AUTH names are cleaned of spaces, control
 * characters and non-ASCII (session_auth.c). Anything else would not name
 * the login meant: "resume L" as the other hosts split it on any space
 * (a vertical tab too) lifts another login. */
static bool login_ok(const char *l)
{
	for (const unsigned char *p = (const unsigned char *)l; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return l[0] != '\0';
}

/* check_args - the id each command needs, and that it looks like one. */
static bool check_args(const struct qargs *a)
{
	bool list = strcmp(a->cmd, "list") == 0 || strcmp(a->cmd, "status") == 0;
	bool flush = strcmp(a->cmd, "flush") == 0;
	bool del = strcmp(a->cmd, "delete") == 0;
	bool need_id = !list && !flush && !(del && a->all) && !a->login;
	bool no_id = list || (del && a->all) || a->login;
	if (a->login && (a->all || !login_ok(a->login))) {
		fprintf(stderr, "relayguard queue %s: --login takes one login name, not with "
			"--all\n", a->cmd);
		return false;
	}
	if (list && a->id != NULL) {
		fprintf(stderr, "relayguard queue %s: takes no queue id\n", a->cmd);
		return false;
	}
	if ((need_id && a->id == NULL) || (no_id && a->id != NULL)) {
		fprintf(stderr, "relayguard queue %s: needs %s\n", a->cmd,
			del ? "a queue id or --all (not both)" : "a queue id");
		return false;
	}
	if (a->id != NULL && !queue_id_valid(a->id)) {
		fprintf(stderr, "relayguard queue %s: \"%s\" is not a queue id (16 to %d upper-case "
			"hex digits, as 'relayguard queue list' shows them)\n", a->cmd, a->id,
			QUEUE_ID_LEN);
		return false;
	}
	return true;
}

/* open_queue - the queue directory for reading the files; says why not. */
static bool open_queue(const char *qdir)
{
	if (basedir_open(qdir))
		return true;
	fprintf(stderr, "relayguard: cannot open the queue directory %s: %s%s\n", qdir,
		strerror(errno), errno == EACCES ? " (reading the queue files needs root or mail_owner)"
						 : "");
	return false;
}

static int list_files(const char *qdir, bool json)
{
	struct strbuf out;
	char err[512];
	strbuf_init(&out);
	fputs("server not running: read from the queue files\n", stderr);
	bool opened = open_queue(qdir);
	bool ok = opened && queue_list_files(qdir, json, &out, err, sizeof(err));
	if (ok)
		fputs(out.data ? out.data : "", stdout);
	else if (opened)
		fprintf(stderr, "relayguard: %s\n", err);
	strbuf_free(&out);
	return ok ? 0 : 1;
}

static int cmd_list(const char *qdir, const struct qargs *a)
{
	struct strbuf reply;
	char err[512];
	strbuf_init(&reply);
	enum ctl_result r = ctl_request(qdir, a->json ? "list-json" : "list", &reply, err,
					sizeof(err));
	int rc = 0;
	if (r == CTL_OK)
		fputs(reply.data ? reply.data : "", stdout);
	else if (r == CTL_ABSENT)
		rc = list_files(qdir, a->json);
	else
		rc = ctl_say_failure(qdir, r, err);
	strbuf_free(&reply);
	return rc;
}

/* put_text - message text for a terminal: LF line ends, control bytes as '?'. */
static void put_text(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
			continue;
		putchar(c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f) ? c : '?');
	}
}

/* printable - untrusted envelope text for a terminal (in place). */
static const char *printable(char *s)
{
	for (char *p = s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return s;
}

/* show_time - T as show prints times: local, with its zone. */
static void show_time(time_t t, char *out, size_t len)
{
	struct tm tm;
	if (localtime_r(&t, &tm) == NULL || strftime(out, len, "%a %b %e %H:%M:%S %Y %z", &tm) == 0)
		snprintf(out, len, "?");
}

/* show_next_try - when delivery is tried next, as `queue list --json` has it. */
static void show_next_try(const struct queue_msg *m, const char *path)
{
	time_t next = queue_msg_next_try(m), now = time(NULL);
	char when[64];
	if (queue_state_of(path) == QUEUE_STATE_HELD) {
		puts("next try: none while held ('relayguard queue release' lets it go)");
	} else if (queue_state_of(path) == QUEUE_STATE_ACTIVE) {
		puts("next try: being delivered now");
	} else if (next <= now) {
		puts("next try: due now (at the next queue run)");
	} else {
		show_time(next, when, sizeof(when));
		printf("next try: %s (in %lld min)\n", when, (long long)(next - now + 59) / 60);
	}
}

/* show_rcpt - one recipient, with the attempts and last reply of a pending one. */
static void show_rcpt(struct queue_rcpt *r)
{
	printf("recipient: <%s>", printable(r->orig));
	printf(" -> %s", printable(r->local));
	printf("@%s %s %s\n", printable(r->domain), address_class_name(r->cls),
	       r->done ? "done" : "pending");
	if (r->done)
		return;
	if (r->attempts > 0) {
		char when[64];
		show_time(r->last_try, when, sizeof(when));
		printf("  attempts: %u, the last %s\n", r->attempts, when);
	}
	if (r->last_reply != NULL)
		printf("  last reply: %s\n", printable(r->last_reply));
}

static void show_envelope(const struct queue_msg *m, const char *path)
{
	char when[64];
	show_time(m->arrival, when, sizeof(when));
	printf("id: %s\nqueue: %.*s/%s\nsize: %llu bytes\narrival: %s (%lld)\n", m->id,
	       (int)(strchr(path, '/') - path), path,
	       queue_state_of(path) == QUEUE_STATE_HELD ? " (held)" : "",
	       (unsigned long long)m->size, when, (long long)m->arrival);
	printf("client: %s [%s]\n", printable(m->client_name), printable(m->client_ip));
	printf("helo: %s\nsender: <%s>\n", printable(m->helo), printable(m->sender));
	if (m->login)
		printf("login: %s\n", printable(m->login));
	show_next_try(m, path);
	for (size_t i = 0; i < m->n_rcpts; i++)
		show_rcpt(&m->rcpts[i]);
}

static int cmd_show(const char *qdir, const struct qargs *a)
{
	char path[QUEUE_ID_LEN + 16], err[512];
	if (!open_queue(qdir))
		return 1;
	if (!queue_find(qdir, a->id, path, sizeof(path))) {
		fprintf(stderr, "relayguard: no such message in the queue: %s\n", a->id);
		return 1;
	}
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	bool ok = queue_load(qdir, path, m, err, sizeof(err));
	if (ok) {
		show_envelope(m, path);
		putchar('\n');
		const char *end = a->body ? NULL : memmem(m->body.data, m->body.len, "\r\n\r\n", 4);
		put_text(m->body.data, end ? (size_t)(end - m->body.data) + 2 : m->body.len);
	} else {
		fprintf(stderr, "relayguard: %s\n", err);
	}
	queue_msg_free(m);
	return ok ? 0 : 1;
}

/* say_not_running - for commands only the server can do. */
static int say_not_running(const char *qdir, const char *cmd)
{
	fprintf(stderr, "relayguard is not running (no control socket at %s/%s): %s needs the "
		"running server\n", qdir, CONTROL_SOCKET_NAME, cmd);
	return 1;
}

/* cmd_status - the running server's delivery state. */
static int cmd_status(const char *qdir, const struct qargs *a)
{
	struct strbuf reply;
	char err[512];
	strbuf_init(&reply);
	enum ctl_result r = ctl_request(qdir, "status", &reply, err, sizeof(err));
	int rc = 0;
	if (r == CTL_OK)
		fputs(reply.data ? reply.data : "", stdout);
	else if (r == CTL_ABSENT)
		rc = say_not_running(qdir, a->cmd);
	else
		rc = ctl_say_failure(qdir, r, err);
	strbuf_free(&reply);
	return rc;
}

/* lift_offline - the login's suspension, kept in hijack-state across restarts,
 * goes too: the server started next must not suspend it again. */
static bool lift_offline(const char *qdir, const struct qargs *a, struct strbuf *out)
{
	char err[512];
	bool was;
	if (a->shared_state[0] && !shared_lift_blocking(a->shared_state, a->login, err,
							 sizeof(err))) {
		strbuf_printf(out, "%s (the suspension is still in Redis)", err);
		return false;
	}
	if (!hijack_state_lift(qdir, a->login, &was, err, sizeof(err))) {
		strbuf_printf(out, "%s", err);
		return false;
	}
	strbuf_printf(out, "login %s: %s\n", a->login,
		      a->shared_state[0] ? "suspension lifted (here and in shared_state)"
		      : was		 ? "suspension lifted"
					 : "was not suspended");
	return true;
}

/* change_files - delete/hold/release without a server, under the queue lock. */
static int change_files(const char *qdir, const struct qargs *a)
{
	if (!open_queue(qdir))
		return 1;
	if (flock(basedir_fd(qdir), LOCK_EX | LOCK_NB) != 0) {
		fprintf(stderr, "relayguard: relayguard is running (it holds the queue lock) but "
			"does not answer on %s/%s; try again\n", qdir, CONTROL_SOCKET_NAME);
		return 1;
	}
	struct qctl q = {.dir = qdir, .offline = true};
	struct strbuf out;
	strbuf_init(&out);
	bool ok;
	if (a->login)
		ok = qctl_held_by_login(&q, a->login, strcmp(a->cmd, "release") == 0, &out, NULL,
					NULL) && lift_offline(qdir, a, &out);
	else if (strcmp(a->cmd, "delete") == 0)
		ok = qctl_ops.delete(&q, a->id, &out);
	else if (strcmp(a->cmd, "hold") == 0)
		ok = qctl_ops.hold(&q, a->id, &out);
	else
		ok = qctl_ops.release(&q, a->id, &out);
	fputs("server not running: changed the queue files directly\n", stderr);
	if (ok)
		fputs(out.data ? out.data : "", stdout);
	else
		fprintf(stderr, "relayguard: %s\n", out.data ? out.data : "failed");
	strbuf_free(&out);
	return ok ? 0 : 1;
}

/* cmd_change - flush, delete, hold, release: the server, or the files. */
static int cmd_change(const char *qdir, const struct qargs *a)
{
	char *request = a->login ? xasprintf("%s-login %s", a->cmd, a->login)
			: a->id ? xasprintf("%s %s", a->cmd, a->id)
				: xasprintf("%s%s", a->cmd, a->all ? " --all" : "");
	struct strbuf reply;
	char err[512];
	strbuf_init(&reply);
	enum ctl_result r = ctl_request(qdir, request, &reply, err, sizeof(err));
	int rc = 0;
	if (r == CTL_OK)
		fputs(reply.data ? reply.data : "", stdout);
	else if (r == CTL_ABSENT && strcmp(a->cmd, "flush") == 0)
		rc = say_not_running(qdir, a->cmd);
	else if (r == CTL_ABSENT)
		rc = change_files(qdir, a);
	else
		rc = ctl_say_failure(qdir, r, err);
	strbuf_free(&reply);
	free(request);
	return rc;
}

static const struct {
	const char *name;
	int (*run)(const char *qdir, const struct qargs *a);
} subcommands[] = {
	{"list", cmd_list},     {"show", cmd_show},   {"flush", cmd_change},
	{"status", cmd_status},
	{"delete", cmd_change}, {"hold", cmd_change}, {"release", cmd_change},
};

/* run - load the configuration for queue_directory, then the command. */
static int run(int (*fn)(const char *, const struct qargs *), const struct qargs *a)
{
	struct config *cfg = cli_load_config(a->config_file, false);
	if (cfg == NULL)
		return EXIT_CONFIG;
	struct qargs with = *a;
	with.shared_state = cfg->shared_state;
	int rc = fn(cfg->queue_directory, &with);
	basedir_close_all();
	config_free(cfg);
	return rc;
}

int queue_main(int argc, char **argv)
{
	struct qargs a = {0};
	if (argc < 1 || cli_asks_help(argc, argv)) {
		fputs(usage_queue, argc < 1 ? stderr : stdout);
		return argc < 1 ? EXIT_USAGE : 0;
	}
	for (size_t i = 0; i < RG_ARRAY_LEN(subcommands); i++) {
		if (strcmp(argv[0], subcommands[i].name) != 0)
			continue;
		int rc = parse_args(argc, argv, &a);
		if (rc != 0) {
			if (rc < 0)
				fputs(usage_queue, stdout);
			return rc < 0 ? 0 : EXIT_USAGE;
		}
		return check_args(&a) ? run(subcommands[i].run, &a) : EXIT_USAGE;
	}
	fprintf(stderr, "relayguard queue: unknown command \"%s\" (try relayguard queue --help)\n",
		argv[0]);
	return EXIT_USAGE;
}

/* ---- relayguard lockout: the running server's AUTH lock-outs and rate counters ---- */

static const char usage_lockout[] =
	"usage: relayguard lockout list|stats|clear IP [-c FILE]\n"
	"\n"
	"Ask the running server (over queue_directory/control) about clients shut out\n"
	"for failed AUTH attempts (smtpd_sasl_failure_limit) and rate limits:\n"
	"  list       the clients locked out now, and for how long\n"
	"  clear IP   lift IP's lock-out (IPv6: its /64) and forget its rate counters\n"
	"  stats      refusals counted by the rate limits, table sizes\n"
	"Exit status: 0 ok, 64 usage error, 78 configuration error, 1 other failure.\n";

/* lockout_request - the control request for ARGV, or NULL (a usage error;
 * *bad_ip: clear's address was not one, and that was said). */
static char *lockout_request(int argc, char **argv, const char **config_file, bool *bad_ip)
{
	const char *ip = NULL;
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			*config_file = argv[++i];
		else if (argv[i][0] != '-' && ip == NULL && strcmp(argv[0], "clear") == 0)
			ip = argv[i];
		else
			return NULL;
	}
	if (strcmp(argv[0], "list") == 0 || strcmp(argv[0], "stats") == 0)
		return xstrdup(strcmp(argv[0], "list") == 0 ? "lockout-list" : "abuse-stats");
	struct rg_ip addr;
	if (strcmp(argv[0], "clear") == 0 && ip != NULL && !ip_parse(ip, &addr)) {
		fprintf(stderr, "relayguard lockout clear: \"%s\" is not an IP address (try "
			"--help)\n", ip);
		*bad_ip = true;
		return NULL;
	}
	if (strcmp(argv[0], "clear") == 0 && ip != NULL)
		return xasprintf("lockout-clear %s", ip);
	return NULL;
}

int lockout_main(int argc, char **argv)
{
	const char *config_file = NULL;
	if (cli_asks_help(argc, argv)) {
		fputs(usage_lockout, stdout);
		return 0;
	}
	bool bad_ip = false;
	char *request = argc >= 1 ? lockout_request(argc, argv, &config_file, &bad_ip) : NULL;
	if (request == NULL) {
		if (!bad_ip) /* that one line says it all */
			fputs(usage_lockout, stderr);
		return EXIT_USAGE;
	}
	struct config *cfg = cli_load_config(config_file, false);
	if (cfg == NULL) {
		free(request);
		return EXIT_CONFIG;
	}
	struct strbuf reply;
	char err[512];
	strbuf_init(&reply);
	enum ctl_result r = ctl_request(cfg->queue_directory, request, &reply, err, sizeof(err));
	int rc = r == CTL_OK ? 0
	       : r == CTL_ABSENT ? say_not_running(cfg->queue_directory, argv[0])
				 : ctl_say_failure(cfg->queue_directory, r, err);
	if (r == CTL_OK)
		fputs(reply.data ? reply.data : "", stdout);
	strbuf_free(&reply);
	free(request);
	config_free(cfg);
	return rc;
}
