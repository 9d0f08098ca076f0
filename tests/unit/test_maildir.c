/*
 * test_maildir.c - local delivery into a Maildir: the directory layout, the
 * stored bytes (CRLF in, LF on disk), Dovecot file names with S= and W=,
 * and the path checks that keep a mailbox name inside the mailbox base; a
 * queued copy (Return-Path:, Delivered-To:, its deterministic name), finding
 * it again in new/ or cur/, and the start-up removal of our tmp/ orphans.
 *
 * The mailbox base is a fresh mkdtemp directory, registered with basedir
 * first as the server does at start-up, and removed at the end.
 */
#include "check.h"
#include "files.h"
#include "delivery/delivered.h"
#include "delivery/maildir.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* base sits one level down, so a name that climbs out ("../x") would land
 * in top, where it can be seen */
static char top[] = "/tmp/rg-test-maildir-XXXXXX";
static char base[sizeof(top) + 8];

/* ---- file helpers ---- */

/* entries - dir_entries() under the mailbox base. */
static int entries(const char *rel, char *first, size_t len)
{
	return dir_entries(base, rel, first, len);
}

static bool is_dir(const char *rel)
{
	char *p = xasprintf("%s/%s", base, rel);
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return ok;
}



/* ---- the Dovecot file name ---- */

