/*
 * test_reload.c - SIGHUP reloads: which parameters a reload applies, which
 * need a restart, which tables a reload reads again, and how long a
 * replaced configuration generation lives (reload.c): as long as a
 * session, a queue pass or a commit may still read it.
 */
#include "check.h"
#include "config/config.h"
#include "config/maps.h"
#include "net/net.h"
#include "smtp/reload.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/rg-test-reload-XXXXXX";

/* load - config_load() of text; NULL (with the errors printed) on failure. */
static struct config *load(const char *text)
{
	char path[64];
	snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return NULL;
	fputs(text, f);
	fclose(f);
	char *errors = NULL;
	struct config *cfg = config_load(path, &errors);
	if (cfg == NULL)
		printf("load failed:\n%s", errors ? errors : "");
	free(errors);
	unlink(path);
	return cfg;
}

/* Which names reach new sessions: policy and per-session limits do; what is
 * built once at start does not. Every name must be a real parameter. */
static const struct applies_row {
	int line;
	const char *name;
	bool applies;
} applies_rows[] = {
	{__LINE__, "mynetworks", true},
	{__LINE__, "smtpd_relay_restrictions", true},
	{__LINE__, "smtpd_recipient_restrictions", true},
	{__LINE__, "local_recipient_maps", true},
	{__LINE__, "message_size_limit", true},
	{__LINE__, "smtpd_banner", true},
	{__LINE__, "relay_selftest", true},
	{__LINE__, "smtpd_listen", false},
	{__LINE__, "submission_listen", false},
	{__LINE__, "queue_directory", false},
	{__LINE__, "virtual_mailbox_base", false},
	{__LINE__, "mail_owner", false},
	/* the domains addresses resolve against, aliases, routing: sessions and
	 * the queue manager both take them from the current generation */
	{__LINE__, "mydestination", true},
	{__LINE__, "relay_domains", true},
	{__LINE__, "myorigin", true},
	{__LINE__, "alias_maps", true},
	{__LINE__, "virtual_alias_domains", true},
	{__LINE__, "virtual_alias_maps", true},
	{__LINE__, "virtual_mailbox_domains", true},
	{__LINE__, "virtual_mailbox_maps", true},
	{__LINE__, "recipient_delimiter", true},
	{__LINE__, "virtual_alias_recursion_limit", true},
	{__LINE__, "virtual_alias_expansion_limit", true},
	{__LINE__, "transport_maps", true},
	{__LINE__, "default_transport", false},
	{__LINE__, "mailbox_transport", false},
	{__LINE__, "virtual_transport", false},
	{__LINE__, "smtp_tls_policy_maps", false},
	{__LINE__, "metrics_listen", false},
	{__LINE__, "shared_state", false},
	{__LINE__, "smtpd_tls_cert_file", false},
	{__LINE__, "smtpd_sasl_auth_enable", false},
	{__LINE__, "dns_servers", false},
	{__LINE__, "smtpd_message_authentication", true},
	{__LINE__, "dkim_signing_table", true},
	{__LINE__, "dkim_sign_any_from_domain", true},
	{__LINE__, "myhostname", false}, /* and with it the authserv-id */
	{__LINE__, "relayhost", false},
	{__LINE__, "smtpd_client_connection_rate_limit", false},
	{__LINE__, "no_such_parameter", false},
};

static bool is_parameter(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_params; i++)
		if (strcmp(cfg->names[i], name) == 0)
			return true;
	return false;
}

static void test_applies(const struct config *defaults)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(applies_rows); i++) {
		const struct applies_row *r = &applies_rows[i];
		CHECK_AT(r->line, reload_applies(r->name) == r->applies, "%s: applies %d",
			 r->name, !r->applies);
		if (strcmp(r->name, "no_such_parameter") != 0)
			CHECK_AT(r->line, is_parameter(defaults, r->name), "%s: not a parameter",
				 r->name);
	}
}

