/*
 * test_mtasts.c - MTA-STS (RFC 8461) syntax and matching, as tables: the TXT
 * record (3.1), the policy file (3.2), MX patterns (4.1), cache lines.
 */
#include "check.h"
#include "files.h"
#include "tlspol/mtasts.h"
#include "util/basedir.h"
#include "util/dirsync.h"

#include <stdlib.h>
#include <string.h>

static const struct {
	int line;
	const char *txt;
	bool ok;
	const char *id;
} txt_rows[] = {
	{__LINE__, "v=STSv1; id=20160831085700Z;", true, "20160831085700Z"},
	{__LINE__, "v=STSv1;id=abc", true, "abc"},
	{__LINE__, "v=STSv1; ext=1; id=X1 ;", true, "X1"},
	{__LINE__, "id=abc; v=STSv1", false, NULL},              /* v= must come first */
	{__LINE__, "v=STSv2; id=abc", false, NULL},
	{__LINE__, "v=STSv1", false, NULL},                      /* no id */
	{__LINE__, "v=STSv1; id=", false, NULL},
	{__LINE__, "v=STSv1; id=a-b", false, NULL},              /* alphanumeric only */
	{__LINE__, "v=STSv1; id=123456789012345678901234567890123", false, NULL}, /* 33 */
};

#define MX4(a) "mx: " a "1.example\nmx: " a "2.example\nmx: " a "3.example\nmx: " a "4.example\n"

static const struct {
	int line;
	const char *text;
	bool ok;
	enum sts_mode mode;
	unsigned long long max_age;
	size_t n_mx;
	const char *err;
} policy_rows[] = {
	{__LINE__, "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
		   "max_age: 604800\r\n", true, STS_ENFORCE, 604800, 2, NULL},
	{__LINE__, "version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 0\n", true,
	 STS_TESTING, 0, 1, NULL},
	{__LINE__, "version: STSv1\nmode: none\nmax_age: 86400\n", true, STS_NONE, 86400, 0, NULL},
	{__LINE__, "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nfoo: bar\n", true,
	 STS_ENFORCE, 86400, 1, NULL},                            /* extensions ignored */
	{__LINE__, "version: STSv1\nmode: enforce\nmax_age: 86400\n", false, 0, 0, 0, "missing mx"},
	{__LINE__, "mode: enforce\nmx: a.example\nmax_age: 86400\n", false, 0, 0, 0,
	 "missing version"},
	{__LINE__, "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", false, 0, 0, 0,
	 "mode \"strict\" is not enforce, testing or none"},
	{__LINE__, "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", false, 0, 0,
	 0, "max_age \"31557601\" is not 0..31557600"},
	{__LINE__, "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", false, 0, 0, 0,
	 "max_age \"-1\" is not 0..31557600"},
	{__LINE__, "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", false, 0, 0, 0,
	 "mx \"*.*.example\" is not a host name pattern"},
	{__LINE__, "version: STSv1\nmode: enforce\nmax_age: 1\n" MX4("a") MX4("b") MX4("c") MX4("d")
		   "mx: e.example\n", true, STS_ENFORCE, 1, STS_MX_MAX, NULL}, /* 17: the 17th ignored */
	{__LINE__, "<html>not a policy</html>\n", false, 0, 0, 0, "line without ':'"},
};

static const struct {
	int line;
	const char *host;
	bool match;
} mx_rows[] = {
	{__LINE__, "mail.example.com", true},
	{__LINE__, "MAIL.Example.COM", true},
	{__LINE__, "mx1.example.net", true},   /* *.example.net */
	{__LINE__, "a.b.example.net", false},  /* the wildcard is one label */
	{__LINE__, "example.net", false},
	{__LINE__, ".example.net", false},
	{__LINE__, "mail.example.com.evil.test", false},
	{__LINE__, "xmail.example.com", false},
};

static void test_txt(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(txt_rows); i++) {
		char id[STS_ID_MAX + 1] = "";
		bool ok = sts_parse_txt(txt_rows[i].txt, id, sizeof(id));
		CHECK_AT(txt_rows[i].line, ok == txt_rows[i].ok, "\"%s\"", txt_rows[i].txt);
		if (ok && txt_rows[i].ok)
			CHECK_STR_AT(txt_rows[i].line, id, txt_rows[i].id, "id");
	}
}

static void test_policy(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(policy_rows); i++) {
		struct sts_policy p;
		char err[256] = "";
		memset(&p, 0, sizeof(p));
		bool ok = sts_parse_policy(policy_rows[i].text, strlen(policy_rows[i].text), &p, err,
					   sizeof(err));
		CHECK_AT(policy_rows[i].line, ok == policy_rows[i].ok, "parse: %s", err);
		if (!policy_rows[i].ok) {
			CHECK_STR_AT(policy_rows[i].line, err, policy_rows[i].err, "error");
			continue;
		}
		CHECK_AT(policy_rows[i].line, p.mode == policy_rows[i].mode &&
			 p.max_age == policy_rows[i].max_age && p.n_mx == policy_rows[i].n_mx,
			 "mode %d max_age %llu mx %zu", p.mode, (unsigned long long)p.max_age, p.n_mx);
	}
}

