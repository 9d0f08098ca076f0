/*
 * queue - durable queue files: nothing is acknowledged before it is on disk.
 *
 * Owns: the queue directory layout, the queue file format, queue ids, and the
 * commit protocol: write tmp/ID, fsync it, rename into active/, fsync
 * active/. A file in active/ or deferred/ is therefore complete; its header
 * also records the body length, so a damaged file is recognised and moved to
 * corrupt/ instead of being delivered.
 *   tmp/       being written; anything here at start-up was never acknowledged
 *   active/    acknowledged, local deliveries pending
 *   deferred/  delivery failed temporarily; retried at the recipients' next_try
 *   corrupt/   files that failed verification, kept for the operator
 *   hold/      kept from delivery until released (operator, or a suspended login)
 * Must not: be called on the event loop thread for anything that writes
 * (queue_commit, queue_finish); those block on fsync. Runs on workers.
 */
#ifndef RG_QUEUE_H
#define RG_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "address/address.h"
#include "util/util.h"

#define QUEUE_ID_LEN 20
#define QUEUE_REPLY_MAX 512 /* bytes of a recipient's last reply that are kept */

struct queue_rcpt {
	char *orig;              /* as the client sent it (path without <>) */
	char *local, *domain;    /* resolved final destination */
	enum addr_class cls;
	bool done;
	long status_offset;      /* of the status byte in the file, -1 if unknown */
	/* delivery state (format 2: state records after the text) */
	unsigned attempts;       /* delivery attempts that failed temporarily */
	time_t last_try, next_try;
	char *last_reply;        /* the last failure, "450 4.2.0 ..." or ours; NULL */
	/* the outcome of the current delivery pass (in memory only) */
	enum rcpt_outcome { RCPT_UNTRIED, RCPT_SENT, RCPT_DEFERRED, RCPT_BOUNCED } outcome;
	char dsn[16];            /* enhanced status of the outcome, "5.1.1" */
	char *remote_mta;        /* the host that gave the reply, or NULL */
	const char *transport;   /* the route taken ("local", "smtp", "lmtp", "error",
				  * "discard"; a string constant), NULL: not routed */
	char tls[160];           /* the TLS it went over ("TLSv1.3 ... verified"), or "" */
	bool relayed_no_dsn;     /* sent to a next hop without DSN (NOTIFY=SUCCESS: relayed) */
	bool final_delivery;     /* sent into a mailbox through a server (LMTP): NOTIFY=SUCCESS
				  * gets "delivered", as for our own Maildirs */
	/* RFC 3461 (stored): NOTIFY ("SUCCESS,FAILURE", "NEVER") and ORCPT ("rfc822;a@b") */
	char *notify, *orcpt;    /* NULL: not given */
};

struct queue_msg {
	char id[QUEUE_ID_LEN + 1];
	time_t arrival;
	char *client_ip, *client_name, *helo, *sender; /* sender "" for <> */
	char *dsn_ret, *dsn_envid; /* RFC 3461 RET= ("FULL"/"HDRS") and ENVID=, or NULL */
	time_t warned;       /* when a delay warning was sent (0: never); a state record */
	struct queue_rcpt *rcpts;
	size_t n_rcpts;
	struct strbuf body;  /* Received: header + message, CRLF line ends */
	bool set_aside;      /* moved to corrupt/: nothing more to do */
	char session[24];    /* the SMTP session it came from (logs only; not stored) */
	uint64_t size;       /* of the text, set at commit (body may be on disk only) */
	long body_offset;    /* where the text starts in the committed file */
	char *path;          /* the committed file relative to the queue ("active/ID") */
	char *login;         /* the SASL login that submitted it, or NULL (stored) */
	bool hold;           /* commit into hold/, not active/: never delivered until released */
	bool junk;           /* DMARC quarantine: local copies go to the Maildir's .Junk/ (stored) */
};

/* Create the directories (mode 0700) and hold dir open (basedir.h): call it
 * before dropping privileges. Every other function works relative to it. */