/* host_escaped - gethostname() with '/' and ':' as Dovecot writes them. */
static void host_escaped(char *out, size_t len)
{
	char host[256] = "";
	if (gethostname(host, sizeof(host)) != 0)
		rg_strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	size_t o = 0;
	for (const char *p = host; *p && o + 5 < len; p++) {
		if (*p == '/' || *p == ':') {
			memcpy(out + o, *p == '/' ? "\\057" : "\\072", 4);
			o += 4;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

struct dname {
	long long secs;
	long usecs, pid;
	unsigned long q;
	char host[512];
	unsigned long long size, vsize;
};

static bool take_num(const char **p, const char *prefix, unsigned long long *v)
{
	size_t n = strlen(prefix);
	if (strncmp(*p, prefix, n) != 0 || (*p)[n] < '0' || (*p)[n] > '9')
		return false;
	char *end;
	*v = strtoull(*p + n, &end, 10);
	*p = end;
	return true;
}

/* parse_name - <secs>.rgM<usecs>P<pid>Q<n>.<host>,S=<size>,W=<vsize>, nothing more. */
static bool parse_name(const char *s, struct dname *d)
{
	unsigned long long v[4];
	const char *p = s;
	if (!take_num(&p, "", &v[0]) || !take_num(&p, ".rgM", &v[1]) || !take_num(&p, "P", &v[2]) ||
	    !take_num(&p, "Q", &v[3]) || *p++ != '.')
		return false;
	const char *comma = strstr(p, ",S=");
	if (comma == NULL || (size_t)(comma - p) >= sizeof(d->host))
		return false;
	memcpy(d->host, p, (size_t)(comma - p));
	d->host[comma - p] = '\0';
	p = comma;
	if (!take_num(&p, ",S=", &d->size) || !take_num(&p, ",W=", &d->vsize) || *p != '\0')
		return false;
	d->secs = (long long)v[0];
	d->usecs = (long)v[1];
	d->pid = (long)v[2];
	d->q = (unsigned long)v[3];
	return true;
}

/* ---- delivery rows ---- */

static const struct row {
	int line;
	const char *in;   /* as received: CRLF line ends */
	size_t in_len;
	const char *want; /* as stored: LF line ends */
	size_t want_len;
} rows[] = {
#define ROW(in, want) {__LINE__, in, sizeof(in) - 1, want, sizeof(want) - 1}
	ROW("Subject: hi\r\n\r\nhello\r\n", "Subject: hi\n\nhello\n"),
	/* empty lines in the body stay empty lines */
	ROW("A: b\r\n\r\nx\r\n\r\n\r\ny\r\n", "A: b\n\nx\n\n\ny\n"),
	/* no trailing CRLF: the last line is kept as it is */
	ROW("A: b\r\n\r\nno end", "A: b\n\nno end"),
	/* a CR not followed by LF is content, not a line end: kept, and it
	 * counts once in W= as it did on the wire */
	ROW("A: b\r\n\r\nx\ry\r\n", "A: b\n\nx\ry\n"),
	ROW("A: b\r\n\r\nends in CR\r", "A: b\n\nends in CR\r"),
	/* only the CR right before the LF goes */
	ROW("A: b\r\n\r\nx\r\r\n", "A: b\n\nx\r\n"),
	/* NUL bytes pass through untouched */
	ROW("A: b\r\n\r\na\0b\r\n", "A: b\n\na\0b\n"),
	ROW("\r\n", "\n"),
	ROW("", ""),
#undef ROW
};

/* check_name - the Dovecot pattern, with S= the stored and W= the input size. */
static void check_name(int line, const char *name, size_t stored, size_t in_len)
{
	struct dname d;
	char host[512];
	host_escaped(host, sizeof(host));
	if (!parse_name(name, &d)) {
		CHECK_AT(line, false, "name \"%s\" does not match the Dovecot pattern", name);
		return;
	}
	/* gettimeofday as the name does: time() may lag it by a clock tick */
	struct timeval tv;
	gettimeofday(&tv, NULL);
	long long now = (long long)tv.tv_sec;
	CHECK_AT(line, d.secs <= now && d.secs >= now - 60, "secs %lld, now %lld", d.secs, now);
	CHECK_AT(line, d.usecs >= 0 && d.usecs < 1000000, "usecs %ld out of range", d.usecs);
	CHECK_AT(line, d.pid == (long)getpid(), "P%ld, want our pid %ld", d.pid, (long)getpid());
	CHECK_STR_AT(line, d.host, host, "host part");
	CHECK_AT(line, d.size == stored, "S=%llu, want %zu (the stored size)", d.size, stored);
	CHECK_AT(line, d.vsize == in_len, "W=%llu, want %zu (the CRLF size)", d.vsize, in_len);
}

static void check_row(const struct row *r)
{
	char path[4096] = "", newdir[4096] = "", err[256] = "", name[1024] = "";
	bool ok = maildir_deliver(base, "example.org", "rows", r->in, r->in_len, path,
				  sizeof(path), newdir, sizeof(newdir), err, sizeof(err));
	CHECK_AT(r->line, ok, "maildir_deliver: %s", err);
	if (!ok)
		return;
	CHECK_AT(r->line, entries("example.org/rows/new", name, sizeof(name)) == 1,
		 "new/ should hold exactly the one message");
	CHECK_AT(r->line, entries("example.org/rows/tmp", NULL, 0) == 0, "tmp/ not empty");
	char *want_path = xasprintf("%s/example.org/rows/new/%s", base, name);
	CHECK_STR_AT(r->line, path, want_path, "path");
	CHECK_STR_AT(r->line, newdir, "example.org/rows/new", "newdir");
	struct strbuf got = read_at(AT_FDCWD, want_path);
	CHECK_AT(r->line, got.len == r->want_len && memcmp(got.data ? got.data : "", r->want,
							   r->want_len) == 0,
		 "stored %zu bytes \"%s\", want %zu bytes \"%s\"", got.len, got.data ? got.data : "",
		 r->want_len, r->want);
	check_name(r->line, name, got.len, r->in_len);
	struct stat st;
	CHECK_AT(r->line, stat(want_path, &st) == 0 && (st.st_mode & 0777) == 0600,
		 "message not mode 0600");
	strbuf_free(&got);
	unlink(want_path);
	free(want_path);
}

/* A message larger than the 64 KiB write buffer, CRLFs across its edges. */
static void test_large(void)
{
	struct strbuf in, want;
	strbuf_init(&in);
	strbuf_init(&want);
	for (int i = 0; in.len < 200000; i++) {
		/* odd-length lines move the CRLFs across every buffer offset */
		char line[64];
		int n = snprintf(line, sizeof(line), "line %d%.*s", i, i % 7, "xxxxxxx");
		strbuf_append(&in, line, (size_t)n);
		strbuf_append(&in, "\r\n", 2);
		strbuf_append(&want, line, (size_t)n);
		strbuf_append(&want, "\n", 1);
	}
	struct row r = {__LINE__, in.data, in.len, want.data, want.len};
	check_row(&r);
	strbuf_free(&in);
	strbuf_free(&want);
}

/* ---- layout, names, durability ---- */

static void test_layout(void)
{
	char path[4096], newdir[4096], err[256] = "";
	static const char msg[] = "Subject: a\r\n\r\nb\r\n";
	bool ok = maildir_deliver(base, "example.com", "postmaster", msg, sizeof(msg) - 1, path,
				  sizeof(path), newdir, sizeof(newdir), err, sizeof(err));
	CHECK(ok, "maildir_deliver: %s", err);
	static const char *const dirs[] = {"example.com", "example.com/postmaster",
					   "example.com/postmaster/tmp",
					   "example.com/postmaster/new",
					   "example.com/postmaster/cur"};
	for (size_t i = 0; i < RG_ARRAY_LEN(dirs); i++)
		CHECK(is_dir(dirs[i]), "%s/%s is not a directory", base, dirs[i]);
	CHECK(entries("example.com/postmaster", NULL, 0) == 3, "mailbox: want only tmp, new, cur");
	CHECK(entries("example.com/postmaster/cur", NULL, 0) == 0, "cur/ not empty");
	CHECK_STR_AT(__LINE__, newdir, "example.com/postmaster/new", "newdir");
	/* the caller makes the rename durable with exactly this pair */
	CHECK(ok && dirsync(base, newdir), "dirsync(base, newdir): %s", strerror(errno));

	/* a second delivery to the now existing mailbox: a distinct name */
	char path2[4096], newdir2[4096];
	ok = maildir_deliver(base, "example.com", "postmaster", msg, sizeof(msg) - 1, path2,
			     sizeof(path2), newdir2, sizeof(newdir2), err, sizeof(err));
	CHECK(ok, "second maildir_deliver: %s", err);
	CHECK(strcmp(path, path2) != 0, "two deliveries share the name %s", path);
	CHECK(entries("example.com/postmaster/new", NULL, 0) == 2, "new/: want 2 messages");
	CHECK(entries("example.com/postmaster/tmp", NULL, 0) == 0, "tmp/ not empty");
	CHECK_STR_AT(__LINE__, newdir2, "example.com/postmaster/new", "second newdir");
	const char *n1 = strrchr(path, '/'), *n2 = strrchr(path2, '/');
	struct dname d1, d2;
	CHECK(n1 && n2 && parse_name(n1 + 1, &d1) && parse_name(n2 + 1, &d2) && d1.q != d2.q,
	      "the Q counter must differ: %s vs %s", path, path2);
}

/* ---- unsafe names ---- */

static const struct comp {
	int line;
	const char *s;
	bool ok;
} comps[] = {
	{__LINE__, "postmaster", true},
	{__LINE__, "a.b", true},
	{__LINE__, "user+tag", true},
	{__LINE__, "a-b_c=d", true},
	{__LINE__, "trailing.", true},
	{__LINE__, "", false},
	{__LINE__, ".", false},
	{__LINE__, "..", false},
	{__LINE__, ".hidden", false},
	{__LINE__, "a/b", false},
	{__LINE__, "../x", false},
	{__LINE__, "x/..", false},
	{__LINE__, "/", false},
	{__LINE__, "x\n", false},
	{__LINE__, "\tx", false},
	{__LINE__, "\x7f", false},
	{__LINE__, "a\x7f", false},
	{__LINE__, "caf\xc3\xa9", false},
	{__LINE__, "\xff", false},
};

static void test_components(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(comps); i++) {
		bool ok = maildir_component_ok(comps[i].s);
		CHECK_AT(comps[i].line, ok == comps[i].ok, "maildir_component_ok(\"%s\") = %d", comps[i].s,
			 ok);
	}
	/* the length limit of one path component (NAME_MAX) */
	char name[257];
	memset(name, 'a', sizeof(name) - 1);
	name[256] = '\0';
	CHECK(!maildir_component_ok(name), "a 256-byte name is accepted");
	name[255] = '\0';
	CHECK(maildir_component_ok(name), "a 255-byte name is refused");
}

/* Every unsafe name, as domain and as local part: refused, nothing written. */
static void test_refused(void)
{
	static const char msg[] = "A: b\r\n\r\nx\r\n";
	for (size_t i = 0; i < RG_ARRAY_LEN(comps); i++) {
		if (comps[i].ok)
			continue;
		for (int as_domain = 0; as_domain < 2; as_domain++) {
			const char *domain = as_domain ? comps[i].s : "refused.example";
			const char *local = as_domain ? "user" : comps[i].s;
			char path[4096] = "", newdir[4096] = "", err[256] = "";
			int before = entries(".", NULL, 0);
			bool ok = maildir_deliver(base, domain, local, msg, sizeof(msg) - 1, path,
						  sizeof(path), newdir, sizeof(newdir), err,
						  sizeof(err));
			CHECK_AT(comps[i].line, !ok, "delivered to %s@%s", local, domain);
			CHECK_AT(comps[i].line, err[0] != '\0', "refused without an error message");
			CHECK_AT(comps[i].line, entries(".", NULL, 0) == before &&
							!is_dir("refused.example"),
				 "a refused delivery created something in %s", base);
			CHECK_AT(comps[i].line, path[0] == '\0', "path set on refusal: %s", path);
		}
	}
	/* the parent of base must not have gained anything either */
	CHECK(entries("..", NULL, 0) == 1, "something was written beside the mailbox base");
}

/* ---- a queued copy: the added lines, the deterministic name ---- */

static const struct copy_row {
	int line;
	const char *sender, *to; /* NULL: no line */
	const char *want;        /* the lines put before the text */
} copy_rows[] = {
	{__LINE__, "a@example.org", "bob@example.com",
	 "Return-Path: <a@example.org>\nDelivered-To: bob@example.com\n"},
	/* the null sender of a bounce */
	{__LINE__, "", "bob@example.com", "Return-Path: <>\nDelivered-To: bob@example.com\n"},
	/* a line break in a value would forge a header: control bytes go */
	{__LINE__, "a@x.example\r\nX-Evil: 1", "b\n@example.com",
	 "Return-Path: <a@x.exampleX-Evil: 1>\nDelivered-To: b@example.com\n"},
	{__LINE__, NULL, "bob@example.com", "Delivered-To: bob@example.com\n"},
	{__LINE__, NULL, NULL, ""},
};

/* text_fd - a file holding junk, then text at offset 5 (as a queue file). */
static int text_fd(const char *text, size_t len)
{
	char *p = xasprintf("%s/../queuefile", base);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, "head\n", 5) == 5 && write(fd, text, len) == (ssize_t)len;
	unlink(p);
	free(p);
	if (!ok && fd >= 0)
		close(fd);
	return ok ? fd : -1;
}

static void check_copy_row(const struct copy_row *r)
{
	static const char text[] = "Subject: c\r\n\r\nbody\r\n";
	char path[4096] = "", newdir[4096], err[256] = "", host[512], *want_name, *want;
	struct maildir_copy c = {r->sender, r->to, "rg0123456789ABCDEF_3", 1700000000};
	int fd = text_fd(text, sizeof(text) - 1);
	bool ok = fd >= 0 && maildir_deliver_copy(base, "example.org", "copy", &c, fd, 5,
						  sizeof(text) - 1, path, sizeof(path), newdir,
						  sizeof(newdir), err, sizeof(err));
	CHECK_AT(r->line, ok, "maildir_deliver_copy: %s", err);
	if (fd >= 0)
		close(fd);
	want = xasprintf("%sSubject: c\n\nbody\n", r->want);
	host_escaped(host, sizeof(host));
	size_t lines = (size_t)(r->sender != NULL) + (r->to != NULL);
	want_name = xasprintf("%s/example.org/copy/new/1700000000.rg0123456789ABCDEF_3.%s,S=%zu,W=%zu",
			      base, host, strlen(want), strlen(want) + lines + 3);
	CHECK_STR_AT(r->line, path, want_name, "the deterministic name");
	struct strbuf got = read_at(AT_FDCWD, want_name);
	CHECK_STR_AT(r->line, got.data ? got.data : "", want, "stored copy");
	CHECK_AT(r->line, entries("example.org/copy/tmp", NULL, 0) == 0, "tmp/ not empty");
	strbuf_free(&got);
	unlink(want_name);
	free(want_name);
	free(want);
}

/* put - a file base/rel with some text; false if it could not be made. */
static bool put(const char *rel)
{
	char *p = xasprintf("%s/%s", base, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, "x\n", 2) == 2;
	if (fd >= 0)
		close(fd);
	free(p);
	return ok;
}

/* A leftover tmp/ file of the same copy (a crash mid-write, in a run that
 * wrote through tmp/): one copy lands in new/. Through tmp/ the leftover is
 * replaced; an unnamed file never touches tmp/, and the start-up clean-up
 * (which runs before any delivery) removes it. */
static void test_copy_over_orphan(enum maildir_way way)
{
	bool via_tmp = way == MAILDIR_WAY_TMP;
	static const char text[] = "A: b\r\n\r\nx\r\n";
	char host[512], rel[1024], path[4096], newdir[4096], err[256] = "";
	host_escaped(host, sizeof(host));
	snprintf(rel, sizeof(rel), "example.org/copy/tmp/7.rgFEDCBA9876543210_0.%s", host);
	CHECK(put(rel), "cannot make the orphan %s", rel);
	struct maildir_copy c = {"a@example.org", "copy@example.org", "rgFEDCBA9876543210_0", 7};
	int fd = text_fd(text, sizeof(text) - 1);
	maildir_force_way(way);
	bool ok = fd >= 0 && maildir_deliver_copy(base, "example.org", "copy", &c, fd, 5,
						  sizeof(text) - 1, path, sizeof(path), newdir,
						  sizeof(newdir), err, sizeof(err));
	maildir_force_way(MAILDIR_WAY_AUTO);
	CHECK(ok, "delivery over a leftover tmp/ file (way %d): %s", way, err);
	CHECK(entries("example.org/copy/tmp", NULL, 0) == (via_tmp ? 0 : 1),
	      "tmp/ (way %d): the leftover %s", way, via_tmp ? "stayed" : "is gone");
	CHECK(entries("example.org/copy/new", NULL, 0) == 1, "new/: want the one copy");
	struct timespec start = {time(NULL), 0};
	size_t visited;
	maildir_clean_tmp(base, &start, 100000, &visited);
	CHECK(entries("example.org/copy/tmp", NULL, 0) == 0, "the clean-up left the leftover");
	if (fd >= 0)
		close(fd);
	unlink(path);
}

/* The same copy delivered twice (a retry after a crash between the copy
 * and the done mark, or a failed take-back): one file, whole, under the
 * same name, every way of writing. */
static void test_copy_twice(enum maildir_way way)
{
	static const char text[] = "A: b\r\n\r\ntwice\r\n";
	char path[2][4096], newdir[4096], err[256] = "", got[256];
	struct maildir_copy c = {"a@example.org", "twice@example.org", "rg0123456789ABCDEF_3", 8};
	maildir_force_way(way);
	for (int k = 0; k < 2; k++) {
		bool ok = maildir_deliver_copy_mem(base, "example.org", "twice", &c, text,
						   sizeof(text) - 1, path[k], sizeof(path[k]),
						   newdir, sizeof(newdir), err, sizeof(err));
		CHECK(ok, "delivery %d of the same copy (way %d): %s", k + 1, way, err);
	}
	maildir_force_way(MAILDIR_WAY_AUTO);
	CHECK(strcmp(path[0], path[1]) == 0, "two names: %s and %s", path[0], path[1]);
	CHECK(entries("example.org/twice/new", NULL, 0) == 1, "new/: want the one copy");
	CHECK(entries("example.org/twice/tmp", NULL, 0) == 0, "tmp/ not empty");
	FILE *f = fopen(path[0], "r");
	size_t n = f ? fread(got, 1, sizeof(got) - 1, f) : 0;
	got[n] = '\0';
	if (f)
		fclose(f);
	CHECK(strcmp(got, "Return-Path: <a@example.org>\nDelivered-To: twice@example.org\n"
			  "A: b\n\ntwice\n") == 0, "the copy holds: %s", got);
	unlink(path[0]);
}

/* ---- finding a copy delivered before ---- */

static void test_find_delivered(void)
{
	char path[4096] = "", dir[4096] = "", host[512], rel[1024], cur[1024];
	host_escaped(host, sizeof(host));
	snprintf(rel, sizeof(rel), "example.org/find/new/9.rg00000000000000AA_1.%s,S=2,W=3", host);
	CHECK(maildir_find_delivered(base, "example.org", "find", "rg00000000000000AA_1", path,
				     sizeof(path), dir, sizeof(dir)) == false,
	      "found a copy in a mailbox that does not exist");
	static const char *const subs[] = {"example.org", "example.org/find",
					   "example.org/find/new", "example.org/find/cur",
					   "example.org/find/tmp"};
	for (size_t i = 0; i < RG_ARRAY_LEN(subs); i++) {
		char *p = xasprintf("%s/%s", base, subs[i]);
		mkdir(p, 0700);
		free(p);
	}
	CHECK(put(rel), "cannot make %s", rel);
	bool found = maildir_find_delivered(base, "example.org", "find", "rg00000000000000AA_1",
					    path, sizeof(path), dir, sizeof(dir));
	char *want = xasprintf("%s/%s", base, rel);
	CHECK(found, "the copy in new/ was not found");
	CHECK_STR_AT(__LINE__, path, want, "path of the copy in new/");
	CHECK_STR_AT(__LINE__, dir, "example.org/find/new", "its directory");
	/* another recipient of the same message, and one whose index starts alike */
	CHECK(!maildir_find_delivered(base, "example.org", "find", "rg00000000000000AA_0", path,
				      sizeof(path), dir, sizeof(dir)), "index 0 matched index 1");
	CHECK(!maildir_find_delivered(base, "example.org", "find", "rg00000000000000AA_", path,
				      sizeof(path), dir, sizeof(dir)), "a prefix matched");
	/* a mail client read it: new/X became cur/X:2,S */
	snprintf(cur, sizeof(cur), "%s/example.org/find/cur/9.rg00000000000000AA_1.%s,S=2,W=3:2,S",
		 base, host);
	CHECK(rename(want, cur) == 0, "rename into cur/: %s", strerror(errno));
	found = maildir_find_delivered(base, "example.org", "find", "rg00000000000000AA_1", path,
				       sizeof(path), dir, sizeof(dir));
	CHECK(found, "the copy moved to cur/ was not found");
	CHECK_STR_AT(__LINE__, path, cur, "path of the copy in cur/");
	CHECK_STR_AT(__LINE__, dir, "example.org/find/cur", "its directory");
	free(want);
}

static const struct uniq {
	int line;
	const char *name;
	bool ok;
	uint64_t qid;
	uint32_t idx;
} uniqs[] = {
	{__LINE__, "1.rg000661D07F299DA8_0.host,S=1,W=2", true, 0x000661D07F299DA8ULL, 0},
	{__LINE__, "1700000000.rg0123456789ABCDEF_12.h.example:2,S", true, 0x0123456789ABCDEFULL, 12},
	{__LINE__, "1.rg0123456789abcdef_1.h", false, 0, 0}, /* queue ids are upper case */
	{__LINE__, "1.rg0123456789ABCDE_1.h", false, 0, 0},  /* 15 digits */
	{__LINE__, "1.rg0123456789ABCDEF_.h", false, 0, 0},
	{__LINE__, "1.rg0123456789ABCDEF_1x.h", false, 0, 0},
	{__LINE__, "1.rg0123456789ABCDEF_99999999999.h", false, 0, 0},
	{__LINE__, "1.rgM5P6Q7.h", false, 0, 0},                /* ours, not queued */
	{__LINE__, "1.M5P6Q7.h", false, 0, 0},                  /* Dovecot's */
	{__LINE__, "rg0123456789ABCDEF_1", false, 0, 0},
};

static void test_parse_unique(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(uniqs); i++) {
		uint64_t q = 0;
		uint32_t n = 0;
		bool ok = maildir_parse_unique(uniqs[i].name, &q, &n);
		CHECK_AT(uniqs[i].line, ok == uniqs[i].ok, "parse \"%s\": %d", uniqs[i].name, ok);
		CHECK_AT(uniqs[i].line, !ok || (q == uniqs[i].qid && n == uniqs[i].idx),
			 "parse \"%s\": %llx_%u", uniqs[i].name, (unsigned long long)q, n);
	}
}

