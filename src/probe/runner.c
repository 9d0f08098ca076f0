/*
 * runner.c - run the battery against targets, on one event loop.
 *
 * DESCRIPTION
 *	Each target is discovered first on one connection ("lane"): greeting,
 *	EHLO (HELO when EHLO is refused), STARTTLS when asked for and offered,
 *	then which of the server's names it is the final destination for
 *	(RCPT TO:<postmaster@name>). Then a few lanes take tests from the
 *	target's list, one transaction each with RSET between. A lane opens a
 *	fresh connection after a few rejections, so servers that slow down or
 *	disconnect after errors (Postfix error sleeps, Exim's drop after bad
 *	senders) never get to. A 4xx is retried once after --retry-after; a
 *	lost connection or 421 is retried on a new connection once.
 *
 *	Lane states: CLOSED -> CONNECTING -> (PROXY check) -> EHLO -> (STARTTLS
 *	-> EHLO) -> READY; READY -> running a test's steps -> READY. Tests with
 *	PF_FRESH get a connection of their own, closed after the test.
 *
 *	A target named by a host name is resolved first, through dns/ (c-ares
 *	on the same loop): never a blocking resolver call.
 *
 *	With --confirm-data and a canary or local directory, tokens are looked
 *	for after all targets are done, and results are printed then.
 *
 *	A smuggling test (--smuggle) is one transaction on a connection of its
 *	own: after DATA's 354 one write carries a message to postmaster whose
 *	body ends at the test's fake end-of-data, then a smuggled MAIL FROM,
 *	RCPT TO, DATA and message with a token of its own. Every reply is read
 *	until the server is quiet for SMUGGLE_QUIET_MS or hangs up; the
 *	connection is then dropped, its state being unknown by design.
 */
#include "probe/probe.h"
#include "client/ehlo.h"
#include "client/smtpc.h"
#include "dns/dns.h"
#include "net/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LANES 8
#define MAX_STEPS 8
#define PROXY_WAIT_MS 500
#define NAME_CAP 200     /* longer server names and domains: [ip] in the tests */
#define PATH_MAX_LEN 254 /* RFC 5321 4.5.3.1.3: 256 bytes with the <> */
#define QUIT_WAIT_MS 2000
#define QUIT_GRACE_MS 100 /* once every target is done: the last QUITs' replies */
#define SMUGGLE_QUIET_MS 1500 /* after a smuggling payload: more replies until this quiet */

struct run;
struct tstate;

enum lane_state { L_IDLE, L_SETUP, L_DISCOVER, L_TEST, L_WAIT };

struct step {
	char line[PROBE_NAME_MAX * 2 + 64];
	char shown[PROBE_NAME_MAX * 2 + 64]; /* what the transcript shows (AUTH masked) */
	enum probe_role role;
};

struct lane {
	struct tstate *ts;
	struct smtpc *c;
	enum lane_state st;
	bool tls;
	bool fresh;            /* the connection belongs to one PF_FRESH test */
	bool active;
	unsigned rejections;
	char helo_now[PROBE_NAME_MAX];
	const char *ehlo_name; /* the name the connection opened with */
	struct event *timer;
	/* the test being run */
	struct probe_result *cur;
	struct step steps[MAX_STEPS];
	size_t n_steps, step;
	/* set-up progress */
	unsigned setup_flags;
	struct smtp_hello hello; /* the opening of the connection */
	size_t cand; /* discovery: candidate being tried */
	int disc_phase;
	struct probe_outcome rcpt_outcome; /* kept while DATA runs */
};

struct tstate {
	struct probe_target t;
	struct run *run;
	struct lane lanes[MAX_LANES];
	size_t n_lanes;
	bool discovered, finished;
	bool sleeping; /* every lane waits for a retry: not counted against --concurrency */
	uint64_t start_ms;
	char cands[2][PROBE_NAME_MAX];
	size_t n_cands;
	bool domain_found;
	char user[64];
	char plain_sender[PROBE_NAME_MAX]; /* for tests whose sender is refused */
};

struct run {
	const struct probe_options *o;
	struct event_base *base;
	struct dns *dns; /* made when the first target needs a name resolved */
	SSL_CTX *ctx;
	struct event *kick;
	struct tstate *ts;
	size_t n, next, done;
	size_t active; /* targets started and not done, except those sleeping */
	struct sockaddr_storage source;
	socklen_t sourcelen;
	char victim_local[128];
	char victim_domain[PROBE_NAME_MAX];
	char run_id[24];
	bool deferred_output; /* canary: print at the end */
	struct smtpc **quitting; /* connections waiting for the reply to QUIT */
	size_t n_quitting;
	struct event *quit_timer; /* once all targets are done: stop waiting for those */
};

static void lane_next(struct lane *l);
static void lane_open(struct lane *l, unsigned flags);
static void start_test(struct lane *l);
static void target_finish(struct tstate *ts);

static uint64_t now_ms(void)
{
	return rg_now_ms();
}

static void random_hex(char *out, size_t bytes)
{
	unsigned char buf[32];
	if (bytes > sizeof(buf))
		bytes = sizeof(buf);
	if (getrandom(buf, bytes, 0) != (ssize_t)bytes) {
		uint64_t x = now_ms() ^ (uint64_t)getpid() << 32;
		for (size_t i = 0; i < bytes; i++, x = x * 6364136223846793005ULL + 1)
			buf[i] = (unsigned char)(x >> 33);
	}
	for (size_t i = 0; i < bytes; i++)
		sprintf(out + 2 * i, "%02x", buf[i]);
}

/* ---- transcripts ---- */

static void record(struct probe_result *r, bool client, const char *text)
{
	if (r == NULL)
		return;
	r->transcript = xrealloc(r->transcript, (r->n_transcript + 1) * sizeof(*r->transcript));
	r->transcript[r->n_transcript].client = client;
	r->transcript[r->n_transcript].text = xstrdup(text);
	r->n_transcript++;
}

static void record_reply(struct lane *l, const struct smtpc_reply *rep)
{
	if (rep->status == SMTPC_REPLY) {
		record(l->cur, false, rep->text);
	} else {
		char buf[300];
		snprintf(buf, sizeof(buf), "(%s)", rep->error);
		record(l->cur, false, buf);
	}
}

static enum probe_status status_of(const struct smtpc_reply *rep)
{
	switch (rep->status) {
	case SMTPC_REPLY: return PS_REPLY;
	case SMTPC_TIMEOUT: return PS_TIMEOUT;
	case SMTPC_CLOSED: return PS_CLOSED;
	default: return PS_ERROR;
	}
}

static void lane_cmd(struct lane *l, const char *line, const char *shown, smtpc_fn fn)
{
	record(l->cur, true, shown ? shown : line);
	smtpc_command(l->c, line, fn, l);
}

/* ---- connections ---- */

static void quit_done(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	struct run *run = arg;
	(void)rep;
	for (size_t i = 0; i < run->n_quitting; i++) {
		if (run->quitting[i] == c) {
			run->quitting[i] = run->quitting[--run->n_quitting];
			break;
		}
	}
	smtpc_free(c);
	if (run->n_quitting == 0)
		evtimer_del(run->quit_timer);
}

