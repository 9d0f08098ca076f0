/*
 * queue_admin.c - finding, moving and listing queue files (see queue_admin.h).
 *
 * LISTING (text, like Postfix's mailq; '*' after the id: in active/, being
 * delivered; '!': held)
 *	-Queue ID-           --Size-- ----Arrival Time---- -Sender/Recipient-------
 *	0000018C2A3B4C5D!        1234 Fri Dec  4 14:00:00  alice@example.com
 *	                                         (last error of the next recipient)
 *	                                                   bob@example.net
 *
 *	-- 2 Kbytes in 1 Request.
 * Delivered recipients are left out. Every byte that came from a client is
 * shown as '?' unless it is printable ASCII, so a sender cannot paint the
 * operator's terminal.
 *
 * LISTING (JSON): one array, one object per message:
 *	{"id":..,"queue":"deferred","size":N,"arrival":EPOCH,"arrival_iso":"..Z",
 *	 "sender":..,"held":false,"delivering":false,"next_try":null,
 *	 "recipients":[{"address":..,"done":false,"last_reply":null}]}
 */
#include "queue/queue_admin.h"
#include "util/basedir.h"
#include "util/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUEUE_ID_MIN 16
#define COL_REASON 41 /* where "(last error)" starts */
#define COL_ADDR 51   /* where sender and recipients start */

const char *const queue_admin_subdirs[3] = {"active", "deferred", "hold"};

/*
 * QUEUE FORMAT v2: the integrator adds the last reply per recipient and the
 * next delivery attempt per message. These two functions are the only places
 * the listing reads them; until then they are unknown.
 */
static const char *rcpt_last_reply(const struct queue_rcpt *r)
{
	return r->last_reply; /* from the state records; NULL when never tried */
}

static time_t msg_next_try(const struct queue_msg *m)
{
	return queue_msg_next_try(m); /* 0: not scheduled (never tried) */
}

bool queue_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n < QUEUE_ID_MIN || n > QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
			return false;
	return true;
}