/* The snapshot of earlier copies: taken at the first lookup, then kept. */
static void test_delivered_before(void)
{
	bool in_cur = false;
	CHECK(delivered_before(base, "example.org", "find", 0xAA, 1, &in_cur) && in_cur,
	      "the copy in cur/ (from test_find_delivered) is not in the snapshot");
	CHECK(!delivered_before(base, "example.org", "find", 0xAA, 0, &in_cur),
	      "another recipient of the same message counted as delivered");
	CHECK(!delivered_before(base, "example.org", "nobody", 0xAA, 1, &in_cur),
	      "a mailbox that does not exist holds a copy");
	/* written after the snapshot: not in it (this process's copies never are) */
	char host[512], rel[1024];
	host_escaped(host, sizeof(host));
	snprintf(rel, sizeof(rel), "example.org/find/new/9.rg00000000000000AA_2.%s,S=2,W=3", host);
	CHECK(put(rel), "cannot make %s", rel);
	CHECK(!delivered_before(base, "example.org", "find", 0xAA, 2, &in_cur),
	      "the snapshot was taken again");
	delivered_free();
	CHECK(delivered_before(base, "example.org", "find", 0xAA, 2, &in_cur) && !in_cur,
	      "a fresh snapshot does not see the copy in new/");
	delivered_free();
}

