/*
 * expand.c - aliases and hosted domains (see expand.h).
 *
 * DESCRIPTION
 *	Lookup order is Postfix's. virtual_alias_maps, for every domain, key
 *	by key through all tables: user+ext@domain, user@domain, then (only
 *	for mydestination and $myorigin) user+ext and user, then the @domain
 *	catch-all, which has the lowest precedence. When the match was on the
 *	key without the extension, the extension is copied to each result
 *	that has none (propagate_unmatched_extensions = canonical, virtual).
 *	An "@other" result of an @domain key keeps the local part.
 *	Only when no virtual alias matches do mydestination domains consult
 *	alias_maps (aliases(5): user+ext, then user).
 *
 *	Expansion is recursive. An address that expands into itself is
 *	delivered as itself (Postfix: "once"); one that expands into one of its
 *	own ancestors is a loop, refused with the chain; nesting beyond
 *	virtual_alias_recursion_limit or more than virtual_alias_expansion_limit
 *	addresses visited is refused too (the policy answers 451 4.3.0: a
 *	table to fix, not a user to bounce).
 *
 *	A bare name in a result is qualified with $myorigin for virtual(5) (as
 *	trivial-rewrite does) and with the domain of the alias for aliases(5):
 *	relayguard keeps one Maildir tree per mydestination domain, so
 *	"postmaster: root" means root of the domain that was addressed.
 */
#include "address/expand.h"
#include "config/maps.h"
#include "delivery/maildir.h"
#include "queue/queue.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_TEXT_MAX (ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2)
#define TRACE_MAX 8192

enum match { MATCH_FULL, MATCH_STRIPPED, MATCH_CATCHALL };

/* The limits; 0 (a configuration not read by config_load) is Postfix's default. */
static uint64_t depth_limit(const struct config *cfg)
{
	return cfg->virtual_alias_recursion_limit ? cfg->virtual_alias_recursion_limit : 1000;
}

static uint64_t total_limit(const struct config *cfg)
{
	return cfg->virtual_alias_expansion_limit ? cfg->virtual_alias_expansion_limit : 1000;
}

enum hosted_kind expand_domain_kind(const struct config *cfg, const char *domain)
{
	if (address_domain_listed(domain, (const char *const *)cfg->mydestination))
		return HOSTED_LOCAL;
	if (address_domain_listed(domain, (const char *const *)cfg->virtual_alias_domains))
		return HOSTED_VALIAS;
	if (address_domain_listed(domain, (const char *const *)cfg->virtual_mailbox_domains))
		return HOSTED_VMAILBOX;
	return HOSTED_NONE;
}

/* ext_start - where the extension begins in local (0: none). A delimiter
 * in the first position is part of the name, as in Postfix. */
static size_t ext_start(const struct config *cfg, const char *local)
{
	const char *delim = cfg->recipient_delimiter;
	if (delim == NULL || delim[0] == '\0' || local[0] == '\0')
		return 0;
	size_t n = strcspn(local + 1, delim) + 1;
	return local[n] != '\0' ? n : 0;
}

bool expand_strip_extension(const struct config *cfg, const char *local, char *out,
			    size_t outlen)
{
	size_t n = ext_start(cfg, local);
	rg_strlcpy(out, local, outlen);
	if (n == 0 || n >= outlen)
		return false;
	out[n] = '\0';
	return true;
}

/* lookup_maps - key in every table, in order; NULL when absent. */
static const char *lookup_maps(struct map *const *maps, const char *key)
{
	for (size_t k = 0; maps != NULL && maps[k] != NULL; k++) {
		const char *v = map_lookup(maps[k], key);
		if (v != NULL)
			return v;
	}
	return NULL;
}

/* lookup_address - user+ext@domain, user@domain, [user+ext, user,] @domain
 * (key by key through all tables); *how says which form matched. */
