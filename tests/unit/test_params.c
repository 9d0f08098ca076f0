/*
 * test_params.c - the parameter table (params.def) is complete and is what
 * the loader, `relayguard config` and relayguard.conf(5) use: every row is
 * documented, its default loads and is printed, its limits are enforced at
 * exactly min and max, and the manual page has an entry for it.
 */
#include "check.h"
#include "config/config.h"
#include "config/params.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* load_text - config_load of a main.cf holding text; errors into *errors. */
static struct config *load_text(const char *text, char **errors)
{
	char path[] = "/tmp/rg-test-params-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	struct config *cfg = config_load(path, errors);
	unlink(path);
	return cfg;
}

/* printed - `relayguard config` output of cfg. */
static char *printed(const struct config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	config_print(cfg, f);
	fclose(f);
	return buf;
}

static void test_rows_complete(void)
{
	const char *problem = config_table_problem();
	CHECK(problem == NULL, "table problem: %s", problem ? problem : "");
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const struct param_def *p = &config_params[i];
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(p->name, config_params[j].name) != 0, "%s twice", p->name);
		CHECK(p->meaning[strlen(p->meaning) - 1] == '.', "%s: meaning is a sentence", p->name);
		CHECK(strpbrk(p->meaning, "\n\\`") == NULL, "%s: plain one-line meaning", p->name);
	}
}

/* test_defaults_printed - the default configuration prints every row, in order,
 * with its default (computed ones aside). */
static void test_defaults_printed(void)
{
	char *errors = NULL;
	struct config *cfg = config_load(NULL, &errors);
	CHECK(cfg != NULL, "default loads: %s", errors ? errors : "");
	if (cfg == NULL)
		return;
	char *out = printed(cfg);
	const char *at = out;
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const struct param_def *p = &config_params[i];
		char line[512];
		snprintf(line, sizeof(line), "%s = ", p->name);
		const char *found = strstr(at, line);
		CHECK(found != NULL && (found == out || found[-1] == '\n'), "%s printed in order",
		      p->name);
		if (found == NULL)
			continue;
		at = found + strlen(line);
		if (p->def != NULL && strchr(p->def, '$') == NULL)
			CHECK(strncmp(at, p->def, strlen(p->def)) == 0 && at[strlen(p->def)] == '\n',
			      "%s printed as its default %s", p->name, p->def);
	}
	free(out);
	config_free(cfg);
}

/* try_value - does "name = value" (plus what it needs) load? */
static bool try_value(const struct param_def *p, const char *value, char **errors)
{
	char text[512];
	snprintf(text, sizeof(text), "%s = %s\n", p->name, value);
	struct config *cfg = load_text(text, errors);
	config_free(cfg);
	return cfg != NULL;
}

/* test_ranges - each number is accepted at min and max and refused just outside,
 * with the table's message. */
static void test_ranges(void)
{
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const struct param_def *p = &config_params[i];
		if (p->type != PT_COUNT && p->type != PT_SIZE && p->type != PT_DURATION)
			continue;
		char v[32], want[128], *errors = NULL;
		uint64_t edges[2] = {p->min, p->max};
		for (int k = 0; k < 2; k++) {
			snprintf(v, sizeof(v), "%llu", (unsigned long long)edges[k]);
			bool ok = try_value(p, v, &errors);
			/* the backoff pair must also stay ordered */
			bool ordered = !(i == PARAM_minimal_backoff_time && k == 1) &&
				       !(i == PARAM_maximal_backoff_time && k == 0);
			CHECK(ok || !ordered, "%s = %s loads: %s", p->name, v, errors ? errors : "");
			free(errors);
		}
		if (p->max == UINT64_MAX)
			continue;
		snprintf(v, sizeof(v), "%llu", (unsigned long long)p->max + 1);
		snprintf(want, sizeof(want), "%s: %s is out of range (%llu..%llu)", p->name, v,
			 (unsigned long long)p->min, (unsigned long long)p->max);
		CHECK(!try_value(p, v, &errors) && errors && strstr(errors, want),
		      "%s = %s: want \"%s\", got %s", p->name, v, want, errors ? errors : "(loaded)");
		free(errors);
	}
}

/* test_choices - every listed word loads; another word lists them all. */
static void test_choices(void)
{
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const struct param_def *p = &config_params[i];
		if (p->type != PT_CHOICE)
			continue;
		char *errors = NULL;
		for (size_t k = 0; p->choices[k].name; k++) {
			CHECK(try_value(p, p->choices[k].name, &errors), "%s = %s loads: %s", p->name,
			      p->choices[k].name, errors ? errors : "");
			free(errors);
		}
		CHECK(!try_value(p, "bogus", &errors) && errors &&
		      strstr(errors, p->choices[0].name) != NULL,
		      "%s = bogus names the choices: %s", p->name, errors ? errors : "(loaded)");
		free(errors);
	}
}

/* test_examples - every documented example loads, unless it names a file or
 * a service that a unit test does not have. */
static void test_examples(void)
{
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const struct param_def *p = &config_params[i];
		if (p->type == PT_MAPS || strchr(p->example, '/') != NULL ||
		    p->type == PT_LISTEN || i == PARAM_smtpd_sasl_auth_enable ||
		    i == PARAM_smtp_sasl_auth_enable || i == PARAM_smtpd_sasl_type)
			continue;
		char *errors = NULL;
		CHECK(try_value(p, p->example, &errors), "example %s = %s loads: %s", p->name,
		      p->example, errors ? errors : "");
		free(errors);
	}
}

/* test_manual - relayguard.conf(5) has an entry, default and example per row. */
static void test_manual(void)
{
	char *page = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&page, &len);
	config_print_manual(f);
	fclose(f);
	for (size_t i = 0; i < PARAM_COUNT; i++) {
		const struct param_def *p = &config_params[i];
		char entry[256], example[512];
		snprintf(entry, sizeof(entry), "\n.It Va %s Pq %s\n", p->name,
			 config_param_type_name(p->type));
		snprintf(example, sizeof(example), "\n.Dl \"%s = ", p->name);
		CHECK(strstr(page, entry) != NULL, "manual entry for %s", p->name);
		CHECK(strstr(page, example) != NULL, "manual example for %s", p->name);
	}
	for (size_t k = 0; config_restriction_name(k) != NULL; k++) {
		char item[128];
		snprintf(item, sizeof(item), "\n.Cm %s", config_restriction_name(k));
		CHECK(strstr(page, item) != NULL, "manual lists %s", config_restriction_name(k));
	}
	CHECK(strstr(page, "\n\n") == NULL, "no blank lines in mdoc");
	free(page);
}

int main(void)
{
	test_rows_complete();
	test_defaults_printed();
	test_ranges();
	test_choices();
	test_examples();
	test_manual();
	return check_summary("params");
}
