/*
 * test_expand.c - aliases and hosted domains (address/expand.h, config/aliases.h).
 *
 * Tables: aliases(5) files that load or are refused (with file:line), the
 * items of a table value (commas, or commas and blanks, separate them), the
 * recursive expansion of addresses through alias_maps and virtual_alias_maps
 * (Postfix's lookup order, catch-all precedence, recipient_delimiter, loops,
 * depth, duplicates), whether a recipient of each kind of domain exists, and
 * the Maildir a final address is delivered to. Configurations are main.cf
 * texts loaded with config_load(), as the server loads them.
 */
#include "address/expand.h"
#include "check.h"
#include "config/aliases.h"
#include "config/config.h"
#include "files.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/rg-test-expand-XXXXXX";

static char *write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL, "cannot create %s", path);
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

/* --- aliases(5) files --- */

static const struct alias_row {
	int line;
	const char *text;
	const char *error; /* NULL: loads; else a part of the message (after the path) */
	const char *key, *value; /* a lookup that must then succeed */
} alias_rows[] = {
	{__LINE__, "# comment\npostmaster: root\n", NULL, "postmaster", "root"},
	{__LINE__, "Root:  admin@example.com,\n  alice,\n\tbob\n", NULL, "root",
	 "admin@example.com, alice, bob"},
	{__LINE__, "\"quoted name\": alice\n", NULL, "quoted name", "alice"},
	{__LINE__, "a: b\n\n# gap\nc: d\n", NULL, "c", "d"},
	{__LINE__, "a: b\nlist: :include:/etc/mail/list\n", ":2: \":include:/etc/mail/list\": "
	 ":include: files are not supported", NULL, NULL},
	{__LINE__, "a: b\nc: d,\n  \"|/usr/bin/procmail\"\n", ":2: \"\"|/usr/bin/procmail\"\": "
	 "delivery to a command (|command) is not supported in this version", NULL, NULL},
	{__LINE__, "log: /var/log/mail.copy\n", ":1: \"/var/log/mail.copy\": delivery to a file "
	 "(/path) is not supported in this version", NULL, NULL},
	{__LINE__, "x: y\nno colon here\n", ":2: expected \"name: address, ...\"", NULL, NULL},
	{__LINE__, "x: y\nempty:\n", ":2: the alias has no value", NULL, NULL},
	{__LINE__, "x: y\nz: w\nX: v\n", ":3: \"x\" is defined twice (first at line 1)", NULL, NULL},
	{__LINE__, "x: a b\n", ":1: \"a b\": an address cannot contain white space", NULL, NULL},
};

static void check_aliases(void)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(alias_rows); k++) {
		const struct alias_row *r = &alias_rows[k];
		char *path = write_file("aliases", r->text), err[1024] = "";
		struct map *m = aliases_open(path, err, sizeof(err));
		if (r->error == NULL) {
			CHECK_AT(r->line, m != NULL, "does not load: %s", err);
			if (m != NULL)
				CHECK_STR_AT(r->line, map_lookup(m, r->key), r->value, r->key);
		} else {
			CHECK_AT(r->line, m == NULL, "loads, want error \"%s\"", r->error);
			CHECK_AT(r->line, strncmp(err, path, strlen(path)) == 0 &&
				 strstr(err, r->error) != NULL, "error \"%s\", want \"%s%s\"", err,
				 path, r->error);
		}
		map_free(m);
		unlink(path);
		free(path);
	}
	char err[512];
	CHECK(aliases_open("inline:{a=b}", err, sizeof(err)) == NULL &&
	      strstr(err, "unsupported alias table") != NULL, "inline: refused: %s", err);
}

/* the file reader both tables share (map_read_lines): its two refusals */
static void check_file_errors(void)
{
	char err[512] = "", *missing = xasprintf("%s/missing", dir);
	CHECK(aliases_open(missing, err, sizeof(err)) == NULL &&
	      strstr(err, "cannot open aliases file ") != NULL, "missing aliases: %s", err);
	CHECK(map_open(missing, err, sizeof(err)) == NULL &&
	      strstr(err, "cannot open table ") != NULL, "missing table: %s", err);
	char *text = xasprintf("a: b\nlong: %04500d\n", 0), *path = write_file("long", text);
	CHECK(aliases_open(path, err, sizeof(err)) == NULL &&
	      strstr(err, ":2: line longer than 4096 bytes") != NULL, "long alias line: %s", err);
	CHECK(map_open(path, err, sizeof(err)) == NULL &&
	      strstr(err, ":2: line longer than 4096 bytes") != NULL, "long table line: %s", err);
	unlink(path);
	free(path);
	free(text);
	free(missing);
}