/* quit_timer_cb - every target is done: QUIT was sent, close what is left. */
static void quit_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *run = arg;
	(void)fd;
	(void)what;
	for (size_t i = 0; i < run->n_quitting; i++)
		smtpc_free(run->quitting[i]);
	run->n_quitting = 0;
}

/* lane_drop - end the lane's connection: politely when it is healthy. */
static void lane_drop(struct lane *l, bool polite)
{
	if (l->c == NULL)
		return;
	if (polite) { /* a tarpit must not hold the run: at most QUIT_WAIT_MS */
		struct run *run = l->ts->run;
		smtpc_send_raw(l->c, "QUIT\r\n", 6);
		smtpc_expect(l->c, QUIT_WAIT_MS, quit_done, run);
		run->quitting = xrealloc(run->quitting, (run->n_quitting + 1) * sizeof(*run->quitting));
		run->quitting[run->n_quitting++] = l->c;
	}
	else
		smtpc_free(l->c);
	l->c = NULL;
	l->tls = false;
	l->fresh = false;
	l->rejections = 0;
	l->helo_now[0] = '\0';
}

/* ---- finishing a test ---- */

static void append_note(struct probe_result *r, const char *text)
{
	size_t n = strlen(r->note);
	snprintf(r->note + n, sizeof(r->note) - n, "%s%s", n ? "; " : "", text);
}

/* test_done - judge the outcome; the test is final, retried later, or redone. */
static void test_done(struct lane *l, const struct probe_outcome *o)
{
	struct probe_result *r = l->cur;
	struct tstate *ts = l->ts;
	l->cur = NULL;
	r->running = false;
	bool lost = o->status == PS_CLOSED || o->status == PS_ERROR ||
		    (o->status == PS_REPLY && o->code == 421);
	if (r->test->flags & PF_PROXY && o->role <= ROLE_HELO && o->role != ROLE_CONNECT &&
	    (lost || o->code >= 400)) {
		r->verdict = V_DENIED;
		append_note(r, "the PROXY header was not accepted from this client");
		return;
	}
	if (lost && r->attempts < 2) {
		r->due_ms = 0; /* once more, on a new connection */
		return;
	}
	char note[256];
	enum probe_verdict v;
	if (r->have_first) {
		v = probe_judge(r->test->kind, &r->first, o, note, sizeof(note));
	} else {
		v = probe_judge(r->test->kind, o, NULL, note, sizeof(note));
		if (v == V_DEFERRED) {
			r->first = *o;
			r->have_first = true;
			r->due_ms = now_ms() + ts->run->o->retry_after_ms;
			return;
		}
	}
	if (lost && o->status == PS_REPLY)
		snprintf(note, sizeof(note), "421: the server closed the session twice");
	r->verdict = v;
	if (note[0])
		append_note(r, note);
}

static struct probe_outcome outcome_of(enum probe_role role, const struct smtpc_reply *rep)
{
	struct probe_outcome o = {.role = role, .status = status_of(rep), .code = rep->code};
	rg_strlcpy(o.enhanced, rep->enhanced, sizeof(o.enhanced));
	return o;
}

/* setup_failed - the connection could not be made ready for the test. */
static void setup_failed(struct lane *l, enum probe_role role, const struct smtpc_reply *rep)
{
	struct probe_outcome o = outcome_of(role, rep);
	if (rep->status == SMTPC_REPLY && rep->code / 100 == 2) /* e.g. STARTTLS answered oddly */
		o.status = PS_ERROR;
	bool usable = rep->status == SMTPC_REPLY && rep->code != 421;
	lane_drop(l, usable);
	if (l->ts->discovered && l->cur != NULL) {
		test_done(l, &o);
		lane_next(l);
		return;
	}
	/* discovery failed: the target cannot be tested */
	struct probe_target *t = &l->ts->t;
	if (rep->status == SMTPC_REPLY)
		snprintf(t->error, sizeof(t->error), "%s refused: %.200s",
			 role == ROLE_GREETING ? "service" : "session set-up", rep->text);
	else
		snprintf(t->error, sizeof(t->error), "%s", rep->error);
	/* reachable was set by a 2xx greeting: failing later is inconclusive */
	l->active = false;
	target_finish(l->ts);
}

/* ---- set-up: greeting, PROXY check, EHLO/HELO, STARTTLS (client/ehlo.c) ---- */

static void setup_ready(struct lane *l);

/* lane_trace - every command and reply of the opening goes into the transcript. */
static void lane_trace(void *arg, const char *sent, const struct smtpc_reply *rep)
{
	struct lane *l = arg;
	if (sent != NULL)
		record(l->cur, true, sent);
	else
		record_reply(l, rep);
}

/* capabilities - what the first EHLO of the connection announced (sticky per target). */
static void capabilities(struct lane *l, const struct smtp_hello *h)
{
	struct probe_target *t = &l->ts->t;
	if (h->helo)
		return;
	t->cap_starttls |= h->caps_first.starttls;
	t->cap_xclient |= h->caps_first.xclient;
	if (h->caps_first.auth && !l->ts->run->o->implicit_tls)
		t->cap_auth_plain_text = true;
}

/* want_starttls - real credentials go over TLS whenever the server offers it. */
static enum smtp_starttls_use want_starttls(const struct lane *l, unsigned flags)
{
	const struct probe_options *o = l->ts->run->o;
	bool want = !o->implicit_tls && !(flags & PF_PLAINTEXT) &&
		    (o->starttls || l->ts->t.port == 587 || (flags & PF_AUTH));
	return want ? SH_TLS_IF_OFFERED : SH_TLS_NO;
}

static void on_proxy_check(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct lane *l = arg;
	if (rep->status == SMTPC_TIMEOUT) { /* nothing said about the header: it was taken */
		record(l->cur, false, "(no reply to the PROXY header)");
		smtp_hello_continue(&l->hello);
		return;
	}
	record_reply(l, rep);
	setup_failed(l, ROLE_SETUP, rep);
}

static void on_greeting(struct lane *l, const struct smtp_hello *h)
{
	struct probe_target *t = &l->ts->t;
	t->reachable = true;
	if (t->banner[0] == '\0') {
		rg_strlcpy(t->banner, h->greeting, sizeof(t->banner));
		probe_reply_name(h->greeting, t->server_name, sizeof(t->server_name));
	}
	if (l->setup_flags & PF_PROXY) {
		smtpc_expect_optional(l->c, PROXY_WAIT_MS, on_proxy_check, l);
		return;
	}
	smtp_hello_continue(&l->hello);
}

