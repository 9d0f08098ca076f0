/*
 * model.c - the audit model: its storage, and relayguard's own configuration as one.
 *
 * DESCRIPTION
 *	A relayguard configuration is already what the engine wants: every
 *	restriction is native. One service per listener role (smtpd_listen,
 *	submission_listen, submissions_listen) with the lists the policy picks
 *	for that role. Pure: the config was loaded (tables too) by config_load.
 */
#include "audit/audit.h"
#include "address/expand.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* grows - does an array of N entries (plus a terminator) need room? Capacity
 * doubles: it is 2N+2 after each power of two. */
static bool grows(size_t n)
{
	return (n & (n - 1)) == 0;
}

void *audit_keep(struct audit_model *m, void *p)
{
	if (grows(m->n_owned))
		m->owned = xrealloc(m->owned, (2 * m->n_owned + 2) * sizeof(void *));
	m->owned[m->n_owned++] = p;
	return p;
}

const char *audit_strdup(struct audit_model *m, const char *s)
{
	return audit_keep(m, xstrdup(s));
}

const struct map *audit_keep_map(struct audit_model *m, struct map *map)
{
	if (grows(m->n_owned_maps))
		m->owned_maps = xrealloc(m->owned_maps,
					 (2 * m->n_owned_maps + 2) * sizeof(struct map *));
	m->owned_maps[m->n_owned_maps++] = map;
	return map;
}

void audit_add_finding(struct audit_finding **f, size_t *n, const char *id,
		       enum audit_severity sev, const char *service, const char *fix,
		       const char *fmt, ...)
{
	/* one finding per id and service: a list met on every service is said once */
	for (size_t k = 0; k < *n; k++)
		if (strcmp((*f)[k].id, id) == 0 && (*f)[k].service == service &&
		    service != NULL)
			return;
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		text = xstrdup("?");
	va_end(ap);
	for (size_t k = 0; k < *n; k++) /* the same words twice are said once */
		if (strcmp((*f)[k].id, id) == 0 && strcmp((*f)[k].text, text) == 0) {
			free(text);
			return;
		}
	*f = xrealloc(*f, (*n + 1) * sizeof(struct audit_finding));
	(*f)[(*n)++] = (struct audit_finding){id, sev, service, text, fix ? xstrdup(fix) : NULL};
}

void audit_model_free(struct audit_model *m)
{
	if (m == NULL)
		return;
	for (size_t k = 0; k < m->n_owned; k++)
		free(m->owned[k]);
	free(m->owned);
	for (size_t k = 0; k < m->n_owned_maps; k++)
		map_free(m->owned_maps[k]);
	free(m->owned_maps);
	for (size_t k = 0; k < m->n_findings; k++) {
		free(m->findings[k].text);
		free(m->findings[k].fix);
	}
	free(m->findings);
	free(m);
}

/* native_list - a relayguard list as audit items (tables stay the config's). */
static struct audit_list native_list(struct audit_model *m, const struct restriction_list *rl)
{
	struct audit_list l = {rl->param, NULL, rl->n};
	l.items = audit_keep(m, xcalloc(rl->n + 1, sizeof(struct audit_item)));
	for (size_t k = 0; k < rl->n; k++)
		l.items[k] = (struct audit_item){.kind = AI_NATIVE, .native = rl->items[k],
						 .text = rl->items[k].name};
	return l;
}

/* tls_here - can a client of ROLE be under TLS (STARTTLS offered, or TLS from the start)? */
static bool tls_here(const struct config *cfg, enum listen_role role)
{
	if (role == ROLE_SUBMISSIONS)
		return true;
	return (role == ROLE_MTA ? cfg->smtpd_tls_security_level
				 : cfg->submission_tls_security_level) != TLS_NONE;
}

/* role_service - one service for the listeners of ROLE; false when there are none. */
static bool role_service(struct audit_model *m, const struct config *cfg, enum listen_role role,
			 struct audit_service *s)
{
	static const char *params[] = {"smtpd_listen", "submission_listen", "submissions_listen"};
	struct strbuf name;
	strbuf_init(&name);
	const char *ip = NULL;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (cfg->listen[i].role != role)
			continue;
		strbuf_printf(&name, "%s%s", name.len ? ", " : " ", cfg->listen[i].text);
		if (ip == NULL && strcmp(cfg->listen[i].host, "*") != 0)
			ip = cfg->listen[i].host;
	}
	if (name.len == 0)
		return false;
	char *full = xasprintf("%s%s", params[role], name.data);
	strbuf_free(&name);
	bool sub = role != ROLE_MTA;
	/* AUTH only under TLS, where there is none: the session answers 538 */
	bool no_tls = cfg->smtpd_tls_auth_only && !tls_here(cfg, role);
	*s = (struct audit_service){.name = audit_keep(m, full), .ip = ip ? ip : "127.0.0.1",
				    .submission = sub, .submission_like = sub,
				    .sasl = cfg->smtpd_sasl_auth_enable && !no_tls,
				    .auth_needs_tls = cfg->smtpd_sasl_auth_enable && no_tls};
	s->lists[AL_CLIENT] = native_list(m, sub ? &cfg->submission_client : &cfg->client);
	s->lists[AL_HELO] = native_list(m, &cfg->helo);
	s->lists[AL_SENDER] = native_list(m, sub ? &cfg->submission_sender : &cfg->sender);
	s->lists[AL_RELAY] = native_list(m, &cfg->relay);
	s->lists[AL_RECIPIENT] = native_list(m, &cfg->recipient);
	return true;
}

