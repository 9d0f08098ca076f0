/*
 * test_queue.c - queue files: the commit protocol, the file format and its
 * verification, recipient bookkeeping, and the shared helpers the queue
 * relies on for durability (queue ids, group-committed directory fsyncs).
 *
 * Everything happens in a fresh mkdtemp directory that is registered with
 * basedir first, as the server does at start-up, and removed at the end.
 */
#include "check.h"
#include "files.h"
#include "queue/queue.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char qdir[] = "/tmp/rg-test-queue-XXXXXX";

/* ---- small file helpers, all relative to qdir ---- */

static bool exists(const char *rel)
{
	struct stat st;
	return fstatat(basedir_fd(qdir), rel, &st, 0) == 0;
}

/* count_entries - files in qdir/sub, dot files included (nothing may hide). */
static int count_entries(const char *sub)
{
	return dir_entries(qdir, sub, NULL, 0);
}

static void write_raw(const char *rel, const char *data, size_t len)
{
	int fd = openat(basedir_fd(qdir), rel, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "cannot create %s: %s", rel, strerror(errno));
	if (fd < 0)
		return;
	CHECK(write(fd, data, len) == (ssize_t)len, "short write to %s", rel);
	close(fd);
}


static bool same_bytes(const struct strbuf *a, const char *b, size_t blen)
{
	return a->len == blen && (blen == 0 || memcmp(a->data, b, blen) == 0);
}


/* ---- building messages ---- */

struct rcpt_spec {
	const char *orig, *local, *domain;
	enum addr_class cls;
};

struct msg_spec {
	int line;
	time_t arrival;
	const char *ip, *name, *helo, *sender;
	const char *body;
	size_t body_len; /* bodies may hold NUL bytes */
	struct rcpt_spec rcpts[4];
	size_t n_rcpts;
};

static struct queue_msg *build(const struct msg_spec *s)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	queue_new_id(m->id);
	m->arrival = s->arrival;
	m->client_ip = xstrdup(s->ip);
	m->client_name = xstrdup(s->name);
	m->helo = xstrdup(s->helo);
	m->sender = xstrdup(s->sender);
	for (size_t i = 0; i < s->n_rcpts; i++)
		queue_msg_add_rcpt(m, s->rcpts[i].orig, s->rcpts[i].local, s->rcpts[i].domain,
				   s->rcpts[i].cls);
	strbuf_init(&m->body);
	strbuf_append(&m->body, s->body, s->body_len);
	return m;
}

/* A plain message with n local recipients r0..r(n-1), committed. */
static struct queue_msg *commit_simple(size_t n)
{
	struct msg_spec s = {__LINE__, 1700000000, "127.0.0.9", "localhost", "h.example",
			     "s@example.com", "Subject: x\r\n\r\nhi\r\n", 18, {{0}}, 0};
	static const char *const locals[] = {"r0", "r1", "r2", "r3"};
	for (size_t i = 0; i < n && i < RG_ARRAY_LEN(locals); i++)
		s.rcpts[s.n_rcpts++] = (struct rcpt_spec){locals[i], locals[i], "localhost",
							  ADDR_CLASS_LOCAL};
	struct queue_msg *m = build(&s);
	char err[256] = "";
	CHECK(queue_commit(qdir, m, err, sizeof(err)), "commit: %s", err);
	return m;
}

static struct queue_msg *load(const char *path)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	char err[256] = "";
	if (!queue_load(qdir, path, m, err, sizeof(err))) {
		CHECK(false, "load %s: %s", path, err);
		queue_msg_free(m);
		return NULL;
	}
	return m;
}

/* ---- init ---- */

static void test_init(void)
{
	static const char *const subs[] = {"tmp", "active", "deferred", "corrupt"};
	for (size_t i = 0; i < RG_ARRAY_LEN(subs); i++) {
		char *p = xasprintf("%s/%s", qdir, subs[i]);
		struct stat st;
		CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
		      "%s: not a 0700 directory", p);
		free(p);
	}
	char err[256] = "";
	/* start-up runs it on an existing queue every time */
	CHECK(queue_init(qdir, err, sizeof(err)), "second queue_init: %s", err);
}

/* ---- round trip ---- */

static const struct msg_spec trips[] = {
	/* null sender <>; spaces, '%' and UTF-8 in orig, every class */
	{__LINE__, 1700000000, "192.0.2.7", "mail.example.net", "[192.0.2.7]", "",
	 "Received: x\r\n\r\nbody\r\n", 21,
	 {{"postmaster@localhost", "postmaster", "localhost", ADDR_CLASS_LOCAL},
	  {"\"a b%c\xc3\xa9\"@x.example", "a b%c\xc3\xa9", "x.example", ADDR_CLASS_REMOTE},
	  {"u@backup.example", "u", "backup.example", ADDR_CLASS_RELAY},
	  {"u%v@localhost", "u%v", "localhost", ADDR_CLASS_INVALID}},
	 4},
	/* NUL bytes and bare CR inside the body; IPv6 client, odd HELO */
	{__LINE__, 1, "2001:db8::1", "unknown", "helo with\tspace and %41",
	 "ceo@example.com", "a\0b\r\n\0\r\n\rz", 10,
	 {{"x@localhost", "x", "localhost", ADDR_CLASS_LOCAL}}, 1},
	/* empty body and empty fields */
	{__LINE__, 0, "127.0.0.1", "", "", "", "", 0, {{"", "", "", ADDR_CLASS_LOCAL}}, 1},
};