bool queue_init(const char *dir, char *err, size_t errlen);
/* A new unique id: time-ordered, 16 upper-case hex digits, above every id in
 * the queue when queue_init ran (so a clock set back cannot repeat one). */
void queue_new_id(char out[QUEUE_ID_LEN + 1]);

void queue_msg_add_rcpt(struct queue_msg *m, const char *orig, const char *local,
			const char *domain, enum addr_class cls);
void queue_msg_free(struct queue_msg *m);

/* Worker thread: make m durable in active/. */
bool queue_commit(const char *dir, struct queue_msg *m, char *err, size_t errlen);
/*
 * Spooling: a large message is written to tmp/ID while it arrives, so its
 * text does not wait in memory. queue_spool_new() runs on the loop (it only
 * formats the envelope); the others are worker-thread calls, one at a time
 * per spool. commit and abort free the spool.
 */
struct queue_spool;
struct queue_spool *queue_spool_new(struct queue_msg *m);
bool queue_spool_write(const char *dir, struct queue_spool *sp, const char *data, size_t n,
		       char *err, size_t errlen);
/* Size in place, fdatasync, rename into active/, sync active/: as queue_commit. */
bool queue_spool_commit(const char *dir, struct queue_spool *sp, struct queue_msg *m,
			char *err, size_t errlen);
void queue_spool_abort(const char *dir, struct queue_spool *sp);
uint64_t queue_spool_size(const struct queue_spool *sp);
/* Header lines to put above the text: the commit rewrites tmp/ID with them
 * (copying the text on its worker). Loop thread, no write in flight. */
void queue_spool_prepend(struct queue_spool *sp, const char *lines, size_t n);
/* Worker thread, no write in flight: tmp/ID opened for reading (close it),
 * the text starting at *text_offset; -1 when nothing was written yet. */
int queue_spool_open_text(const char *dir, const struct queue_spool *sp, uint64_t *text_offset);
/* Mark the spooled message junk (queue_msg.junk): the commit rewrites tmp/ID. Loop thread. */
void queue_spool_junk(struct queue_spool *sp);

/* Read a committed file, path relative to dir ("active/ID"). On failure
 * errno is EBADMSG when the file is damaged (set it aside), else the reason
 * it could not be read (ENOENT: it is gone; others: try again later). */
bool queue_load(const char *dir, const char *path, struct queue_msg *m, char *err,
		size_t errlen);
/* The envelope only (the length is still checked): start-up recovery reads
 * no message text on the event loop; delivery copies it from the file later. */
bool queue_load_header(const char *dir, const char *path, struct queue_msg *m, char *err,
		       size_t errlen);
/* Worker thread: record done recipients; unlink when none is left, else move
 * to deferred/. */
bool queue_finish(const char *dir, struct queue_msg *m, char *err, size_t errlen);

/* Worker thread: write the done marks of m's recipients into its file (so a
 * restart does not deliver them again) while others still wait for a retry. */
bool queue_record_progress(const char *dir, const struct queue_msg *m);
/* Worker thread: the done marks, plus a state record (attempts, next try,
 * last reply) for every pending recipient that has been tried. A file of
 * format 1 is turned into format 2 first; one whose records pass 64 KiB is
 * rewritten with one record per pending recipient. */
bool queue_record_state(const char *dir, struct queue_msg *m, char *err, size_t errlen);
/* Worker thread: the file's mtime becomes its next try (queue scans skip
 * files whose mtime is in the future). Call it last: any write resets it. */
bool queue_set_next_try(const char *dir, const struct queue_msg *m);
/* The earliest next_try of m's pending recipients (0: now). */
time_t queue_msg_next_try(const struct queue_msg *m);
/* Replace r's last reply (NULL clears it). */
void queue_rcpt_set_reply(struct queue_rcpt *r, const char *reply);
/* Files in dir/sub as "sub/NAME" (sorted, NULL-terminated), or NULL. */
char **queue_list(const char *dir, const char *sub);
/* Move a damaged file aside into corrupt/. */
void queue_set_aside(const char *dir, const char *path);
/* Delete leftovers in tmp/ (never acknowledged); returns how many. */
size_t queue_clean_tmp(const char *dir);

#endif
