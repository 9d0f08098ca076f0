/*
 * lab - the demo's processes on loopback: a temporary directory, children
 * started from it (dnsmasq, relayguard serve, probe, audit), and stopping
 * every one of them by PID, also when the demo is interrupted.
 *
 * Owns: fork/exec with a log file per child, free ports on 127.0.0.x,
 * waiting for a line in a log, SIGINT/SIGTERM handling, removing the directory.
 * Must not: know what the children are for; story.c decides that.
 */
#ifndef RG_DEMO_LAB_H
#define RG_DEMO_LAB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define LAB_MAX_CHILDREN 8

struct strbuf;

struct lab {
	char dir[PATH_MAX];  /* the temporary directory */
	char exe[PATH_MAX];  /* this binary (/proc/self/exe resolved) */
	bool keep;           /* leave dir in place */
};

/* lab_open - make the directory (under keep_dir when given, else $TMPDIR or
 * /tmp), resolve the binary, install the signal handlers. */
bool lab_open(struct lab *l, const char *keep_dir, char *err, size_t errlen);
/* lab_close - stop every child still running (SIGTERM, then SIGKILL after
 * 5 s), remove the directory unless keep, restore the signal handlers. */
void lab_close(struct lab *l);
/* lab_path - DIR/name in buf. */
const char *lab_path(const struct lab *l, const char *name, char *buf, size_t len);
/* lab_write - write a file under the directory (mode 0644). */
bool lab_write(const struct lab *l, const char *name, const char *text);
/* lab_spawn - start argv[0] (a path) with stdin /dev/null and stdout and
 * stderr appended to DIR/logname; -1 on failure. */
pid_t lab_spawn(struct lab *l, char *const argv[], const char *logname);
/* lab_stop - SIGTERM, wait (up to 5 s, then SIGKILL); the exit status or -1. */
int lab_stop(pid_t pid);
/* lab_alive - has the child not exited yet? */
bool lab_alive(pid_t pid);
/* lab_run - run argv to its end with stdout and stderr into out; its exit
 * status, or -1 (it could not start, or it was killed). */
int lab_run(struct lab *l, char *const argv[], struct strbuf *out, unsigned timeout_s);
/* lab_wait_log - wait until DIR/logname holds needle after offset from;
 * false on timeout, when pid (if > 0) exits, or when interrupted. */
bool lab_wait_log(const struct lab *l, const char *logname, size_t from, const char *needle,
		  pid_t pid, unsigned timeout_ms);
/* lab_log_size - the size of DIR/logname now (an offset for lab_wait_log). */
size_t lab_log_size(const struct lab *l, const char *logname);
/* lab_read - a file's text (at most 1 MiB), or NULL. */
char *lab_read(const char *path);
/* lab_free_port - a TCP port free on ip now (and UDP too when udp). 0 if none. */
unsigned lab_free_port(const char *ip, bool udp);
/* lab_interrupted - the signal that interrupted the demo, or 0. */
int lab_interrupted(void);
/* lab_sleep_ms - sleep, returning early when interrupted. */
void lab_sleep_ms(unsigned ms);
/* lab_wait_enter - read standard input up to a newline or its end; returns
 * at once when interrupted, even by a signal that came just before the wait. */
void lab_wait_enter(void);

#endif
