/*
 * expand - aliases and hosted domains: where mail for one of our addresses
 * really goes (Postfix's virtual(5), aliases(5) and virtual(8) lookups).
 *
 * Owns: the kind of each of our domains (mydestination, virtual alias,
 * virtual mailbox), whether a recipient of a hosted domain exists, the
 * recursive expansion of an address through virtual_alias_maps and
 * alias_maps into final addresses (depth limit, loop detection, duplicates
 * removed, recipient_delimiter), the Maildir of a final local address, and
 * adding the expanded recipients to a message (original kept as ORCPT).
 * It is called by the policy (RCPT validation), the session (when a
 * recipient is accepted: the queue file holds expanded recipients, as
 * Postfix's cleanup writes them), local delivery (the mailbox) and the
 * audit/explain commands (what forwards where).
 * Must not: do I/O (tables are in memory since the configuration was
 * loaded; expand_queue_rcpt's one "expand" log line aside) or judge the
 * client: forwarding happens only for recipients the relay policy accepted.
 */
#ifndef RG_EXPAND_H
#define RG_EXPAND_H

#include <stdbool.h>
#include <stddef.h>

#include "address/address.h"
#include "config/config.h"
#include "util/util.h"

struct queue_msg;

/* What kind of destination a domain is for us. */
enum hosted_kind {
	HOSTED_NONE,     /* not ours (relay_domains or somebody else's) */
	HOSTED_LOCAL,    /* mydestination (or our address literal): alias_maps apply */
	HOSTED_VALIAS,   /* virtual_alias_domains: every address must be an alias */
	HOSTED_VMAILBOX, /* virtual_mailbox_domains: Maildirs from virtual_mailbox_maps */
};
enum hosted_kind expand_domain_kind(const struct config *cfg, const char *domain);

/* Does the recipient exist? For hosted domains the answer is final;
 * KNOWN_LOCAL_TABLE leaves a mydestination address without an alias to
 * local_recipient_maps (the policy's table). */
enum expand_known {
	KNOWN_YES,             /* an alias or a mailbox */
	KNOWN_NO_VALIAS,       /* 550 User unknown in virtual alias table */
	KNOWN_NO_VMAILBOX,     /* 550 User unknown in virtual mailbox table */
	KNOWN_LOCAL_TABLE,     /* ask local_recipient_maps (user, user+ext stripped) */
	KNOWN_NOT_OURS,        /* not one of our domains: no opinion */
};
enum expand_known expand_recipient_known(const struct config *cfg, const char *local,
					 const char *domain);

/* local without its recipient_delimiter extension ("user+tag" -> "user"), into
 * out; false (out = local) when there is none. */
bool expand_strip_extension(const struct config *cfg, const char *local, char *out,
			    size_t outlen);

struct expand_target {
	char local[ADDR_LOCAL_MAX + 1];
	char domain[ADDR_DOMAIN_MAX + 1];
	enum addr_class cls;
};

enum expand_status {
	EXPAND_OK,
	EXPAND_LOOP,      /* an alias leads back to one of its own ancestors */
	EXPAND_DEPTH,     /* nested deeper than virtual_alias_recursion_limit */
	EXPAND_TOO_MANY,  /* more than virtual_alias_expansion_limit addresses */
	EXPAND_BAD_VALUE, /* a table value is not an address */
};

struct expansion {
	enum expand_status status;
	struct expand_target *targets; /* final addresses, no duplicates */
	size_t n;
	bool expanded;                 /* some table matched (targets differ from the input) */
	bool outside;                  /* some target is not one of our domains */
	char why[512];                 /* what went wrong, for the reply and the log */
	struct strbuf trace;           /* "a@x -> b@x, c@y (virtual_alias_maps)" per step */
};

/* Expand local@domain (resolved, class cls) into final addresses. d resolves
 * the table values (mydestination, our address literals). Always call
 * expansion_free() afterwards. */
void expand_recipient(const struct config *cfg, const struct addr_domains *d,
		      const char *local, const char *domain, enum addr_class cls,
		      struct expansion *out);
void expansion_free(struct expansion *x);
const char *expand_status_text(enum expand_status s);

/* The Maildir of a final local address: "dir/sub" under virtual_mailbox_base
 * (mydestination: domain/user with the extension stripped; virtual mailbox
 * domains: the virtual_mailbox_maps value "dir/sub/"). False when the
 * address has no mailbox (unknown virtual user, a virtual alias domain). */
bool expand_mailbox(const struct config *cfg, const char *local, const char *domain,
		    char *dir, size_t dirlen, char *sub, size_t sublen);

/* Is every address of a table value usable (checked when tables are loaded)?
 * "@domain" results only for "@domain" keys of virtual_alias_maps. */
bool expand_value_ok(const char *key, const char *value, bool alias, char *why,
		     size_t whylen);

/* Is a virtual_mailbox_maps value usable ("dir/sub/", two safe components)? */
bool expand_mailbox_value_ok(const char *value, char *why, size_t whylen);

/*
 * Add the accepted recipient a (resolved as r) to m: its expansion, each
 * final address once; an expanded one keeps a as its ORCPT (unless the
 * client gave one) for DSNs, as Postfix's cleanup does. notify/orcpt: the
 * RCPT parameters ("" when absent). Logs one "expand" line when an alias
 * matched.
 */
void expand_queue_rcpt(const struct config *cfg, const struct addr_domains *d,
		       struct queue_msg *m, const struct address *a,
		       const struct addr_resolution *r, const char *notify, const char *orcpt);

#endif