static const char *lookup_address(const struct config *cfg, struct map *const *maps,
				  const char *local, const char *domain, bool bare,
				  enum match *how)
{
	char base[ADDR_LOCAL_MAX + 1], key[ADDR_TEXT_MAX];
	bool has_ext = expand_strip_extension(cfg, local, base, sizeof(base));
	const char *v;
	snprintf(key, sizeof(key), "%s@%s", local, domain);
	if ((v = lookup_maps(maps, key)) != NULL)
		return *how = MATCH_FULL, v;
	snprintf(key, sizeof(key), "%s@%s", base, domain);
	if (has_ext && (v = lookup_maps(maps, key)) != NULL)
		return *how = MATCH_STRIPPED, v;
	if (bare && (v = lookup_maps(maps, local)) != NULL)
		return *how = MATCH_FULL, v;
	if (bare && has_ext && (v = lookup_maps(maps, base)) != NULL)
		return *how = MATCH_STRIPPED, v;
	snprintf(key, sizeof(key), "@%s", domain);
	if ((v = lookup_maps(maps, key)) != NULL)
		return *how = MATCH_CATCHALL, v;
	return NULL;
}

/* lookup_virtual - virtual_alias_maps; bare keys only for our local domains. */
static const char *lookup_virtual(const struct config *cfg, const char *local,
				  const char *domain, enum match *how)
{
	bool bare = expand_domain_kind(cfg, domain) == HOSTED_LOCAL ||
		    (cfg->myorigin != NULL && rg_strcasecmp(domain, cfg->myorigin) == 0);
	return lookup_address(cfg, cfg->virtual_alias_maps, local, domain, bare, how);
}

/* lookup_alias - aliases(5): the local part, then without its extension
 * (no propagation: Postfix's default leaves aliases out of it). */
static const char *lookup_alias(const struct config *cfg, const char *local, enum match *how)
{
	char base[ADDR_LOCAL_MAX + 1];
	const char *v = lookup_maps(cfg->alias_maps, local);
	*how = MATCH_FULL;
	if (v == NULL && expand_strip_extension(cfg, local, base, sizeof(base)))
		v = lookup_maps(cfg->alias_maps, base);
	return v;
}

static const char *lookup_mailbox(const struct config *cfg, const char *local,
				  const char *domain)
{
	enum match how;
	return lookup_address(cfg, cfg->virtual_mailbox_maps, local, domain, false, &how);
}

enum expand_known expand_recipient_known(const struct config *cfg, const char *local,
					 const char *domain)
{
	enum hosted_kind kind = expand_domain_kind(cfg, domain);
	enum match how;
	if (kind == HOSTED_NONE)
		return KNOWN_NOT_OURS;
	if (lookup_virtual(cfg, local, domain, &how) != NULL)
		return KNOWN_YES;
	switch (kind) {
	case HOSTED_VALIAS:
		return KNOWN_NO_VALIAS;
	case HOSTED_VMAILBOX:
		return lookup_mailbox(cfg, local, domain) ? KNOWN_YES : KNOWN_NO_VMAILBOX;
	default:
		return lookup_alias(cfg, local, &how) ? KNOWN_YES : KNOWN_LOCAL_TABLE;
	}
}

/* The state of one expansion. */
struct walk {
	const struct config *cfg;
	const struct addr_domains *d;
	struct expansion *out;
	char **chain; /* the ancestors of the address being expanded */
	size_t depth, visited;
};

static void set_error(struct walk *w, enum expand_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* set_error - the first error stops the expansion. */
static void set_error(struct walk *w, enum expand_status s, const char *fmt, ...)
{
	if (w->out->status != EXPAND_OK)
		return;
	va_list ap;
	va_start(ap, fmt);
	w->out->status = s;
	vsnprintf(w->out->why, sizeof(w->out->why), fmt, ap);
	va_end(ap);
}

/* add_target - a final address, once. */
static void add_target(struct walk *w, const struct expand_target *t)
{
	struct expansion *x = w->out;
	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->targets[i].local, t->local) == 0 &&
		    strcmp(x->targets[i].domain, t->domain) == 0)
			return;
	if (x->n >= total_limit(w->cfg)) {
		set_error(w, EXPAND_TOO_MANY, "more than virtual_alias_expansion_limit addresses "
			  "(at %s)", t->local);
		return;
	}
	x->targets = xrealloc(x->targets, (x->n + 1) * sizeof(*x->targets));
	x->targets[x->n++] = *t;
	if (t->cls != ADDR_CLASS_LOCAL)
		x->outside = true;
}

/* item_text - the address an item names: "@other" keeps the local part (only
 * for catch-all keys), a bare name gets a domain. False when unusable. */
static bool item_text(const struct walk *w, const char *item, const char *local,
		      const char *domain, enum match how, bool alias, char *out, size_t len)
{
	if (item[0] == '@') {
		if (how != MATCH_CATCHALL || alias)
			return false;
		snprintf(out, len, "%s%s", local, item);
	} else if (strchr(item, '@') == NULL) {
		snprintf(out, len, "%s@%s", item, alias ? domain : w->cfg->myorigin);
	} else {
		snprintf(out, len, "%s", item);
	}
	return true;
}