/* ---- orphans in tmp/ at start ---- */

/* aged - set rel's modification time (not through a link) to t. */
static void aged_ns(const char *rel, struct timespec t)
{
	char *p = xasprintf("%s/%s", base, rel);
	struct timespec ts[2] = {t, t};
	CHECK(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) == 0, "utimensat %s", p);
	free(p);
}

static void aged(const char *rel, time_t t)
{
	char *p = xasprintf("%s/%s", base, rel);
	struct timespec ts[2] = {{t, 0}, {t, 0}};
	CHECK(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) == 0, "utimensat %s", p);
	free(p);
}

/* Names: OLDQ/NEWQ stand for a queue id from before/after the start, PID
 * for this process's pid, NOWS for the start's second. */
static const struct orphan {
	int line;
	const char *rel;
	bool old, removed; /* old: the file time is an hour before the start */
} orphans[] = {
	/* a queued copy of a message older than the start: a crash left it */
	{__LINE__, "clean.example/u1/tmp/1.rgOLDQ_0.h", false, true},
	/* a copy of a message newer than the start: a delivery running now,
	 * whatever its file time says */
	{__LINE__, "clean.example/u2/tmp/1.rgNEWQ_0.h", true, false},
	/* fresh names: another pid's is an orphan, ours from after the start is not */
	{__LINE__, "clean.example/u2/tmp/1.rgM5P6Q7.h", false, true},
	{__LINE__, "clean.example/u2/tmp/NOWS.rgM1PPIDQ7.h", true, false},
	/* ours but neither form: by the file time */
	{__LINE__, "clean.example/u2/tmp/1.rgX.h", true, true},
	{__LINE__, "clean.example/u2/tmp/2.rgX.h", false, false},
	/* not ours: a mail client's or Dovecot's file */
	{__LINE__, "clean.example/u1/tmp/1.M5P6Q7.h", true, false},
	{__LINE__, "clean.example/u1/tmp/rg.x", true, false},
	{__LINE__, "clean.example/u1/new/1.rgOLDQ_0.h", true, false},
};

