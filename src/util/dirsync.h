/*
 * dirsync - group commit for directory fsyncs.
 *
 * Owns: making renames and new entries in a directory durable, shared by
 * threads: when several threads need the same directory synced, one fsync
 * started after all their renames serves them all, so N concurrent commits
 * cost one directory fsync instead of N.
 * Must not: be called on the event loop (it blocks).
 */
#ifndef RG_DIRSYNC_H
#define RG_DIRSYNC_H

#include <stdbool.h>

/* Return once every change made to base/rel (a directory) before the call is
 * on disk. base is one of the basedir directories; rel may be ".". */
bool dirsync(const char *base, const char *rel);

/* dirsync_then - dirsync() without waiting on a round another thread will
 * lead: done(arg, error) runs once every change made to base/rel before
 * the call is on disk (error 0) or its fsync failed (an errno), on the
 * thread that led the round that covered it (this one, before
 * dirsync_then returns, if it leads). Per round one caller waits to lead
 * the next; the others go back to work at once (no sleep and wake-up
 * each). */
typedef void (*dirsync_fn)(void *arg, int error);
void dirsync_then(const char *base, const char *rel, dirsync_fn done, void *arg);

/* Free the table of directories (at exit; no dirsync() may be running). */
void dirsync_cleanup(void);

#endif