/* --- the items of a table value (map_next_item) --- */

static const struct item_row {
	int line;
	const char *value;
	bool blanks;       /* blanks separate items (virtual_alias_maps), or only commas */
	const char *items; /* joined with '|' */
} item_rows[] = {
	{__LINE__, "a, b,c", false, "a|b|c"},
	{__LINE__, "a, b,c", true, "a|b|c"},
	{__LINE__, "a b, c", false, "a b|c"},       /* aliases: refused later, whole */
	{__LINE__, "a b, c", true, "a|b|c"},
	{__LINE__, "a\tb", false, "a\tb"},
	{__LINE__, "a\tb", true, "a|b"},
	{__LINE__, "  a  ,  b  ", false, "a|b"},    /* trimmed */
	{__LINE__, "  a  ,  b  ", true, "a|b"},
	{__LINE__, "a,,b,", false, "a|b"},
	{__LINE__, "a,,b,", true, "a|b"},
	{__LINE__, "", false, ""},
	{__LINE__, " , ,\t", true, ""},
	{__LINE__, "\"x y\"@example.com, b", false, "\"x y\"@example.com|b"},
	{__LINE__, "\"x y\"@example.com b", true, "\"x y\"@example.com|b"},
	{__LINE__, "\"a,b\" c", false, "\"a,b\" c"},
	{__LINE__, "\"a,b\" c", true, "\"a,b\"|c"},
	{__LINE__, "\"a\\\" b\" c", true, "\"a\\\" b\"|c"}, /* an escaped quote stays inside */
	{__LINE__, "\"open, b", false, "\"open, b"},   /* an unclosed quote runs to the end */
};

static void check_items(void)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(item_rows); k++) {
		const struct item_row *r = &item_rows[k];
		char *copy = xstrdup(r->value), *cursor = copy, *item, got[256] = "";
		while ((item = map_next_item(&cursor, r->blanks)) != NULL)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s",
				 got[0] ? "|" : "", item);
		CHECK_STR_AT(r->line, got, r->items, r->value);
		free(copy);
	}
}

/* --- expansion --- */

static const char aliases_text[] =
	"# /etc/aliases of the test\n"
	"postmaster: root\n"
	"root: admin@example.net,\n"
	"  alice\n"
	"team: alice, bob,\n"
	"\tcarol@mbox.example\n"
	"self: self, copy@example.net\n"
	"webmaster: alice\n"
	"ring1: ring2\n"
	"ring2: ring1\n";

static const char virtual_text[] =
	"info@virt.example        alice@ourdomain.example, friend@example.net\n"
	"sales@virt.example       team@ourdomain.example\n"
	"@virt.example            catch@ourdomain.example\n"
	"dup@virt.example         alice@ourdomain.example alice@ourdomain.example info@virt.example\n"
	"loop1@virt.example       loop2@virt.example\n"
	"loop2@virt.example       loop3@virt.example\n"
	"loop3@virt.example       loop1@virt.example\n"
	"d1@virt.example          d2@virt.example\n"
	"d2@virt.example          d3@virt.example\n"
	"d3@virt.example          d4@virt.example\n"
	"d4@virt.example          d5@virt.example\n"
	"joe@virt.example         joe@example.net\n"
	"kim+special@virt.example kim-special@example.net\n"
	"kim@virt.example         kim@example.net\n"
	"bare@virt.example        bob\n"
	"@other.example           @ourdomain.example\n"
	"webmaster@ourdomain.example webmaster@example.net\n"
	"fan@virt.example         bob@mbox.example ghost@mbox.example\n";

static const char mailbox_text[] =
	"bob@mbox.example         mbox.example/bob/\n"
	"carol@mbox.example       mbox.example/carol/\n"
	"@mbox2.example           mbox2.example/catchall/\n";