static void test_mx_and_lines(void)
{
	struct sts_policy p;
	char err[256];
	const char *text = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
			   "max_age: 600\n";
	CHECK(sts_parse_policy(text, strlen(text), &p, err, sizeof(err)), "parse: %s", err);
	for (size_t i = 0; i < RG_ARRAY_LEN(mx_rows); i++)
		CHECK_AT(mx_rows[i].line, sts_mx_match(&p, mx_rows[i].host) == mx_rows[i].match,
			 "%s", mx_rows[i].host);
	strcpy(p.domain, "example.com");
	strcpy(p.id, "abc123");
	p.fetched = 1000;
	p.checked = 1010;
	struct strbuf sb;
	strbuf_init(&sb);
	sts_format_line(&p, &sb);
	CHECK_STR_AT(__LINE__, sb.data,
		     "example.com abc123 enforce 600 1000 1010 mail.example.com *.example.net\n",
		     "cache line");
	sb.data[sb.len - 1] = '\0';
	struct sts_policy back;
	CHECK(sts_parse_line(sb.data, &back) && back.n_mx == 2 && back.max_age == 600 &&
	      back.fetched == 1000 && back.checked == 1010 && strcmp(back.mx[1], "*.example.net") == 0,
	      "cache line read back");
	CHECK(!sts_parse_line("example.com abc enforce 600 1000 1010", &back), "enforce without mx");
	CHECK(!sts_parse_line("example.com a-b testing 600 1000 1010 x.example", &back), "bad id");
	CHECK(!sts_parse_line("example.com abc enforce 99999999999 1 1 x.example", &back), "max_age");
	strbuf_free(&sb);
}

/* policy - an enforce policy for domain, fetched at fetched, max_age 600. */
static struct sts_policy policy(const char *domain, time_t fetched)
{
	struct sts_policy p;
	memset(&p, 0, sizeof(p));
	rg_strlcpy(p.domain, domain, sizeof(p.domain));
	strcpy(p.id, "a1");
	p.mode = STS_ENFORCE;
	p.max_age = 600;
	p.n_mx = 1;
	strcpy(p.mx[0], "mx.example.com");
	p.fetched = p.checked = fetched;
	return p;
}

/* test_cache - a full cache still takes a new policy (it is in force), making
 * room with an expired one, else the oldest; expired lines go at load; a
 * clock gone back does not expire a policy. */
static void test_cache(const char *dir)
{
	time_t now = time(NULL);
	char text[512];
	snprintf(text, sizeof(text),
		 "# relayguard mta-sts 1\n"
		 "old.example a1 enforce 1 1000 1000 mx.example.com\n"
		 "b.example a1 enforce 600 %lld %lld mx.example.com\n"
		 "c.example a1 enforce 600 %lld %lld mx.example.com\n",
		 (long long)now - 100, (long long)now - 100, (long long)now - 50, (long long)now - 50);
	int fd = openat(basedir_fd(dir), STS_CACHE_FILE, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
	if (fd >= 0)
		close(fd);
	char err[512];
	struct sts_cache *c = sts_cache_open(NULL, dir, err, sizeof(err));
	CHECK(c != NULL, "open: %s", err);
	if (c == NULL)
		return;
	sts_cache_set_max(c, 3); /* the expired line was dropped: b and c, room for one */
	CHECK(sts_cache_get(c, "b.example", now) && sts_cache_get(c, "c.example", now),
	      "valid lines kept");
	struct sts_policy e = policy("e.example", now - 10);
	e.max_age = 1; /* expired, yet newer than b and c */
	sts_cache_put(c, &e);
	struct sts_policy f = policy("f.example", now);
	sts_cache_put(c, &f);
	CHECK(sts_cache_get(c, "f.example", now) && sts_cache_get(c, "b.example", now) &&
	      sts_cache_get(c, "c.example", now), "full: the new policy kept, the expired one went");
	struct sts_policy d = policy("d.example", now);
	sts_cache_put(c, &d);
	CHECK(sts_cache_get(c, "d.example", now) && sts_cache_get(c, "b.example", now) == NULL &&
	      sts_cache_get(c, "c.example", now) && sts_cache_get(c, "f.example", now),
	      "full, none expired: the oldest went");
	CHECK(sts_cache_get(c, "f.example", now - 3600) != NULL, "clock back: still valid");
	CHECK(sts_cache_get(c, "f.example", now + 601) == NULL, "expired after max_age");
	sts_cache_free(c);
	struct strbuf sb = read_at(basedir_fd(dir), STS_CACHE_FILE);
	CHECK(sb.data && strstr(sb.data, "old.example") == NULL && strstr(sb.data, "f.example"),
	      "file: %s", sb.data ? sb.data : "");
	strbuf_free(&sb);
	unlinkat(basedir_fd(dir), STS_CACHE_FILE, 0);
}

int main(void)
{
	char dir[] = "/tmp/rg-mtasts-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 2;
	test_txt();
	test_policy();
	test_mx_and_lines();
	test_cache(dir);
	basedir_close_all();
	dirsync_cleanup();
	rmdir(dir);
	return check_summary("mtasts");
}