static void check_same(int line, const struct queue_msg *got, const struct queue_msg *want)
{
	CHECK_STR_AT(line, got->id, want->id, "id");
	CHECK_AT(line, got->arrival == want->arrival, "arrival %lld, want %lld",
		 (long long)got->arrival, (long long)want->arrival);
	CHECK_STR_AT(line, got->client_ip, want->client_ip, "client_ip");
	CHECK_STR_AT(line, got->client_name, want->client_name, "client_name");
	CHECK_STR_AT(line, got->helo, want->helo, "helo");
	CHECK_STR_AT(line, got->sender, want->sender, "sender");
	CHECK_AT(line, got->n_rcpts == want->n_rcpts, "n_rcpts %zu, want %zu", got->n_rcpts,
		 want->n_rcpts);
	for (size_t i = 0; i < got->n_rcpts && i < want->n_rcpts; i++) {
		const struct queue_rcpt *g = &got->rcpts[i], *w = &want->rcpts[i];
		CHECK_STR_AT(line, g->orig, w->orig, "rcpt orig");
		CHECK_STR_AT(line, g->local, w->local, "rcpt local");
		CHECK_STR_AT(line, g->domain, w->domain, "rcpt domain");
		CHECK_AT(line, g->cls == w->cls, "rcpt %zu class %d, want %d", i, (int)g->cls,
			 (int)w->cls);
		CHECK_AT(line, g->done == w->done, "rcpt %zu done %d, want %d", i, g->done, w->done);
		/* a reload must find the same status byte the commit wrote */
		CHECK_AT(line, g->status_offset == w->status_offset, "rcpt %zu offset %ld, want %ld",
			 i, g->status_offset, w->status_offset);
	}
}

static void check_trip(const struct msg_spec *s)
{
	struct queue_msg *m = build(s);
	char err[256] = "";
	bool ok = queue_commit(qdir, m, err, sizeof(err));
	CHECK_AT(s->line, ok, "commit: %s", err);
	if (!ok) {
		queue_msg_free(m);
		return;
	}
	char *want_path = xasprintf("active/%s", m->id);
	CHECK_STR_AT(s->line, m->path, want_path, "path after commit");
	CHECK_AT(s->line, count_entries("tmp") == 0, "tmp/ not empty after commit");
	struct stat st;
	CHECK_AT(s->line, fstatat(basedir_fd(qdir), want_path, &st, 0) == 0 &&
				  (st.st_mode & 0777) == 0600,
		 "%s missing or not mode 0600", want_path);
	struct strbuf raw = read_at(basedir_fd(qdir), want_path);
	for (size_t i = 0; i < m->n_rcpts; i++) {
		long off = m->rcpts[i].status_offset;
		CHECK_AT(s->line, off > 0 && (size_t)off < raw.len && raw.data[off] == 'P',
			 "rcpt %zu: status byte at %ld is not 'P'", i, off);
	}
	strbuf_free(&raw);
	struct queue_msg *back = load(want_path);
	if (back != NULL) {
		check_same(s->line, back, m);
		CHECK_STR_AT(s->line, back->path, want_path, "loaded path");
		CHECK_AT(s->line, same_bytes(&back->body, s->body, s->body_len),
			 "body differs (%zu bytes, want %zu)", back->body.len, s->body_len);
	}
	queue_msg_free(back);
	/* delivery copies the text from body_offset..+size of the file: it must be exact */
	struct strbuf file = read_at(basedir_fd(qdir), want_path);
	CHECK_AT(s->line, file.len == (size_t)m->body_offset + m->size && m->size == s->body_len,
		 "body_offset %ld + size %llu != file size %zu", m->body_offset,
		 (unsigned long long)m->size, file.len);
	CHECK_AT(s->line, file.len >= (size_t)m->body_offset &&
		 same_bytes(&(struct strbuf){file.data + m->body_offset,
					     file.len - (size_t)m->body_offset, 0},
			    s->body, s->body_len), "text at body_offset differs");
	strbuf_free(&file);
	unlinkat(basedir_fd(qdir), want_path, 0);
	free(want_path);
	queue_msg_free(m);
}

