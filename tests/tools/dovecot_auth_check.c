/*
 * dovecot_auth_check - run Dovecot auth requests through src/auth/dovecot.c.
 *
 * usage: dovecot_auth_check [-t SECONDS] [-l LIP] [-r RIP] [-s] [-n REPEAT]
 *                           [-c CANCEL] [-S] PATH USER PASS [USER PASS ...]
 *        dovecot_auth_check [-t SECONDS] -i PATH
 *
 * Every USER PASS pair (each repeated REPEAT times) is started at once on one
 * event loop and one client; one line per request is printed, in argument
 * order: "OK user=NAME", "FAILED reason=TEXT" or "TEMPFAIL reason=TEXT".
 * -c N cancels the first N requests right after starting them (they print
 * "CANCELLED"). -S runs the requests one after another instead, and prints
 * the mean time per request on stderr (a latency figure, not a test).
 * -i reads "USER<TAB>PASS" lines from stdin and answers each with its result
 * line, all on one client: the loop does not run while stdin is read, so a
 * test can restart Dovecot between two requests behind the client's back. Exit status 0 when every request completed exactly once,
 * 2 on usage errors, 1 otherwise. Test tool; not installed.
 */
#include "auth/dovecot.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

struct result {
	int calls;
	enum auth_status st;
	char *text;
};

static size_t pending;
static struct event_base *loop;

/* -S: the next request starts when the previous one is done. */
static struct {
	struct dovecot_auth *da;
	const struct dovecot_req_info *info;
	char **pairs;
	size_t npairs, next, total;
	struct result *res;
} seq;

static void on_done(enum auth_status st, const char *user, const char *reason, void *arg);

static void seq_start(void)
{
	size_t i = seq.next++, pair = i % seq.npairs;
	if (dovecot_auth_verify(seq.da, seq.pairs[2 * pair], seq.pairs[2 * pair + 1], seq.info,
				on_done, &seq.res[i]) == NULL)
		abort();
}

static void on_done(enum auth_status st, const char *user, const char *reason, void *arg)
{
	struct result *res = arg;
	res->calls++;
	res->st = st;
	if (st == AUTH_OK)
		res->text = xasprintf("OK user=%s", user != NULL ? user : "(null)");
	else
		res->text = xasprintf("%s reason=%s", st == AUTH_FAILED ? "FAILED" : "TEMPFAIL",
				      reason != NULL ? reason : "-");
	if (--pending == 0)
		event_base_loopbreak(loop);
	else if (seq.da != NULL && seq.next < seq.total)
		seq_start();
}

/* print_line - the result, with control bytes shown as \xNN so lines stay lines. */
static void print_line(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f || c == '\\')
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	putchar('\n');
}

