/*
 * maildir - local delivery (the MDA): one message into one Maildir, durably.
 *
 * Owns: the mailbox path $virtual_mailbox_base/<domain>/<localpart>/, its
 * creation, Dovecot-compatible file names (<secs>.M<usecs>P<pid>Q<n>.<host>,
 * S=<size>,W=<vsize>) and the tmp/ -> fsync -> new/ -> fsync(new/) protocol.
 * Messages are stored with LF line ends, as Dovecot and Postfix store them;
 * S= is that size and W= the size with CRLF.
 * Must not: run on the event loop (it fsyncs); must not accept path
 * components that could leave the mailbox base ("..", "/").
 */
#ifndef RG_MAILDIR_H
#define RG_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Deliver msg (CRLF line ends) to base/domain/local/new/: the file is written
 * and fsync'd, then renamed into new/. The rename is durable only after
 * dirsync(base, newdir), newdir being "domain/local/new"; callers delivering
 * many messages sync each directory once. On success the file's full path is
 * written to path. base must be open in basedir (see basedir.h). */
bool maildir_deliver(const char *base, const char *domain, const char *local,
		     const char *msg, size_t len, char *path, size_t pathlen,
		     char *newdir, size_t newdirlen, char *err, size_t errlen);

/* The same, reading the text from len bytes of fd at offset (a queue file),
 * so a large message is never held in memory. */
bool maildir_deliver_fd(const char *base, const char *domain, const char *local, int fd,
			off_t offset, size_t len, char *path, size_t pathlen, char *newdir,
			size_t newdirlen, char *err, size_t errlen);

/* Is s usable as one path component of a mailbox? */
bool maildir_component_ok(const char *s);

#endif
