/*
 * test_reload.c - SIGHUP reloads: which parameters a reload applies, which
 * need a restart, and how long a replaced configuration lives (reload.c).
 */
#include "check.h"
#include "config/config.h"
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
	{__LINE__, "mydestination", false},  /* the domains addresses resolve against */
	{__LINE__, "relay_domains", false},
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
	/* applied; but the abuse exceptions default to $mynetworks and are built once */
	{__LINE__, "", "mynetworks = 127.0.0.1/32\n",
	 {"smtpd_client_event_limit_exceptions", "smtpd_sasl_lockout_exceptions", NULL}},
	{__LINE__, "", "mynetworks = 127.0.0.1/32\nsmtpd_client_event_limit_exceptions = "
	 "127.0.0.0/8 [::1]/128\nsmtpd_sasl_lockout_exceptions = 127.0.0.0/8 [::1]/128\n", {NULL}},
	{__LINE__, "", "smtpd_listen = 127.0.0.1:2626\n", {"smtpd_listen", NULL}},
	{__LINE__, "smtpd_listen = 127.0.0.1:2626\n", "smtpd_listen = 127.0.0.1:2626\n", {NULL}},
	{__LINE__, "", "mydestination = example.com\nsmtpd_banner = hello\n",
	 {"mydestination", NULL}},
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

/* table file lines before the reload, after it; is a restart named for it? */
static const struct table_row {
	int line;
	const char *before, *after;
	bool restart;
} table_rows[] = {
	{__LINE__, "alice@hosted.test hosted.test/alice/\n",
	 "alice@hosted.test hosted.test/alice/\n", false},
	/* the value is the same (texthash:PATH), the file's lines are not */
	{__LINE__, "alice@hosted.test hosted.test/alice/\n",
	 "alice@hosted.test hosted.test/alice/\nbob@hosted.test hosted.test/bob/\n", true},
	{__LINE__, "alice@hosted.test hosted.test/alice/\n", "alice@hosted.test hosted.test/al/\n", true},
	{__LINE__, "alice@hosted.test hosted.test/alice/\nbob@hosted.test hosted.test/bob/\n",
	 "alice@hosted.test hosted.test/alice/\n", true},
};

/* load_with_table - a configuration whose virtual_mailbox_maps file holds LINES. */
static struct config *load_with_table(const char *lines)
{
	char path[64], text[256];
	snprintf(path, sizeof(path), "%s/vmailbox", tmpdir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return NULL;
	fputs(lines, f);
	fclose(f);
	snprintf(text, sizeof(text), "virtual_mailbox_domains = hosted.test\n"
		 "virtual_mailbox_maps = texthash:%s\n", path);
	struct config *cfg = load(text);
	unlink(path);
	return cfg;
}

static void test_table_edited(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(table_rows); i++) {
		const struct table_row *r = &table_rows[i];
		struct config *a = load_with_table(r->before), *b = load_with_table(r->after);
		CHECK_AT(r->line, a != NULL && b != NULL, "rows must load");
		const char *got[4];
		size_t n = a && b ? reload_restart_needed(a, b, got, RG_ARRAY_LEN(got)) : 0;
		CHECK_AT(r->line, n == (r->restart ? 1u : 0u), "%zu parameters need a restart", n);
		if (n == 1)
			CHECK_STR_AT(r->line, got[0], "virtual_mailbox_maps", "parameter");
		config_free(a);
		config_free(b);
	}
}

/* A replaced configuration lives exactly as long as its last session. */
static void test_generations(void)
{
	struct config *start = load(""), *a = load("mynetworks = 127.0.0.1/32\n"),
		      *b = load("mynetworks = 127.0.0.2/32\n");
	int s1, s2, s3; /* any distinct addresses stand for sessions */
	struct confset *cs = confset_new(start);
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
	CHECK(confset_session_ended(cs, &s1), "the start-up one has no session left");
	CHECK(confset_retired(cs) == 2, "kept until collected: the session may still read it");
	confset_collect(cs);
	CHECK(confset_retired(cs) == 1, "the start-up one is released: got %zu",
	      confset_retired(cs));
	CHECK(!confset_session_ended(cs, &s2), "a is held by s3 still");
	confset_collect(cs);
	CHECK(confset_retired(cs) == 1, "a is held by s3 still");
	CHECK(confset_session_ended(cs, &s3), "a's last session");
	confset_collect(cs);
	CHECK(confset_retired(cs) == 0, "a is freed with its last session");
	CHECK(!confset_session_ended(cs, &s3), "unknown by now: nothing happens");
	int s4;
	confset_session_started(cs, &s4);
	CHECK(!confset_session_ended(cs, &s4), "the current one is never released");
	CHECK(confset_current(cs) == b, "b stays current");
	confset_install(cs, load("")); /* no session held b: freed at once */
	CHECK(confset_retired(cs) == 0, "an unused configuration is not kept");
	confset_free(cs); /* frees the current one, never the start-up one */
	CHECK(start->n_params > 0, "the start-up configuration is the caller's");
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
	test_generations();
	rmdir(tmpdir);
	return check_summary("test_reload");
}