/* The exact bytes of the first row: pins the %XX encoding and field order. */
static void test_exact_format(void)
{
	struct queue_msg *m = build(&trips[0]);
	char err[256] = "";
	CHECK(queue_commit(qdir, m, err, sizeof(err)), "commit: %s", err);
	char *want = xasprintf("RGQ2\n"
			       "id %s\n"
			       "arrival 1700000000\n"
			       "client 192.0.2.7 mail.example.net\n"
			       "helo [192.0.2.7]\n"
			       "sender \n"
			       "rcpt P L postmaster localhost postmaster@localhost\n"
			       "rcpt P X a%%20b%%25c%%C3%%A9 x.example "
			       "\"a%%20b%%25c%%C3%%A9\"@x.example\n"
			       "rcpt P R u backup.example u@backup.example\n"
			       "rcpt P I u%%25v localhost u%%25v@localhost\n"
			       "size 21\n"
			       "\n"
			       "Received: x\r\n\r\nbody\r\n",
			       m->id);
	struct strbuf raw = read_at(basedir_fd(qdir), m->path ? m->path : "-");
	CHECK(same_bytes(&raw, want, strlen(want)), "file bytes:\n%s\nwant:\n%s",
	      raw.data ? raw.data : "", want);
	if (m->path)
		unlinkat(basedir_fd(qdir), m->path, 0);
	strbuf_free(&raw);
	free(want);
	queue_msg_free(m);
}

/* ---- damaged files ---- */

#define ENV                                                                   \
	"id 0000018C2A3B4C5D\narrival 1700000000\nclient 127.0.0.9 localhost\n" \
	"helo h.example\nsender s@example.com\n"
#define HDR "RGQ1\n" ENV
#define RCPT "rcpt P L postmaster localhost postmaster@localhost\n"

static const struct damaged {
	int line;
	const char *text;
	bool ok;
} damaged[] = {
	/* the controls: the template itself is a valid file */
	{__LINE__, HDR RCPT "size 5\n\nhello", true},
	{__LINE__, HDR RCPT "size 0\n\n", true},
	{__LINE__, HDR RCPT "size 5\n\nhell", false},         /* truncated body */
	{__LINE__, HDR RCPT "size 5\n\n", false},             /* body missing */
	{__LINE__, HDR RCPT "size 5\n", false},               /* cut before the blank line */
	{__LINE__, HDR RCPT "size 5\n\nhello!", false},       /* extra bytes */
	{__LINE__, HDR RCPT "size 5\n\nhello\n", false},      /* extra newline */
	/* format 2: state records after the text */
	{__LINE__, "RGQ2\n" ENV RCPT "size 5\n\nhello", true},
	{__LINE__, "RGQ2\n" ENV RCPT "size 5\n\nhellostate 0 1 2 3 450%20busy\n", true},
	{__LINE__, "RGQ2\n" ENV RCPT "size 5\n\nhellostate 0 1 2 3 x\nstate 0 1 2", true},
	{__LINE__, "RGQ2\n" ENV RCPT "size 5\n\nhellostate 9 1 2 3 x\n", true}, /* ignored */
	{__LINE__, "RGQ2\n" ENV RCPT "size 5\n\nhell", false},
	{__LINE__, "RGQ2\n" ENV RCPT "size 5\n\nhello!\n", true}, /* ignored: advisory */
	{__LINE__, "RGQ2\n" ENV RCPT "size 5\n\nhellostastate 0 1 2 3 x\n", true}, /* glued */
	{__LINE__, HDR RCPT "size 5\n\nhellostate 0 1 2 3 x\n", false}, /* format 1: none */
	/* a header line given twice: damaged, not "the last one wins" */
	{__LINE__, HDR "client 192.0.2.1 other\n" RCPT "size 5\n\nhello", false},
	{__LINE__, HDR "helo again.example\n" RCPT "size 5\n\nhello", false},
	/* fields are separated by single spaces */
	{__LINE__, HDR "rcpt P Lpostmaster localhost x\n" "size 5\n\nhello", false},
	{__LINE__, "RGQ3\n" ENV RCPT "size 5\n\nhello", false}, /* bad magic */
	{__LINE__, "rgq1\n" ENV RCPT "size 5\n\nhello", false},
	{__LINE__, ENV RCPT "size 5\n\nhello", false},         /* no magic at all */
	{__LINE__, "RGQ1\n", false},                          /* magic only */
	{__LINE__, "RGQ", false},                             /* shorter than magic */
	{__LINE__, "", false},                                /* empty file */
	{__LINE__, HDR RCPT "\nhello", false},                /* missing size line */
	{__LINE__, HDR RCPT "size \n\nhello", false},         /* empty size */
	{__LINE__, HDR RCPT "size 5x\n\nhello", false},       /* size not a number */
	{__LINE__, HDR RCPT "size -5\n\nhello", false},       /* negative size */
	{__LINE__, HDR "bogus line\n" RCPT "size 5\n\nhello", false}, /* garbage line */
	{__LINE__, HDR RCPT "\x01\x02\n" "size 5\n\nhello", false},    /* garbage bytes */
	{__LINE__, HDR "size 5\n\nhello", false},             /* zero recipients */
	{__LINE__, HDR "rcpt Q L a localhost a@localhost\n" "size 5\n\nhello", false},
	{__LINE__, HDR "rcpt P Z a localhost a@localhost\n" "size 5\n\nhello", false},
	{__LINE__, HDR "rcpt P\n" "size 5\n\nhello", false},  /* rcpt without class */
	/* each required header line left out in turn */
	{__LINE__, "RGQ1\narrival 1\nclient a b\nhelo h\nsender s\n" RCPT "size 0\n\n", false},
	{__LINE__, "RGQ1\nid 01\narrival 1\nhelo h\nsender s\n" RCPT "size 0\n\n", false},
	{__LINE__, "RGQ1\nid 01\narrival 1\nclient a b\nsender s\n" RCPT "size 0\n\n", false},
	{__LINE__, "RGQ1\nid 01\narrival 1\nclient a b\nhelo h\n" RCPT "size 0\n\n", false},
};

