/*
 * main.c - the relayguard command line.
 *
 * SYNOPSIS
 *	relayguard serve [-c FILE] [--log-format plain|json] [--debug]
 *	relayguard config [-c FILE] [-n] [NAME...] | --man
 *	relayguard passwd [--scheme SCHEME] [PASSWORD]
 *	relayguard probe [OPTIONS] TARGET...   (src/probe/cli.c)
 *	relayguard queue list|show|flush|delete|hold|release ...   (queue_cmd.c)
 *	relayguard audit | explain ...   (audit_cmd.c)
 *	relayguard spf check ...   (spf_cmd.c)
 *	relayguard dkim keygen|check|sign|verify ...   (dkim_cmd.c)
 *	relayguard demo [--html FILE] [--step] [--keep DIR]   (demo_cmd.c)

 *	relayguard sendmail [-t] [-i] [-f sender] ... | sendmail ...   (sendmail_cmd.c)
 *	mailq | newaliases   (links: sendmail -bp, sendmail -bi)
 *	relayguard --help | --version
 *
 * Owns: argument parsing, whether this binary is installed (its default
 * configuration file and paths), start-up order (load config, bind, prepare
 * directories, drop privileges, run) and exit statuses:
 *	0 ok, 64 usage error, 78 configuration error, 1 anything else.
 */
#define _XOPEN_SOURCE 700
#include "auth/passwd.h"
#include "cli/audit_cmd.h"
#include "cli/demo_cmd.h"
#include "cli/cli.h"
#include "cli/dkim_cmd.h"
#include "cli/queue_cmd.h"
#include "cli/sendmail_cmd.h"
#include "cli/spf_cmd.h"
#include "cli/tlsmem_cmd.h"
#include "config/config.h"
#include "config/params.h"
#include "probe/probe.h"
#include "queue/queue.h"
#include "smtp/server.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define RELAYGUARD_VERSION "0.1.0"
/* An installed binary's configuration when -c is not given (the unit passes
 * -c explicitly; make install SYSCONFDIR=... changes only what it writes). */
#define INSTALLED_CONFIG "/etc/relayguard/main.cf"

static bool installed; /* not run from a build tree: see running_installed() */

static const char usage_main[] =
	"usage: relayguard COMMAND [OPTIONS]\n"
	"\n"
	"A mail server that cannot be turned into an open relay.\n"
	"\n"
	"Commands:\n"
	"  serve     run the SMTP server (MTA) with local Maildir delivery\n"
	"  config    check a configuration and print every parameter's effective value\n"
	"  passwd    print a password hash for a passwd-file (smtpd_sasl_path)\n"
	"  probe     test whether SMTP servers relay for strangers (exit 0 closed, 1 open)\n"
	"  queue     list, show, flush, delete, hold or release queued mail (like mailq)\n"
	"  audit     could this configuration (or a Postfix one) relay? offline, no mail sent\n"
	"  explain   the relay decision for one client and envelope, restriction by restriction\n"
	"  lockout   list or clear AUTH lock-outs, rate-limit counters (running server)\n"
	"  tls-memory  list or forget the best TLS each destination domain has shown\n"
	"  tls-report  send --now: the TLS-RPT reports (RFC 8460) of the running server\n"
	"  spf       check: the SPF result (RFC 7208) for a client address and sender\n"
	"  dkim      keygen, check, sign or verify: DKIM keys and signatures\n"
	"  demo      the open-relay attack played on loopback, then the fix (<1 minute)\n"

	"  sendmail  send a message from stdin through the running server (also as 'sendmail')\n"
	"\n"
	"Options:\n"
	"  -h, --help     this text; 'relayguard COMMAND --help' explains a command\n"
	"  --version      print the version\n"
	"\n"
	"In full: relayguard(8) (every command and option), relayguard.conf(5)\n"
	"(every parameter).\n"
	"\n"
	"Without -c, the embedded default configuration is used: listen on\n"
	"127.0.0.1:2525 and [::1]:2525 (MTA, STARTTLS offered), :2587 (submission,\n"
	"STARTTLS required) and :2465 (submissions, implicit TLS) with a self-signed\n"
	"certificate made in ./var/data, mydestination = localhost, one mailbox\n"
	"(postmaster), queue and Maildirs under ./var, mynetworks = 127.0.0.0/8 [::1]/128.\n"
	"AUTH is off until smtpd_sasl_auth_enable = yes and smtpd_sasl_path are set.\n"
	"Installed (make install: not run from its build tree), relayguard reads\n"
	INSTALLED_CONFIG " when there is one, and its defaults put the queue\n"
	"in /var/spool/relayguard, Maildirs in /var/mail/vhosts and the certificate\n"
	"in /var/lib/relayguard.\n";