#define MAIN_CF \
	"mydestination = localhost ourdomain.example\n" \
	"myorigin = ourdomain.example\n" \
	"local_recipient_maps = inline:{ alice, bob, postmaster, root, special+x }\n" \
	"alias_maps = %s\n" \
	"virtual_alias_domains = virt.example other.example\n" \
	"virtual_alias_maps = texthash:%s\n" \
	"virtual_mailbox_domains = mbox.example mbox2.example\n" \
	"virtual_mailbox_maps = texthash:%s\n" \
	"recipient_delimiter = +\n" \
	"virtual_alias_recursion_limit = 4\n"

static const struct expand_row {
	int line;
	const char *addr;
	enum expand_status status;
	const char *targets; /* final addresses in order, space separated */
	bool expanded, outside;
	const char *why;     /* part of the error, or NULL */
} expand_rows[] = {
	/* aliases(5) for mydestination: bare names stay in the addressed domain */
	{__LINE__, "postmaster@ourdomain.example", EXPAND_OK,
	 "admin@example.net alice@ourdomain.example", true, true, NULL},
	{__LINE__, "postmaster@localhost", EXPAND_OK, "admin@example.net alice@localhost",
	 true, true, NULL},
	{__LINE__, "team@ourdomain.example", EXPAND_OK,
	 "alice@ourdomain.example bob@ourdomain.example carol@mbox.example", true, false, NULL},
	/* an address that expands into itself is delivered as itself */
	{__LINE__, "self@ourdomain.example", EXPAND_OK,
	 "self@ourdomain.example copy@example.net", true, true, NULL},
	{__LINE__, "alice@ourdomain.example", EXPAND_OK, "alice@ourdomain.example", false, false,
	 NULL},
	/* user+tag: aliases try the full name, then the name */
	{__LINE__, "team+x@ourdomain.example", EXPAND_OK,
	 "alice@ourdomain.example bob@ourdomain.example carol@mbox.example", true, false, NULL},
	{__LINE__, "alice+news@ourdomain.example", EXPAND_OK, "alice+news@ourdomain.example",
	 false, false, NULL},
	/* virtual_alias_maps come before alias_maps for our own domains too */
	{__LINE__, "webmaster@ourdomain.example", EXPAND_OK, "webmaster@example.net", true, true,
	 NULL},
	/* exact key before the catch-all; the catch-all for the rest */
	{__LINE__, "info@virt.example", EXPAND_OK, "alice@ourdomain.example friend@example.net",
	 true, true, NULL},
	{__LINE__, "nobody@virt.example", EXPAND_OK, "catch@ourdomain.example", true, false, NULL},
	{__LINE__, "sales@virt.example", EXPAND_OK,
	 "alice@ourdomain.example bob@ourdomain.example carol@mbox.example", true, false, NULL},
	/* duplicates removed, however they arise */
	{__LINE__, "dup@virt.example", EXPAND_OK, "alice@ourdomain.example friend@example.net",
	 true, true, NULL},
	/* recipient_delimiter: user+ext@ first, then user@ with the extension propagated */
	{__LINE__, "joe+tag@virt.example", EXPAND_OK, "joe+tag@example.net", true, true, NULL},
	{__LINE__, "kim+special@virt.example", EXPAND_OK, "kim-special@example.net", true, true,
	 NULL},
	{__LINE__, "kim+other@virt.example", EXPAND_OK, "kim+other@example.net", true, true,
	 NULL},
	/* a bare name in virtual(5) gets $myorigin */
	{__LINE__, "bare@virt.example", EXPAND_OK, "bob@ourdomain.example", true, false, NULL},
	/* "@domain @other": the local part kept */
	{__LINE__, "x.y@other.example", EXPAND_OK, "x.y@ourdomain.example", true, false, NULL},
	/* errors: loops, depth, values that are not addresses */
	{__LINE__, "loop1@virt.example", EXPAND_LOOP, "", true, false,
	 "alias loop: loop1@virt.example"},
	{__LINE__, "ring1@ourdomain.example", EXPAND_LOOP, "", true, false,
	 "alias loop: ring1@ourdomain.example"},
	{__LINE__, "d1@virt.example", EXPAND_DEPTH, "", true, false,
	 "virtual_alias_recursion_limit (at d5@virt.example)"},
	/* not ours, no alias: as it is */
	{__LINE__, "someone@example.org", EXPAND_OK, "someone@example.org", false, true, NULL},
	{__LINE__, "fan@virt.example", EXPAND_OK, "bob@mbox.example ghost@mbox.example", true,
	 false, NULL},
};