bool queue_find(const char *dir, const char *id, char *path, size_t pathlen)
{
	int base = basedir_fd(dir);
	if (base < 0 || !queue_id_valid(id))
		return false;
	for (size_t i = 0; i < RG_ARRAY_LEN(queue_admin_subdirs); i++) {
		snprintf(path, pathlen, "%s/%s", queue_admin_subdirs[i], id);
		struct stat st;
		if (fstatat(base, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			return true;
	}
	errno = ENOENT;
	return false;
}

bool queue_move(const char *dir, const char *path, const char *sub, char *err,
		size_t errlen)
{
	const char *name = strrchr(path, '/');
	char dst[64];
	snprintf(dst, sizeof(dst), "%s/%s", sub, name ? name + 1 : path);
	int base = basedir_fd(dir);
	/* NOREPLACE: two copies of one id must never overwrite each other */
	if (base < 0 || renameat2(base, path, base, dst, RENAME_NOREPLACE) != 0) {
		snprintf(err, errlen, "cannot move %s/%s to %s/: %s", dir, path, sub,
			 strerror(errno));
		return false;
	}
	return true;
}

enum queue_state queue_state_of(const char *path)
{
	if (strncmp(path, "hold/", 5) == 0)
		return QUEUE_STATE_HELD;
	if (strncmp(path, "active/", 7) == 0)
		return QUEUE_STATE_ACTIVE;
	return QUEUE_STATE_DEFERRED;
}

/* put_printable - untrusted text for a terminal: anything but printable ASCII is '?'. */
static void put_printable(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		char c = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
		strbuf_append(sb, &c, 1);
	}
}

/* rcpt_address - where the recipient's mail goes: local@domain. */
static char *rcpt_address(const struct queue_rcpt *r)
{
	return r->domain[0] ? xasprintf("%s@%s", r->local, r->domain) : xstrdup(r->local);
}

static const char *state_name(enum queue_state st)
{
	return st == QUEUE_STATE_HELD ? "hold" : st == QUEUE_STATE_ACTIVE ? "active" : "deferred";
}

/* format_text - one message's mailq entry. */
static void format_text(struct strbuf *out, const struct queue_msg *m, enum queue_state st)
{
	char idcol[QUEUE_ID_LEN + 2], when[32];
	struct tm tm;
	snprintf(idcol, sizeof(idcol), "%s%s", m->id,
		 st == QUEUE_STATE_HELD ? "!" : st == QUEUE_STATE_ACTIVE ? "*" : "");
	if (localtime_r(&m->arrival, &tm) == NULL ||
	    strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
		rg_strlcpy(when, "?", sizeof(when));
	strbuf_printf(out, "%-20s %8llu %-20s ", idcol, (unsigned long long)m->size, when);
	put_printable(out, m->sender[0] ? m->sender : "MAILER-DAEMON");
	strbuf_puts(out, "\n");
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		if (r->done)
			continue;
		const char *reply = rcpt_last_reply(r);
		if (reply != NULL) {
			strbuf_printf(out, "%*s(", COL_REASON, "");
			put_printable(out, reply);
			strbuf_puts(out, ")\n");
		}
		char *addr = rcpt_address(r);
		strbuf_printf(out, "%*s", COL_ADDR, "");
		put_printable(out, addr);
		strbuf_puts(out, "\n");
		free(addr);
	}
	strbuf_puts(out, "\n");
}

/* format_json - one message as a JSON object (done recipients included). */
static void format_json(struct strbuf *out, const struct queue_msg *m, enum queue_state st)
{
	char iso[32];
	struct tm tm;
	if (gmtime_r(&m->arrival, &tm) == NULL ||
	    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		iso[0] = '\0';
	strbuf_printf(out, "{\"id\":\"%s\",\"queue\":\"%s\",\"size\":%llu,\"arrival\":%lld,"
		      "\"arrival_iso\":\"%s\",\"sender\":", m->id, state_name(st),
		      (unsigned long long)m->size, (long long)m->arrival, iso);
	json_string(out, m->sender);
	time_t next = msg_next_try(m);
	strbuf_printf(out, ",\"held\":%s,\"delivering\":%s,\"next_try\":",
		      st == QUEUE_STATE_HELD ? "true" : "false",
		      st == QUEUE_STATE_ACTIVE ? "true" : "false");
	if (next > 0)
		strbuf_printf(out, "%lld", (long long)next);
	else
		strbuf_puts(out, "null");
	strbuf_puts(out, ",\"recipients\":[");
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		char *addr = rcpt_address(r);
		const char *reply = rcpt_last_reply(r);
		strbuf_puts(out, i ? ",{\"address\":" : "{\"address\":");
		json_string(out, addr);
		strbuf_printf(out, ",\"done\":%s,\"last_reply\":", r->done ? "true" : "false");
		if (reply != NULL)
			json_string(out, reply);
		else
			strbuf_puts(out, "null");
		strbuf_puts(out, "}");
		free(addr);
	}
	strbuf_puts(out, "]}");
}

void queue_listing_begin(struct queue_listing *l, struct strbuf *out, bool json)
{
	l->out = out;
	l->json = json;
	l->n = 0;
	l->bytes = 0;
	if (json)
		strbuf_puts(out, "[");
}

void queue_listing_add(struct queue_listing *l, const struct queue_msg *m,
		       enum queue_state state)
{
	if (l->json) {
		strbuf_puts(l->out, l->n ? ",\n" : "\n");
		format_json(l->out, m, state);
	} else {
		if (l->n == 0)
			strbuf_puts(l->out, "-Queue ID-           --Size-- ----Arrival Time---- "
				    "-Sender/Recipient-------\n");
		format_text(l->out, m, state);
	}
	l->n++;
	l->bytes += m->size;
}

void queue_listing_end(struct queue_listing *l)
{
	if (l->json)
		strbuf_puts(l->out, l->n ? "\n]\n" : "]\n");
	else if (l->n == 0)
		strbuf_puts(l->out, "Mail queue is empty\n");
	else
		strbuf_printf(l->out, "-- %llu Kbytes in %zu Request%s.\n",
			      (unsigned long long)((l->bytes + 1023) / 1024), l->n,
			      l->n == 1 ? "" : "s");
}

/* list_one - load a file's envelope and add it; a file that vanished (just
 * delivered) is skipped, a damaged one named. */
static void list_one(struct queue_listing *l, const char *dir, const char *path)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	char err[512];
	errno = 0;
	if (queue_load_header(dir, path, m, err, sizeof(err)))
		queue_listing_add(l, m, queue_state_of(path));
	else if (errno != ENOENT && !l->json)
		strbuf_printf(l->out, "%s: skipped: %s\n\n", path, err);
	queue_msg_free(m);
}

bool queue_list_files(const char *dir, bool json, struct strbuf *out, char *err,
		      size_t errlen)
{
	if (basedir_fd(dir) < 0) {
		snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
		return false;
	}
	struct queue_listing l;
	queue_listing_begin(&l, out, json);
	for (size_t i = 0; i < RG_ARRAY_LEN(queue_admin_subdirs); i++) {
		errno = 0;
		char **files = queue_list(dir, queue_admin_subdirs[i]);
		if (files == NULL && errno != ENOENT) {
			snprintf(err, errlen, "cannot read %s/%s: %s", dir, queue_admin_subdirs[i],
				 strerror(errno));
			queue_listing_end(&l);
			return false;
		}
		for (size_t j = 0; files && files[j]; j++) {
			list_one(&l, dir, files[j]);
			free(files[j]);
		}
		free(files);
	}
	queue_listing_end(&l);
	return true;
}
