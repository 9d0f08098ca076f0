/*
 * reload.c - configuration generations for SIGHUP (see reload.h).
 *
 * A session keeps the configuration and domains it started with (session.c
 * reads them once, through server_config() and server_domains()); a queue
 * pass and a commit hold a reference on the generation they route with.
 * The generations form one list, newest (current) first; a small table
 * remembers which generation each live session started under, the only one
 * it holds.
 */
#include "smtp/reload.h"
#include "config/config.h"
#include "config/params.h"
#include "policy/policy.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_BUCKETS 1024

struct confgen {
	struct config *cfg;        /* owned unless it is the start-up one */
	bool owned;
	struct addr_domains domains; /* built from cfg */
	size_t sessions;           /* live sessions that started under it */
	size_t refs;               /* confset_ref() not yet released */
	struct confset *set;       /* for confgen_unref() */
	struct confgen *next;      /* the next older one */
};

struct holder {
	const void *session;
	struct confgen *gen;
	struct holder *next;
};

struct confset {
	struct confgen *gens;      /* current first, then the retired, newest first */
	struct addr_domains startup_domains;
	const struct rg_ip *local_ips;
	size_t n_local_ips;
	void (*wake)(void *arg);
	void *wake_arg;
	struct holder *table[SESSION_BUCKETS];
};

/* reload_applies - the RELOADS rows of params.def: what new sessions read
 * from their own configuration (policy, per-session limits and texts) and
 * what each queue pass routes with (domains, aliases, transport_maps).
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

static struct confgen *generation_new(struct confset *cs, struct config *cfg, bool owned)
{
	struct confgen *g = xcalloc(1, sizeof(*g));
	g->cfg = cfg;
	g->owned = owned;
	g->set = cs;
	policy_domains(cfg, cs->local_ips, cs->n_local_ips, &g->domains);
	return g;
}

static void generation_free(struct confgen *g)
{
	if (g->owned)
		config_free(g->cfg);
	free(g);
}

struct confset *confset_new(const struct config *startup, void (*wake)(void *arg), void *arg)
{
	struct confset *cs = xcalloc(1, sizeof(*cs));
	cs->wake = wake;
	cs->wake_arg = arg;
	/* never freed here (owned = false): the cast only lets one type hold both */
	cs->gens = generation_new(cs, (struct config *)startup, false);
	cs->startup_domains = cs->gens->domains;
	return cs;
}

void confset_set_local_ips(struct confset *cs, const struct rg_ip *ips, size_t n)
{
	cs->local_ips = ips;
	cs->n_local_ips = n;
	for (struct confgen *g = cs->gens; g != NULL; g = g->next) {
		g->domains.local_ips = ips;
		g->domains.n_local_ips = n;
	}
	cs->startup_domains.local_ips = ips;
	cs->startup_domains.n_local_ips = n;
}

const struct config *confset_current(const struct confset *cs)
{
	return cs->gens->cfg;
}

const struct addr_domains *confset_domains(const struct confset *cs)
{
	return &cs->gens->domains;
}

const struct addr_domains *confset_startup_domains(const struct confset *cs)
{
	return &cs->startup_domains;
}

static size_t bucket(const void *p)
{
	uintptr_t v = (uintptr_t)p;
	return (size_t)((v >> 4) ^ (v >> 14)) % SESSION_BUCKETS;
}

/* maybe_wake - a hold on g went: something may be collectable now. */
static void maybe_wake(struct confset *cs)
{
	if (cs->gens->next != NULL && cs->wake != NULL)
		cs->wake(cs->wake_arg);
}

void confset_session_started(struct confset *cs, const void *session)
{
	struct holder *h = xcalloc(1, sizeof(*h));
	h->session = session;
	h->gen = cs->gens;
	h->next = cs->table[bucket(session)];
	cs->table[bucket(session)] = h;
	cs->gens->sessions++;
}

void confset_session_ended(struct confset *cs, const void *session)
{
	for (struct holder **pp = &cs->table[bucket(session)]; *pp != NULL; pp = &(*pp)->next) {
		struct holder *h = *pp;
		if (h->session != session)
			continue;
		*pp = h->next;
		h->gen->sessions--;
		free(h);
		maybe_wake(cs);
		return;
	}
}

struct confgen *confset_ref(struct confset *cs)
{
	cs->gens->refs++;
	return cs->gens;
}

void confgen_unref(struct confgen *g)
{
	if (g == NULL)
		return;
	if (--g->refs == 0 && g != g->set->gens)
		maybe_wake(g->set);
}

const struct config *confgen_config(const struct confgen *g)
{
	return g->cfg;
}

const struct addr_domains *confgen_domains(const struct confgen *g)
{
	return &g->domains;
}

/* confset_collect - a session reads its configuration and domains once, at
 * its start (session.c), so it holds the generation it started under and no
 * other: a session open across many reloads does not keep every newer
 * generation (each a copy of every table) alive with it. */
void confset_collect(struct confset *cs)
{
	struct confgen **pp = &cs->gens->next; /* the current one stays */
	while (*pp != NULL) {
		struct confgen *g = *pp;
		if (g->refs > 0 || g->sessions > 0) {
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		generation_free(g);
	}
}

void confset_install(struct confset *cs, struct config *cfg)
{
	struct confgen *g = generation_new(cs, cfg, true);
	g->next = cs->gens;
	cs->gens = g;
	confset_collect(cs); /* on the loop, not inside a holder: freed at once if unused */
}

size_t confset_retired(const struct confset *cs)
{
	size_t n = 0;
	for (const struct confgen *g = cs->gens->next; g != NULL; g = g->next)
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
	while (cs->gens != NULL) {
		struct confgen *g = cs->gens;
		cs->gens = g->next;
		generation_free(g);
	}
	free(cs);
}