static void targets_text(const struct expansion *x, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < x->n; i++) {
		size_t used = strlen(buf);
		snprintf(buf + used, len - used, "%s%s@%s", i ? " " : "", x->targets[i].local,
			 x->targets[i].domain);
	}
}

static void check_expand(const struct config *cfg)
{
	struct addr_domains d;
	policy_domains(cfg, NULL, 0, &d);
	for (size_t k = 0; k < RG_ARRAY_LEN(expand_rows); k++) {
		const struct expand_row *r = &expand_rows[k];
		char local[80], buf[1024];
		const char *at = strrchr(r->addr, '@');
		snprintf(local, sizeof(local), "%.*s", (int)(at - r->addr), r->addr);
		struct address a;
		struct addr_resolution res;
		const char *rest;
		char path[300], err[160];
		snprintf(path, sizeof(path), "<%s>", r->addr);
		CHECK_AT(r->line, address_parse(path, &a, &rest, err, sizeof(err)) == ADDR_OK, "%s",
			 err);
		address_resolve(&a, &d, &res);
		struct expansion x;
		expand_recipient(cfg, &d, res.local, res.domain, res.cls, &x);
		CHECK_AT(r->line, x.status == r->status, "%s: status %s, want %s (%s)", r->addr,
			 expand_status_text(x.status), expand_status_text(r->status), x.why);
		if (r->status == EXPAND_OK) {
			targets_text(&x, buf, sizeof(buf));
			CHECK_STR_AT(r->line, buf, r->targets, r->addr);
			CHECK_AT(r->line, x.outside == r->outside, "%s: outside %d", r->addr, x.outside);
		} else {
			CHECK_AT(r->line, strstr(x.why, r->why) != NULL, "%s: why \"%s\", want \"%s\"",
				 r->addr, x.why, r->why);
		}
		CHECK_AT(r->line, x.expanded == r->expanded, "%s: expanded %d", r->addr, x.expanded);
		CHECK_AT(r->line, !x.expanded || (x.trace.data && strstr(x.trace.data, " -> ")),
			 "%s: no trace", r->addr);
		expansion_free(&x);
	}
}

/* virtual_alias_expansion_limit: addresses visited, final or not */
static void check_expansion_limit(const struct config *cfg)
{
	struct config small = *cfg;
	struct addr_domains d;
	struct expansion x;
	policy_domains(cfg, NULL, 0, &d);
	small.virtual_alias_expansion_limit = 3; /* info, alice, friend: just enough */
	expand_recipient(&small, &d, "info", "virt.example", ADDR_CLASS_LOCAL, &x);
	CHECK(x.status == EXPAND_OK && x.n == 2, "limit 3: %s, %zu", x.why, x.n);
	expansion_free(&x);
	small.virtual_alias_expansion_limit = 2;
	expand_recipient(&small, &d, "info", "virt.example", ADDR_CLASS_LOCAL, &x);
	CHECK(x.status == EXPAND_TOO_MANY && strstr(x.why, "virtual_alias_expansion_limit"),
	      "limit 2: %s (%s)", expand_status_text(x.status), x.why);
	expansion_free(&x);
}

/* --- the queue's recipients: expanded, each once, the original as ORCPT --- */

static void add(const struct config *cfg, const struct addr_domains *d, struct queue_msg *m,
		const char *path, const char *orcpt)
{
	struct address a;
	struct addr_resolution r;
	const char *rest;
	char err[160];
	CHECK(address_parse(path, &a, &rest, err, sizeof(err)) == ADDR_OK, "%s: %s", path, err);
	address_resolve(&a, d, &r);
	expand_queue_rcpt(cfg, d, m, &a, &r, "", orcpt);
}