static void test_damaged(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(damaged); i++) {
		const struct damaged *d = &damaged[i];
		write_raw("active/DAMAGED", d->text, strlen(d->text));
		struct queue_msg *m = xcalloc(1, sizeof(*m));
		char err[256] = "";
		bool ok = queue_load(qdir, "active/DAMAGED", m, err, sizeof(err));
		CHECK_AT(d->line, ok == d->ok, "queue_load %s, want %s (%s)", ok ? "accepted" : "rejected",
			 d->ok ? "accepted" : "rejected", err);
		if (ok && d->ok) {
			const char *body = strstr(d->text, "\n\n") + 2;
			size_t blen = (size_t)atoi(strstr(d->text, "size ") + 5); /* records follow */
			CHECK_AT(d->line, same_bytes(&m->body, body, blen), "body differs");
			CHECK_STR_AT(d->line, m->path, "active/DAMAGED", "path");
		}
		if (!ok)
			CHECK_AT(d->line, err[0] != '\0', "rejected without an error message");
		queue_msg_free(m);
		unlinkat(basedir_fd(qdir), "active/DAMAGED", 0);
	}
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	char err[256] = "";
	CHECK(!queue_load(qdir, "active/NO-SUCH-FILE", m, err, sizeof(err)),
	      "a missing file loads");
	queue_msg_free(m);
}

/* ---- queue_finish ---- */

/* Delivery state survives a reload, header-only or whole; the last record
 * of a recipient wins; a format 1 file is upgraded in place. */
static void check_state(const char *path, int line, unsigned attempts, const char *reply)
{
	for (int header_only = 0; header_only < 2; header_only++) {
		struct queue_msg *m = xcalloc(1, sizeof(*m));
		char err[256] = "";
		bool ok = header_only ? queue_load_header(qdir, path, m, err, sizeof(err))
				      : queue_load(qdir, path, m, err, sizeof(err));
		CHECK_AT(line, ok, "reload: %s", err);
		if (ok) {
			CHECK_AT(line, m->rcpts[1].attempts == attempts, "attempts %u, want %u",
				 m->rcpts[1].attempts, attempts);
			CHECK_STR_AT(line, m->rcpts[1].last_reply, reply, "last_reply");
			CHECK_AT(line, m->rcpts[1].next_try == 1700009999, "next_try %lld",
				 (long long)m->rcpts[1].next_try);
			CHECK_AT(line, m->rcpts[0].attempts == 0 && m->rcpts[0].last_reply == NULL,
				 "an untried recipient got state");
			CHECK_AT(line, queue_msg_next_try(m) == 0, "next try of the message");
		}
		queue_msg_free(m);
	}
}

static void test_state(void)
{
	struct queue_msg *m = build(&trips[0]);
	char err[256] = "";
	CHECK(queue_commit(qdir, m, err, sizeof(err)), "commit: %s", err);
	m->rcpts[1].attempts = 1;
	m->rcpts[1].next_try = 1700009999;
	queue_rcpt_set_reply(&m->rcpts[1], "450 4.2.0 mailbox busy, try later");
	CHECK(queue_record_state(qdir, m, err, sizeof(err)), "record: %s", err);
	check_state(m->path, __LINE__, 1, "450 4.2.0 mailbox busy, try later");
	m->rcpts[1].attempts = 2;
	queue_rcpt_set_reply(&m->rcpts[1], "connect to mx.example.net[192.0.2.1]:25: timed out");
	CHECK(queue_record_state(qdir, m, err, sizeof(err)), "record: %s", err);
	check_state(m->path, __LINE__, 2, "connect to mx.example.net[192.0.2.1]:25: timed out");
	/* format 1: same bytes with the old magic */
	struct strbuf raw = read_at(basedir_fd(qdir), m->path);
	unlinkat(basedir_fd(qdir), m->path, 0);
	size_t textlen = (size_t)m->body_offset + m->size;
	memcpy(raw.data, "RGQ1", 4);
	write_raw("deferred/V1FILE", raw.data, textlen);
	free(m->path);
	m->path = xstrdup("deferred/V1FILE");
	CHECK(queue_record_state(qdir, m, err, sizeof(err)), "record v1: %s", err);
	check_state(m->path, __LINE__, 2, "connect to mx.example.net[192.0.2.1]:25: timed out");
	strbuf_free(&raw);
	raw = read_at(basedir_fd(qdir), m->path);
	CHECK(raw.len > 4 && memcmp(raw.data, "RGQ2", 4) == 0, "format 1 file not upgraded");
	strbuf_free(&raw);
	unlinkat(basedir_fd(qdir), m->path, 0);
	queue_msg_free(m);
}