static void on_hello(struct smtp_hello *h, const struct smtpc_reply *rep, void *arg)
{
	struct lane *l = arg;
	if (!h->ok) {
		enum probe_role role = h->stage == SH_GREETING  ? ROLE_GREETING
				       : h->stage == SH_STARTTLS ? ROLE_SETUP
								 : ROLE_HELO;
		setup_failed(l, role, rep);
		return;
	}
	if (h->stage == SH_GREETING) {
		on_greeting(l, h);
		return;
	}
	capabilities(l, h);
	struct probe_target *t = &l->ts->t;
	if (t->server_name[0] == '\0')
		probe_reply_name(h->first_ehlo, t->server_name, sizeof(t->server_name));
	l->tls = l->tls || h->tls;
	rg_strlcpy(l->helo_now, l->ehlo_name, sizeof(l->helo_now));
	setup_ready(l);
}

static void lane_open(struct lane *l, unsigned flags)
{
	struct tstate *ts = l->ts;
	struct run *run = ts->run;
	char err[256];
	char proxy[200];
	struct smtpc_opts so = {
		.addr = (struct sockaddr *)&ts->t.addr,
		.addrlen = ts->t.addrlen,
		.source = run->sourcelen ? (struct sockaddr *)&run->source : NULL,
		.sourcelen = run->sourcelen,
		.timeout_ms = run->o->timeout_ms,
		.implicit_tls = run->o->implicit_tls ? run->ctx : NULL,
		.sni = ts->t.host,
	};
	if (flags & PF_PROXY) {
		bool v6 = ts->t.addr.ss_family == AF_INET6;
		snprintf(proxy, sizeof(proxy), "PROXY %s %s %s 40000 %d\r\n", v6 ? "TCP6" : "TCP4",
			 v6 ? "::1" : "127.0.0.1", v6 ? "::1" : "127.0.0.1", ts->t.port);
		so.preamble = proxy;
		record(l->cur, true, v6 ? "PROXY TCP6 ::1 ::1 40000 (port)" : "PROXY TCP4 127.0.0.1 127.0.0.1 40000 (port)");
	}
	bool own_helo = l->cur != NULL && l->cur->own_helo;
	l->setup_flags = flags;
	l->ehlo_name = own_helo ? l->cur->helo : run->o->helo;
	l->tls = run->o->implicit_tls;
	/* after a PROXY header a refused EHLO may be the late refusal of the header
	 * itself: answering it with HELO would read every later reply one late */
	struct smtp_hello_opts ho = {
		.helo_name = l->ehlo_name,
		.fallback = (flags & PF_PROXY) ? SH_FALLBACK_NONE : SH_FALLBACK_ANY,
		.starttls = want_starttls(l, flags),
		.tls_ctx = run->ctx,
		.sni = ts->t.host,
		.pause_after_greeting = true,
		.trace = lane_trace,
	};
	smtp_hello_init(&l->hello, &ho, on_hello, l);
	l->fresh = (flags & PF_FRESH) || own_helo;
	l->rejections = 0;
	l->st = L_SETUP;
	l->c = smtpc_connect(run->base, &so, smtp_hello_greeting, &l->hello, err, sizeof(err));
	if (l->c == NULL) {
		struct smtpc_reply fake = {.status = SMTPC_ERROR, .text = "", .error = err};
		setup_failed(l, ROLE_CONNECT, &fake);
	}
}

/* ---- discovery: which of its names is the server the destination for ---- */

static void discover_next(struct lane *l);

static void on_discover(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct lane *l = arg;
	struct tstate *ts = l->ts;
	if (rep->status != SMTPC_REPLY || rep->code == 421) {
		lane_drop(l, false); /* the tests reconnect; the domain stays a guess */
		l->cand = ts->n_cands;
		discover_next(l);
		return;
	}
	if (rep->code >= 400)
		l->rejections++;
	if (l->disc_phase == 1 && rep->code / 100 == 2 && !ts->domain_found) {
		ts->domain_found = true;
		rg_strlcpy(ts->t.domain, ts->cands[l->cand], sizeof(ts->t.domain));
	}
	l->disc_phase++;
	if (l->disc_phase == 1 && rep->code / 100 != 2)
		l->disc_phase = 2; /* MAIL FROM:<> refused: no RCPT, just RSET */
	if (l->disc_phase == 3) {
		l->disc_phase = 0;
		l->cand = ts->domain_found ? ts->n_cands : l->cand + 1;
	}
	discover_next(l);
}

static void begin_tests(struct tstate *ts);

static void discover_next(struct lane *l)
{
	struct tstate *ts = l->ts;
	if (l->cand >= ts->n_cands) {
		l->st = L_IDLE;
		begin_tests(ts);
		return;
	}
	char line[PROBE_NAME_MAX + 32];
	switch (l->disc_phase) {
	case 0:
		smtpc_command(l->c, "MAIL FROM:<>", on_discover, l);
		break;
	case 1:
		snprintf(line, sizeof(line), "RCPT TO:<postmaster@%s>", ts->cands[l->cand]);
		smtpc_command(l->c, line, on_discover, l);
		break;
	default:
		smtpc_command(l->c, "RSET", on_discover, l);
		break;
	}
}

static void discover(struct lane *l)
{
	struct tstate *ts = l->ts;
	const struct probe_options *o = ts->run->o;
	struct probe_target *t = &ts->t;
	if (t->server_name[0] == '\0')
		snprintf(t->server_name, sizeof(t->server_name), "[%s]", t->ip_literal);
	if (o->domain != NULL) {
		rg_strlcpy(t->domain, o->domain, sizeof(t->domain));
		ts->domain_found = true;
		ts->n_cands = 0;
	} else {
		ts->n_cands = t->server_name[0] == '[' ? 0 : probe_domain_candidates(t->server_name, ts->cands, 2);
	}
	l->st = L_DISCOVER;
	l->cand = 0;
	l->disc_phase = 0;
	discover_next(l);
}

static void setup_ready(struct lane *l)
{
	if (!l->ts->discovered) {
		discover(l);
		return;
	}
	start_test(l);
}

/* ---- running a test ---- */

static void add_step(struct lane *l, enum probe_role role, const char *shown, const char *line)
{
	struct step *s = &l->steps[l->n_steps++];
	rg_strlcpy(s->line, line, sizeof(s->line));
	rg_strlcpy(s->shown, shown ? shown : line, sizeof(s->shown));
	s->role = role;
}

static void auth_plain(const char *user, const char *pass, char *out, size_t outlen)
{
	unsigned char raw[600];
	size_t un = strlen(user), pn = strlen(pass);
	if (un + pn + 2 > sizeof(raw) || outlen < 4 * ((un + pn + 2 + 2) / 3) + 1) {
		out[0] = '\0';
		return;
	}
	raw[0] = '\0';
	memcpy(raw + 1, user, un);
	raw[1 + un] = '\0';
	memcpy(raw + 2 + un, pass, pn);
	EVP_EncodeBlock((unsigned char *)out, raw, (int)(un + pn + 2));
}

