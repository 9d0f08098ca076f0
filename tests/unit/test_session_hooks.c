/*
 * test_session_hooks - the session's hooks for message authentication, seen
 * from an SMTP client: a real server on loopback in a thread, hooks
 * registered with session_hooks_set(), replies and queue files checked.
 */
#include "check.h"
#include "loopback.h"

#include "config/config.h"
#include "queue/queue.h"
#include "smtp/server.h"
#include "smtp/session.h"
#include "util/basedir.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

static struct server *srv;
static struct config *cfg;
static atomic_int cancels_timed_out, cancels_gone;

/* A MAIL check that answers after 50 ms from a timer, as a DNS lookup would. */
struct check {
	struct session *s;
	struct event *ev;
};

static void check_fire(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;
	(void)fd;
	(void)what;
	struct session *s = c->s;
	event_free(c->ev);
	free(c);
	session_resume_mail(s);
}

static void check_cancel(void *arg, bool timed_out)
{
	struct check *c = arg;
	atomic_fetch_add(timed_out ? &cancels_timed_out : &cancels_gone, 1);
	event_free(c->ev);
	free(c);
}

/* mail_check - "slow@" never answers (the time limit ends it); "none@" is not checked. */
static bool mail_check(struct session *s, const struct session_mail_facts *f,
		       struct session_wait *wait, void *arg)
{
	(void)arg;
	if (strncmp(f->sender, "none@", 5) == 0)
		return false;
	struct check *c = calloc(1, sizeof(*c));
	c->s = s;
	c->ev = evtimer_new(server_base(srv), check_fire, c);
	bool slow = strncmp(f->sender, "slow@", 5) == 0;
	struct timeval tv = {slow ? 60 : 0, 50000};
	evtimer_add(c->ev, &tv);
	*wait = (struct session_wait){check_cancel, c, slow ? 200 : 0};
	return true;
}

static void stage_refuse(struct session_eod *e, void *arg)
{
	(void)arg;
	if (memmem(e->msg->body.data, e->msg->body.len, "Subject: refuse-me", 18) != NULL)
		snprintf(e->reply, sizeof(e->reply), "550 5.7.1 refused by a stage");
}

static void stage_prepend(struct session_eod *e, void *arg)
{
	(void)arg;
	strbuf_puts(&e->prepend, "X-Hook-Test: yes\r\n");
}

/* drop_forged - the whole field: the mark may be on a continuation line */
static bool drop_forged(const struct session *s, const char *field, size_t n, bool whole,
			void *arg)
{
	(void)s, (void)arg;
	if (n < 9 || strncasecmp(field, "X-Forged:", 9) != 0)
		return false;
	return !whole || memmem(field, n, "mark", 4) != NULL;
}

static const struct session_stage stages[] = {{"refuse", stage_refuse, NULL, NULL},
					      {"prepend", stage_prepend, NULL, NULL}};
/* not const: the last part of the test sets stages_need_data */
static struct session_hooks hooks = {mail_check, NULL, stages, 2, drop_forged, NULL, false};

static void *run_server(void *arg)
{
	(void)arg;
	server_run(srv);
	return NULL;
}

static int port;

static int client(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < 50 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0; i++)
		usleep(100000);
	return fd;
}

/* final_replies - complete reply lines of the form "DDD text" in s. */
static int final_replies(const char *s)
{
	int n = 0;
	for (const char *eol; (eol = strstr(s, "\r\n")) != NULL; s = eol + 2)
		n += eol - s >= 4 && s[3] == ' ';
	return n;
}

/* talk - send text, then read until `replies` final reply lines have come. */
static void talk(int fd, const char *text, int replies, char *out, size_t outlen)
{
	size_t n = 0;
	out[0] = '\0';
	if (text[0] != '\0' && write(fd, text, strlen(text)) < 0)
		return;
	while (final_replies(out) < replies && n + 1 < outlen) {
		ssize_t r = read(fd, out + n, outlen - n - 1);
		if (r <= 0)
			break;
		n += (size_t)r;
		out[n] = '\0';
	}
}

static char dir[] = "/tmp/rg-session-hooks-XXXXXX";

/* queued_text - the queue files' text, all together (active/ and deferred/). */
static bool queued_contains(const char *needle)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "grep -rqs '%s' %s/queue/active %s/queue/deferred", needle, dir,
		 dir);
	return system(cmd) == 0;
}