/* RFC 3461 parameters survive the queue file: RET, ENVID, NOTIFY, ORCPT. */
static void test_dsn_fields(void)
{
	struct queue_msg *m = build(&trips[0]);
	char err[256] = "";
	m->dsn_ret = xstrdup("HDRS");
	m->dsn_envid = xstrdup("QQ 314 %x");
	m->rcpts[1].notify = xstrdup("SUCCESS,FAILURE");
	m->rcpts[1].orcpt = xstrdup("rfc822;a b@example.com");
	m->rcpts[2].notify = xstrdup("NEVER");
	CHECK(queue_commit(qdir, m, err, sizeof(err)), "commit: %s", err);
	struct queue_msg *r = xcalloc(1, sizeof(*r));
	CHECK(queue_load_header(qdir, m->path, r, err, sizeof(err)), "reload: %s", err);
	CHECK_STR_AT(__LINE__, r->dsn_ret, "HDRS", "RET");
	CHECK_STR_AT(__LINE__, r->dsn_envid, "QQ 314 %x", "ENVID");
	CHECK(r->rcpts[0].notify == NULL && r->rcpts[0].orcpt == NULL, "rcpt 0 got DSN fields");
	CHECK_STR_AT(__LINE__, r->rcpts[1].notify, "SUCCESS,FAILURE", "NOTIFY");
	CHECK_STR_AT(__LINE__, r->rcpts[1].orcpt, "rfc822;a b@example.com", "ORCPT");
	CHECK_STR_AT(__LINE__, r->rcpts[2].notify, "NEVER", "NOTIFY=NEVER");
	CHECK(r->rcpts[2].orcpt == NULL, "rcpt 2 ORCPT");
	unlinkat(basedir_fd(qdir), m->path, 0);
	queue_msg_free(r);
	queue_msg_free(m);
}

/* Many retries do not grow a file without bound: past 64 KiB of records it is
 * rewritten with one record per pending recipient, the text intact, and done
 * marks still land on the right bytes afterwards. */
static void test_state_compaction(void)
{
	struct queue_msg *m = build(&trips[0]);
	char err[256] = "", reply[300];
	CHECK(queue_commit(qdir, m, err, sizeof(err)), "commit: %s", err);
	struct strbuf before = read_at(basedir_fd(qdir), m->path);
	long off0 = m->body_offset;
	size_t text_end = (size_t)off0 + m->size;
	for (unsigned k = 1; k <= 500; k++) {
		for (size_t i = 0; i < m->n_rcpts; i++) {
			m->rcpts[i].attempts = k;
			m->rcpts[i].next_try = 1700009999;
			snprintf(reply, sizeof(reply), "451 4.3.0 attempt %u %0200d", k, 0);
			queue_rcpt_set_reply(&m->rcpts[i], reply);
		}
		CHECK(queue_record_state(qdir, m, err, sizeof(err)), "record %u: %s", k, err);
	}
	struct strbuf after = read_at(basedir_fd(qdir), m->path);
	CHECK(after.len < text_end + 64 * 1024 + 4096, "file grew to %zu bytes", after.len);
	m->rcpts[0].done = true;
	m->warned = 1700001234;
	CHECK(queue_record_state(qdir, m, err, sizeof(err)), "record after compaction: %s", err);
	struct queue_msg *r = xcalloc(1, sizeof(*r));
	CHECK(queue_load(qdir, m->path, r, err, sizeof(err)), "reload: %s", err);
	CHECK(r->n_rcpts == m->n_rcpts && r->rcpts[0].done && !r->rcpts[1].done,
	      "done marks after compaction");
	CHECK(r->rcpts[1].attempts == 500, "attempts %u", r->rcpts[1].attempts);
	CHECK(r->warned == 1700001234, "the delay warning's time was lost: %lld",
	      (long long)r->warned);
	CHECK(r->rcpts[1].last_reply && strlen(r->rcpts[1].last_reply) <= QUEUE_REPLY_MAX,
	      "last reply not bounded");
	CHECK(same_bytes(&r->body, before.data + off0, m->size), "text changed by compaction");
	strbuf_free(&before);
	strbuf_free(&after);
	unlinkat(basedir_fd(qdir), m->path, 0);
	queue_msg_free(r);
	queue_msg_free(m);
}