static const char usage_serve[] =
	"usage: relayguard serve [-c FILE] [--log-format plain|json] [--debug]\n"
	"\n"
	"Run the SMTP server in the foreground. It refuses relaying for clients\n"
	"outside mynetworks (554 5.7.1 Relay access denied), queues accepted mail\n"
	"durably (fsync before 250) and delivers local recipients to Maildirs under\n"
	"virtual_mailbox_base/<domain>/<user>/.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE     configuration in Postfix main.cf syntax\n"
	"                        (default: the embedded configuration; see 'relayguard config')\n"
	"  --log-format FORMAT   plain (default) or json; logs go to standard error\n"
	"  --debug               also log state changes\n"
	"  -h, --help            this text\n"
	"\n"
	"Stop with Ctrl-C or SIGTERM: no new connections are taken, messages in\n"
	"progress are finished, other sessions get 421, then it exits.\n"
	"SIGHUP re-reads the configuration file: new sessions use it, open ones\n"
	"finish on the old one; a file with errors, or one the relay self-test\n"
	"refuses, is not taken (\"reload refused: ...\" in the log).\n"
	"When started as root it binds its ports, then runs as mail_owner.\n"
	"Under systemd (Type=notify) it reports READY=1 once it accepts mail.\n";

static const char usage_passwd[] =
	"usage: relayguard passwd [--scheme SCHEME] [PASSWORD]\n"
	"\n"
	"Print a hash of PASSWORD for a passwd-file line, as 'doveadm pw' does:\n"
	"    alice@example.com:{CRYPT}$y$j9T$...\n"
	"Without PASSWORD, it is read from standard input (on a terminal: asked\n"
	"twice, not echoed). Passing it as an argument leaves it in your shell history.\n"
	"\n"
	"Options:\n"
	"  --scheme SCHEME   CRYPT (yescrypt, the default), SHA512-CRYPT, SHA256-CRYPT\n"
	"                    or BLF-CRYPT (bcrypt)\n"
	"  -h, --help        this text\n";

static const char usage_config[] =
	"usage: relayguard config [-c FILE] [-n] [NAME...] | --man\n"
	"\n"
	"Check a configuration as serve does before it starts or reloads: each error\n"
	"as 'file:line: what is wrong', and the relay self-test (relay_selftest): a\n"
	"file serve would refuse exits 78 with its open-relay lines. Otherwise prints\n"
	"every parameter as 'name = value' after $name expansion. Warnings about risky\n"
	"settings (e.g. a broad mynetworks) go to standard error.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE     the file to check (default: the embedded configuration)\n"
	"  -n                    only the parameters the file sets (postconf -n)\n"
	"  NAME...               only these parameters, in this order (postconf NAME)\n"
	"  --man                 print relayguard.conf(5), every parameter, in mdoc\n"
	"  -h, --help            this text\n";

struct options {
	const char *config_file;
	enum log_format log_format;
	int debug;
	bool set_only;      /* config -n */
	const char **names; /* config NAME...: argv's, in order */
	size_t n_names;
};

/* parse_options - shared by serve and config (names and -n: config only);
 * returns -1 for help, 0 ok, 1 error. o->names, when set, is the caller's to free. */
static int parse_options(int argc, char **argv, bool serve, struct options *o)
{
	if (cli_asks_help(argc, argv)) /* even after a bad option */
		return -1;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
			o->config_file = argv[++i];
		} else if (serve && strcmp(a, "--log-format") == 0 && i + 1 < argc) {
			const char *f = argv[++i];
			if (strcmp(f, "json") == 0)
				o->log_format = LOG_FORMAT_JSON;
			else if (strcmp(f, "plain") == 0)
				o->log_format = LOG_FORMAT_PLAIN;
			else {
				fprintf(stderr, "relayguard: --log-format takes plain or json, not \"%s\"\n", f);
				return 1;
			}
		} else if (serve && strcmp(a, "--debug") == 0) {
			o->debug = 1;
		} else if (!serve && strcmp(a, "-n") == 0) {
			o->set_only = true;
		} else if (!serve && a[0] != '-') {
			o->names = xrealloc(o->names, (o->n_names + 1) * sizeof(*o->names));
			o->names[o->n_names++] = a;
		} else {
			fprintf(stderr, "relayguard: unknown or incomplete option \"%s\" (try --help)\n", a);
			return 1;
		}
	}
	return 0;
}