static void build_steps(struct lane *l)
{
	struct probe_result *r = l->cur;
	const struct probe_options *o = l->ts->run->o;
	unsigned f = r->test->flags;
	char b64[900], line[sizeof(l->steps[0].line)];
	l->n_steps = 0;
	l->step = 0;
	if (strcmp(l->helo_now, r->helo) != 0) {
		snprintf(line, sizeof(line), "EHLO %s", r->helo);
		add_step(l, ROLE_HELO, NULL, line);
	}
	if (f & PF_XCLIENT) {
		add_step(l, ROLE_SETUP, NULL, "XCLIENT ADDR=127.0.0.1 NAME=localhost");
		snprintf(line, sizeof(line), "EHLO %s", r->helo);
		add_step(l, ROLE_HELO, NULL, line);
	}
	if (f & PF_AUTH_BOGUS) {
		auth_plain("relayguard-probe", "not-a-password", b64, sizeof(b64));
		snprintf(line, sizeof(line), "AUTH PLAIN %s", b64);
		add_step(l, ROLE_AUTH, NULL, line);
	}
	if (f & PF_AUTH) {
		auth_plain(o->auth_user, o->auth_pass, b64, sizeof(b64));
		snprintf(line, sizeof(line), "AUTH PLAIN %s", b64);
		add_step(l, ROLE_AUTH, "AUTH PLAIN (credentials from --auth)", line);
	}
	snprintf(line, sizeof(line), "MAIL FROM:<%s>", r->mail);
	add_step(l, ROLE_MAIL, NULL, line);
	snprintf(line, sizeof(line), "RCPT TO:<%s>", r->rcpt);
	add_step(l, ROLE_RCPT, NULL, line);
}

static void after_test(struct lane *l, bool healthy)
{
	if (!healthy || l->fresh)
		lane_drop(l, healthy);
	lane_next(l);
}

static void on_rset(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct lane *l = arg;
	record_reply(l, rep);
	l->cur = NULL;
	after_test(l, rep->status == SMTPC_REPLY && rep->code / 100 == 2);
}

/* finish_transaction - judge the outcome, then RSET (in the test's transcript). */
static void finish_transaction(struct lane *l, const struct probe_outcome *o, bool healthy)
{
	struct probe_result *r = l->cur;
	test_done(l, o);
	if (!healthy || l->fresh) {
		after_test(l, healthy);
		return;
	}
	l->cur = r;
	lane_cmd(l, "RSET", NULL, on_rset);
}

static void on_data_end(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct lane *l = arg;
	record_reply(l, rep);
	bool ok = rep->status == SMTPC_REPLY && rep->code / 100 == 2;
	l->cur->data_accepted = ok;
	append_note(l->cur, ok ? "end-of-data accepted: the message was taken"
				     : "the message was refused at end of data");
	finish_transaction(l, &l->rcpt_outcome, rep->status == SMTPC_REPLY && rep->code != 421);
}

/* smuggle_done - judge the replies the payload drew; the session is in an
 * unknown state (a split message leaves it mid-way), so it is never reused. */
static void smuggle_done(struct lane *l, enum probe_status end)
{
	struct probe_result *r = l->cur;
	char note[256];
	r->running = false;
	r->data_accepted = r->n_smuggle_codes > 0 && r->smuggle_codes[0] / 100 == 2;
	r->verdict = probe_judge_smuggle(r->smuggle_codes, r->n_smuggle_codes, end, note,
					 sizeof(note));
	append_note(r, note);
	l->cur = NULL;
	lane_drop(l, false);
	lane_next(l);
}

/* on_smuggle_reply - every reply until the server falls quiet or hangs up. */
static void on_smuggle_reply(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	struct lane *l = arg;
	struct probe_result *r = l->cur;
	if (rep->status != SMTPC_REPLY) {
		if (rep->status != SMTPC_TIMEOUT || r->n_smuggle_codes == 0)
			record_reply(l, rep);
		smuggle_done(l, status_of(rep));
		return;
	}
	record_reply(l, rep);
	r->smuggle_codes[r->n_smuggle_codes++] = rep->code;
	if (r->n_smuggle_codes == PROBE_SMUGGLE_REPLIES) {
		smuggle_done(l, PS_REPLY);
		return;
	}
	smtpc_expect_optional(c, SMUGGLE_QUIET_MS, on_smuggle_reply, l);
}

/* send_smuggle - one message to postmaster whose body ends at the test's fake
 * end-of-data, directly followed by a second transaction with its own token:
 * a server that ends DATA there answers the smuggled commands too. */
static void send_smuggle(struct lane *l, const char *date)
{
	struct probe_result *r = l->cur;
	const char *vd = l->ts->run->victim_domain;
	char eod[64], shown[256];
	struct strbuf m;
	strbuf_init(&m);
	strbuf_printf(&m,
		      "From: relayguard probe <relayprobe@%s>\r\n"
		      "To: <%s>\r\n"
		      "Subject: relayguard probe %s\r\n"
		      "Date: %s\r\n"
		      "Message-ID: <%s@relayguard.invalid>\r\n"
		      "X-Relayguard-Probe: %s\r\n"
		      "\r\n"
		      "This message was sent by relayguard probe to test whether the server ends a\r\n"
		      "message early (SMTP smuggling, test %s). Token: %s",
		      vd, r->rcpt, r->token, date, r->token, r->token, r->test->id, r->token);
	strbuf_append(&m, r->test->eod, r->test->eod_len);
	strbuf_printf(&m,
		      "MAIL FROM:<%s>\r\n"
		      "RCPT TO:<%s>\r\n"
		      "DATA\r\n"
		      "From: relayguard probe <relayprobe@%s>\r\n"
		      "To: <%s>\r\n"
		      "Subject: relayguard probe %s (smuggled)\r\n"
		      "Message-ID: <%s@relayguard.invalid>\r\n"
		      "X-Relayguard-Probe: %s\r\n"
		      "\r\n"
		      "A smuggled message. Token: %s\r\n"
		      ".\r\n",
		      r->mail, r->rcpt, vd, r->rcpt, r->smuggle_token, r->smuggle_token,
		      r->smuggle_token, r->smuggle_token);
	smtpc_send_raw(l->c, m.data, m.len);
	strbuf_free(&m);
	r->smuggle_sent = true;
	probe_eod_name(r->test->eod, r->test->eod_len, eod, sizeof(eod));
	snprintf(shown, sizeof(shown), "(message with token %s, then %s, MAIL FROM, RCPT TO, DATA "
		 "and a smuggled message with token %s, then \".\")", r->token, eod,
		 r->smuggle_token);
	record(r, true, shown);
	r->n_smuggle_codes = 0;
	smtpc_expect(l->c, 0, on_smuggle_reply, l);
}