/* resolve_item - one result of a lookup as a resolved address. */
static bool resolve_item(const struct walk *w, const char *item, const char *local,
			 const char *domain, enum match how, bool alias, struct expand_target *t)
{
	char text[ADDR_PATH_MAX + 8], path[ADDR_PATH_MAX + 16], err[160];
	struct address a;
	struct addr_resolution r;
	const char *rest;
	if (!item_text(w, item, local, domain, how, alias, text, sizeof(text)))
		return false;
	snprintf(path, sizeof(path), "<%s>", text);
	if (address_parse(path, &a, &rest, err, sizeof(err)) != ADDR_OK || a.null ||
	    rest[0] != '\0')
		return false;
	address_resolve(&a, w->d, &r);
	if (r.cls == ADDR_CLASS_INVALID)
		return false;
	size_t ext = how == MATCH_STRIPPED && !alias && item[0] != '@' ? ext_start(w->cfg, local) : 0;
	if (ext > 0 && ext_start(w->cfg, r.local) == 0 &&
	    strlen(r.local) + strlen(local + ext) <= ADDR_LOCAL_MAX)
		strcat(r.local, local + ext); /* propagate_unmatched_extensions */
	rg_strlcpy(t->local, r.local, sizeof(t->local));
	rg_strlcpy(t->domain, r.domain, sizeof(t->domain));
	t->cls = r.cls;
	return true;
}

bool expand_value_ok(const char *key, const char *value, bool alias, char *why, size_t whylen)
{
	char *copy = xstrdup(value), *cursor = copy, *item;
	bool ok = true, any = false;
	while (ok && (item = map_next_item(&cursor, true)) != NULL) {
		char path[ADDR_PATH_MAX + 32], err[160];
		struct address a;
		const char *rest;
		any = true;
		if (item[0] == '@')
			snprintf(path, sizeof(path), "<x%s>", item);
		else
			snprintf(path, sizeof(path), strchr(item, '@') ? "<%s>" : "<%s@x.invalid>", item);
		ok = strlen(item) <= ADDR_PATH_MAX && (item[0] != '@' || (!alias && key[0] == '@')) &&
		     address_parse(path, &a, &rest, err, sizeof(err)) == ADDR_OK && !a.null &&
		     rest[0] == '\0';
		if (!ok)
			snprintf(why, whylen, "\"%.100s\" is not an address%s", item,
				 item[0] == '@' ? " (\"@domain\" results only for \"@domain\" keys)"
						: "");
	}
	free(copy);
	if (ok && !any)
		snprintf(why, whylen, "no address");
	return ok && any;
}

static void trace(struct walk *w, const char *addr, const char *value, const char *table)
{
	if (w->out->trace.len < TRACE_MAX)
		strbuf_printf(&w->out->trace, "%s -> %.300s (%s)\n", addr, value, table);
}

static void expand_node(struct walk *w, const struct expand_target *t);

/* expand_value - each address of the value found for t. */
static void expand_value(struct walk *w, const struct expand_target *t, const char *value,
			 enum match how, bool alias, const char *self)
{
	char *copy = xstrdup(value), *cursor = copy, *item;
	while (w->out->status == EXPAND_OK && (item = map_next_item(&cursor, true)) != NULL) {
		struct expand_target child;
		char text[ADDR_TEXT_MAX];
		if (!resolve_item(w, item, t->local, t->domain, how, alias, &child)) {
			char what[ADDR_TEXT_MAX + 120];
			snprintf(what, sizeof(what), "%.100s (for %s)", item, self);
			set_error(w, EXPAND_BAD_VALUE, "%s is not an address", what);
			break;
		}
		snprintf(text, sizeof(text), "%s@%s", child.local, child.domain);
		if (strcmp(text, self) == 0)
			add_target(w, &child); /* expands into itself: delivered as itself */
		else
			expand_node(w, &child);
	}
	free(copy);
}

/* in_chain - is addr one of the ancestors? */
static bool in_chain(const struct walk *w, const char *addr)
{
	for (size_t i = 0; i < w->depth; i++)
		if (strcmp(w->chain[i], addr) == 0)
			return true;
	return false;
}