/* running_installed - is this binary outside a build tree? A build tree's
 * binaries are build/relayguard*, next to src/cli/main.c; anywhere else
 * (/usr/local/sbin, a package, a DESTDIR) it is installed. A run-time check
 * rather than -DRG_INSTALLED: make install copies the binary make built. */
static bool running_installed(void)
{
	char exe[PATH_MAX], probe[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false; /* cannot tell: keep the tree's behaviour */
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	snprintf(probe, sizeof(probe), "%s/../src/cli/main.c", exe);
	return access(probe, F_OK) != 0;
}

/* default_config_file - without -c: an installed binary reads the installed
 * main.cf when there is one; otherwise the embedded default. */
static const char *default_config_file(const char *given)
{
	if (given != NULL || !installed || access(INSTALLED_CONFIG, F_OK) != 0)
		return given;
	return INSTALLED_CONFIG;
}

struct config *cli_load_config(const char *file, bool serving)
{
	char *errors = NULL;
	file = default_config_file(file);
	struct config *cfg = config_load(file, &errors);
	if (cfg == NULL) {
		fputs(errors, stderr);
		fprintf(stderr, "relayguard: %s has errors%s\n",
			file ? file : "the default configuration", serving ? "; not starting" : "");
		free(errors);
	}
	return cfg;
}

const char *cli_closest(const char *word, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t best_d = 4; /* as the loader's hint for a misspelt parameter */
	for (size_t i = 0; i < n; i++) {
		size_t d = config_edit_distance(word, names[i]);
		if (d < best_d) {
			best_d = d;
			best = names[i];
		}
	}
	return best;
}

/* check_names - every NAME a parameter; else say which (with a hint) and false. */
static bool check_names(const struct options *o)
{
	for (size_t k = 0; k < o->n_names; k++) {
		if (config_param_id(o->names[k]) != PARAM_COUNT)
			continue;
		const char *hint = config_closest_param(o->names[k]);
		fprintf(stderr, "relayguard: unknown parameter \"%s\"%s%s%s\n", o->names[k],
			hint ? " (did you mean \"" : "", hint ? hint : "", hint ? "\"?)" : "");
		return false;
	}
	return true;
}

/* print_selected - NAME... in their order (postconf NAME), or with -n every
 * parameter the file sets (postconf -n), as config_print shows them. */
static bool print_selected(const struct config *cfg, const struct options *o)
{
	for (size_t k = 0; k < (o->n_names ? o->n_names : PARAM_COUNT); k++)
		config_print_param(cfg, o->n_names ? config_param_id(o->names[k]) : k, o->set_only,
				   stdout);
	return fflush(stdout) == 0;
}

/* check_config - the whole check: serve's self-test, warnings, every value. */
static int check_config(struct config *cfg)
{
	/* serve's relay self-test too: a file serve (or a reload) would refuse
	 * fails the check that operators run before a reload */
	if (audit_selftest_check(cfg) != 0)
		return EXIT_CONFIG;
	char *warnings = config_warnings(cfg);
	if (warnings != NULL) {
		for (char *save = NULL, *l = strtok_r(warnings, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "warning: open-relay-risk: %s\n", l);
		free(warnings);
	}
	/* which file this is: a comment line, so the output is still main.cf syntax */
	if (cfg->file != NULL)
		printf("# relayguard config: read %s\n", cfg->file);
	else
		printf("# relayguard config: no file read; the embedded default (%s paths)\n",
		       installed ? "installed" : "build tree");
	config_print(cfg, stdout);
	return 0;
}

static int cmd_config(int argc, char **argv)
{
	struct options o = {0};
	if (argc == 1 && strcmp(argv[0], "--man") == 0) {
		config_print_manual(stdout);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	int rc = parse_options(argc, argv, false, &o);
	if (rc != 0 || !check_names(&o)) {
		if (rc != 0)
			fputs(usage_config, rc < 0 ? stdout : stderr);
		free(o.names);
		return rc < 0 ? 0 : EXIT_USAGE;
	}
	struct config *cfg = cli_load_config(o.config_file, false);
	if (cfg == NULL)
		rc = EXIT_CONFIG;
	else if (o.n_names > 0 || o.set_only) /* a query (postconf NAME, -n), not the check */
		rc = print_selected(cfg, &o) ? 0 : 1;
	else
		rc = check_config(cfg);
	config_free(cfg);
	free(o.names);
	return rc;
}

/* absolute_dir - create path (and parents) and make it absolute in place. */
static bool absolute_dir(char **path, char *err, size_t errlen)
{
	char *p = xstrdup(*path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	free(p);
	if (mkdir(*path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", *path, strerror(errno));
		return false;
	}
	char real[PATH_MAX];
	if (realpath(*path, real) == NULL) {
		snprintf(err, errlen, "cannot resolve %s: %s", *path, strerror(errno));
		return false;
	}
	free(*path);
	*path = xstrdup(real);
	return true;
}

static uid_t chown_uid;
static gid_t chown_gid;

static int chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (lchown(path, chown_uid, chown_gid) != 0)
		log_msg(LOG_WARNING, "cannot chown %s: %s", path, strerror(errno));
	return 0;
}

/* drop_privileges - root binds, mail_owner runs. */
static bool drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
	if (geteuid() != 0)
		return true;
	struct passwd *pw = getpwnam(cfg->mail_owner);
	if (pw == NULL || pw->pw_uid == 0) {
		snprintf(err, errlen, "mail_owner \"%s\" %s; create it with 'useradd --system "
			 "--no-create-home --shell /usr/sbin/nologin %s' or set mail_owner",
			 cfg->mail_owner, pw ? "must not be root" : "does not exist",
			 cfg->mail_owner);
		return false;
	}
	chown_uid = pw->pw_uid;
	chown_gid = pw->pw_gid;
	/* Walk only trees mail_owner does not own yet: it cannot have planted
	 * symlinks in them, so root's chown cannot be redirected. */
	const char *trees[] = {cfg->queue_directory, cfg->virtual_mailbox_base};
	for (size_t i = 0; i < RG_ARRAY_LEN(trees); i++) {
		struct stat st;
		if (lstat(trees[i], &st) == 0 && st.st_uid != pw->pw_uid)
			nftw(trees[i], chown_entry, 16, FTW_PHYS);
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0 ||
	    setuid(0) == 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s", cfg->mail_owner, strerror(errno));
		return false;
	}
	/* the directories are held open (basedir): their parents may stay closed */
	const char *dirs[] = {cfg->queue_directory, cfg->virtual_mailbox_base};
	for (size_t i = 0; i < RG_ARRAY_LEN(dirs); i++) {
		if (faccessat(basedir_fd(dirs[i]), ".", W_OK | X_OK, 0) != 0) {
			snprintf(err, errlen, "user %s cannot write %s: %s", cfg->mail_owner, dirs[i],
				 strerror(errno));
			return false;
		}
	}
	return true;
}

static void announce(const struct config *cfg)
{
	struct strbuf where;
	strbuf_init(&where);
	for (size_t i = 0; i < cfg->n_listen; i++)
		strbuf_printf(&where, "%s%s", i ? ", " : "", cfg->listen[i].text);
	log_msg(LOG_INFO, "relayguard %s starting as pid %d on %s (myhostname %s)",
		RELAYGUARD_VERSION, (int)getpid(), where.data, cfg->myhostname);
	log_msg(LOG_INFO, "mail for local users lands in %s/<domain>/<user>/new/; queue in %s",
		cfg->virtual_mailbox_base, cfg->queue_directory);
	log_msg(LOG_INFO, "stop with Ctrl-C or 'kill -TERM %d'", (int)getpid());
	strbuf_free(&where);
	char *warnings = config_warnings(cfg);
	for (char *save = NULL, *l = warnings ? strtok_r(warnings, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save))
		log_ev(LOG_WARNING, "open-relay-risk", {"text", l});
	free(warnings);
}

static int serve(struct config *cfg)
{
	char err[1024];
	struct server *srv = NULL;
	int rc = 1;
	if (!absolute_dir(&cfg->queue_directory, err, sizeof(err)) ||
	    !absolute_dir(&cfg->virtual_mailbox_base, err, sizeof(err)) ||
	    (config_needs_tls(cfg) && cfg->smtpd_tls_cert_file[0] == '\0' &&
	     !absolute_dir(&cfg->data_directory, err, sizeof(err))) ||
	    !queue_init(cfg->queue_directory, err, sizeof(err)))
		goto fail;
	if (!basedir_open(cfg->virtual_mailbox_base)) {
		snprintf(err, sizeof(err), "cannot open %s: %s", cfg->virtual_mailbox_base,
			 strerror(errno));
		goto fail;
	}
	srv = server_new(cfg, err, sizeof(err));
	if (srv != NULL)
		server_set_selftest(srv, audit_selftest_reload); /* SIGHUP: the same verdict */
	if (srv == NULL || !server_bind(srv, err, sizeof(err)) ||
	    !drop_privileges(cfg, err, sizeof(err)))
		goto fail;
	announce(cfg); /* only once the ports are ours */
	rc = server_run(srv);
	server_free(srv);
	dirsync_cleanup();
	basedir_close_all();
	return rc;
fail:
	log_ev(LOG_FATAL, "startup-failed", {"reason", err});
	server_free(srv);
	basedir_close_all();
	return 1;
}

/* read_password - one line from stdin; on a terminal without echo, twice. */
static char *read_password(void)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	char *first = NULL, *second = NULL;
	size_t cap1 = 0, cap2 = 0;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		fputs("Password: ", stderr);
	}
	bool ok = getline(&first, &cap1, stdin) > 0;
	if (ok && tty) {
		fputs("\nRetype password: ", stderr);
		ok = getline(&second, &cap2, stdin) > 0;
		fputs("\n", stderr);
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (ok)
		first[strcspn(first, "\r\n")] = '\0';
	if (ok && second != NULL) {
		second[strcspn(second, "\r\n")] = '\0';
		if (strcmp(first, second) != 0) {
			fputs("relayguard: the passwords differ\n", stderr);
			ok = false;
		}
	}
	if (second != NULL) {
		explicit_bzero(second, cap2);
		free(second);
	}
	if (!ok && first != NULL) {
		explicit_bzero(first, cap1);
		free(first);
		first = NULL;
	}
	return first;
}

static int cmd_passwd(int argc, char **argv)
{
	const char *scheme = NULL, *given = NULL;
	if (cli_asks_help(argc, argv)) {
		fputs(usage_passwd, stdout);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--scheme") == 0 && i + 1 < argc)
			scheme = argv[++i];
		else if (argv[i][0] != '-' && given == NULL)
			given = argv[i];
		else {
			fputs(usage_passwd, stderr);
			return EXIT_USAGE;
		}
	}
	char *password = given ? xstrdup(given) : read_password();
	if (password == NULL)
		return 1;
	if (password[0] == '\0') {
		fputs("relayguard: the password is empty\n", stderr);
		free(password);
		return EXIT_USAGE;
	}
	char err[256];
	char *hash = passwd_hash(scheme, password, err, sizeof(err));
	explicit_bzero(password, strlen(password));
	free(password);
	if (hash == NULL) {
		fprintf(stderr, "relayguard: %s\n", err);
		return EXIT_USAGE;
	}
	puts(hash);
	free(hash);
	return 0;
}

/* raise_fd_limit - one descriptor per connection: take all the kernel allows us. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int cmd_serve(int argc, char **argv)
{
	struct options o = {0};
	int rc = parse_options(argc, argv, true, &o);
	if (rc != 0) {
		fputs(usage_serve, rc < 0 ? stdout : stderr);
		return rc < 0 ? 0 : EXIT_USAGE;
	}
	log_set_format(o.log_format);
	log_set_debug(o.debug);
	struct config *cfg = cli_load_config(o.config_file, true);
	if (cfg == NULL)
		return EXIT_CONFIG;
	if ((rc = audit_selftest(cfg)) != 0) { /* an open relay does not start */
		config_free(cfg);
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN); /* a reload before the loop runs: the file was just read */
	raise_fd_limit();
	rc = serve(cfg);
	config_free(cfg);
	return rc;
}