static void test_finish_all_done(void)
{
	struct queue_msg *m = commit_simple(2);
	char *active = xstrdup(m->path ? m->path : "-");
	m->rcpts[0].done = m->rcpts[1].done = true;
	char err[256] = "";
	CHECK(queue_finish(qdir, m, err, sizeof(err)), "finish: %s", err);
	CHECK(!exists(active), "%s still there after every recipient was done", active);
	CHECK(count_entries("deferred") == 0, "deferred/ not empty");
	free(active);
	queue_msg_free(m);
}

/* status_bytes - "PDP..." read from the raw file at the message's offsets. */
static void status_bytes(const char *rel, const struct queue_msg *m, char *out)
{
	struct strbuf raw = read_at(basedir_fd(qdir), rel);
	size_t i;
	for (i = 0; i < m->n_rcpts; i++) {
		long off = m->rcpts[i].status_offset;
		out[i] = off >= 0 && (size_t)off < raw.len ? raw.data[off] : '?';
	}
	out[i] = '\0';
	strbuf_free(&raw);
}

static void done_flags(const struct queue_msg *m, char *out)
{
	size_t i;
	for (i = 0; i < m->n_rcpts; i++)
		out[i] = m->rcpts[i].done ? 'D' : 'P';
	out[i] = '\0';
}

/* Some recipients left: deferred/, status bytes updated in place, nothing else
 * changed; finishing again from a reload keeps it in deferred/. */
static void test_finish_partial(void)
{
	struct queue_msg *m = commit_simple(4);
	if (m->path == NULL) {
		queue_msg_free(m);
		return;
	}
	char *active = xstrdup(m->path), *deferred = xasprintf("deferred/%s", m->id);
	struct strbuf before = read_at(basedir_fd(qdir), active);
	m->rcpts[0].done = true;
	char err[256] = "", flags[8];
	CHECK(queue_finish(qdir, m, err, sizeof(err)), "finish: %s", err);
	CHECK_STR_AT(__LINE__, m->path, deferred, "path after finish");
	CHECK(!exists(active) && exists(deferred), "not moved from active/ to deferred/");
	struct strbuf after = read_at(basedir_fd(qdir), deferred);
	if (before.len > 0 && (size_t)m->rcpts[0].status_offset < before.len)
		before.data[m->rcpts[0].status_offset] = 'D';
	CHECK(same_bytes(&after, before.data, before.len),
	      "file changed beyond the status byte (%zu bytes, was %zu)", after.len, before.len);
	strbuf_free(&before);
	strbuf_free(&after);

	/* a later run works from a reload: its offsets come from parsing */
	struct queue_msg *r = load(deferred);
	if (r != NULL) {
		done_flags(r, flags);
		CHECK_STR_AT(__LINE__, flags, "DPPP", "done flags after reload");
		r->rcpts[2].done = true;
		CHECK(queue_finish(qdir, r, err, sizeof(err)), "finish again: %s", err);
		CHECK_STR_AT(__LINE__, r->path, deferred, "path after second finish");
		CHECK(exists(deferred) && count_entries("active") == 0, "left deferred/");
		status_bytes(deferred, r, flags);
		CHECK_STR_AT(__LINE__, flags, "DPDP", "status bytes after second finish");
		queue_msg_free(r);
	}
	r = load(deferred);
	if (r != NULL) {
		done_flags(r, flags);
		CHECK_STR_AT(__LINE__, flags, "DPDP", "done flags after second reload");
		r->rcpts[1].done = r->rcpts[3].done = true;
		CHECK(queue_finish(qdir, r, err, sizeof(err)), "last finish: %s", err);
		CHECK(!exists(deferred), "%s still there after every recipient was done", deferred);
		queue_msg_free(r);
	}
	free(active);
	free(deferred);
	queue_msg_free(m);
}

/* ---- queue_list, queue_clean_tmp, queue_set_aside ---- */

static void test_list(void)
{
	static const char *const names[] = {"C", "A", "B10", "B9", ".hidden"};
	for (size_t i = 0; i < RG_ARRAY_LEN(names); i++) {
		char *rel = xasprintf("deferred/%s", names[i]);
		write_raw(rel, "x", 1);
		free(rel);
	}
	char **l = queue_list(qdir, "deferred");
	static const char *const want[] = {"deferred/A", "deferred/B10", "deferred/B9",
					   "deferred/C", NULL};
	CHECK(l != NULL, "queue_list(deferred) is NULL");
	for (size_t i = 0; l != NULL && i < RG_ARRAY_LEN(want); i++) {
		CHECK_STR_AT(__LINE__, l[i], want[i], "list entry");
		if (l[i] == NULL)
			break;
	}
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
	for (size_t i = 0; i < RG_ARRAY_LEN(names); i++) {
		char *rel = xasprintf("deferred/%s", names[i]);
		unlinkat(basedir_fd(qdir), rel, 0);
		free(rel);
	}
	l = queue_list(qdir, "deferred");
	CHECK(l != NULL && l[0] == NULL, "empty directory: want an empty list");
	free(l);
	CHECK(queue_list(qdir, "no-such-dir") == NULL, "missing directory: want NULL");
}