/* subst - rel with OLDQ, NEWQ, NOWS and PID filled in for a start at now. */
static char *subst(const char *rel, time_t now)
{
	char buf[512], val[64];
	const char *keys[] = {"OLDQ", "NEWQ", "NOWS", "PID"};
	snprintf(buf, sizeof(buf), "%s", rel);
	for (size_t k = 0; k < RG_ARRAY_LEN(keys); k++) {
		char *at = strstr(buf, keys[k]);
		if (at == NULL)
			continue;
		unsigned long long us = (unsigned long long)now * 1000000ull;
		if (k == 0 || k == 1)
			snprintf(val, sizeof(val), "%016llX", k == 0 ? us - 300000 : us + 1);
		else
			snprintf(val, sizeof(val), "%lld", k == 2 ? (long long)now : (long long)getpid());
		char rest[512];
		snprintf(rest, sizeof(rest), "%s", at + strlen(keys[k]));
		snprintf(at, sizeof(buf) - (size_t)(at - buf), "%s%s", val, rest);
	}
	return xstrdup(buf);
}

static void mk(const char *rel)
{
	char *p = xasprintf("%s/%s", base, rel);
	mkdir(p, 0700);
	free(p);
}

static void test_clean_tmp(void)
{
	static const char *const dirs[] = {"clean.example", "clean.example/u1",
		"clean.example/u1/tmp", "clean.example/u1/new", "clean.example/u2",
		"clean.example/u2/tmp", "../elsewhere", "../elsewhere/tmp"};
	for (size_t i = 0; i < RG_ARRAY_LEN(dirs); i++)
		mk(dirs[i]);
	time_t now = time(NULL);
	char *names[RG_ARRAY_LEN(orphans)];
	for (size_t i = 0; i < RG_ARRAY_LEN(orphans); i++) {
		names[i] = subst(orphans[i].rel, now);
		CHECK_AT(orphans[i].line, put(names[i]), "cannot make %s", names[i]);
		aged(names[i], orphans[i].old ? now - 3600 : now + 5);
	}
	/* a link out of the mailbox base is not followed */
	char *target = xasprintf("%s/elsewhere", top), *link = xasprintf("%s/clean.example/u3", base);
	CHECK(symlink(target, link) == 0, "symlink: %s", strerror(errno));
	CHECK(put("../elsewhere/tmp/1.rg0000000000000004_0.h"), "cannot make the linked file");
	aged("../elsewhere/tmp/1.rg0000000000000004_0.h", now - 3600);
	size_t visited, want = 0;
	struct timespec start = {now, 0};
	size_t n = maildir_clean_tmp(base, &start, 100000, &visited);
	for (size_t i = 0; i < RG_ARRAY_LEN(orphans); i++) {
		char *p = xasprintf("%s/%s", base, names[i]);
		bool gone = access(p, F_OK) != 0;
		CHECK_AT(orphans[i].line, gone == orphans[i].removed, "%s: removed %d, want %d",
			 names[i], gone, orphans[i].removed);
		want += orphans[i].removed;
		free(p);
		free(names[i]);
	}
	CHECK(n == want, "removed %zu, want %zu", n, want);
	CHECK(entries("../elsewhere/tmp", NULL, 0) == 1, "followed a link out of the base");
	/* the walk is bounded: with a budget of one Maildir, at most one is visited */
	maildir_clean_tmp(base, &start, 1, &visited);
	CHECK(visited == 1, "visited %zu Maildirs with a budget of 1", visited);
	free(target);
	free(link);
}