/* Every command run_command knows, for the hint after a misspelt one
 * (test_cli_admin checks that each dispatched command is here). */
static const char *const command_names[] = {
	"serve", "config", "passwd", "probe", "queue", "audit", "explain", "lockout",
	"tls-memory", "tls-report", "spf", "dkim", "demo", "sendmail",
};

/* run_command - the command named by argv[1]; -1 when there is none. */
static int run_command(const char *cmd, int argc, char **argv)
{
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc - 2, argv + 2);
	if (strcmp(cmd, "config") == 0)
		return cmd_config(argc - 2, argv + 2);
	if (strcmp(cmd, "passwd") == 0)
		return cmd_passwd(argc - 2, argv + 2);
	if (strcmp(cmd, "probe") == 0)
		return probe_main(argc - 1, argv + 1);
	if (strcmp(cmd, "queue") == 0)
		return queue_main(argc - 2, argv + 2);
	if (strcmp(cmd, "audit") == 0)
		return audit_main(argc - 2, argv + 2);
	if (strcmp(cmd, "explain") == 0)
		return explain_main(argc - 2, argv + 2);
	if (strcmp(cmd, "lockout") == 0)
		return lockout_main(argc - 2, argv + 2);
	if (strcmp(cmd, "tls-memory") == 0)
		return tlsmem_main(argc - 2, argv + 2);
	if (strcmp(cmd, "tls-report") == 0)
		return tlsreport_main(argc - 2, argv + 2);
	if (strcmp(cmd, "spf") == 0)
		return spf_main(argc - 2, argv + 2);
	if (strcmp(cmd, "dkim") == 0)
		return dkim_main(argc - 2, argv + 2);
	if (strcmp(cmd, "demo") == 0)
		return demo_main(argc - 2, argv + 2);

	if (strcmp(cmd, "sendmail") == 0)
		return sendmail_main(argc - 2, argv + 2);
	return -1;
}