static void test_clean_tmp(void)
{
	write_raw("tmp/0000000000000001", "RGQ1\nid", 7);
	write_raw("tmp/0000000000000002", "", 0);
	write_raw("tmp/0000000000000003", "x", 1);
	struct queue_msg *m = commit_simple(1); /* acknowledged mail is not touched */
	CHECK(queue_clean_tmp(qdir) == 3, "queue_clean_tmp: want 3");
	CHECK(count_entries("tmp") == 0, "tmp/ not empty after queue_clean_tmp");
	CHECK(m->path && exists(m->path), "queue_clean_tmp removed an active file");
	CHECK(queue_clean_tmp(qdir) == 0, "queue_clean_tmp on an empty tmp/: want 0");
	if (m->path)
		unlinkat(basedir_fd(qdir), m->path, 0);
	queue_msg_free(m);
}

static void test_set_aside(void)
{
	struct queue_msg *m = commit_simple(1);
	if (m->path == NULL) {
		queue_msg_free(m);
		return;
	}
	struct strbuf before = read_at(basedir_fd(qdir), m->path);
	char *corrupt = xasprintf("corrupt/%s", m->id);
	queue_set_aside(qdir, m->path);
	CHECK(!exists(m->path), "%s still there", m->path);
	struct strbuf after = read_at(basedir_fd(qdir), corrupt);
	CHECK(before.len > 0 && same_bytes(&after, before.data, before.len),
	      "%s missing or different", corrupt);
	unlinkat(basedir_fd(qdir), corrupt, 0);
	strbuf_free(&before);
	strbuf_free(&after);
	free(corrupt);
	queue_msg_free(m);
}

/* ---- queue ids ---- */

#define IDS_PER_THREAD 10000
#define ID_THREADS 4

static bool id_well_formed(const char *id)
{
	if (strlen(id) != 16)
		return false;
	for (; *id; id++)
		if (!((*id >= '0' && *id <= '9') || (*id >= 'A' && *id <= 'F')))
			return false;
	return true;
}

/* make_ids - n ids; true if each is well formed and greater than the last. */
static bool make_ids(char (*ids)[QUEUE_ID_LEN + 1], size_t n)
{
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		queue_new_id(ids[i]);
		ok = ok && id_well_formed(ids[i]) && (i == 0 || strcmp(ids[i - 1], ids[i]) < 0);
	}
	return ok;
}

struct id_job {
	char (*ids)[QUEUE_ID_LEN + 1];
	bool ok;
};

static void *id_thread(void *arg)
{
	struct id_job *j = arg;
	j->ok = make_ids(j->ids, IDS_PER_THREAD);
	return NULL;
}

static int compare_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_ids(void)
{
	char (*ids)[QUEUE_ID_LEN + 1] = xcalloc(ID_THREADS * IDS_PER_THREAD, sizeof(*ids));
	CHECK(make_ids(ids, IDS_PER_THREAD), "ids not 16 upper-case hex digits, strictly increasing");
	CHECK(id_well_formed(ids[0]), "id \"%s\" not 16 upper-case hex digits", ids[0]);

	pthread_t t[ID_THREADS];
	struct id_job jobs[ID_THREADS];
	for (size_t i = 0; i < ID_THREADS; i++) {
		jobs[i] = (struct id_job){ids + i * IDS_PER_THREAD, false};
		pthread_create(&t[i], NULL, id_thread, &jobs[i]);
	}
	for (size_t i = 0; i < ID_THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK(jobs[i].ok, "thread %zu: ids not increasing or malformed", i);
	}
	qsort(ids, ID_THREADS * IDS_PER_THREAD, sizeof(*ids), compare_id);
	size_t dups = 0;
	for (size_t i = 1; i < ID_THREADS * IDS_PER_THREAD; i++)
		dups += strcmp(ids[i - 1], ids[i]) == 0;
	CHECK(dups == 0, "%zu duplicate ids across %d threads", dups, ID_THREADS);
	free(ids);
}

/* ---- dirsync under concurrency ---- */

#define SYNC_THREADS 8
#define SYNC_ROUNDS 200

struct sync_job {
	int n;
	int fails;
};

static void *sync_thread(void *arg)
{
	struct sync_job *j = arg;
	int base = basedir_fd(qdir);
	for (int i = 0; i < SYNC_ROUNDS; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "sync/t%d-%d", j->n, i);
		int fd = openat(base, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || close(fd) != 0 || !dirsync(qdir, "sync"))
			j->fails++;
	}
	return NULL;
}