static void send_message(struct lane *l)
{
	struct probe_result *r = l->cur;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (r->test->kind == PK_SMUGGLE) {
		send_smuggle(l, date);
		return;
	}
	struct strbuf m;
	strbuf_init(&m);
	strbuf_printf(&m,
		      "From: relayguard probe <relayprobe@%s>\r\n"
		      "To: undisclosed-recipients:;\r\n"
		      "Subject: relayguard probe %s\r\n"
		      "Date: %s\r\n"
		      "Message-ID: <%s@relayguard.invalid>\r\n"
		      "X-Relayguard-Probe: %s\r\n"
		      "\r\n"
		      "This message was sent by relayguard probe to test whether a server relays\r\n"
		      "mail for strangers (test %s). Token: %s\r\n"
		      ".\r\n",
		      l->ts->run->victim_domain, r->token, date, r->token, r->token, r->test->id,
		      r->token);
	smtpc_send_raw(l->c, m.data, m.len);
	strbuf_free(&m);
	char shown[128];
	snprintf(shown, sizeof(shown), "(message with token %s, then \".\")", r->token);
	record(r, true, shown);
	smtpc_expect(l->c, 0, on_data_end, l);
}

static void on_data(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct lane *l = arg;
	record_reply(l, rep);
	if (rep->status == SMTPC_REPLY && rep->code == 354) {
		send_message(l);
		return;
	}
	append_note(l->cur, "DATA was refused after RCPT was accepted");
	finish_transaction(l, &l->rcpt_outcome, rep->status == SMTPC_REPLY && rep->code != 421);
}

static bool want_data(const struct lane *l)
{
	enum probe_kind k = l->cur->test->kind;
	return l->ts->run->o->confirm_data &&
	       (k == PK_RELAY || k == PK_AMBIGUOUS || k == PK_AUTH_PLAIN || k == PK_SMUGGLE);
}

static void run_step(struct lane *l);

/* replace_sender - a refused sender (Exim refuses antispam@[IP]) would leave the
 * RCPT form untried: try it once more with the plain outside sender. */
static bool replace_sender(struct lane *l, struct step *s, int code)
{
	struct probe_result *r = l->cur;
	const char *plain = l->ts->plain_sender;
	if (r->sender_replaced || (r->test->flags & PF_SENDER) || strcmp(r->mail, plain) == 0)
		return false;
	char note[PROBE_NAME_MAX * 2 + 64];
	snprintf(note, sizeof(note), "sender <%s> refused (%d): RCPT tried with <%s>", r->mail,
		 code, plain);
	append_note(r, note);
	r->sender_replaced = true;
	rg_strlcpy(r->mail, plain, sizeof(r->mail));
	snprintf(s->line, sizeof(s->line), "MAIL FROM:<%s>", plain);
	rg_strlcpy(s->shown, s->line, sizeof(s->shown));
	run_step(l);
	return true;
}

/* redo_with_own_helo - the server refused to change names mid-session: run
 * the test again on a new connection that opens with its HELO name. */
static void redo_with_own_helo(struct lane *l, int code)
{
	struct probe_result *r = l->cur;
	char note[PROBE_NAME_MAX + 96];
	snprintf(note, sizeof(note), "a second EHLO was refused (%d): run again on a new "
		 "connection opened with EHLO %s", code, r->helo);
	append_note(r, note);
	r->own_helo = true;
	r->running = false;
	r->attempts--;
	r->due_ms = 0;
	l->cur = NULL;
	lane_drop(l, true);
	lane_next(l);
}

/* on_auth_cancel - the reply to "*": the 334 is the test's answer (inconclusive);
 * the connection stays only when the server confirms the cancel with a 5xx. */
static void on_auth_cancel(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct lane *l = arg;
	record_reply(l, rep);
	struct probe_outcome o = l->rcpt_outcome;
	finish_transaction(l, &o, rep->status == SMTPC_REPLY && rep->code / 100 == 5 &&
					  rep->code != 421);
}

/* continuation - a 3xx at a step that is not DATA: the server waits for more.
 * At AUTH, cancel the exchange (RFC 4954 4: "*"); anywhere else the session is
 * in a state we did not ask for, so it is not reused. Never an acceptance. */
static void continuation(struct lane *l, const struct probe_outcome *o)
{
	if (o->role == ROLE_AUTH) {
		l->rcpt_outcome = *o;
		lane_cmd(l, "*", NULL, on_auth_cancel);
		return;
	}
	finish_transaction(l, o, false);
}

static void on_step(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct lane *l = arg;
	struct step *s = &l->steps[l->step];
	record_reply(l, rep);
	struct probe_outcome o = outcome_of(s->role, rep);
	if (rep->status != SMTPC_REPLY) {
		finish_transaction(l, &o, false);
		return;
	}
	if (rep->code >= 400)
		l->rejections++;
	if (s->role == ROLE_MAIL && rep->code / 100 == 5 && replace_sender(l, s, rep->code))
		return;
	if (probe_redo_with_own_helo(&o, l->step == 0) && !l->cur->own_helo) {
		redo_with_own_helo(l, rep->code);
		return;
	}
	if (rep->code / 100 == 3) {
		continuation(l, &o);
		return;
	}
	if (rep->code / 100 != 2) {
		finish_transaction(l, &o, rep->code != 421);
		return;
	}
	if (s->role == ROLE_HELO && strncmp(s->line, "EHLO ", 5) == 0)
		rg_strlcpy(l->helo_now, s->line + 5, sizeof(l->helo_now));
	if (++l->step < l->n_steps) {
		run_step(l);
		return;
	}
	if (want_data(l)) {
		l->rcpt_outcome = o;
		lane_cmd(l, "DATA", NULL, on_data);
		return;
	}
	finish_transaction(l, &o, true);
}

static void run_step(struct lane *l)
{
	struct step *s = &l->steps[l->step];
	lane_cmd(l, s->line, s->shown, on_step);
}

static void start_test(struct lane *l)
{
	l->st = L_TEST;
	build_steps(l);
	run_step(l);
}

/* ---- scheduling tests over lanes ---- */

static struct probe_result *pick(struct tstate *ts, uint64_t *wait_ms)
{
	uint64_t now = now_ms(), soonest = UINT64_MAX;
	for (size_t i = 0; i < ts->t.n_results; i++) {
		struct probe_result *r = &ts->t.results[i];
		if (r->verdict != V_PENDING || r->running)
			continue;
		if (r->due_ms <= now)
			return r;
		if (r->due_ms < soonest)
			soonest = r->due_ms;
	}
	*wait_ms = soonest == UINT64_MAX ? 0 : soonest - now;
	return NULL;
}

static void check_target_done(struct tstate *ts)
{
	for (size_t i = 0; i < ts->n_lanes; i++)
		if (ts->lanes[i].active)
			return;
	target_finish(ts);
}

/* target_sleep - when every lane only waits for a retry timer, the target has
 * no connection: let another target use its --concurrency slot meanwhile
 * (Postfix answers 454 to unauthorised relaying, so every test sleeps
 * --retry-after once). */
static void target_sleep(struct tstate *ts)
{
	if (ts->sleeping || ts->finished)
		return;
	for (size_t i = 0; i < ts->n_lanes; i++) {
		const struct lane *l = &ts->lanes[i];
		if (l->c != NULL || (l->active && l->st != L_WAIT))
			return;
	}
	ts->sleeping = true;
	ts->run->active--;
	event_active(ts->run->kick, EV_TIMEOUT, 0);
}

