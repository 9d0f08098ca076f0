/*
 * tlsmem - downgrade memory: per destination domain, the best TLS that
 * delivery has seen (plain, TLS unverified, TLS verified), kept with the
 * queue in queue_directory/tls-memory (and, with shared_state, raises are
 * passed between hosts by the SMTP transport's owner: see server.c).
 *
 * Owns: the table of domains, its file (read at start-up, rewritten on a
 * worker thread after a change: temp file, fsync, rename, directory sync),
 * the file's syntax, and the listing the operator sees.
 * Must not: decide what a delivery does with the memory (the SMTP transport
 * does), or block the event loop after tlsmem_open.
 *
 * FILE
 *	"# relayguard tls-memory 1" then one line per domain:
 *	    DOMAIN LEVEL SINCE LAST
 *	LEVEL is plain, tls or verified; SINCE is when that level was first
 *	seen, LAST when it was last seen (Unix seconds). Bad lines are skipped.
 */
#ifndef RG_TLSMEM_H
#define RG_TLSMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/util.h"

#define TLSMEM_FILE "tls-memory"
#define TLSMEM_MAX_ENTRIES 100000 /* when full: expired entries go, else the LRU unverified */
#define TLSMEM_REFRESH_SECONDS 86400 /* LAST is saved again at most once a day */

struct event_base;
struct tlsmem;

enum tlsmem_level { TLSMEM_UNKNOWN, TLSMEM_PLAIN, TLSMEM_TLS, TLSMEM_VERIFIED };

struct tlsmem_entry {
	char domain[256]; /* lower case */
	enum tlsmem_level best;
	time_t since, last;
};

/* ---- pure parts, exposed for tests ---- */
/* The level a session's TLS description says: "none" -> plain,
 * "TLSv1.3 ... verified" -> verified, "... unverified (why)" -> tls. */
enum tlsmem_level tlsmem_level_of(const char *tls_desc);
const char *tlsmem_level_name(enum tlsmem_level l);
/* Is s a domain we can remember (letters, digits, '-', '_', '.'; 1..253)? */
bool tlsmem_domain_valid(const char *s);
/* One line of the file (without the newline) into e; false when malformed. */
bool tlsmem_parse_line(const char *line, struct tlsmem_entry *e);
/* One line of the file, with its newline. */
void tlsmem_format_line(const struct tlsmem_entry *e, struct strbuf *out);
/* "DOMAIN LEVEL" as another host shares a raise (shared_state): domain
 * valid (lower-cased into e->domain), level tls or verified, nothing after;
 * false otherwise (plain is never shared: it raises nothing). */
bool tlsmem_parse_shared(const char *text, struct tlsmem_entry *e);

/* ---- the table ---- */
/* Read queue_dir/tls-memory (missing is fine: an empty memory). Blocks: call
 * it at start-up, before the loop runs. base NULL: no background writes
 * (the command line; tlsmem_save_now writes). NULL with err on a read error. */
struct tlsmem *tlsmem_open(struct event_base *base, const char *queue_dir, char *err,
			   size_t errlen);
/* Entries last seen more than lifetime seconds before now are of no use:
 * drop them (call after tlsmem_open: expired lines go at load) and, when
 * full, drop them first, else the least recently seen entry that is not
 * verified; hold at most max entries (0: TLSMEM_MAX_ENTRIES). */
void tlsmem_limit(struct tlsmem *m, uint64_t lifetime, size_t max, time_t now);
/* The entry of domain (any case), or NULL. Valid until the next change. */
const struct tlsmem_entry *tlsmem_get(const struct tlsmem *m, const char *domain);
/* A delivery to domain saw level seen at time now: raise the best level,
 * refresh LAST; the file is rewritten in the background when that matters. */
void tlsmem_note(struct tlsmem *m, const char *domain, enum tlsmem_level seen, time_t now);
/* Forget domain; false when it was not remembered. */
bool tlsmem_forget(struct tlsmem *m, const char *domain);
/* "DOMAIN LEVEL since DATE last DATE" lines, sorted by domain. */
void tlsmem_list(const struct tlsmem *m, struct strbuf *out);
/* Write the file now, on this thread (command line, exit). */
bool tlsmem_save_now(struct tlsmem *m, char *err, size_t errlen);
/* Wait for a background write, save what changed since, free. NULL is fine. */
void tlsmem_free(struct tlsmem *m);

#endif