static void test_dirsync_threads(void)
{
	char *p = xasprintf("%s/sync", qdir);
	CHECK(mkdir(p, 0700) == 0, "mkdir %s", p);
	free(p);
	pthread_t t[SYNC_THREADS];
	struct sync_job jobs[SYNC_THREADS];
	for (int i = 0; i < SYNC_THREADS; i++) {
		jobs[i] = (struct sync_job){i, 0};
		pthread_create(&t[i], NULL, sync_thread, &jobs[i]);
	}
	for (int i = 0; i < SYNC_THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK(jobs[i].fails == 0, "thread %d: %d of %d create+dirsync failed", i,
		      jobs[i].fails, SYNC_ROUNDS);
	}
	CHECK(count_entries("sync") == SYNC_THREADS * SYNC_ROUNDS, "sync/ has %d files, want %d",
	      count_entries("sync"), SYNC_THREADS * SYNC_ROUNDS);
	CHECK(dirsync(qdir, "."), "dirsync(base, \".\")");
	CHECK(!dirsync(qdir, "no-such-dir"), "dirsync of a missing directory succeeded");
}

/* A spooled message as the session makes it: text in two writes, header
 * lines prepended and (maybe) the junk mark after the end-of-data stages,
 * then the commit, which rewrites tmp/ID. Table: what is prepended, junk. */
static void test_spool_prepend(void)
{
	static const struct {
		int line;
		const char *prepend;
		bool junk;
	} t[] = {
		{__LINE__, "", false},
		{__LINE__, "Authentication-Results: mx.example; spf=pass\r\n", false},
		{__LINE__, "", true},
		{__LINE__, "Received-SPF: fail\r\nAuthentication-Results: mx.example; dmarc=fail\r\n",
		 true},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(t); i++) {
		struct msg_spec s = {t[i].line, 1700000000, "127.0.0.9", "localhost", "h.example",
				     "s@example.com", "", 0, {{"r0", "r0", "localhost",
							     ADDR_CLASS_LOCAL}}, 1};
		struct queue_msg *m = build(&s);
		struct queue_spool *sp = queue_spool_new(m);
		char err[256] = "";
		static const char a[] = "Subject: big\r\n\r\nfirst part\r\n", b[] = "second\r\n";
		CHECK_AT(t[i].line, queue_spool_write(qdir, sp, a, sizeof(a) - 1, err, sizeof(err)),
			 "write: %s", err);
		uint64_t off = 0;
		int fd = queue_spool_open_text(qdir, sp, &off);
		char got[64] = "";
		CHECK_AT(t[i].line, fd >= 0 && pread(fd, got, 7, (off_t)off) == 7 &&
			 memcmp(got, "Subject", 7) == 0, "the spooled text from its offset");
		if (fd >= 0)
			close(fd);
		queue_spool_prepend(sp, t[i].prepend, strlen(t[i].prepend));
		if (t[i].junk)
			queue_spool_junk(sp);
		strbuf_append(&m->body, b, sizeof(b) - 1); /* the tail, as server_commit does */
		CHECK_AT(t[i].line, queue_spool_write(qdir, sp, m->body.data, m->body.len, err,
						      sizeof(err)), "write: %s", err);
		CHECK_AT(t[i].line, queue_spool_commit(qdir, sp, m, err, sizeof(err)), "commit: %s",
			 err);
		struct queue_msg *l = load(m->path);
		char *want = xasprintf("%s%s%s", t[i].prepend, a, b);
		CHECK_AT(t[i].line, l != NULL && l->body.len == strlen(want) &&
			 memcmp(l->body.data, want, l->body.len) == 0, "text after the commit");
		CHECK_AT(t[i].line, l != NULL && l->junk == t[i].junk, "junk mark");
		CHECK_AT(t[i].line, l != NULL && l->n_rcpts == 1 && strcmp(l->rcpts[0].local, "r0") == 0,
			 "envelope");
		unlinkat(basedir_fd(qdir), m->path, 0);
		free(want);
		queue_msg_free(l);
		queue_msg_free(m);
	}
}

int main(void)
{
	char err[256] = "";
	if (mkdtemp(qdir) == NULL || !basedir_open(qdir) || !queue_init(qdir, err, sizeof(err))) {
		CHECK(false, "set-up in %s failed: %s", qdir, err);
		return check_summary("queue");
	}
	test_init();
	for (size_t i = 0; i < RG_ARRAY_LEN(trips); i++)
		check_trip(&trips[i]);
	test_exact_format();
	test_damaged();
	test_state();
	test_state_compaction();
	test_dsn_fields();
	test_finish_all_done();
	test_finish_partial();
	test_list();
	test_clean_tmp();
	test_set_aside();
	test_ids();
	test_dirsync_threads();
	test_spool_prepend();
	CHECK(count_entries("active") == 0 && count_entries("tmp") == 0,
	      "leftovers in active/ or tmp/");
	dirsync_cleanup();
	basedir_close_all();
	remove_tree(qdir);
	return check_summary("queue");
}