/* interactive - -i: one request per stdin line, on the same client. */
static int interactive(struct dovecot_auth *da, const struct dovecot_req_info *info)
{
	char buf[8192];
	while (fgets(buf, sizeof(buf), stdin) != NULL) {
		buf[strcspn(buf, "\n")] = '\0';
		char *tab = strchr(buf, '\t');
		if (tab == NULL) {
			printf("USAGE want USER<TAB>PASS\n");
			fflush(stdout);
			continue;
		}
		*tab = '\0';
		struct result res = {0};
		pending = 1;
		if (dovecot_auth_verify(da, buf, tab + 1, info, on_done, &res) == NULL)
			return 1;
		event_base_dispatch(loop);
		if (res.calls != 1) {
			fprintf(stderr, "request completed %d times\n", res.calls);
			return 1;
		}
		print_line(res.text);
		fflush(stdout);
		free(res.text);
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: dovecot_auth_check [-t SECONDS] [-l LIP] [-r RIP] [-s] [-n REPEAT]"
			" [-c CANCEL] PATH USER PASS [USER PASS ...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct dovecot_req_info info = {.service = "smtp"};
	int timeout = 5, repeat = 1, ncancel = 0, sequential = 0, inter = 0, opt;
	while ((opt = getopt(argc, argv, "t:l:r:sn:c:Si")) != -1) {
		switch (opt) {
		case 't': timeout = atoi(optarg); break;
		case 'l': info.local_ip = optarg; break;
		case 'r': info.remote_ip = optarg; break;
		case 's': info.secured = 1; break;
		case 'n': repeat = atoi(optarg); break;
		case 'c': ncancel = atoi(optarg); break;
		case 'S': sequential = 1; break;
		case 'i': inter = 1; break;
		default: return usage();
		}
	}
	signal(SIGPIPE, SIG_IGN); /* a write to a Dovecot that went away is an error, not death */
	if (inter && argc - optind == 1) {
		loop = event_base_new();
		char ierr[256];
		struct dovecot_auth *ida = dovecot_auth_new(loop, argv[optind], timeout, ierr, sizeof(ierr));
		if (ida == NULL) {
			fprintf(stderr, "%s\n", ierr);
			return 2;
		}
		int rc = interactive(ida, &info);
		dovecot_auth_free(ida);
		event_base_free(loop);
		return rc;
	}
	int npairs = (argc - optind - 1) / 2;
	if (inter || argc - optind < 3 || (argc - optind - 1) % 2 != 0 || repeat < 1)
		return usage();

	loop = event_base_new();
	char err[256];
	struct dovecot_auth *da = dovecot_auth_new(loop, argv[optind], timeout, err, sizeof(err));
	if (da == NULL) {
		fprintf(stderr, "%s\n", err);
		event_base_free(loop);
		return 2;
	}
	size_t total = (size_t)npairs * (size_t)repeat;
	struct result *res = xcalloc(total, sizeof(*res));
	struct dovecot_req **reqs = xcalloc(total, sizeof(*reqs));
	if (sequential) {
		seq.da = da;
		seq.info = &info;
		seq.pairs = argv + optind + 1;
		seq.npairs = (size_t)npairs;
		seq.total = total;
		seq.res = res;
		pending = total;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		seq_start();
		event_base_dispatch(loop);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
		fprintf(stderr, "%zu requests one after another: %.3f ms each\n", total,
			ms / (double)total);
	}
	size_t concurrent = sequential ? 0 : total;
	for (size_t i = 0; i < concurrent; i++) {
		size_t pair = i % (size_t)npairs;
		const char *user = argv[optind + 1 + 2 * pair], *pass = argv[optind + 2 + 2 * pair];
		reqs[i] = dovecot_auth_verify(da, user, pass, &info, on_done, &res[i]);
		if (reqs[i] == NULL) {
			fprintf(stderr, "dovecot_auth_verify returned NULL\n");
			return 1;
		}
		pending++;
	}
	int bad = 0;
	for (size_t i = 0; i < concurrent; i++) {
		if (res[i].calls != 0) {
			fprintf(stderr, "request %zu completed inside dovecot_auth_verify\n", i);
			bad = 1;
		}
	}
	for (size_t i = 0; i < concurrent && i < (size_t)ncancel; i++) {
		dovecot_auth_cancel(reqs[i]);
		res[i].text = xstrdup("CANCELLED");
		res[i].calls = 1;
		pending--;
	}
	if (pending > 0)
		event_base_dispatch(loop);
	/* Let anything still scheduled (a stray second completion) show itself. */
	event_base_loop(loop, EVLOOP_NONBLOCK);

	for (size_t i = 0; i < total; i++) {
		if (res[i].calls != 1) {
			fprintf(stderr, "request %zu completed %d times\n", i, res[i].calls);
			bad = 1;
		}
		print_line(res[i].text != NULL ? res[i].text : "NOT-COMPLETED");
		free(res[i].text);
	}
	dovecot_auth_free(da);
	event_base_free(loop);
	free(res);
	free(reqs);
	return bad;
}
