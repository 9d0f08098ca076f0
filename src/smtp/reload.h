/*
 * reload - the configurations a running server holds across SIGHUP reloads.
 *
 * Owns: the generations of the configuration (the start-up one, then one
 * per accepted reload), each with the domains addresses are resolved
 * against (struct addr_domains, built from it and our own addresses);
 * which generation is current (what new sessions, new queue passes and
 * new commits use); and keeping every replaced generation until nothing
 * can read it any more. Holders:
 *   - a session, from its start to its end: the generation it started
 *     under (its configuration and domains, server_config() and
 *     server_domains() read once at its start, so its relay decision never
 *     mixes two reloads' lists), and no other;
 *   - a reference (confset_ref/confgen_unref): a queue manager pass from
 *     routing to the end of its settle work (bounces are written with it),
 *     a commit on its worker (delivery at acceptance expands mailboxes).
 * A replaced generation is freed by confset_collect() once it has no
 * reference and no session that started under it is alive.
 * confset_collect() runs on the loop after wake() asked for it, never
 * inside the code that dropped the last hold (it may still be reading).
 * Threads: every function here runs on the loop thread only; the counts are
 * plain integers, not atomics. A worker may read a generation (its config
 * and domains) while a reference taken on the loop for its job is held.
 * Must not: read files or log; server.c loads, checks and reports, then
 * hands a checked configuration to confset_install().
 */
#ifndef RG_RELOAD_H
#define RG_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "address/address.h"
#include "net/net.h"

struct config;
struct confset;
struct confgen; /* one generation: a configuration and its domains */

/* confset_new - startup is the caller's and is never freed here. wake(arg)
 * (may be NULL) runs when a replaced generation may have become unused:
 * the caller then runs confset_collect() soon, on the loop. */
struct confset *confset_new(const struct config *startup, void (*wake)(void *arg), void *arg);
/* confset_set_local_ips - our own addresses ([literal] domains are ours),
 * known once the listeners are bound; ips stays the caller's and must not
 * change afterwards. The domains of every generation use them. */
void confset_set_local_ips(struct confset *cs, const struct rg_ip *ips, size_t n);
/* confset_current - what a session starting now uses. */
const struct config *confset_current(const struct confset *cs);
/* confset_domains - the current generation's domains: valid on the loop
 * until it returns to the event loop, and for a session that read them at
 * its start (with confset_current) until it ends (see Holders above). */
const struct addr_domains *confset_domains(const struct confset *cs);
/* confset_startup_domains - the start-up configuration's domains, for what is
 * built once with the start-up configuration (TLS reports); never freed
 * before confset_free(). */
const struct addr_domains *confset_startup_domains(const struct confset *cs);

/* confset_session_started - session (any unique pointer) uses the current one. */
void confset_session_started(struct confset *cs, const void *session);
/* confset_session_ended - the session is gone (or going: collect later). */
void confset_session_ended(struct confset *cs, const void *session);

/* confset_ref - the current generation, held until confgen_unref(). */
struct confgen *confset_ref(struct confset *cs);
/* confgen_unref - release a reference (NULL: nothing); loop thread only. */
void confgen_unref(struct confgen *g);
/* confgen_config, confgen_domains - what a held generation holds. */
const struct config *confgen_config(const struct confgen *g);
const struct addr_domains *confgen_domains(const struct confgen *g);

/* confset_collect - free the replaced generations nothing holds. */
void confset_collect(struct confset *cs);
/* confset_install - cfg (taken) becomes current; the previous one is retired. */
void confset_install(struct confset *cs, struct config *cfg);
/* confset_retired - replaced generations still held. */
size_t confset_retired(const struct confset *cs);
/* confset_free - every generation it owns (sessions and references must be gone). */
void confset_free(struct confset *cs);

/*
 * reload_applies - does a new value of parameter name reach new sessions
 * and new deliveries? false: it belongs to something built once at start
 * (listeners, queue and mailbox directories, TLS certificate, AUTH backend,
 * resolver, the SMTP client, rate limits): a restart.
 */
bool reload_applies(const char *name);

/*
 * reload_restart_needed - the parameters whose expanded value (or, for a
 * table, its lines) differs between running and next that a reload cannot apply, each as "name" into out
 * (at most max); returns how many there are (may exceed max).
 */
size_t reload_restart_needed(const struct config *running, const struct config *next,
			     const char **out, size_t max);

#endif