static void check_queue_rcpts(const struct config *cfg)
{
	static const struct {
		int line;
		const char *orig, *local, *domain, *orcpt;
		enum addr_class cls;
	} want[] = {
		/* not an alias: as sent, no ORCPT invented */
		{__LINE__, "Alice@ourdomain.example", "alice", "ourdomain.example", NULL,
		 ADDR_CLASS_LOCAL},
		/* info@virt: alice is there already; friend keeps where it came from */
		{__LINE__, "friend@example.net", "friend", "example.net", "rfc822;info@virt.example",
		 ADDR_CLASS_REMOTE},
		/* the client's own ORCPT wins */
		{__LINE__, "bob@ourdomain.example", "bob", "ourdomain.example",
		 "rfc822;list@example.org", ADDR_CLASS_LOCAL},
		{__LINE__, "carol@mbox.example", "carol", "mbox.example", "rfc822;list@example.org",
		 ADDR_CLASS_LOCAL},
	};
	struct addr_domains d;
	policy_domains(cfg, NULL, 0, &d);
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	add(cfg, &d, m, "<Alice@ourdomain.example>", "");
	add(cfg, &d, m, "<info@virt.example>", "");
	add(cfg, &d, m, "<team@ourdomain.example>", "rfc822;list@example.org");
	add(cfg, &d, m, "<sales@virt.example>", ""); /* all three there already */
	CHECK(m->n_rcpts == RG_ARRAY_LEN(want), "%zu recipients, want %zu", m->n_rcpts,
	      RG_ARRAY_LEN(want));
	for (size_t i = 0; i < m->n_rcpts && i < RG_ARRAY_LEN(want); i++) {
		CHECK_STR_AT(want[i].line, m->rcpts[i].orig, want[i].orig, "orig");
		CHECK_STR_AT(want[i].line, m->rcpts[i].local, want[i].local, "local");
		CHECK_STR_AT(want[i].line, m->rcpts[i].domain, want[i].domain, "domain");
		CHECK_STR_AT(want[i].line, m->rcpts[i].orcpt, want[i].orcpt, "orcpt");
		CHECK_AT(want[i].line, m->rcpts[i].cls == want[i].cls, "class %d", m->rcpts[i].cls);
	}
	queue_msg_free(m);
}

/* --- does the recipient exist; where is its Maildir --- */

static const struct known_row {
	int line;
	const char *local, *domain;
	enum expand_known known;
	const char *mailbox; /* "dir/sub", or NULL: none */
} known_rows[] = {
	{__LINE__, "info", "virt.example", KNOWN_YES, NULL},
	{__LINE__, "anyone", "virt.example", KNOWN_YES, NULL}, /* the catch-all */
	{__LINE__, "anyone", "other.example", KNOWN_YES, NULL},
	{__LINE__, "bob", "mbox.example", KNOWN_YES, "mbox.example/bob"},
	{__LINE__, "bob+tag", "mbox.example", KNOWN_YES, "mbox.example/bob"},
	{__LINE__, "ghost", "mbox.example", KNOWN_NO_VMAILBOX, NULL},
	{__LINE__, "ghost", "mbox2.example", KNOWN_YES, "mbox2.example/catchall"},
	{__LINE__, "team", "ourdomain.example", KNOWN_YES, "ourdomain.example/team"},
	{__LINE__, "team+x", "ourdomain.example", KNOWN_YES, "ourdomain.example/team"},
	{__LINE__, "alice", "ourdomain.example", KNOWN_LOCAL_TABLE, "ourdomain.example/alice"},
	{__LINE__, "alice+news", "ourdomain.example", KNOWN_LOCAL_TABLE,
	 "ourdomain.example/alice"},
	/* a user+ext listed as itself keeps its own Maildir */
	{__LINE__, "special+x", "ourdomain.example", KNOWN_LOCAL_TABLE,
	 "ourdomain.example/special+x"},
	{__LINE__, "someone", "example.org", KNOWN_NOT_OURS, "example.org/someone"},
};

static void check_known(const struct config *cfg)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(known_rows); k++) {
		const struct known_row *r = &known_rows[k];
		char d[300], s[80], got[400];
		CHECK_AT(r->line, expand_recipient_known(cfg, r->local, r->domain) == r->known,
			 "%s@%s: known %d, want %d", r->local, r->domain,
			 expand_recipient_known(cfg, r->local, r->domain), r->known);
		bool has = expand_mailbox(cfg, r->local, r->domain, d, sizeof(d), s, sizeof(s));
		snprintf(got, sizeof(got), "%s/%s", d, s);
		CHECK_STR_AT(r->line, has ? got : NULL, r->mailbox, "mailbox");
	}
}

/* --- configurations that must not load --- */

