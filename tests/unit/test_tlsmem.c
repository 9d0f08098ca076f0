/*
 * test_tlsmem.c - the TLS downgrade memory: the level a session's TLS
 * description means, the file's lines, and the table's rules (the best level
 * only rises; forget; a file read back), as tables.
 */
#include "check.h"
#include "files.h"
#include "tlspol/tlsmem.h"
#include "util/basedir.h"
#include "util/dirsync.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	int line;
	const char *desc;
	enum tlsmem_level want;
} level_rows[] = {
	{__LINE__, "none", TLSMEM_PLAIN},
	{__LINE__, "", TLSMEM_PLAIN},
	{__LINE__, "TLSv1.3 TLS_AES_256_GCM_SHA384 verified", TLSMEM_VERIFIED},
	{__LINE__, "TLSv1.3 TLS_AES_256_GCM_SHA384 unverified (self-signed certificate)",
	 TLSMEM_TLS},
	{__LINE__, "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 unverified (name mismatch: verified)",
	 TLSMEM_TLS}, /* "verified" inside the reason is not the verdict */
	{__LINE__, "TLSv1.2 x unverified", TLSMEM_TLS},
};

static const struct {
	int line;
	const char *in;
	bool ok;
	const char *domain;
	enum tlsmem_level best;
	long since, last;
} line_rows[] = {
	{__LINE__, "example.com verified 100 200", true, "example.com", TLSMEM_VERIFIED, 100, 200},
	{__LINE__, "Example.COM tls 5 5", true, "example.com", TLSMEM_TLS, 5, 5},
	{__LINE__, "mx.example.net plain 0 0", true, "mx.example.net", TLSMEM_PLAIN, 0, 0},
	{__LINE__, "example.com unknown 1 2", false, NULL, 0, 0, 0},
	{__LINE__, "example.com verified 200 100", false, NULL, 0, 0, 0}, /* last < since */
	{__LINE__, "example.com verified -1 100", false, NULL, 0, 0, 0},
	{__LINE__, "example.com verified 1 2 extra", false, NULL, 0, 0, 0},
	{__LINE__, "example.com verified 1", false, NULL, 0, 0, 0},
	{__LINE__, "exa/mple.com verified 1 2", false, NULL, 0, 0, 0},
	{__LINE__, "a..b verified 1 2", false, NULL, 0, 0, 0},
	{__LINE__, "", false, NULL, 0, 0, 0},
};

static const struct {
	int line;
	const char *s;
	bool ok;
} domain_rows[] = {
	{__LINE__, "example.com", true},   {__LINE__, "_x.example.org", true},
	{__LINE__, "127.0.0.1", true},     {__LINE__, "", false},
	{__LINE__, ".example.com", false}, {__LINE__, "-x.example", false},
	{__LINE__, "a b", false},          {__LINE__, "x\n", false},
	{__LINE__, "ex..ample", false},    {__LINE__, "../etc", false},
};

/* "DOMAIN LEVEL" from another host (shared_state): only raises, only clean names. */
static const struct {
	int line;
	const char *in;
	bool ok;
	const char *domain;
	enum tlsmem_level best;
} shared_rows[] = {
	{__LINE__, "example.com verified", true, "example.com", TLSMEM_VERIFIED},
	{__LINE__, "MX.Example.NET tls", true, "mx.example.net", TLSMEM_TLS},
	{__LINE__, "example.com plain", false, NULL, 0}, /* lowers nothing, raises nothing */
	{__LINE__, "example.com unknown", false, NULL, 0},
	{__LINE__, "example.com Verified", false, NULL, 0},
	{__LINE__, "example.com verified x", false, NULL, 0},
	{__LINE__, "example.com", false, NULL, 0},
	{__LINE__, "exa\r\nmple.com verified", false, NULL, 0},
	{__LINE__, "ex\001ample.com verified", false, NULL, 0},
	{__LINE__, "../etc verified", false, NULL, 0},
	{__LINE__, "", false, NULL, 0},
};

static void test_shared(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(shared_rows); i++) {
		struct tlsmem_entry e = {0};
		bool ok = tlsmem_parse_shared(shared_rows[i].in, &e);
		CHECK_AT(shared_rows[i].line, ok == shared_rows[i].ok, "shared \"%s\"",
			 shared_rows[i].in);
		if (ok && shared_rows[i].ok)
			CHECK_AT(shared_rows[i].line, strcmp(e.domain, shared_rows[i].domain) == 0 &&
				 e.best == shared_rows[i].best, "fields of \"%s\"", shared_rows[i].in);
	}
	char big[700]; /* longer than any line: refused before it is scanned */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big + 600, " verified", 9);
	struct tlsmem_entry e;
	CHECK(!tlsmem_parse_shared(big, &e), "an over-long shared line");
}

