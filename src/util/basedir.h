/*
 * basedir - the server's own directories, held open from start-up.
 *
 * Owns: one open descriptor per base directory (queue_directory,
 * virtual_mailbox_base). Opened as root before privileges are dropped, they
 * let mail_owner work inside them with openat()/renameat() even when a
 * parent directory (say /root) is closed to it, and no later rename of a
 * parent path can redirect where mail is written.
 * Must not: be used for paths outside those directories.
 */
#ifndef RG_BASEDIR_H
#define RG_BASEDIR_H

#include <stdbool.h>
#include <stddef.h>

/* Open (once) and remember path; false with errno set on failure. */
bool basedir_open(const char *path);
/* The descriptor for path: opened before, or opened now. -1 with errno set. */
int basedir_fd(const char *path);
/* Close everything (at exit). */
void basedir_close_all(void);

#endif