static void setup(void)
{
	if (mkdtemp(dir) == NULL)
		exit(2);
	port = free_port();
	char path[200], mail[200];
	snprintf(path, sizeof(path), "%s/main.cf", dir);
	snprintf(mail, sizeof(mail), "%s/mail", dir);
	mkdir(mail, 0700);
	FILE *f = fopen(path, "w");
	fprintf(f, "myhostname = mx.example.org\nsmtpd_listen = 127.0.0.1:%d\n"
		"submission_listen = 127.0.0.1:%u\nsubmissions_listen = 127.0.0.1:%u\n"
		"data_directory = %s/data\nqueue_directory = %s/queue\n"
		"virtual_mailbox_base = %s\nmynetworks = 127.0.0.1/32\n"
		"default_transport = error:4.3.2 outbound delivery is off in this test\n",
		port, free_port(), free_port(), dir, dir, mail);
	fclose(f);
	char *errors = NULL, err[256];
	cfg = config_load(path, &errors);
	if (cfg == NULL || !queue_init(cfg->queue_directory, err, sizeof(err)) ||
	    !basedir_open(cfg->virtual_mailbox_base) ||
	    (srv = server_new(cfg, err, sizeof(err))) == NULL || !server_bind(srv, err, sizeof(err))) {
		printf("setup failed: %s\n", errors ? errors : err);
		exit(2);
	}
}

#define HELLO "EHLO c.example.net\r\n"

int main(void)
{
	setup();
	session_hooks_set(&hooks);
	pthread_t th;
	pthread_create(&th, NULL, run_server, NULL);
	char r[8192];
	int fd = client();
	talk(fd, "", 1, r, sizeof(r));
	talk(fd, HELLO, 1, r, sizeof(r));
	/* pipelined: RCPT waits in the buffer while the MAIL check runs */
	talk(fd, "MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\n", 2, r, sizeof(r));
	CHECK(strstr(r, "250 2.1.0") && strstr(r, "250 2.1.5") &&
	      strstr(r, "250 2.1.0") < strstr(r, "250 2.1.5"), "MAIL then RCPT after the check: %s", r);
	talk(fd, "DATA\r\n", 1, r, sizeof(r));
	talk(fd, "Subject: refuse-me\r\n\r\nbody\r\n.\r\n", 1, r, sizeof(r));
	CHECK(strncmp(r, "550 5.7.1 refused by a stage", 28) == 0, "a stage refuses: %s", r);
	talk(fd, "MAIL FROM:<none@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n", 3, r,
	     sizeof(r));
	CHECK(strstr(r, "354 ") != NULL, "an unchecked sender goes on: %s", r);
	talk(fd, "Subject: keep\r\nX-Forged: spf=pass\r\n\tcontinued mark\r\nX-Kept: 1\r\n"
		 "X-Forged: harmless\r\n\tsecond line\r\n\r\nbody\r\n.\r\n",
	     1, r, sizeof(r));
	CHECK(strncmp(r, "250 2.0.0 Ok: queued as", 23) == 0, "accepted: %s", r);
	usleep(200000);
	CHECK(queued_contains("^X-Hook-Test: yes"), "the stage's header line is in the queue file");
	CHECK(queued_contains("^X-Kept: 1"), "other header fields are kept");
	CHECK(!queued_contains("spf=pass") && !queued_contains("continued"),
	      "the field marked on its continuation line is gone, both lines");
	CHECK(queued_contains("^X-Forged: harmless") && queued_contains("^\tsecond line"),
	      "a field the filter keeps is kept whole");
	/* a check that never answers: its time limit cancels it and MAIL goes on */
	talk(fd, "RSET\r\nMAIL FROM:<slow@example.net>\r\n", 2, r, sizeof(r));
	CHECK(strstr(r, "250 2.1.0") != NULL, "MAIL answered after the time limit: %s", r);
	CHECK(atomic_load(&cancels_timed_out) == 1, "cancel(timed_out) ran once");
	/* stages_need_data: the MAIL hook set no data, so the stages are skipped
	 * (the refusing one too); read by the loop only at the end of data */
	hooks.stages_need_data = true;
	talk(fd, "RSET\r\nMAIL FROM:<none@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n", 4,
	     r, sizeof(r));
	talk(fd, "Subject: refuse-me\r\n\r\nbody\r\n.\r\n", 1, r, sizeof(r));
	CHECK(strncmp(r, "250 2.0.0 Ok: queued as", 23) == 0,
	      "no hook data: straight to the commit, no stage ran: %s", r);
	hooks.stages_need_data = false;
	close(fd);
	/* the client leaves while its check runs: cancel(gone), no resume */
	fd = client();
	talk(fd, "", 1, r, sizeof(r));
	talk(fd, HELLO, 1, r, sizeof(r));
	talk(fd, "MAIL FROM:<slow@example.net>\r\n", 0, r, sizeof(r));
	usleep(50000);
	close(fd);
	usleep(300000);
	CHECK(atomic_load(&cancels_gone) == 1, "cancel(gone) ran once: %d",
	      atomic_load(&cancels_gone));
	CHECK(atomic_load(&cancels_timed_out) == 1, "and no time-out for it");
	kill(getpid(), SIGTERM);
	pthread_join(th, NULL);
	server_free(srv);
	config_free(cfg);
	basedir_close_all();
	char cmd[100];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("could not remove %s\n", dir);
	return check_summary("session_hooks");
}