static void test_pure(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(level_rows); i++)
		CHECK_AT(level_rows[i].line, tlsmem_level_of(level_rows[i].desc) == level_rows[i].want,
			 "level of \"%s\"", level_rows[i].desc);
	for (size_t i = 0; i < RG_ARRAY_LEN(line_rows); i++) {
		struct tlsmem_entry e = {0};
		bool ok = tlsmem_parse_line(line_rows[i].in, &e);
		CHECK_AT(line_rows[i].line, ok == line_rows[i].ok, "parse \"%s\"", line_rows[i].in);
		if (!ok || !line_rows[i].ok)
			continue;
		CHECK_STR_AT(line_rows[i].line, e.domain, line_rows[i].domain, "domain");
		CHECK_AT(line_rows[i].line, e.best == line_rows[i].best && e.since == line_rows[i].since
			 && e.last == line_rows[i].last, "fields of \"%s\"", line_rows[i].in);
		struct strbuf sb; /* formatting gives the line back */
		strbuf_init(&sb);
		tlsmem_format_line(&e, &sb);
		struct tlsmem_entry again = {0};
		sb.data[sb.len - 1] = '\0';
		CHECK_AT(line_rows[i].line, tlsmem_parse_line(sb.data, &again) &&
			 memcmp(&again, &e, sizeof(e)) == 0, "round trip of \"%s\"", sb.data);
		strbuf_free(&sb);
	}
	for (size_t i = 0; i < RG_ARRAY_LEN(domain_rows); i++)
		CHECK_AT(domain_rows[i].line, tlsmem_domain_valid(domain_rows[i].s) == domain_rows[i].ok,
			 "domain \"%s\"", domain_rows[i].s);
}

/* A sequence of notes and what the entry is after each: the best only rises. */
static const struct {
	int line;
	const char *domain;
	enum tlsmem_level seen;
	long now;
	enum tlsmem_level best;
	long since, last;
} note_rows[] = {
	{__LINE__, "example.com", TLSMEM_PLAIN, 10, TLSMEM_PLAIN, 10, 10},
	{__LINE__, "example.com", TLSMEM_VERIFIED, 20, TLSMEM_VERIFIED, 20, 20},
	{__LINE__, "EXAMPLE.com", TLSMEM_PLAIN, 30, TLSMEM_VERIFIED, 20, 20}, /* less: kept */
	{__LINE__, "example.com", TLSMEM_TLS, 40, TLSMEM_VERIFIED, 20, 20},
	{__LINE__, "example.com", TLSMEM_VERIFIED, 50, TLSMEM_VERIFIED, 20, 50},
	{__LINE__, "example.com", TLSMEM_UNKNOWN, 60, TLSMEM_VERIFIED, 20, 50},
};

static void test_table(const char *dir)
{
	char err[512];
	struct tlsmem *m = tlsmem_open(NULL, dir, err, sizeof(err));
	CHECK(m != NULL, "open an empty memory: %s", err);
	if (m == NULL)
		return;
	for (size_t i = 0; i < RG_ARRAY_LEN(note_rows); i++) {
		tlsmem_note(m, note_rows[i].domain, note_rows[i].seen, note_rows[i].now);
		const struct tlsmem_entry *e = tlsmem_get(m, "example.com");
		CHECK_AT(note_rows[i].line, e != NULL && e->best == note_rows[i].best &&
			 e->since == note_rows[i].since && e->last == note_rows[i].last,
			 "after noting %s", tlsmem_level_name(note_rows[i].seen));
	}
	tlsmem_note(m, "b.example.org", TLSMEM_TLS, 70);
	tlsmem_note(m, "bad name", TLSMEM_TLS, 70);
	CHECK(tlsmem_save_now(m, err, sizeof(err)), "save: %s", err);
	tlsmem_free(m);
	m = tlsmem_open(NULL, dir, err, sizeof(err)); /* read back */
	CHECK(m != NULL, "reopen: %s", err);
	if (m == NULL)
		return;
	struct strbuf sb;
	strbuf_init(&sb);
	tlsmem_list(m, &sb);
	CHECK_STR_AT(__LINE__, sb.data,
		     "b.example.org tls since 1970-01-01T00:01:10Z last 1970-01-01T00:01:10Z\n"
		     "example.com verified since 1970-01-01T00:00:20Z last 1970-01-01T00:00:50Z\n",
		     "listing read back");
	CHECK(tlsmem_forget(m, "Example.Com") && tlsmem_get(m, "example.com") == NULL, "forget");
	CHECK(!tlsmem_forget(m, "example.com"), "forget twice");
	strbuf_free(&sb);
	tlsmem_free(m); /* saves the change */
	struct strbuf file = read_at(basedir_fd(dir), TLSMEM_FILE);
	CHECK_STR_AT(__LINE__, file.data, "# relayguard tls-memory 1\nb.example.org tls 70 70\n",
		     "file after forget");
	strbuf_free(&file);
}

