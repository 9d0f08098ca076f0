/*
 * hijack_state - what the hijacked-account hold keeps across a restart when
 * there is no shared_state: queue_directory/hijack-state.
 *
 * Owns: the file's syntax, reading it into a hijack table at start-up, the
 * text a snapshot writes (statefile.h writes it, off the loop), and lifting
 * one login's suspension in the file when no server runs (the command line).
 * Must not: write the file on the event loop (abuse.c hands snapshots to
 * statefile), or trust what it reads: every line is bounded and checked.
 *
 * FILE
 *	"# relayguard hijack-state 1", then per login, least recently seen first
 *	(every suspended login, and the HIJACK_STATE_LOGINS most recently seen
 *	that know a domain):
 *	    suspended LOGIN UNTIL WHY     while LOGIN is suspended (Unix seconds)
 *	    known LOGIN HASH...           its known recipient domains, oldest
 *	                                  first, at most 32 per line (64-bit
 *	                                  FNV-1a of the lower-cased domain, hex)
 *	Bad lines are skipped and counted; an expired suspension is dropped.
 */
#ifndef RG_ABUSE_HIJACK_STATE_H
#define RG_ABUSE_HIJACK_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/util.h"

struct hijack;

#define HIJACK_STATE_FILE "hijack-state"
/* Known domains are kept for the most recently seen logins only: the loop
 * copies them for each write (4 MB for 1,000 full lists; every suspended
 * login is kept whatever its age). */
#define HIJACK_STATE_LOGINS 1000

/* hijack_state_snapshot - H at NOW as raw records (a copy, no formatting:
 * made on the loop); hijack_state_render - the file's text from them (on
 * the worker that writes it). hijack_state_format - both at once. */
void hijack_state_snapshot(const struct hijack *h, time_t now, struct strbuf *raw);
void hijack_state_render(const char *raw, size_t len, struct strbuf *out);
void hijack_state_format(const struct hijack *h, time_t now, struct strbuf *out);
/* hijack_state_line - one line (no newline) into H at NOW; a suspension
 * lasts at most MAX_SUSPEND seconds more. False: malformed. Pure. */
bool hijack_state_line(struct hijack *h, const char *line, time_t now, unsigned max_suspend);
/* hijack_state_load - queue_dir/hijack-state into H (missing: nothing to
 * do); *BAD gets the number of bad lines. Blocks: start-up only. False with
 * ERR when the file exists but cannot be read. */
bool hijack_state_load(struct hijack *h, const char *queue_dir, time_t now,
		       unsigned max_suspend, size_t *bad, char *err, size_t errlen);
/* hijack_state_lift - LOGIN's suspension removed from the file (the queue
 * lock held, no server running); *WAS: it was suspended. Blocks. */
bool hijack_state_lift(const char *queue_dir, const char *login, bool *was, char *err,
		       size_t errlen);

#endif