/* A restart within the same second as the crash: the orphan's queue id is
 * older than the start by a fraction of a second; a copy of a message that
 * arrived a microsecond after the start stays, though its file time is
 * earlier (a coarse clock). */
static void test_clean_tmp_same_second(void)
{
	mk("second.example");
	mk("second.example/u");
	mk("second.example/u/tmp");
	struct timespec start = {time(NULL), 600000000};
	unsigned long long us = (unsigned long long)start.tv_sec * 1000000ull + 600000;
	char *orphan = xasprintf("second.example/u/tmp/1.rg%016llX_0.h", us - 300000);
	char *fresh = xasprintf("second.example/u/tmp/1.rg%016llX_0.h", us + 1);
	CHECK(put(orphan) && put(fresh), "cannot make the files");
	aged_ns(orphan, (struct timespec){start.tv_sec, 300000000});
	aged_ns(fresh, (struct timespec){start.tv_sec, 590000000});
	size_t visited;
	size_t n = maildir_clean_tmp(base, &start, 100000, &visited);
	char *po = xasprintf("%s/%s", base, orphan), *pf = xasprintf("%s/%s", base, fresh);
	CHECK(access(po, F_OK) != 0, "an orphan from earlier in the same second stayed");
	CHECK(access(pf, F_OK) == 0, "the copy of a newer message was removed");
	CHECK(n >= 1, "removed %zu, want at least the orphan", n); /* + test_clean_tmp's */
	free(po);
	free(pf);
	free(orphan);
	free(fresh);
}