bool cli_asks_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

/* invoked_as - argv[0]'s last component is NAME: "sendmail" (the link make
 * install INSTALL_SENDMAIL=yes makes), or its companions "mailq" (sendmail
 * -bp) and "newaliases" (sendmail -bi), links an operator may make. */
static bool invoked_as(const char *argv0, const char *name)
{
	const char *base = argv0 ? strrchr(argv0, '/') : NULL;
	base = base ? base + 1 : argv0;
	return base != NULL && strcmp(base, name) == 0;
}

/* sendmail_as - mailq and newaliases are sendmail with -bp and -bi first. */
static int sendmail_as(const char *mode, int argc, char **argv)
{
	char **args = xcalloc((size_t)argc + 2, sizeof(*args));
	args[0] = (char *)mode;
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	int rc = sendmail_main(argc + 1, args);
	free(args);
	return rc;
}

/* sendmail_link - the command line of the sendmail, mailq or newaliases link; -1: none. */
static int sendmail_link(int argc, char **argv)
{
	if (argc < 1)
		return -1;
	bool sendmail = invoked_as(argv[0], "sendmail"), mailq = invoked_as(argv[0], "mailq");
	bool newaliases = invoked_as(argv[0], "newaliases");
	if (!sendmail && !mailq && !newaliases)
		return -1;
	installed = running_installed();
	config_use_installed_paths(installed);
	if (sendmail)
		return sendmail_main(argc - 1, argv + 1);
	return sendmail_as(mailq ? "-bp" : "-bi", argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
	int rc = sendmail_link(argc, argv);
	if (rc >= 0)
		return rc;
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	installed = running_installed();
	config_use_installed_paths(installed);
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("relayguard %s\n", RELAYGUARD_VERSION);
		return 0;
	}
	rc = run_command(cmd, argc, argv);
	if (rc < 0) {
		const char *hint = cli_closest(cmd, command_names, RG_ARRAY_LEN(command_names));
		if (hint != NULL)
			fprintf(stderr, "relayguard: unknown command \"%s\" (did you mean \"%s\"?)\n",
				cmd, hint);
		else
			fprintf(stderr, "relayguard: unknown command \"%s\" (try relayguard --help)\n",
				cmd);
		return EXIT_USAGE;
	}
	/* each command's help stays short; the manual pages have the rest */
	if (rc == 0 && cli_asks_help(argc - 2, argv + 2))
		puts("\nIn full: relayguard(8) (every command and option), relayguard.conf(5)\n"
		     "(every parameter).");
	return rc;
}
