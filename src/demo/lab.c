/*
 * lab.c - the demo's children, its directory, and stopping them all.
 *
 * Owns: see lab.h. The signal handler only records the signal and sends
 * SIGTERM to the registered children (both async-signal-safe); the demo's
 * waits notice the signal and unwind to lab_close(). A guard process, whose
 * process group every child joins, stops them and removes the directory when
 * the demo ends without unwinding (SIGKILL).
 * Must not: signal anything it did not start.
 */
#define _XOPEN_SOURCE 700
#include "demo/lab.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;
static pid_t guard_group; /* the guard's process group, which every child joins */
static volatile pid_t children[LAB_MAX_CHILDREN];
static struct sigaction old_int, old_term;

/* on_signal - remember it and stop our children; the demo unwinds itself. */
static void on_signal(int sig)
{
	interrupted = sig;
	for (int i = 0; i < LAB_MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGTERM);
}

/* track - register (pid > 0) or forget (-pid) a child for the handler. */
static void track(pid_t pid, bool add)
{
	for (int i = 0; i < LAB_MAX_CHILDREN; i++) {
		if (add && children[i] == 0) {
			children[i] = pid;
			return;
		}
		if (!add && children[i] == pid)
			children[i] = 0;
	}
}

int lab_interrupted(void)
{
	return interrupted;
}

void lab_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	if (!interrupted)
		nanosleep(&ts, NULL); /* EINTR on a signal: return early */
}

/* lab_wait_enter - the signals stay blocked between the check of interrupted
 * and the wait, and ppoll unblocks them atomically: a Ctrl-C that comes just
 * after the prompt cannot be lost in a read that then waits for ever. */
void lab_wait_enter(void)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	struct pollfd p = {.fd = 0, .events = POLLIN};
	char c = 0;
	while (!interrupted && c != '\n') {
		int r = ppoll(&p, 1, NULL, &old);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || read(0, &c, 1) != 1)
			break; /* an error, or the end of the input */
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f);

/* guard_watch - in the guard: wait for the demo to end, however it ends (the
 * pipe's last writer gone), then stop the group and remove the directory. */
static void guard_watch(int rd, const char *dir, bool keep)
{
	char c;
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	while (read(rd, &c, 1) < 0 && errno == EINTR)
		;
	kill(-getpid(), SIGTERM);
	if (!keep && access(dir, F_OK) == 0) { /* still there: the demo did not unwind */
		sleep(5); /* the servers' own shutdown, then what is left of their files */
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	_exit(0);
}

/* start_guard - the children's parent-death signal is lost when they change
 * user (serve, dnsmasq), so a demo killed with SIGKILL would leave them
 * running: a guard process in its own group, which the children join, stops
 * them when the demo's end closes the pipe. */
static void start_guard(const struct lab *l)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	fflush(NULL);
	pid_t g = fork();
	if (g == 0) {
		close(p[1]);
		setpgid(0, 0);
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0), dup2(null, 1), dup2(null, 2);
		}
		guard_watch(p[0], l->dir, l->keep);
	}
	close(p[0]);
	if (g > 0 && (setpgid(g, g) == 0 || errno == EACCES))
		guard_group = g; /* p[1] stays open (close-on-exec) until we end */
	else
		close(p[1]);
}

bool lab_open(struct lab *l, const char *keep_dir, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	ssize_t n = readlink("/proc/self/exe", l->exe, sizeof(l->exe) - 1);
	if (n <= 0) {
		snprintf(err, errlen, "cannot find this binary: %s", strerror(errno));
		return false;
	}
	l->exe[n] = '\0';
	const char *tmp = getenv("TMPDIR");
	if (keep_dir != NULL) {
		l->keep = true;
		if (mkdir(keep_dir, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", keep_dir, strerror(errno));
			return false;
		}
	}
	snprintf(l->dir, sizeof(l->dir), "%s/relayguard-demo-XXXXXX",
		 keep_dir ? keep_dir : tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(l->dir) == NULL || chmod(l->dir, 0755) != 0) {
		snprintf(err, errlen, "%s: %s", l->dir, strerror(errno));
		return false;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_signal; /* no SA_RESTART: a wait returns early */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	start_guard(l);
	return true;
}

/* rm_entry - nftw callback: remove files before their directories. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	remove(path);
	return 0;
}

void lab_close(struct lab *l)
{
	for (int i = 0; i < LAB_MAX_CHILDREN; i++)
		if (children[i] > 0)
			lab_stop(children[i]);
	if (l->dir[0] != '\0' && !l->keep)
		nftw(l->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
}

const char *lab_path(const struct lab *l, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", l->dir, name);
	return buf;
}

bool lab_write(const struct lab *l, const char *name, const char *text)
{
	char path[PATH_MAX + 64];
	lab_path(l, name, path, sizeof(path));
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	bool ok = fputs(text, f) >= 0;
	ok = fclose(f) == 0 && ok;
	return ok && chmod(path, 0644) == 0; /* serve reads it as mail_owner */
}

/* child_exec - in the child: a parent that dies takes us along; then exec. */
static void child_exec(const struct lab *l, char *const argv[], int out)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (guard_group > 0)
		setpgid(0, guard_group);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	int in = open("/dev/null", O_RDONLY);
	if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 ||
	    chdir(l->dir) != 0)
		_exit(127);
	execv(argv[0], argv);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