static const struct bad_row {
	int line;
	const char *text; /* MAILBOX: the path of a mailbox table holding bad_value */
	const char *bad_value;
	const char *error;
} bad_rows[] = {
	{__LINE__, "virtual_mailbox_domains = a.example\nvirtual_mailbox_maps = texthash:MAILBOX\n",
	 "mbox/u", "only Maildir delivery is supported"},
	{__LINE__, "virtual_mailbox_domains = a.example\nvirtual_mailbox_maps = texthash:MAILBOX\n",
	 "a/b/c/", "must be dir/user/"},
	{__LINE__, "virtual_mailbox_domains = a.example\nvirtual_mailbox_maps = texthash:MAILBOX\n",
	 "../etc/", "may not be \"..\""},
	/* with a transport_maps that could route the domain to our Maildirs, even
	 * with virtual_transport = lmtp: (without one any value does: test_lmtp.py) */
	{__LINE__, "virtual_mailbox_domains = a.example\nvirtual_mailbox_maps = texthash:MAILBOX\n"
		   "virtual_transport = lmtp:inet:127.0.0.1:24\n"
		   "transport_maps = inline:{ a.example=local }\n",
	 "OK", "only Maildir delivery is supported"},
	{__LINE__, "mydestination = localhost a.example\nvirtual_alias_domains = a.example\n",
	 NULL, "a.example is also in mydestination"},
	{__LINE__, "virtual_alias_domains = a.example\nvirtual_mailbox_domains = a.example\n",
	 NULL, "listed in both virtual_alias_domains and virtual_mailbox_domains"},
	{__LINE__, "recipient_delimiter = @\n", NULL, "may not contain address syntax"},
	{__LINE__, "alias_maps = MAILBOX\n", "|cmd", "main.cf:1: alias_maps: "},
	{__LINE__, "virtual_alias_recursion_limit = 0\n", NULL, "out of range"},
	/* table values that are not addresses stop the start */
	{__LINE__, "virtual_alias_maps = texthash:MAILBOX\n", "x@@y",
	 "u@a.example: \"x@@y\" is not an address"},
	{__LINE__, "virtual_alias_maps = texthash:MAILBOX\n", "a@example.net @example.net",
	 "\"@example.net\" is not an address (\"@domain\" results only for \"@domain\" keys)"},
	{__LINE__, "alias_maps = MAILBOX\n", "alice, <bob>", "x: \"<bob>\" is not an address"},
};

static void check_bad_configs(void)
{
	for (size_t k = 0; k < RG_ARRAY_LEN(bad_rows); k++) {
		const struct bad_row *r = &bad_rows[k];
		char *table = NULL, *text, *errors = NULL;
		if (r->bad_value != NULL) {
			char *line = xasprintf(strstr(r->text, "alias_maps = MAILBOX") == r->text
					       ? "x: %s\n" : "u@a.example %s\n", r->bad_value);
			table = write_file("table", line);
			free(line);
		}
		const char *p = strstr(r->text, "MAILBOX");
		text = p ? xasprintf("%.*s%s%s", (int)(p - r->text), r->text, table, p + 7)
			 : xstrdup(r->text);
		char *cf = write_file("main.cf", text);
		struct config *cfg = config_load(cf, &errors);
		CHECK_AT(r->line, cfg == NULL && errors && strstr(errors, r->error),
			 "errors \"%s\", want \"%s\"", errors ? errors : "(loaded)", r->error);
		config_free(cfg);
		free(errors);
		unlink(cf);
		free(cf);
		free(text);
		if (table) {
			unlink(table);
			free(table);
		}
	}
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		CHECK(false, "mkdtemp");
		return check_summary("expand");
	}
	check_aliases();
	check_file_errors();
	check_items();
	check_bad_configs();
	char *al = write_file("aliases.txt", aliases_text);
	char *va = write_file("virtual", virtual_text);
	char *mb = write_file("vmailbox", mailbox_text);
	char *text = xasprintf(MAIN_CF, al, va, mb);
	char *cf = write_file("main.cf", text), *errors = NULL;
	struct config *cfg = config_load(cf, &errors);
	CHECK(cfg != NULL, "config does not load: %s", errors ? errors : "");
	if (cfg != NULL) {
		check_expand(cfg);
		check_known(cfg);
		check_queue_rcpts(cfg);
		check_expansion_limit(cfg);
	}
	config_free(cfg);
	free(errors);
	free(text);
	free(al);
	free(va);
	free(mb);
	free(cf);
	remove_tree(dir);
	return check_summary("expand");
}