static void lane_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct lane *l = arg;
	if (l->ts->sleeping) { /* a retry is due: the target is back (maybe over the limit) */
		l->ts->sleeping = false;
		l->ts->run->active++;
	}
	lane_next(l);
}

static void lane_next(struct lane *l)
{
	struct tstate *ts = l->ts;
	const struct probe_options *o = ts->run->o;
	uint64_t wait = 0;
	l->cur = NULL;
	struct probe_result *r = pick(ts, &wait);
	if (r == NULL) {
		lane_drop(l, true);
		if (wait > 0) { /* a retry is due later: reconnect then, like a real retry */
			l->st = L_WAIT;
			struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
			evtimer_add(l->timer, &tv);
			target_sleep(ts);
			return;
		}
		l->active = false;
		l->st = L_IDLE;
		check_target_done(ts);
		return;
	}
	r->running = true;
	r->attempts++;
	l->cur = r;
	l->st = L_TEST;
	unsigned flags = r->test->flags;
	if (l->c != NULL && !l->fresh && !(flags & PF_FRESH) && !r->own_helo &&
	    l->rejections < o->rejections_per_conn) {
		start_test(l);
		return;
	}
	lane_drop(l, true);
	lane_open(l, flags);
}

/* ---- targets ---- */

/* auth_sender_ok - is the --auth login an address usable as MAIL FROM? */
static bool auth_sender_ok(const char *user)
{
	if (user == NULL || strlen(user) > PATH_MAX_LEN || strchr(user, '@') == NULL)
		return false;
	for (const char *p = user; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '<' || *p == '>')
			return false;
	return true;
}

static bool applicable(const struct tstate *ts, const struct probe_test *t, const char **why)
{
	const struct probe_options *o = ts->run->o;
	/* a submission service: its port, implicit TLS, or credentials to log in with */
	if ((t->flags & PF_SUBMISSION) && ts->t.port != 587 && ts->t.port != 465 &&
	    !o->implicit_tls && o->auth_user == NULL) {
		*why = "only on submission ports (587, 465, --tls or --auth)";
		return false;
	}
	if ((t->flags & PF_NEEDS_AUTH) && o->auth_user == NULL) {
		*why = "needs --auth USER:PASS";
		return false;
	}
	if ((t->flags & PF_PLAINTEXT) && o->implicit_tls) {
		*why = "the connection is TLS from the first byte";
		return false;
	}
	if ((t->flags & PF_SMUGGLE) && !o->confirm_data) {
		*why = "needs --confirm-data (it sends two messages to postmaster)";
		return false;
	}
	return true;
}

static void begin_tests(struct tstate *ts)
{
	struct run *run = ts->run;
	const struct probe_options *o = run->o;
	struct probe_target *t = &ts->t;
	ts->discovered = true;
	if (!ts->domain_found) {
		rg_strlcpy(t->domain, ts->n_cands ? ts->cands[0] : t->server_name, sizeof(t->domain));
		strbuf_printf(&t->advice, "TARGET_DOMAIN is a guess (%s): no name the server gave "
			      "accepted RCPT TO:<postmaster@...>; pass --domain for exact results\n",
			      t->domain);
	}
	/* a name that leaves no room in a 256-byte path is replaced by the address
	 * literal; a test whose address still does not fit is not run at all:
	 * a truncated address would test something else */
	char literal[sizeof(t->ip_literal) + 2];
	snprintf(literal, sizeof(literal), "[%s]", t->ip_literal);
	const char *server = strlen(t->server_name) > NAME_CAP ? literal : t->server_name;
	const char *domain = strlen(t->domain) > NAME_CAP ? literal : t->domain;
	struct probe_vars v = {
		.victim_local = run->victim_local, .victim_domain = run->victim_domain,
		.domain = domain, .server = server, .ip = t->ip_literal,
		.user = ts->user, .sender_local = "relayprobe", .helo = o->helo,
	};
	probe_expand("{sl}@{vd}", &v, ts->plain_sender, sizeof(ts->plain_sender));
	for (size_t i = 0; i < t->n_results; i++) {
		struct probe_result *r = &t->results[i];
		const char *why;
		bool fits = true;
		if (r->test->helo)
			fits &= probe_expand(r->test->helo, &v, r->helo, sizeof(r->helo));
		else
			rg_strlcpy(r->helo, o->helo, sizeof(r->helo));
		fits &= probe_expand(r->test->mail, &v, r->mail, sizeof(r->mail)) &&
			strlen(r->mail) <= PATH_MAX_LEN;
		fits &= probe_expand(r->test->rcpt, &v, r->rcpt, sizeof(r->rcpt)) &&
			strlen(r->rcpt) <= PATH_MAX_LEN;
		if ((r->test->flags & PF_NEEDS_AUTH) && auth_sender_ok(o->auth_user))
			/* a logged-in user sends as itself: an MSA refuses other senders */
			rg_strlcpy(r->mail, o->auth_user, sizeof(r->mail));
		/* fixed width: no token is the start of another (test 1 and tests 10..19) */
		snprintf(r->token, sizeof(r->token), "rgprobe-%s-%06zu-%02zu", run->run_id,
			 (size_t)(ts - run->ts), i);
		/* "-s" after a token is no whole-word match of it: neither finds the other */
		snprintf(r->smuggle_token, sizeof(r->smuggle_token), "%s-s", r->token);
		if (!applicable(ts, r->test, &why)) {
			r->verdict = V_SKIPPED;
			rg_strlcpy(r->note, why, sizeof(r->note));
		} else if (!fits) {
			r->verdict = V_ERROR;
			rg_strlcpy(r->note, "address too long: not sent (a path has at most 256 "
				   "bytes)", sizeof(r->note));
		}
	}
	if (t->tls == NULL || strcmp(t->tls, "implicit") != 0)
		t->tls = ts->lanes[0].tls ? "starttls" : "none";
	if ((o->starttls || t->port == 587) && !t->cap_starttls && !o->implicit_tls)
		strbuf_puts(&t->advice, "STARTTLS was asked for but not offered: the tests ran "
					"without TLS\n");
	for (size_t i = 1; i < ts->n_lanes; i++)
		ts->lanes[i].active = true;
	for (size_t i = 0; i < ts->n_lanes; i++)
		lane_next(&ts->lanes[i]);
}

static void conclude(struct tstate *ts)
{
	struct probe_target *t = &ts->t;
	enum probe_verdict *v = xcalloc(t->n_results + 1, sizeof(*v));
	for (size_t i = 0; i < t->n_results; i++)
		v[i] = t->results[i].verdict;
	for (size_t i = 0; i < t->n_results; i++) {
		struct probe_result *r = &t->results[i];
		if (r->test->kind == PK_AUTH_PLAIN && r->verdict == V_DENIED && t->cap_auth_plain_text) {
			r->verdict = v[i] = V_WARNING; /* refused, but offered where passwords show */
			append_note(r, "AUTH is advertised on a connection without TLS");
		}
	}
	t->verdict = probe_target_verdict(v, t->n_results, t->reachable);
	if (t->reachable && !ts->discovered)
		t->verdict = TV_INCONCLUSIVE;
	free(v);
	probe_build_advice(t, ts->run->o);
}