static void test_bad_file(const char *dir)
{
	static const char text[] = "# relayguard tls-memory 1\ngood.example verified 1 2\n"
				   "broken line\ndup.example tls 1 1\ndup.example plain 1 1\n";
	int fd = openat(basedir_fd(dir), TLSMEM_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, text, sizeof(text) - 1) == (ssize_t)sizeof(text) - 1, "write");
	if (fd >= 0)
		close(fd);
	char err[512];
	struct tlsmem *m = tlsmem_open(NULL, dir, err, sizeof(err));
	CHECK(m != NULL, "a file with bad lines still opens: %s", err);
	CHECK(m && tlsmem_get(m, "good.example") && tlsmem_get(m, "dup.example") &&
	      tlsmem_get(m, "dup.example")->best == TLSMEM_TLS, "good lines kept, first wins");
	tlsmem_free(m);
}

/* test_full - a full memory still learns: expired entries go first, else the
 * least recently seen one that is not verified; expired lines go at load;
 * nothing expires when the clock went back. */
static void test_full(const char *dir)
{
	static const char text[] = "# relayguard tls-memory 1\n"
				   "gone.example verified 100 100\n"
				   "v.example verified 900 900\n";
	int fd = openat(basedir_fd(dir), TLSMEM_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, text, sizeof(text) - 1) == (ssize_t)sizeof(text) - 1, "write");
	if (fd >= 0)
		close(fd);
	char err[512];
	struct tlsmem *m = tlsmem_open(NULL, dir, err, sizeof(err));
	CHECK(m != NULL, "open: %s", err);
	if (m == NULL)
		return;
	tlsmem_limit(m, 500, 3, 1000); /* gone.example: last seen 900 s ago */
	CHECK(tlsmem_get(m, "gone.example") == NULL && tlsmem_get(m, "v.example"),
	      "expired line dropped at load");
	tlsmem_note(m, "old.example", TLSMEM_TLS, 950);
	tlsmem_note(m, "new.example", TLSMEM_PLAIN, 1000);
	tlsmem_note(m, "a.example", TLSMEM_VERIFIED, 1010); /* full: old.example goes */
	CHECK(tlsmem_get(m, "a.example") && tlsmem_get(m, "old.example") == NULL &&
	      tlsmem_get(m, "v.example") && tlsmem_get(m, "new.example"),
	      "full: the least recently seen unverified entry went, not the older verified one");
	tlsmem_note(m, "b.example", TLSMEM_VERIFIED, 1500); /* v.example expired (900 + 500) */
	CHECK(tlsmem_get(m, "b.example") && tlsmem_get(m, "v.example") == NULL &&
	      tlsmem_get(m, "new.example"), "full: the expired entry went first");
	tlsmem_limit(m, 500, 3, 10); /* the clock went back: nothing is past its lifetime */
	CHECK(tlsmem_get(m, "b.example") && tlsmem_get(m, "new.example"), "clock back: kept");
	tlsmem_free(m);
	unlinkat(basedir_fd(dir), TLSMEM_FILE, 0);
}

int main(void)
{
	char dir[] = "/tmp/rg-tlsmem-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 2;
	test_pure();
	test_shared();
	test_table(dir);
	test_bad_file(dir);
	test_full(dir);
	unlinkat(basedir_fd(dir), TLSMEM_FILE, 0);
	basedir_close_all();
	dirsync_cleanup();
	rmdir(dir);
	return check_summary("tlsmem");
}