/* ---- a mailbox whose directories were replaced by symbolic links ---- */

/* The rows: which part of a mailbox is a link to a directory outside the
 * mailbox base (made with tmp/, new/ and cur/ inside). */
static const struct link_row {
	int line;
	const char *local;  /* the mailbox, under link.example */
	const char *dirs;   /* the real directories under link.example, in order */
	const char *linked; /* the part that is a link, under link.example */
	const char *target; /* where it points, under top */
} link_rows[] = {
	{__LINE__, "n", "n n/tmp n/cur", "n/new", "out-n"}, /* where the copy is linked */
	{__LINE__, "t", "t t/new t/cur", "t/tmp", "out-t"}, /* where the classic way writes */
	{__LINE__, "m", "", "m", "out-m"},                  /* the whole mailbox */
	{__LINE__, "j/.Junk", "j j/tmp j/new j/cur j/.Junk j/.Junk/tmp j/.Junk/cur",
	 "j/.Junk/new", "out-j"},                           /* a Maildir++ folder's new/ */
};

/* mk_list - the directories of a space-separated list, under prefix. */
static void mk_list(const char *prefix, const char *list)
{
	char buf[256];
	rg_strlcpy(buf, list, sizeof(buf));
	for (char *save, *w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
		char rel[512];
		snprintf(rel, sizeof(rel), "%s/%s", prefix, w);
		mk(rel);
	}
}

/* A mailbox directory (or its new/ or tmp/) replaced by a link to a
 * directory outside the base, by whoever can write in the mailbox: nothing
 * is written through it, any way of writing. The delivery fails (retried
 * later; the log says why) rather than put mail, an attacker's text under a
 * name we chose, somewhere else; or it lands in the mailbox proper. */