static void print_target(struct run *run, struct tstate *ts)
{
	if (run->o->progress)
		fputs("\r\033[K", stderr);
	if (run->o->json)
		probe_print_json(&ts->t);
	else
		probe_print_table(&ts->t, run->o);
	fflush(stdout);
}

static void progress(struct run *run)
{
	if (!run->o->progress)
		return;
	size_t open = 0;
	for (size_t i = 0; i < run->n; i++)
		open += run->ts[i].finished && run->ts[i].t.verdict == TV_OPEN;
	fprintf(stderr, "\r\033[K%zu/%zu targets done, %zu running%s", run->done, run->n,
		run->active, run->deferred_output ? "" : "");
	if (!run->deferred_output)
		fprintf(stderr, ", %zu open", open);
	fflush(stderr);
}

static void target_finish(struct tstate *ts)
{
	struct run *run = ts->run;
	if (ts->finished)
		return;
	ts->finished = true;
	for (size_t i = 0; i < ts->n_lanes; i++) {
		struct lane *l = &ts->lanes[i];
		evtimer_del(l->timer);
		lane_drop(l, l->c != NULL);
		l->active = false;
	}
	for (size_t i = 0; i < ts->t.n_results; i++) {
		struct probe_result *r = &ts->t.results[i];
		if (r->verdict == V_PENDING && !ts->discovered) {
			r->verdict = V_SKIPPED;
			rg_strlcpy(r->note, "not run: the target could not be tested", sizeof(r->note));
		}
	}
	ts->t.elapsed_ms = now_ms() - ts->start_ms;
	if (!run->deferred_output) {
		conclude(ts);
		print_target(run, ts);
	}
	if (ts->sleeping)
		ts->sleeping = false;
	else
		run->active--;
	run->done++;
	progress(run);
	if (run->done == run->n && run->n_quitting > 0) { /* Exim answers QUIT after 0.2 s */
		struct timeval grace = {0, QUIT_GRACE_MS * 1000};
		evtimer_add(run->quit_timer, &grace);
	}
	event_active(run->kick, EV_TIMEOUT, 0);
}

/* connect_target - the address is known: open the first lane. */
static void connect_target(struct tstate *ts, const struct rg_ip *ip)
{
	struct probe_target *t = &ts->t;
	t->addrlen = ip_to_sockaddr(ip, (unsigned)t->port, &t->addr);
	ip_format(ip, t->addr_text, sizeof(t->addr_text));
	snprintf(t->ip_literal, sizeof(t->ip_literal), "%s%s",
		 ip->family == AF_INET6 ? "IPv6:" : "", t->addr_text);
	ts->n_lanes = ts->run->o->lanes;
	ts->lanes[0].active = true;
	lane_open(&ts->lanes[0], 0);
}

static void on_resolved(void *arg, const struct rg_ip *ip, const char *error)
{
	struct tstate *ts = arg;
	struct run *run = ts->run;
	if (ip == NULL) {
		snprintf(ts->t.error, sizeof(ts->t.error), "cannot resolve %s%s: %s", ts->t.host,
			 run->sourcelen ? " (in the --source address family)" : "", error);
		target_finish(ts);
		return;
	}
	connect_target(ts, ip);
}

static void start_target(struct run *run, struct tstate *ts)
{
	run->active++;
	ts->start_ms = now_ms();
	struct rg_ip ip;
	if (ip_parse(ts->t.host, &ip)) {
		connect_target(ts, &ip);
		return;
	}
	if (run->dns == NULL) {
		char err[256];
		run->dns = dns_new(run->base, run->o->dns_servers, run->o->timeout_ms, err,
				   sizeof(err));
		if (run->dns == NULL) {
			on_resolved(ts, NULL, err);
			return;
		}
	}
	int family = run->sourcelen ? run->source.ss_family : AF_UNSPEC;
	dns_host_addr(run->dns, ts->t.host, family, on_resolved, ts);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run *run = arg;
	while (run->next < run->n && run->active < run->o->concurrency)
		start_target(run, &run->ts[run->next++]);
}

/* ---- canaries ---- */

static bool token_pending(const struct probe_result *r)
{
	if (!r->data_accepted || r->token_found)
		return false;
	if (r->test->kind == PK_SMUGGLE) /* looked for until found on its own or whole */
		return r->verdict == V_NOT_SMUGGLED || r->verdict == V_WARNING ||
		       r->verdict == V_SMUGGLING_ACCEPTED;
	return r->verdict == V_RELAY_ACCEPTED || r->verdict == V_ACCEPTED_AMBIGUOUS;
}

/* smuggle_scan - a smuggled message that arrives on its own was smuggled, here
 * or by a later hop that ends DATA where this one did not; one that arrives
 * inside the carrier message was not (and there is nothing more to wait for). */
static void smuggle_scan(struct probe_result *r, const char *buf, size_t len, const char *path)
{
	enum probe_arrival a = probe_smuggle_arrival(buf, len, r->token, r->smuggle_token);
	char *note = NULL;
	if (a == ARR_SMUGGLED) {
		note = xasprintf("the smuggled message (token %s) arrived on its own in %s",
				 r->smuggle_token, path);
		r->verdict = V_SMUGGLING_ACCEPTED;
		r->token_found = true;
	} else if (a == ARR_WHOLE && r->verdict != V_SMUGGLING_ACCEPTED) {
		note = xasprintf("arrived as one message in %s", path);
		r->token_found = true;
	} else if (a == ARR_OUTER && !r->smuggle_cut) { /* the smuggled one may follow */
		note = xasprintf("the message arrived cut short at the fake end-of-data in %s", path);
		r->smuggle_cut = true;
	}
	if (note != NULL)
		append_note(r, note);
	free(note);
}

static void scan_file(struct run *run, const char *path, bool local)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 8 * 1024 * 1024) {
		close(fd);
		return;
	}
	size_t len = (size_t)st.st_size;
	char *buf = xmalloc(len + 1);
	ssize_t n = read(fd, buf, len);
	close(fd);
	if (n > 0) {
		for (size_t i = 0; i < run->n; i++) {
			struct probe_target *t = &run->ts[i].t;
			for (size_t j = 0; j < t->n_results; j++) {
				struct probe_result *r = &t->results[j];
				if (token_pending(r) && r->test->kind == PK_SMUGGLE) {
					smuggle_scan(r, buf, (size_t)n, path);
					continue;
				}
				if (!token_pending(r) || !probe_token_in(buf, (size_t)n, r->token))
					continue;
				r->token_found = true;
				char *found;
				if (local && r->verdict == V_RELAY_ACCEPTED) {
					/* accepting an outside destination from a stranger is the
					 * offence, wherever the message ended up */
					found = xasprintf("delivered locally (token found in %s), but the "
							  "server accepted an outside destination", path);
				} else {
					r->verdict = local ? V_DELIVERED_LOCALLY : V_RELAY_CONFIRMED;
					found = xasprintf("token found in %s", path);
				}
				append_note(r, found);
				free(found);
			}
		}
	}
	free(buf);
}