/* first_domain - {d}: the first of our domains, or the host name. */
static const char *first_domain(const struct config *cfg)
{
	if (cfg->mydestination && cfg->mydestination[0])
		return cfg->mydestination[0];
	if (cfg->relay_domains && cfg->relay_domains[0])
		return cfg->relay_domains[0][0] == '.' ? cfg->relay_domains[0] + 1
							: cfg->relay_domains[0];
	return cfg->myhostname;
}

/* forward_finding - key (an address of ours) expands to an outside address:
 * the same finding the Postfix reader makes for its alias tables. */
static void forward_finding(struct audit_model *m, const struct addr_domains *d,
			    const char *param, const char *spec, const char *key,
			    const char *local, const char *domain)
{
	struct expansion x;
	const struct config *cfg = &m->cfg;
	expand_recipient(cfg, d, local, domain, ADDR_CLASS_LOCAL, &x);
	for (size_t i = 0; x.status == EXPAND_OK && i < x.n; i++) {
		if (x.targets[i].cls == ADDR_CLASS_LOCAL)
			continue;
		bool all = key[0] == '@';
		audit_add_finding(&m->findings, &m->n_findings,
			all ? "catch-all-forward-outside" : "alias-forward-outside", SEV_SUSPICIOUS,
			NULL, "forward only to your own domains, or keep the alias for your own "
			"users (it is no relay: routed forms are refused, but anyone may send to it)",
			"%s %s: %s goes to %s@%s outside: anyone may send to it and this server "
			"forwards it%s", param, spec, key, x.targets[i].local, x.targets[i].domain,
			all ? " (every address of the domain: a catch-all)" : "");
		break;
	}
	expansion_free(&x);
}

/* forward_findings - every alias of ours whose expansion leaves our domains. */
static void forward_findings(struct audit_model *m, const struct config *cfg)
{
	struct addr_domains d;
	policy_domains(cfg, NULL, 0, &d);
	const char *home = cfg->mydestination && cfg->mydestination[0] ? cfg->mydestination[0]
								      : cfg->myhostname;
	for (size_t k = 0; cfg->virtual_alias_maps && cfg->virtual_alias_maps[k]; k++) {
		const struct map *t = cfg->virtual_alias_maps[k];
		for (size_t e = 0; e < t->n; e++) {
			const char *key = t->entries[e].key, *at = strrchr(key, '@');
			char local[ADDR_LOCAL_MAX + 1];
			const char *domain = at ? at + 1 : home;
			snprintf(local, sizeof(local), "%.*s", at ? (int)(at - key) : (int)strlen(key),
				 key);
			if (expand_domain_kind(cfg, domain) == HOSTED_NONE)
				continue; /* only trusted clients can send there */
			forward_finding(m, &d, "virtual_alias_maps", t->spec, key,
					local[0] ? local : "any-address", domain);
		}
	}
	for (size_t k = 0; cfg->alias_maps && cfg->alias_maps[k]; k++) {
		const struct map *t = cfg->alias_maps[k];
		for (size_t e = 0; e < t->n; e++)
			forward_finding(m, &d, "alias_maps", t->spec, t->entries[e].key,
					t->entries[e].key, home);
	}
}

struct audit_model *audit_model_from_config(const struct config *cfg)
{
	struct audit_model *m = xcalloc(1, sizeof(*m));
	m->cfg = *cfg;
	m->origin = audit_keep(m, xasprintf("relayguard %s", cfg->file ? cfg->file
								   : "(embedded default)"));
	m->domain = first_domain(cfg);
	m->services = audit_keep(m, xcalloc(3, sizeof(struct audit_service)));
	for (int role = ROLE_MTA; role <= ROLE_SUBMISSIONS; role++)
		if (role_service(m, cfg, (enum listen_role)role, &m->services[m->n_services]))
			m->n_services++;
	forward_findings(m, cfg);
	return m;
}