pid_t lab_spawn(struct lab *l, char *const argv[], const char *logname)
{
	char path[PATH_MAX + 64];
	int out = open(lab_path(l, logname, path, sizeof(path)),
		       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (out < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		child_exec(l, argv, out);
	close(out);
	if (pid > 0)
		track(pid, true);
	return pid;
}

/* reap - waitpid with a deadline; the status, or -1 when it did not end. */
static int reap(pid_t pid, unsigned ms)
{
	for (unsigned waited = 0;; waited += 10) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			track(pid, false);
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		if (r < 0 && errno != EINTR) {
			track(pid, false);
			return -1;
		}
		if (waited >= ms)
			return -2;
		struct timespec ts = {0, 10000000L};
		nanosleep(&ts, NULL);
	}
}

int lab_stop(pid_t pid)
{
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	int st = reap(pid, 5000);
	if (st == -2) {
		kill(pid, SIGKILL);
		st = reap(pid, 5000);
	}
	return st < 0 ? -1 : st;
}

bool lab_alive(pid_t pid)
{
	int st;
	if (pid <= 0)
		return false;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid)
		track(pid, false); /* reaped: never signal that number again */
	return r == 0;
}

/* drain - read fd into out until EOF or the deadline (or a signal). */
static void drain(int fd, struct strbuf *out, unsigned timeout_s)
{
	time_t end = time(NULL) + timeout_s;
	char buf[4096];
	while (time(NULL) < end && !interrupted) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0 && !(n < 0 && errno == EINTR))
			return;
		if (n > 0 && out->len < (1u << 20))
			strbuf_append(out, buf, (size_t)n);
	}
}

int lab_run(struct lab *l, char *const argv[], struct strbuf *out, unsigned timeout_s)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		child_exec(l, argv, fds[1]);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -1;
	}
	track(pid, true);
	drain(fds[0], out, timeout_s);
	close(fds[0]);
	int st = reap(pid, 100);
	return st == -2 ? (lab_stop(pid), -1) : st;
}

char *lab_read(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	struct strbuf sb;
	strbuf_init(&sb);
	char buf[4096];
	size_t n;
	while (sb.len < (1u << 20) && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(&sb, buf, n);
	fclose(f);
	strbuf_append(&sb, "", 0);
	return strbuf_steal(&sb);
}

size_t lab_log_size(const struct lab *l, const char *logname)
{
	char path[PATH_MAX + 64];
	struct stat st;
	return stat(lab_path(l, logname, path, sizeof(path)), &st) == 0 ? (size_t)st.st_size : 0;
}

bool lab_wait_log(const struct lab *l, const char *logname, size_t from, const char *needle,
		  pid_t pid, unsigned timeout_ms)
{
	char path[PATH_MAX + 64];
	lab_path(l, logname, path, sizeof(path));
	for (unsigned waited = 0; waited <= timeout_ms && !interrupted; waited += 20) {
		char *text = lab_read(path);
		bool found = text && strlen(text) > from && strstr(text + from, needle);
		free(text);
		if (found)
			return true;
		if (pid > 0 && !lab_alive(pid))
			return false;
		lab_sleep_ms(20);
	}
	return false;
}

/* port_free - can type bind ip:port now? */
static bool port_free(const struct sockaddr_in *sa, int type)
{
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (s < 0)
		return false;
	bool ok = bind(s, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(s);
	return ok;
}

unsigned lab_free_port(const char *ip, bool udp)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t len = sizeof(sa);
		if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
			return 0;
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0)
			return 0;
		bool ok = bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
			  getsockname(s, (struct sockaddr *)&sa, &len) == 0;
		close(s);
		if (ok && (!udp || port_free(&sa, SOCK_DGRAM)))
			return ntohs(sa.sin_port);
	}
	return 0;
}