static void expand_node(struct walk *w, const struct expand_target *t)
{
	char addr[ADDR_TEXT_MAX];
	enum match how;
	bool alias = false;
	snprintf(addr, sizeof(addr), "%s@%s", t->local, t->domain);
	if (in_chain(w, addr))
		return set_error(w, EXPAND_LOOP, "alias loop: %s expands into itself through "
				 "other aliases", addr);
	if (w->depth >= depth_limit(w->cfg))
		return set_error(w, EXPAND_DEPTH, "aliases nested deeper than "
				 "virtual_alias_recursion_limit (at %s)", addr);
	if (++w->visited > total_limit(w->cfg))
		return set_error(w, EXPAND_TOO_MANY, "more than virtual_alias_expansion_limit "
				 "addresses (at %s)", addr);
	const char *value = lookup_virtual(w->cfg, t->local, t->domain, &how);
	if (value == NULL && t->cls == ADDR_CLASS_LOCAL &&
	    expand_domain_kind(w->cfg, t->domain) == HOSTED_LOCAL)
		alias = (value = lookup_alias(w->cfg, t->local, &how)) != NULL;
	if (value == NULL)
		return add_target(w, t);
	w->out->expanded = true;
	trace(w, addr, value, alias ? "alias_maps" : "virtual_alias_maps");
	w->chain[w->depth++] = addr;
	expand_value(w, t, value, how, alias, addr);
	w->depth--;
}

void expand_recipient(const struct config *cfg, const struct addr_domains *d,
		      const char *local, const char *domain, enum addr_class cls,
		      struct expansion *out)
{
	memset(out, 0, sizeof(*out));
	strbuf_init(&out->trace);
	struct walk w = {cfg, d, out, NULL, 0, 0};
	struct expand_target t = {.cls = cls};
	rg_strlcpy(t.local, local, sizeof(t.local));
	rg_strlcpy(t.domain, domain, sizeof(t.domain));
	bool tables = (cfg->virtual_alias_maps && cfg->virtual_alias_maps[0]) ||
		      (cfg->alias_maps && cfg->alias_maps[0]);
	if (!tables) /* the common case costs one copy, not a walk */
		return add_target(&w, &t);
	w.chain = xcalloc(depth_limit(cfg) + 1, sizeof(char *));
	expand_node(&w, &t);
	free(w.chain);
}

void expansion_free(struct expansion *x)
{
	free(x->targets);
	strbuf_free(&x->trace);
	x->targets = NULL;
	x->n = 0;
}

const char *expand_status_text(enum expand_status s)
{
	static const char *const text[] = {"ok", "loop", "too deep", "too many addresses",
					   "bad table value"};
	return (size_t)s < RG_ARRAY_LEN(text) ? text[s] : "?";
}

bool expand_mailbox_value_ok(const char *value, char *why, size_t whylen)
{
	size_t n = strlen(value);
	const char *slash = strchr(value, '/');
	char dir[ADDR_DOMAIN_MAX + 1], sub[ADDR_LOCAL_MAX + 1];
	if (n == 0 || value[n - 1] != '/') {
		snprintf(why, whylen, "\"%s\": only Maildir delivery is supported (the path must "
			 "end in /)", value);
		return false;
	}
	if (slash == NULL || slash == value || slash + 1 == value + n - 1 ||
	    strchr(slash + 1, '/') != value + n - 1 || (size_t)(slash - value) > ADDR_DOMAIN_MAX ||
	    (size_t)(value + n - 1 - slash - 1) > ADDR_LOCAL_MAX) {
		snprintf(why, whylen, "\"%s\": must be dir/user/ (two path components under "
			 "virtual_mailbox_base)", value);
		return false;
	}
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - value), value);
	snprintf(sub, sizeof(sub), "%.*s", (int)(value + n - 2 - slash), slash + 1);
	if (!maildir_component_ok(dir) || !maildir_component_ok(sub)) {
		snprintf(why, whylen, "\"%s\": a path component may not be \"..\" or start "
			 "with \".\"", value);
		return false;
	}
	return true;
}

/* split_mailbox - "dir/sub/" into its two components (checked at load). */
static bool split_mailbox(const char *value, char *dir, size_t dirlen, char *sub,
			  size_t sublen)
{
	char why[300];
	if (!expand_mailbox_value_ok(value, why, sizeof(why)))
		return false;
	const char *slash = strchr(value, '/');
	snprintf(dir, dirlen, "%.*s", (int)(slash - value), value);
	snprintf(sub, sublen, "%.*s", (int)(strlen(slash + 1) - 1), slash + 1);
	return true;
}