static void check_link_row(const struct link_row *r, enum maildir_way way)
{
	static const char text[] = "A: b\r\n\r\nlinked\r\n";
	char path[4096] = "", newdir[4096], err[256] = "", out[256];
	struct maildir_copy c = {"a@example.org", "l@link.example", "rg00000000000000CC_1", 9};
	mk("link.example");
	mk_list("link.example", r->dirs);
	snprintf(out, sizeof(out), "../%s", r->target);
	mk(out);
	mk_list(out, "tmp new cur");
	char *target = xasprintf("%s/%s", top, r->target);
	char *link = xasprintf("%s/link.example/%s", base, r->linked);
	CHECK_AT(r->line, symlink(target, link) == 0, "symlink %s: %s", link, strerror(errno));
	maildir_force_way(way);
	bool ok = maildir_deliver_copy_mem(base, "link.example", r->local, &c, text,
					   sizeof(text) - 1, path, sizeof(path), newdir,
					   sizeof(newdir), err, sizeof(err));
	maildir_force_way(MAILDIR_WAY_AUTO);
	char sub[300];
	int outside = entries(out, NULL, 0) - 3; /* beside its tmp/ new/ cur/ */
	for (int k = 0; k < 2; k++) {
		snprintf(sub, sizeof(sub), "%s/%s", out, k ? "new" : "tmp");
		outside += entries(sub, NULL, 0);
	}
	CHECK_AT(r->line, outside == 0, "way %d: a file was written through the link %s, in %s",
		 way, r->linked, target);
	char *real = ok ? realpath(path, NULL) : NULL;
	CHECK_AT(r->line, !ok || (real != NULL && strncmp(real, base, strlen(base)) == 0),
		 "way %d: delivered through the link %s to %s", way, r->linked,
		 real ? real : path);
	if (real != NULL)
		unlink(real);
	free(real);
	unlink(link);
	free(link);
	free(target);
}

/* A link in new/ under the copy's own name: not "delivered before". */
static void test_link_under_copy_name(enum maildir_way way)
{
	static const char text[] = "A: b\r\n\r\nx\r\n";
	char host[512], rel[1024], path[4096], newdir[4096], err[256] = "";
	host_escaped(host, sizeof(host));
	mk("link.example");
	mk("link.example/s");
	mk("link.example/s/tmp");
	mk("link.example/s/new");
	mk("link.example/s/cur");
	/* the size this copy has, so the name is exactly its own */
	static const char hdr[] = "Return-Path: <a@example.org>\nDelivered-To: s@link.example\n";
	size_t size = sizeof(hdr) - 1 + strlen("A: b\n\nx\n"), vsize = size + 2 + 3;
	snprintf(rel, sizeof(rel), "%s/link.example/s/new/9.rg00000000000000DD_0.%s,S=%zu,W=%zu",
		 base, host, size, vsize);
	char *target = xasprintf("%s/elsewhere-file", top);
	CHECK(symlink(target, rel) == 0, "symlink: %s", strerror(errno));
	struct maildir_copy c = {"a@example.org", "s@link.example", "rg00000000000000DD_0", 9};
	maildir_force_way(way);
	bool ok = maildir_deliver_copy_mem(base, "link.example", "s", &c, text, sizeof(text) - 1,
					   path, sizeof(path), newdir, sizeof(newdir), err,
					   sizeof(err));
	maildir_force_way(MAILDIR_WAY_AUTO);
	struct stat st;
	bool is_reg = ok && lstat(path, &st) == 0 && S_ISREG(st.st_mode);
	CHECK(!ok || is_reg, "way %d: a link under the copy's name counted as the copy (%s)",
	      way, path);
	if (ok && strcmp(path, rel) != 0)
		CHECK(false, "way %d: the copy's name is not %s but %s", way, rel, path);
	unlink(rel);
	free(target);
}

int main(void)
{
	/* registered with basedir first, as the mailbox base is at start-up */
	if (mkdtemp(top) == NULL) {
		CHECK(false, "mkdtemp failed: %s", strerror(errno));
		return check_summary("maildir");
	}
	snprintf(base, sizeof(base), "%s/mail", top);
	if (mkdir(base, 0700) != 0 || !basedir_open(base)) {
		CHECK(false, "set-up of %s failed: %s", base, strerror(errno));
		rmdir(base);
		rmdir(top);
		return check_summary("maildir");
	}
	test_components();
	test_refused();
	test_layout();
	for (int way = MAILDIR_WAY_TMP; way >= MAILDIR_WAY_AUTO; way--) { /* every way */
		maildir_force_way((enum maildir_way)way);
		for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++)
			check_row(&rows[i]);
		test_large();
		for (size_t i = 0; i < RG_ARRAY_LEN(copy_rows); i++)
			check_copy_row(&copy_rows[i]);
	}
	maildir_force_way(MAILDIR_WAY_AUTO);
	for (int way = MAILDIR_WAY_TMP; way >= MAILDIR_WAY_AUTO; way--) {
		test_copy_over_orphan((enum maildir_way)way);
		test_copy_twice((enum maildir_way)way);
	}
	for (int way = MAILDIR_WAY_TMP; way >= MAILDIR_WAY_AUTO; way--) {
		for (size_t i = 0; i < RG_ARRAY_LEN(link_rows); i++)
			check_link_row(&link_rows[i], (enum maildir_way)way);
		test_link_under_copy_name((enum maildir_way)way);
	}
	test_find_delivered();
	test_parse_unique();
	test_delivered_before();
	test_clean_tmp();
	test_clean_tmp_same_second();
	dirsync_cleanup();
	basedir_close_all();
	remove_tree(top);
	return check_summary("maildir");
}