/* running file, new file, the parameters a restart is needed for. */
static const struct restart_row {
	int line;
	const char *running, *next;
	const char *want[4];
} restart_rows[] = {
	{__LINE__, "", "", {NULL}},
	/* applied, and with it the abuse exceptions that default to $mynetworks
	 * (abuse_set_exceptions): nothing waits for a restart */
	{__LINE__, "", "mynetworks = 127.0.0.1/32\n", {NULL}},
	{__LINE__, "", "mynetworks = 127.0.0.1/32\nsmtpd_client_event_limit_exceptions = "
	 "127.0.0.0/8 [::1]/128\nsmtpd_sasl_lockout_exceptions = 127.0.0.0/8 [::1]/128\n", {NULL}},
	{__LINE__, "", "smtpd_listen = 127.0.0.1:2626\n", {"smtpd_listen", NULL}},
	{__LINE__, "smtpd_listen = 127.0.0.1:2626\n", "smtpd_listen = 127.0.0.1:2626\n", {NULL}},
	{__LINE__, "", "mydestination = example.com\nsmtpd_banner = hello\n", {NULL}},
	{__LINE__, "", "virtual_mailbox_domains = hosted.test\nrecipient_delimiter = +\n"
	 "transport_maps = inline:{ example.net=error:5.7.1 closed }\n", {NULL}},
	{__LINE__, "", "default_transport = error:4.3.2 paused\n", {"default_transport", NULL}},
	/* written differently, the same value: nothing to restart for */
	{__LINE__, "queue_directory = ./var/queue\n", "queue_directory = ./var/queue\n", {NULL}},
	{__LINE__, "", "queue_directory = ./var/q2\nrelayhost = [127.0.0.1]:2626\n",
	 {"queue_directory", "relayhost", NULL}},
};

static void test_restart_needed(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(restart_rows); i++) {
		const struct restart_row *r = &restart_rows[i];
		struct config *a = load(r->running), *b = load(r->next);
		CHECK_AT(r->line, a != NULL && b != NULL, "rows must load");
		if (a == NULL || b == NULL) {
			config_free(a);
			config_free(b);
			continue;
		}
		const char *got[8];
		size_t n = reload_restart_needed(a, b, got, RG_ARRAY_LEN(got)), want = 0;
		while (r->want[want] != NULL)
			want++;
		CHECK_AT(r->line, n == want, "%zu parameters need a restart, want %zu", n, want);
		for (size_t k = 0; k < n && k < want; k++)
			CHECK_STR_AT(r->line, got[k], r->want[k], "parameter");
		config_free(a);
		config_free(b);
	}
}

/* A table's file edited under the same value (texthash:PATH): is a restart
 * named for it, and does the reload's pinned load read the new lines? A
 * RELOADS table (virtual_mailbox_maps) is read again; one only a restart
 * changes (smtp_tls_policy_maps: the SMTP client is built once) keeps the
 * running lines. */
static const struct table_row {
	int line;
	const char *param, *before, *after;
	const char *key;          /* looked up in the pinned load */
	const char *want;         /* its value there (NULL: absent) */
	bool restart;
} table_rows[] = {
	{__LINE__, "virtual_mailbox_maps", "alice@hosted.test hosted.test/alice/\n",
	 "alice@hosted.test hosted.test/alice/\n", "alice@hosted.test", "hosted.test/alice/", false},
	{__LINE__, "virtual_mailbox_maps", "alice@hosted.test hosted.test/alice/\n",
	 "alice@hosted.test hosted.test/alice/\nbob@hosted.test hosted.test/bob/\n",
	 "bob@hosted.test", "hosted.test/bob/", false},
	{__LINE__, "virtual_mailbox_maps", "alice@hosted.test hosted.test/alice/\n"
	 "bob@hosted.test hosted.test/bob/\n", "alice@hosted.test hosted.test/alice/\n",
	 "bob@hosted.test", NULL, false},
	{__LINE__, "transport_maps", "example.net local\n", "example.net error:5.7.1 closed\n",
	 "example.net", "error:5.7.1 closed", false},
	{__LINE__, "smtp_tls_policy_maps", "example.net may\n", "example.net encrypt\n",
	 "example.net", "may", true},
	{__LINE__, "smtp_tls_policy_maps", "example.net may\n", "example.net may\n",
	 "example.net", "may", false},
};

/* write_table - the table file's lines; false when it cannot be written. */
static bool write_table(const char *path, const char *lines)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return false;
	fputs(lines, f);
	return fclose(f) == 0;
}

/* main_cf - main.cf text naming the table file for param. */
static void main_cf(const char *param, const char *table, char *text, size_t len)
{
	snprintf(text, len, "virtual_mailbox_domains = hosted.test\n%s = texthash:%s\n", param,
		 table);
}

/* pinned_value - key in the pinned load's table of param (NULL: absent). */
static const char *pinned_value(const struct config *cfg, const char *param, const char *key)
{
	struct map **maps = strcmp(param, "virtual_mailbox_maps") == 0 ? cfg->virtual_mailbox_maps
			    : strcmp(param, "transport_maps") == 0    ? cfg->transport_maps
								      : cfg->smtp_tls_policy_maps;
	return maps && maps[0] ? map_lookup(maps[0], key) : NULL;
}