/* local_listed - is local itself a key of local_recipient_maps? */
static bool local_listed(const struct config *cfg, const char *local, const char *domain)
{
	char key[ADDR_TEXT_MAX];
	snprintf(key, sizeof(key), "%s@%s", local, domain);
	return lookup_maps(cfg->local_recipient_maps, key) != NULL ||
	       lookup_maps(cfg->local_recipient_maps, local) != NULL;
}

bool expand_mailbox(const struct config *cfg, const char *local, const char *domain,
		    char *dir, size_t dirlen, char *sub, size_t sublen)
{
	enum hosted_kind kind = expand_domain_kind(cfg, domain);
	if (kind == HOSTED_VMAILBOX) {
		const char *v = lookup_mailbox(cfg, local, domain);
		return v != NULL && split_mailbox(v, dir, dirlen, sub, sublen);
	}
	if (kind == HOSTED_VALIAS)
		return false;
	rg_strlcpy(dir, domain, dirlen);
	/* user+tag delivers to user, unless user+tag is a user of its own */
	if (kind != HOSTED_LOCAL || local_listed(cfg, local, domain) ||
	    !expand_strip_extension(cfg, local, sub, sublen))
		rg_strlcpy(sub, local, sublen);
	return true;
}

/* rcpt_present - is local@domain already a recipient of m? */
static bool rcpt_present(const struct queue_msg *m, const struct expand_target *t)
{
	for (size_t i = 0; i < m->n_rcpts; i++)
		if (strcmp(m->rcpts[i].local, t->local) == 0 &&
		    strcmp(m->rcpts[i].domain, t->domain) == 0)
			return true;
	return false;
}

/* add_rcpt - one final address; orig is what the queue, logs and DSNs call it. */
static void add_rcpt(struct queue_msg *m, const char *orig, const struct expand_target *t,
		     const char *notify, const char *orcpt)
{
	queue_msg_add_rcpt(m, orig, t->local, t->domain, t->cls);
	struct queue_rcpt *q = &m->rcpts[m->n_rcpts - 1];
	q->notify = notify[0] ? xstrdup(notify) : NULL;
	q->orcpt = orcpt[0] ? xstrdup(orcpt) : NULL;
}

static void log_expansion(const struct address *a, const struct expansion *x)
{
	char to[ADDR_PATH_MAX + 3], n[24];
	snprintf(to, sizeof(to), "<%s>", a->text);
	snprintf(n, sizeof(n), "%zu", x->n);
	char *steps = xstrdup(x->trace.data ? x->trace.data : "");
	for (char *p = steps; *p; p++)
		if (*p == '\n')
			*p = p[1] ? ';' : '\0';
	log_ev(LOG_INFO, "expand", {"to", to}, {"recipients", n},
	       {"outside", x->outside ? "yes" : NULL}, {"steps", steps});
	free(steps);
}

void expand_queue_rcpt(const struct config *cfg, const struct addr_domains *d,
		       struct queue_msg *m, const struct address *a,
		       const struct addr_resolution *r, const char *notify, const char *orcpt)
{
	struct expansion x;
	expand_recipient(cfg, d, r->local, r->domain, r->cls, &x);
	if (x.status != EXPAND_OK || !x.expanded) {
		/* unexpanded (an error was answered at RCPT already): as sent */
		struct expand_target t = {.cls = r->cls};
		rg_strlcpy(t.local, r->local, sizeof(t.local));
		rg_strlcpy(t.domain, r->domain, sizeof(t.domain));
		if (!rcpt_present(m, &t))
			add_rcpt(m, a->text, &t, notify, orcpt);
		expansion_free(&x);
		return;
	}
	char kept[ADDR_PATH_MAX + 8];
	snprintf(kept, sizeof(kept), "rfc822;%s", a->text);
	for (size_t i = 0; i < x.n; i++) {
		char text[ADDR_TEXT_MAX];
		snprintf(text, sizeof(text), "%s@%s", x.targets[i].local, x.targets[i].domain);
		if (!rcpt_present(m, &x.targets[i]))
			add_rcpt(m, text, &x.targets[i], notify, orcpt[0] ? orcpt : kept);
	}
	log_expansion(a, &x);
	expansion_free(&x);
}
