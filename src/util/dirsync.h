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

/* Free the table of directories (at exit; no dirsync() may be running). */
void dirsync_cleanup(void);

#endif