static void table_row(const struct table_row *r)
{
	char table[64], path[64], text[256];
	snprintf(table, sizeof(table), "%s/table", tmpdir);
	snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
	main_cf(r->param, table, text, sizeof(text));
	struct config *a = write_table(table, r->before) ? load(text) : NULL;
	struct config *b = write_table(table, r->after) ? load(text) : NULL;
	CHECK_AT(r->line, a != NULL && b != NULL, "rows must load");
	const char *got[4];
	size_t n = a && b ? reload_restart_needed(a, b, got, RG_ARRAY_LEN(got)) : 0;
	CHECK_AT(r->line, n == (r->restart ? 1u : 0u), "%zu parameters need a restart", n);
	if (n == 1)
		CHECK_STR_AT(r->line, got[0], r->param, "parameter");
	/* the reload's own load: the running configuration pins what it must */
	FILE *f = fopen(path, "w");
	char *errors = NULL;
	struct config *c = NULL;
	if (f != NULL && a != NULL) {
		fputs(text, f);
		fclose(f);
		c = config_load_pinned(path, a, &errors);
	}
	CHECK_AT(r->line, c != NULL, "the pinned load: %s", errors ? errors : "");
	if (c != NULL)
		CHECK_STR_AT(r->line, pinned_value(c, r->param, r->key), r->want, "value after reload");
	free(errors);
	config_free(a);
	config_free(b);
	config_free(c);
	unlink(table);
	unlink(path);
}

static void test_table_edited(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(table_rows); i++)
		table_row(&table_rows[i]);
}

/* A broken edited table refuses the reload's load, naming main.cf's line
 * and what is wrong (the table file's own line where it has one). */
static const struct broken_row {
	int line;
	const char *param, *lines;
	const char *want;         /* in the errors, after "PATH/main.cf:2: " */
} broken_rows[] = {
	{__LINE__, "virtual_mailbox_maps", "bob@hosted.test hosted.test/bob\n",
	 "virtual_mailbox_maps: texthash:"},
	{__LINE__, "virtual_mailbox_maps", NULL, "virtual_mailbox_maps: "}, /* no file */
	{__LINE__, "alias_maps", "root: bob@hosted.test\nthis is not an alias\n",
	 "alias_maps: "},
};

static void test_broken_table(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(broken_rows); i++) {
		const struct broken_row *r = &broken_rows[i];
		char table[64], path[64], text[256], want[192];
		snprintf(table, sizeof(table), "%s/table", tmpdir);
		snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
		if (strcmp(r->param, "alias_maps") == 0)
			snprintf(text, sizeof(text), "virtual_mailbox_domains = hosted.test\n"
				 "alias_maps = %s\n", table);
		else
			main_cf(r->param, table, text, sizeof(text));
		struct config *running = load("");
		FILE *f = fopen(path, "w");
		if (f != NULL) {
			fputs(text, f);
			fclose(f);
		}
		if (r->lines != NULL)
			write_table(table, r->lines);
		char *errors = NULL;
		struct config *c = running ? config_load_pinned(path, running, &errors) : NULL;
		snprintf(want, sizeof(want), "%s:2: %s", path, r->want);
		CHECK_AT(r->line, c == NULL, "a broken %s must refuse the load", r->param);
		CHECK_AT(r->line, errors != NULL && strstr(errors, want) == errors,
			 "errors \"%s\" must start with \"%s\"", errors ? errors : "", want);
		if (r->lines != NULL && strcmp(r->param, "alias_maps") == 0) {
			snprintf(want, sizeof(want), "%s:2: ", table);
			CHECK_AT(r->line, errors != NULL && strstr(errors, want) != NULL,
				 "the aliases file's own line: %s", errors ? errors : "");
		}
		free(errors);
		config_free(c);
		config_free(running);
		unlink(table);
		unlink(path);
	}
}

static unsigned wakes;

static void count_wake(void *arg)
{
	(void)arg;
	wakes++;
}

/* Sessions: a replaced configuration lives as long as a session that
 * started under it, and no longer (a session reads its configuration and
 * domains once, at its start: an old session holds no newer generation). */
