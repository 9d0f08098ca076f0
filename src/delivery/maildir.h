/*
 * maildir - local delivery (the MDA): one message into one Maildir, durably.
 *
 * Owns: the mailbox path $virtual_mailbox_base/<domain>/<localpart>/, its
 * creation, Dovecot-compatible file names (<secs>.<unique>.<host>,S=<size>,
 * W=<vsize>) and the write -> fsync -> new/ -> fsync(new/) protocol (an
 * unnamed O_TMPFILE file in new/ linked under its name once synced; where
 * the kernel or file system cannot, a tmp/ file renamed into new/), the
 * Return-Path:/Delivered-To: lines of a copy, finding a copy delivered
 * before (by its unique part), and removing our own orphaned tmp/ files.
 * Messages are stored with LF line ends, as Dovecot and Postfix store them;
 * S= is that size and W= the size with CRLF.
 * Every unique part we write starts with "rg" (MAILDIR_UNIQUE_MARK): a
 * queued copy's is rg<queue id>_<recipient index>, the same at every try,
 * so recovery can see that a copy already landed even after a mail client
 * renamed new/X to cur/X:2,S; others are rgM<usecs>P<pid>Q<n>.
 * Must not: run on the event loop (it fsyncs); must not accept path
 * components that could leave the mailbox base ("..", "/"), nor write
 * through a symbolic link in it (a mailbox, its new/ or tmp/ replaced by
 * one); must not remove a tmp/ file that is not ours.
 */
#ifndef RG_MAILDIR_H
#define RG_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Deliver msg (CRLF line ends) to base/domain/local/new/: the file is written
 * and fsync'd, then linked (or renamed) into new/. The name is durable only after
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

#define MAILDIR_UNIQUE_MARK "rg"

/* One copy of a queued message: what the name and the added lines say. */
struct maildir_copy {
	const char *sender;       /* Return-Path: <sender> ("" for <>); NULL: no line */
	const char *delivered_to; /* Delivered-To: value; NULL: no line */
	const char *unique;       /* deterministic unique part ("rg..."); NULL: a fresh one */
	long long time;           /* the name's time part when unique is set (arrival) */
};

/* Deliver len bytes of fd at offset (CRLF line ends) as copy c: the two
 * lines come first, then the text, streamed. Otherwise as maildir_deliver. */
bool maildir_deliver_copy(const char *base, const char *domain, const char *local,
			  const struct maildir_copy *c, int fd, off_t offset, size_t len,
			  char *path, size_t pathlen, char *newdir, size_t newdirlen,
			  char *err, size_t errlen);

/* The same, the text (len bytes, CRLF line ends) from memory. */
bool maildir_deliver_copy_mem(const char *base, const char *domain, const char *local,
			      const struct maildir_copy *c, const char *msg, size_t len,
			      char *path, size_t pathlen, char *newdir, size_t newdirlen,
			      char *err, size_t errlen);

/* Does base/domain/local hold a copy whose unique part is unique, in new/ or
 * in cur/ (any flags)? It reads both directories whole: call it only for a
 * message that may have been delivered before (recovery, a retry). On true,
 * path gets its full path and dir its directory ("domain/local/new"). */
bool maildir_find_delivered(const char *base, const char *domain, const char *local,
			    const char *unique, char *path, size_t pathlen, char *dir,
			    size_t dirlen);

/* The queue id and recipient index of a file name whose unique part is a
 * queued copy's (rg<16 hex digits>_<index>); false for any other name. */
bool maildir_parse_unique(const char *name, uint64_t *qid, uint32_t *idx);

/* Call fn for every queued copy (see maildir_parse_unique) in new/, then in
 * cur/ of base/domain/local (new/ first: a client moves files from new/ to
 * cur/, never back, so a copy moved meanwhile is still seen once).
 * Returns false if a directory exists but cannot be read. */
bool maildir_scan_copies(const char *base, const char *domain, const char *local,
			 void (*fn)(void *arg, uint64_t qid, uint32_t idx, bool in_cur),
			 void *arg);

/* Remove our own files (unique part marked "rg") left in the tmp/ of every
 * Maildir base/<domain>/<localpart>/ by a process that ran before started,
 * visiting at most max_mailboxes Maildirs. A queued copy's name holds its
 * queue id (the time its message arrived), a fresh one its writer's pid and
 * time: a copy of a message older than started is an orphan, because the
 * caller writes none until this returns, and copies of newer messages are
 * left alone. Other names go by their file time, less MAILDIR_CLOCK_SLACK_MS
 * (file times come from a coarse clock). Symbolic links are not followed.
 * Returns how many files were removed; *visited gets the Maildirs looked at. */
#define MAILDIR_CLOCK_SLACK_MS 50
size_t maildir_clean_tmp(const char *base, const struct timespec *before,
			 size_t max_mailboxes, size_t *visited);

/* How copies are written, for tests of every way: AUTO (the default) an
 * unnamed file linked with AT_EMPTY_PATH, else through /proc/self/fd, else
 * tmp/ + rename, each step taken at the first refusal of the one before;
 * PROC starts at /proc/self/fd; TMP always writes through tmp/. */
enum maildir_way { MAILDIR_WAY_AUTO, MAILDIR_WAY_PROC, MAILDIR_WAY_TMP };
void maildir_force_way(enum maildir_way way);

/* Is s usable as one path component of a mailbox? */
bool maildir_component_ok(const char *s);

#endif
