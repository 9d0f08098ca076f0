/*
 * reload.c - configuration generations for SIGHUP (see reload.h).
 *
 * A session keeps the configuration it started with (session.c reads it
 * once, through server_config()), so a replaced configuration must outlive
 * its sessions: each generation counts them, and a small table remembers
 * which generation each live session belongs to.
 */
#include "smtp/reload.h"
#include "config/config.h"
#include "config/params.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_BUCKETS 1024

struct generation {
	struct config *cfg;       /* owned unless it is the start-up one */
	bool owned;
	size_t sessions;
	struct generation *next;  /* retired list */
};

struct holder {
	const void *session;
	struct generation *gen;
	struct holder *next;
};

struct confset {
	struct generation *current;
	struct generation *retired;
	struct holder *table[SESSION_BUCKETS];
};

/* reload_applies - the RELOADS rows of params.def: what new sessions read
 * from their own configuration (policy, per-session limits and texts).
 * Everything else is built once at start; dkim_signing_table's keys are
 * swapped in by server.c (session_msgauth_apply). */
bool reload_applies(const char *name)
{
	for (size_t i = 0; i < PARAM_COUNT; i++)
		if (strcmp(config_params[i].name, name) == 0)
			return config_params[i].reloads;
	return false;
}

/* value_of - the expanded value of name in cfg, or NULL. */
static const char *value_of(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_params; i++)
		if (strcmp(cfg->names[i], name) == 0)
			return cfg->values[i];
	return NULL;
}

size_t reload_restart_needed(const struct config *running, const struct config *next,
			     const char **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < next->n_params; i++) {
		const char *old = value_of(running, next->names[i]);
		if (reload_applies(next->names[i]) ||
		    (old && strcmp(old, next->values[i]) == 0 &&
		     !config_table_differs(running, next, i))) /* a table's file edited */
			continue;
		if (n < max)
			out[n] = next->names[i];
		n++;
	}
	return n;
}

static struct generation *generation_new(struct config *cfg, bool owned)
{
	struct generation *g = xcalloc(1, sizeof(*g));
	g->cfg = cfg;
	g->owned = owned;
	return g;
}

static void generation_free(struct generation *g)
{
	if (g->owned)
		config_free(g->cfg);
	free(g);
}

struct confset *confset_new(const struct config *startup)
{
	struct confset *cs = xcalloc(1, sizeof(*cs));
	/* never freed here (owned = false): the cast only lets one type hold both */
	cs->current = generation_new((struct config *)startup, false);
	return cs;
}

const struct config *confset_current(const struct confset *cs)
{
	return cs->current->cfg;
}

static size_t bucket(const void *p)
{
	uintptr_t v = (uintptr_t)p;
	return (size_t)((v >> 4) ^ (v >> 14)) % SESSION_BUCKETS;
}

void confset_session_started(struct confset *cs, const void *session)
{
	struct holder *h = xcalloc(1, sizeof(*h));
	h->session = session;
	h->gen = cs->current;
	h->next = cs->table[bucket(session)];
	cs->table[bucket(session)] = h;
	cs->current->sessions++;
}

bool confset_session_ended(struct confset *cs, const void *session)
{
	for (struct holder **pp = &cs->table[bucket(session)]; *pp != NULL; pp = &(*pp)->next) {
		struct holder *h = *pp;
		if (h->session != session)
			continue;
		*pp = h->next;
		struct generation *g = h->gen;
		free(h);
		return --g->sessions == 0 && g != cs->current;
	}
	return false;
}

void confset_collect(struct confset *cs)
{
	struct generation **pp = &cs->retired;
	while (*pp != NULL) {
		struct generation *g = *pp;
		if (g->sessions > 0) {
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		generation_free(g);
	}
}

void confset_install(struct confset *cs, struct config *cfg)
{
	struct generation *old = cs->current;
	cs->current = generation_new(cfg, true);
	old->next = cs->retired;
	cs->retired = old;
	confset_collect(cs); /* on the loop, not inside a session: freed at once if unused */
}

size_t confset_retired(const struct confset *cs)
{
	size_t n = 0;
	for (const struct generation *g = cs->retired; g != NULL; g = g->next)
		n++;
	return n;
}

void confset_free(struct confset *cs)
{
	if (cs == NULL)
		return;
	for (size_t i = 0; i < SESSION_BUCKETS; i++) {
		while (cs->table[i] != NULL) {
			struct holder *h = cs->table[i];
			cs->table[i] = h->next;
			free(h);
		}
	}
	while (cs->retired != NULL) {
		struct generation *g = cs->retired;
		cs->retired = g->next;
		generation_free(g);
	}
	generation_free(cs->current);
	free(cs);
}