static void scan_dir(struct run *run, const char *dir, bool local, int depth)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(path, &st) == 0) {
			if (S_ISDIR(st.st_mode) && depth < 12)
				scan_dir(run, path, local, depth + 1);
			else if (S_ISREG(st.st_mode))
				scan_file(run, path, local);
		}
		free(path);
	}
	closedir(d);
}

static size_t pending_tokens(struct run *run)
{
	size_t n = 0;
	for (size_t i = 0; i < run->n; i++)
		for (size_t j = 0; j < run->ts[i].t.n_results; j++)
			n += token_pending(&run->ts[i].t.results[j]);
	return n;
}

static void wait_for_canaries(struct run *run)
{
	const struct probe_options *o = run->o;
	uint64_t deadline = now_ms() + o->canary_wait_ms;
	while (pending_tokens(run) > 0 && (o->canary_dir || o->local_dir)) {
		if (o->canary_dir) /* first: a token in both places was relayed */
			scan_dir(run, o->canary_dir, false, 0);
		if (o->local_dir)
			scan_dir(run, o->local_dir, true, 0);
		if (pending_tokens(run) == 0 || now_ms() >= deadline)
			break;
		usleep(200 * 1000);
	}
	char note[160];
	snprintf(note, sizeof(note), "token not seen within %u s", o->canary_wait_ms / 1000);
	for (size_t i = 0; i < run->n; i++) {
		struct probe_target *t = &run->ts[i].t;
		for (size_t j = 0; j < t->n_results; j++) {
			struct probe_result *r = &t->results[j];
			if (token_pending(r) && r->test->kind == PK_SMUGGLE) {
				append_note(r, r->smuggle_cut ? "the smuggled message was not seen on its "
								 "own within --canary-wait"
							      : "neither message was seen in the "
								"directories within --canary-wait");
				continue;
			}
			if (!token_pending(r) || o->canary_dir == NULL)
				continue;
			/* an unambiguous acceptance stays a relay: accepting is the offence */
			if (r->verdict == V_ACCEPTED_AMBIGUOUS)
				r->verdict = V_NOT_RELAYED;
			append_note(r, note);
		}
	}
}

/* ---- the run ---- */

static bool set_source(struct run *run, const char *s, char *err, size_t errlen)
{
	struct rg_ip ip;
	if (!ip_parse(s, &ip)) {
		snprintf(err, errlen, "--source takes an IP address, not \"%s\"", s);
		return false;
	}
	run->sourcelen = ip_to_sockaddr(&ip, 0, &run->source);
	return true;
}

static bool selected(const char *only, const char *id)
{
	if (only == NULL)
		return true;
	size_t n = strlen(id);
	for (const char *p = only; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && strncmp(p, id, n) == 0)
			return true;
		p += len + (end != NULL);
	}
	return false;
}

static void free_target(struct tstate *ts)
{
	for (size_t i = 0; i < ts->t.n_results; i++) {
		struct probe_result *r = &ts->t.results[i];
		for (size_t k = 0; k < r->n_transcript; k++)
			free(r->transcript[k].text);
		free(r->transcript);
	}
	free(ts->t.results);
	strbuf_free(&ts->t.advice);
	for (size_t i = 0; i < MAX_LANES; i++)
		if (ts->lanes[i].timer)
			event_free(ts->lanes[i].timer);
}

static void init_target(struct run *run, struct tstate *ts, const char *spec)
{
	const struct probe_options *o = run->o;
	char err[256];
	ts->run = run;
	rg_strlcpy(ts->t.spec, spec, sizeof(ts->t.spec));
	strbuf_init(&ts->t.advice);
	ts->t.tls = o->implicit_tls ? "implicit" : NULL;
	if (!probe_parse_target(spec, o->port, ts->t.host, sizeof(ts->t.host), &ts->t.port, err,
				sizeof(err)))
		rg_strlcpy(ts->t.error, err, sizeof(ts->t.error)); /* checked by the CLI first */
	random_hex(ts->user, 6);
	memmove(ts->user + 11, ts->user, 13);
	memcpy(ts->user, "nosuchuser-", 11);
	ts->t.results = xcalloc(probe_battery_len, sizeof(*ts->t.results));
	for (size_t i = 0; i < probe_battery_len; i++) {
		if (!selected(o->only, probe_battery[i].id))
			continue;
		/* smuggling sends real mail: only when asked for, by --smuggle or by name */
		if ((probe_battery[i].flags & PF_SMUGGLE) && !o->smuggle && o->only == NULL)
			continue;
		ts->t.results[ts->t.n_results++].test = &probe_battery[i];
	}
	for (size_t i = 0; i < MAX_LANES; i++) {
		ts->lanes[i].ts = ts;
		ts->lanes[i].timer = evtimer_new(run->base, lane_timer_cb, &ts->lanes[i]);
	}
}

int probe_run(const struct probe_options *o, char **targets, size_t n_targets)
{
	struct run run = {.o = o, .n = n_targets};
	char err[256];
	if (o->source && !set_source(&run, o->source, err, sizeof(err))) {
		fprintf(stderr, "relayguard probe: %s\n", err);
		return 64;
	}
	const char *at = strrchr(o->victim, '@');
	snprintf(run.victim_local, sizeof(run.victim_local), "%.*s", (int)(at - o->victim), o->victim);
	rg_strlcpy(run.victim_domain, at + 1, sizeof(run.victim_domain));
	random_hex(run.run_id, 6);
	run.deferred_output = o->confirm_data && (o->canary_dir || o->local_dir);
	signal(SIGPIPE, SIG_IGN); /* a server that resets the connection is an error, not a kill */
	run.base = event_base_new();
	run.ctx = smtpc_tls_probe_ctx();
	run.kick = event_new(run.base, -1, 0, kick_cb, &run);
	run.quit_timer = evtimer_new(run.base, quit_timer_cb, &run);
	run.ts = xcalloc(n_targets, sizeof(*run.ts));
	for (size_t i = 0; i < n_targets; i++)
		init_target(&run, &run.ts[i], targets[i]);
	event_active(run.kick, EV_TIMEOUT, 0);
	event_base_dispatch(run.base);
	free(run.quitting);
	event_free(run.quit_timer);
	if (o->progress)
		fputs("\r\033[K", stderr);
	if (run.deferred_output) {
		wait_for_canaries(&run);
		for (size_t i = 0; i < n_targets; i++) {
			conclude(&run.ts[i]);
			print_target(&run, &run.ts[i]);
		}
	}
	int rc = 0;
	for (size_t i = 0; i < n_targets; i++) {
		rc = probe_worse_exit(rc, probe_exit_code(run.ts[i].t.verdict));
		free_target(&run.ts[i]);
	}
	free(run.ts);
	event_free(run.kick);
	dns_free(run.dns);
	SSL_CTX_free(run.ctx);
	event_base_free(run.base);
	return rc;
}
