/*
 * reload - the configurations a running server holds across SIGHUP reloads.
 *
 * Owns: which configuration new sessions get (the current one), keeping each
 * replaced configuration until the last session that started under it has
 * ended (a count per configuration, and which session holds which), and
 * which parameters a reload can change for new sessions at all.
 * Must not: read files or log; server.c loads, checks and reports, then
 * hands a checked configuration to confset_install().
 */
#ifndef RG_RELOAD_H
#define RG_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct confset;

/* confset_new - startup is the caller's and is never freed here. */
struct confset *confset_new(const struct config *startup);
/* confset_current - what a session starting now uses. */
const struct config *confset_current(const struct confset *cs);
/* confset_session_started - session (any unique pointer) uses the current one. */
void confset_session_started(struct confset *cs, const void *session);
/* confset_session_ended - true when a replaced configuration has no session
 * left: call confset_collect() once the ending session is completely gone
 * (it may still read its configuration while it is being freed). */
bool confset_session_ended(struct confset *cs, const void *session);
/* confset_collect - free the replaced configurations no session holds. */
void confset_collect(struct confset *cs);
/* confset_install - cfg (taken) becomes current; the previous one is retired. */
void confset_install(struct confset *cs, struct config *cfg);
/* confset_retired - replaced configurations still held by sessions. */
size_t confset_retired(const struct confset *cs);
/* confset_free - every configuration it owns (sessions must be gone). */
void confset_free(struct confset *cs);

/*
 * reload_applies - does a new value of parameter name reach new sessions?
 * false: it belongs to something built once at start (listeners, queue and
 * mailbox directories, TLS certificate, AUTH backend, resolver, delivery,
 * rate limits, the domains addresses are resolved against): a restart.
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