static void test_sessions(void)
{
	struct config *start = load(""), *a = load("mynetworks = 127.0.0.1/32\n"),
		      *b = load("mynetworks = 127.0.0.2/32\n");
	int s1, s2, s3; /* any distinct addresses stand for sessions */
	struct confset *cs = confset_new(start, count_wake, NULL);
	CHECK(confset_current(cs) == start, "the start-up configuration first");
	confset_session_started(cs, &s1);
	confset_install(cs, a);
	CHECK(confset_current(cs) == a, "new sessions get the reloaded one");
	CHECK(confset_retired(cs) == 1, "s1 still holds the start-up one");
	confset_session_started(cs, &s2);
	confset_session_started(cs, &s3);
	confset_install(cs, b);
	CHECK(confset_retired(cs) == 2, "start-up (s1) and a (s2, s3): got %zu",
	      confset_retired(cs));
	wakes = 0;
	confset_session_ended(cs, &s2);
	confset_collect(cs);
	CHECK(confset_retired(cs) == 2, "s1 and s3 hold one each still: got %zu",
	      confset_retired(cs));
	confset_session_ended(cs, &s3);
	CHECK(wakes == 2, "each end asks for a collection: %u", wakes);
	CHECK(confset_retired(cs) == 2, "kept until collected: the session may still read it");
	confset_collect(cs);
	CHECK(confset_retired(cs) == 1, "a is freed with s3: s1, open since before a, holds "
	      "only the start-up one (each reload's tables would pile up): got %zu",
	      confset_retired(cs));
	/* s1 stays open across many more reloads: none of them is kept for it */
	for (int i = 0; i < 5; i++)
		confset_install(cs, load("mynetworks = 127.0.0.3/32\n"));
	CHECK(confset_retired(cs) == 1, "only s1's own is kept: got %zu", confset_retired(cs));
	b = load("mynetworks = 127.0.0.2/32\n");
	confset_install(cs, b);
	confset_session_ended(cs, &s1);
	confset_collect(cs);
	CHECK(confset_retired(cs) == 0, "freed with the last session: got %zu",
	      confset_retired(cs));
	confset_session_ended(cs, &s3); /* unknown by now: nothing happens */
	int s4;
	wakes = 0;
	confset_session_started(cs, &s4);
	confset_session_ended(cs, &s4);
	CHECK(wakes == 0, "nothing retired: nothing to collect");
	CHECK(confset_current(cs) == b, "b stays current");
	confset_install(cs, load("")); /* no session held b: freed at once */
	CHECK(confset_retired(cs) == 0, "an unused configuration is not kept");
	confset_free(cs); /* frees the current one, never the start-up one */
	CHECK(start->n_params > 0, "the start-up configuration is the caller's");
	config_free(start);
}

/* References (queue passes, commits): held across reloads and sessions. */
static void test_references(void)
{
	struct config *start = load(""),
		      *a = load("mydestination = hosted.test\nmynetworks = 127.0.0.1/32\n"),
		      *b = load("mydestination = other.test\n");
	struct rg_ip ip;
	ip_parse("192.0.2.7", &ip);
	struct confset *cs = confset_new(start, count_wake, NULL);
	confset_set_local_ips(cs, &ip, 1);
	struct confgen *pass1 = confset_ref(cs);
	CHECK(confgen_config(pass1) == start, "a pass takes the current one");
	confset_install(cs, a);
	struct confgen *pass2 = confset_ref(cs), *commit = confset_ref(cs);
	CHECK(confgen_config(pass2) == a, "a pass after the reload takes the new one");
	const struct addr_domains *d = confgen_domains(pass2);
	CHECK(d->mydestination && d->mydestination[0] &&
	      strcmp(d->mydestination[0], "hosted.test") == 0, "the new domains");
	CHECK(d->n_local_ips == 1 && ip_equal(&d->local_ips[0], &ip), "our addresses kept");
	CHECK(confset_domains(cs) == d, "sessions resolve with the current domains");
	CHECK(confset_startup_domains(cs)->mydestination == confgen_domains(pass1)->mydestination,
	      "TLS reports: the start-up domains");
	wakes = 0;
	confgen_unref(pass1);
	CHECK(wakes == 1, "the last reference on a retired one asks for a collection");
	confset_collect(cs);
	CHECK(confset_retired(cs) == 0, "the start-up one is released: got %zu",
	      confset_retired(cs));
	CHECK(confset_startup_domains(cs)->n_local_ips == 1, "start-up domains outlive it");
	confset_install(cs, b);
	CHECK(confset_retired(cs) == 1, "a: a pass and a commit hold it");
	confgen_unref(pass2);
	confset_collect(cs);
	CHECK(confset_retired(cs) == 1, "a: the commit holds it still");
	int s1;
	confset_session_started(cs, &s1); /* under b: no claim on a */
	wakes = 0;
	confgen_unref(commit);
	CHECK(wakes == 1, "released");
	confset_collect(cs);
	CHECK(confset_retired(cs) == 0, "a is freed: a newer session does not hold it");
	struct confgen *cur = confset_ref(cs);
	wakes = 0;
	confgen_unref(cur);
	CHECK(wakes == 0, "the current one is never released");
	confgen_unref(NULL);
	confset_session_ended(cs, &s1);
	confset_free(cs);
	config_free(start);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	struct config *defaults = load("");
	CHECK(defaults != NULL, "the default configuration loads");
	if (defaults != NULL)
		test_applies(defaults);
	config_free(defaults);
	test_restart_needed();
	test_table_edited();
	test_broken_table();
	test_sessions();
	test_references();
	rmdir(tmpdir);
	return check_summary("test_reload");
}
