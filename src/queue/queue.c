/*
 * queue.c - queue files (see queue.h).
 *
 * FILE FORMAT (version 2; version 1 is the same without state records)
 *	RGQ2
 *	id 0000018C2A3B4C5D
 *	arrival 1700000000
 *	client 127.0.0.9 localhost
 *	helo attacker.example
 *	sender ceo@example.com            (empty after "sender " for <>)
 *	dsn HDRS QQ314159                 (RFC 3461 RET and ENVID; only when given)
 *	login alice@example.com           (the SASL login; only after AUTH)
 *	junk                              (DMARC quarantine: local copies into .Junk/)
 *	rcpt P L postmaster localhost postmaster@localhost
 *	rcptdsn 0 SUCCESS,FAILURE rfc822;pm@example.com  (NOTIFY, ORCPT; only when given)
 *	size 1234
 *	<empty line>
 *	<size bytes: Received: header and message, CRLF line ends>
 *
 *	state 1 3 1700003600 1700001800 450%204.2.0%20mailbox%20busy
 *	warned 1700014400                 (a delay warning went out then)
 *	...
 *
 *	Fields are separated by single spaces; any byte that is a space, a
 *	control character, non-ASCII or '%' is written as %XX. The status byte
 *	of a rcpt line (P pending, D done) is updated in place.
 *	After the text, delivery attempts append state records: recipient
 *	index, attempts, next try, last try, last reply; the last record of a
 *	recipient wins. They are advisory (a lost one means an earlier retry),
 *	so a record cut short by a crash is ignored, but any other line there
 *	marks the file as damaged. Recording state in a version 1 file first
 *	turns its magic into RGQ2 in place: the rest is the same.
 */
#include "queue/queue.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define QUEUE_MAGIC "RGQ2\n"
#define QUEUE_MAGIC_V1 "RGQ1\n"
#define MAGIC_LEN 5
#define STATE_MAX (8u << 20) /* bytes of state records read back (one pass of 1,000
				* recipients with long replies fits) */
#define STATE_COMPACT (64u << 10) /* past this, the file is rewritten with one record each */
#define SPOOL_SIZE_WIDTH 20

/* A message whose text is written to tmp/ while it arrives. */
struct queue_spool {
	int fd;
	char tmp[QUEUE_ID_LEN + 8];  /* "tmp/ID" */
	long size_offset;            /* where the fixed-width size digits are */
	uint64_t body_len;           /* text written so far */
	struct strbuf header;        /* built on the loop, written by the first job */
	struct strbuf prepend;       /* header lines put above the text at commit */
	bool rewrite;                /* the envelope changed after the first write */
};
static const char *const subdirs[] = {"tmp", "active", "deferred", "corrupt", "hold"};

/* The last id given out; new ones are strictly greater. */
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long id_last;

/* Above any id our clock writes for two thousand years (microseconds since
 * 1970): a larger name (FFFFFFFFFFFFFFFF planted, or more digits than fit,
 * which strtoull clips to the top) is not ours and is not seeded from, or
 * the next id would wrap to 0000000000000000 at every start, again and
 * again while the first one is queued. */
#define ID_SEED_MAX (1ull << 56)

/* seed_ids - no new id may equal one still in the queue, even when the
 * clock went back since an earlier run wrote it: deferred/ID moved back to
 * active/ would replace a new active/ID. The ids start above the largest. */
static void seed_ids(const char *dir)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(subdirs); i++) {
		char *p = xasprintf("%s/%s", dir, subdirs[i]);
		DIR *d = opendir(p);
		free(p);
		for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
			char *end;
			unsigned long long v = strtoull(e->d_name, &end, 16);
			size_t digits = (size_t)(end - e->d_name);
			if (digits >= 16 && digits <= QUEUE_ID_LEN && v < ID_SEED_MAX && v > id_last)
				id_last = v;
		}
		if (d != NULL)
			closedir(d);
	}
}

bool queue_init(const char *dir, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return false;
	}
	for (size_t i = 0; i < RG_ARRAY_LEN(subdirs); i++) {
		char *p = xasprintf("%s/%s", dir, subdirs[i]);
		int rc = mkdir(p, 0700);
		if (rc != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
			free(p);
			return false;
		}
		free(p);
	}
	if (!basedir_open(dir)) {
		snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
		return false;
	}
	/* one server per queue: a second one would deliver the first one's mail
	 * again and delete the files it is still writing */
	if (flock(basedir_fd(dir), LOCK_EX | LOCK_NB) != 0) {
		snprintf(err, errlen, "queue_directory %s is in use by another running relayguard%s",
			 dir, errno == EWOULDBLOCK ? "" : " (cannot lock it)");
		return false;
	}
	pthread_mutex_lock(&id_lock);
	seed_ids(dir);
	pthread_mutex_unlock(&id_lock);
	return true;
}

void queue_new_id(char out[QUEUE_ID_LEN + 1])
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	unsigned long long now = (unsigned long long)tv.tv_sec * 1000000ull +
				 (unsigned long long)tv.tv_usec;
	pthread_mutex_lock(&id_lock);
	if (now <= id_last)
		now = id_last + 1; /* strictly increasing: unique in this queue */
	id_last = now;
	pthread_mutex_unlock(&id_lock);
	snprintf(out, QUEUE_ID_LEN + 1, "%016llX", now);
}

void queue_msg_add_rcpt(struct queue_msg *m, const char *orig, const char *local,
			const char *domain, enum addr_class cls)
{
	m->rcpts = xrealloc(m->rcpts, (m->n_rcpts + 1) * sizeof(*m->rcpts));
	struct queue_rcpt *r = &m->rcpts[m->n_rcpts++];
	r->orig = xstrdup(orig);
	r->local = xstrdup(local);
	r->domain = xstrdup(domain);
	r->cls = cls;
	r->done = false;
	r->status_offset = -1;
	r->attempts = 0;
	r->last_try = r->next_try = 0;
	r->last_reply = NULL;
	r->outcome = RCPT_UNTRIED;
	r->dsn[0] = '\0';
	r->remote_mta = NULL;
	r->transport = NULL;
	r->tls[0] = '\0';
	r->relayed_no_dsn = false;
	r->final_delivery = false;
	r->notify = r->orcpt = NULL;
}

void queue_rcpt_set_reply(struct queue_rcpt *r, const char *reply)
{
	free(r->last_reply);
	/* bounded: a state record per recipient and pass must stay small */
	r->last_reply = reply ? xstrndup(reply, strnlen(reply, QUEUE_REPLY_MAX)) : NULL;
}

time_t queue_msg_next_try(const struct queue_msg *m)
{
	time_t t = 0;
	bool any = false;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		if (m->rcpts[i].done)
			continue;
		if (!any || m->rcpts[i].next_try < t)
			t = m->rcpts[i].next_try;
		any = true;
	}
	return t;
}

void queue_msg_free(struct queue_msg *m)
{
	if (m == NULL)
		return;
	free(m->client_ip);
	free(m->client_name);
	free(m->helo);
	free(m->sender);
	free(m->dsn_ret);
	free(m->dsn_envid);
	free(m->login);
	for (size_t i = 0; i < m->n_rcpts; i++) {
		free(m->rcpts[i].notify);
		free(m->rcpts[i].orcpt);
		free(m->rcpts[i].orig);
		free(m->rcpts[i].local);
		free(m->rcpts[i].domain);
		free(m->rcpts[i].last_reply);
		free(m->rcpts[i].remote_mta);
	}
	free(m->rcpts);
	strbuf_free(&m->body);
	free(m->path);
	free(m);
}

static void put_field(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, " ", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c >= 0x7f || c == '%')
			strbuf_printf(sb, "%%%02X", c);
		else
			strbuf_append(sb, (const char *)&c, 1);
	}
}

static char class_char(enum addr_class c)
{
	return "LRXI"[c];
}

/* format_header - the envelope; remembers where each status byte is. A
 * spooled file gets a fixed-width size, filled in when the text is complete. */
static void format_header(struct queue_msg *m, struct strbuf *sb, bool spooled)
{
	strbuf_puts(sb, QUEUE_MAGIC);
	strbuf_printf(sb, "id %s\narrival %lld\nclient", m->id, (long long)m->arrival);
	put_field(sb, m->client_ip);
	put_field(sb, m->client_name);
	strbuf_puts(sb, "\nhelo");
	put_field(sb, m->helo);
	strbuf_puts(sb, "\nsender");
	put_field(sb, m->sender);
	strbuf_puts(sb, "\n");
	if (m->dsn_ret || m->dsn_envid) {
		strbuf_puts(sb, "dsn");
		put_field(sb, m->dsn_ret ? m->dsn_ret : "");
		put_field(sb, m->dsn_envid ? m->dsn_envid : "");
		strbuf_puts(sb, "\n");
	}
	if (m->login) {
		strbuf_puts(sb, "login");
		put_field(sb, m->login);
		strbuf_puts(sb, "\n");
	}
	if (m->junk)
		strbuf_puts(sb, "junk\n");
	for (size_t i = 0; i < m->n_rcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		strbuf_puts(sb, "rcpt ");
		r->status_offset = (long)sb->len;
		strbuf_printf(sb, "%c %c", r->done ? 'D' : 'P', class_char(r->cls));
		put_field(sb, r->local);
		put_field(sb, r->domain);
		put_field(sb, r->orig);
		strbuf_puts(sb, "\n");
	}
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		if (r->notify == NULL && r->orcpt == NULL)
			continue;
		strbuf_printf(sb, "rcptdsn %zu", i);
		put_field(sb, r->notify ? r->notify : "");
		put_field(sb, r->orcpt ? r->orcpt : "");
		strbuf_puts(sb, "\n");
	}
	if (spooled)
		strbuf_printf(sb, "size %0*d\n\n", SPOOL_SIZE_WIDTH, 0);
	else
		strbuf_printf(sb, "size %zu\n\n", m->body.len);
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool fsync_dir(const char *dir, const char *sub)
{
	return dirsync(dir, sub); /* shared with concurrent commits */
}

/* qfd - the queue directory, held open since start-up (see basedir.h). */
static int qfd(const char *dir)
{
	return basedir_fd(dir);
}

bool queue_commit(const char *dir, struct queue_msg *m, char *err, size_t errlen)
{
	struct strbuf hdr;
	strbuf_init(&hdr);
	format_header(m, &hdr, false);
	char *tmp = xasprintf("tmp/%s", m->id);
	const char *sub = m->hold ? "hold" : "active";
	char *final = xasprintf("%s/%s", sub, m->id);
	int base = qfd(dir);
	int fd = base < 0 ? -1 : openat(base, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write_all(fd, hdr.data, hdr.len) &&
		  write_all(fd, m->body.data ? m->body.data : "", m->body.len) &&
		  fdatasync(fd) == 0;
	int saved = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	bool renamed = false;
	/* NOREPLACE: an id seen before (clock stepped back) must not overwrite mail */
	if (ok && renameat2(base, tmp, base, final, RENAME_NOREPLACE) != 0) {
		ok = false;
		saved = errno;
	}
	renamed = ok;
	if (ok && !fsync_dir(dir, sub)) {
		ok = false;
		saved = errno;
	}
	if (!ok) {
		snprintf(err, errlen, "cannot write queue file %s/%s: %s", dir,
			 renamed ? final : tmp, strerror(saved));
		/* the client hears 4xx and sends again: leave no copy behind */
		if (base >= 0)
			unlinkat(base, renamed ? final : tmp, 0);
		free(final);
	} else {
		free(m->path);
		m->path = final;
		m->body_offset = (long)hdr.len;
		m->size = m->body.len;
	}
	free(tmp);
	strbuf_free(&hdr);
	return ok;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* take_field - the next space-separated, %XX-decoded field of *p. */
static char *take_field(char **p)
{
	char *s = *p, *out;
	if (*s == ' ')
		s++;
	char *end = strchr(s, ' ');
	size_t n = end ? (size_t)(end - s) : strlen(s);
	out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0) {
			out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	*p = s + n;
	return out;
}

static bool parse_rcpt_line(struct queue_msg *m, char *line, long offset)
{
	/* "P L local domain orig" */
	if (strlen(line) < 4 || (line[0] != 'P' && line[0] != 'D') || line[1] != ' ')
		return false;
	const char *classes = "LRXI", *c = strchr(classes, line[2]);
	if (c == NULL || line[2] == '\0' || line[3] != ' ')
		return false;
	char *p = line + 3;
	char *local = take_field(&p), *domain = take_field(&p), *orig = take_field(&p);
	queue_msg_add_rcpt(m, orig, local, domain, (enum addr_class)(c - classes));
	m->rcpts[m->n_rcpts - 1].done = line[0] == 'D';
	m->rcpts[m->n_rcpts - 1].status_offset = offset;
	free(local);
	free(domain);
	free(orig);
	return true;
}

/* non_empty - s, or NULL (freed) when it is "". */
static char *non_empty(char *s)
{
	if (s[0] != '\0')
		return s;
	free(s);
	return NULL;
}

/* parse_rcptdsn - "IDX NOTIFY ORCPT" for a recipient listed before it. */
static bool parse_rcptdsn(struct queue_msg *m, char *line)
{
	char *p = strchr(line, ' ');
	uint64_t idx;
	if (p == NULL)
		return false;
	*p = '\0';
	if (!rg_parse_u64(line, &idx) || idx >= m->n_rcpts || m->rcpts[idx].notify ||
	    m->rcpts[idx].orcpt)
		return false;
	*p = ' ';
	m->rcpts[idx].notify = non_empty(take_field(&p));
	m->rcpts[idx].orcpt = non_empty(take_field(&p));
	return true;
}

/* parse_header_line - one "key value" line; false when malformed. */
static bool parse_header_line(struct queue_msg *m, char *line, long offset, size_t *size,
			      bool *have_size)
{
	char *p;
	if (strncmp(line, "id ", 3) == 0) {
		rg_strlcpy(m->id, line + 3, sizeof(m->id));
	} else if (strncmp(line, "arrival ", 8) == 0) {
		m->arrival = (time_t)strtoll(line + 8, NULL, 10);
	} else if (strncmp(line, "client", 6) == 0 && m->client_ip == NULL) {
		p = line + 6;
		m->client_ip = take_field(&p);
		m->client_name = take_field(&p);
	} else if (strncmp(line, "helo", 4) == 0 && m->helo == NULL) {
		p = line + 4;
		m->helo = take_field(&p);
	} else if (strncmp(line, "sender", 6) == 0 && m->sender == NULL) {
		p = line + 6;
		m->sender = take_field(&p);
	} else if (strncmp(line, "dsn ", 4) == 0 && m->dsn_ret == NULL && m->dsn_envid == NULL) {
		p = line + 3;
		m->dsn_ret = non_empty(take_field(&p));
		m->dsn_envid = non_empty(take_field(&p));
	} else if (strncmp(line, "login ", 6) == 0 && m->login == NULL) {
		p = line + 5;
		m->login = take_field(&p);
	} else if (strcmp(line, "junk") == 0) {
		m->junk = true;
	} else if (strncmp(line, "rcptdsn ", 8) == 0) {
		return parse_rcptdsn(m, line + 8);
	} else if (strncmp(line, "rcpt ", 5) == 0) {
		return parse_rcpt_line(m, line + 5, offset + 5);
	} else if (strncmp(line, "size ", 5) == 0) {
		uint64_t v;
		if (!rg_parse_u64(line + 5, &v))
			return false;
		*size = (size_t)v;
		*have_size = true;
	} else {
		return false;
	}
	return true;
}

/* read_file - the whole file, or (header_only) up to the blank line ending the
 * envelope; *total is the file's size either way. */
static bool read_file(const char *dir, const char *rel, bool header_only, struct strbuf *sb,
		      size_t *total)
{
	int base = qfd(dir);
	int fd = base < 0 ? -1 : openat(base, rel, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return false;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return false;
	}
	*total = (size_t)st.st_size;
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		strbuf_append(sb, buf, (size_t)n);
		if (header_only && memmem(sb->data, sb->len, "\n\n", 2) != NULL)
			break;
	}
	close(fd);
	return n >= 0;
}

/* parse_state_line - "IDX ATTEMPTS NEXT LAST REPLY"; false when malformed. */
static bool parse_state_line(struct queue_msg *m, char *line)
{
	char *p = line, *f[4];
	for (size_t k = 0; k < 4; k++) {
		f[k] = p;
		p = strchr(p, ' ');
		if (p == NULL)
			return false;
		*p++ = '\0';
	}
	uint64_t idx, attempts, next, last;
	if (!rg_parse_u64(f[0], &idx) || !rg_parse_u64(f[1], &attempts) ||
	    !rg_parse_u64(f[2], &next) || !rg_parse_u64(f[3], &last) || idx >= m->n_rcpts ||
	    attempts > 1000000)
		return false;
	struct queue_rcpt *r = &m->rcpts[idx];
	r->attempts = (unsigned)attempts;
	r->next_try = (time_t)next;
	r->last_try = (time_t)last;
	char *reply = take_field(&p);
	queue_rcpt_set_reply(r, reply[0] ? reply : NULL);
	free(reply);
	return true;
}

/* parse_state - the records after the text. They are advisory: a line cut
 * short by a crash, one glued to the next append, or anything else that is
 * not a well-formed record is ignored; it never makes the file damaged (the
 * envelope and the text length decide that). */
static void parse_state(struct queue_msg *m, char *s, size_t n)
{
	while (n > 0) {
		char *nl = memchr(s, '\n', n);
		if (nl == NULL)
			return;
		*nl = '\0';
		uint64_t t;
		if (strncmp(s, "state ", 6) == 0)
			parse_state_line(m, s + 6);
		else if (strncmp(s, "warned ", 7) == 0 && rg_parse_u64(s + 7, &t))
			m->warned = (time_t)t;
		n -= (size_t)(nl - s) + 1;
		s = nl + 1;
	}
}

/* read_state - the state records of a file read header-only. */
static bool read_state(const char *dir, const char *path, size_t from, size_t total,
		       struct strbuf *out)
{
	if (total <= from)
		return true;
	size_t n = total - from;
	bool cut = n > STATE_MAX;
	if (cut) { /* a runaway file: the newest records are at the end */
		from = total - STATE_MAX;
		n = STATE_MAX;
	}
	int fd = openat(qfd(dir), path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char *buf = xmalloc(n);
	ssize_t got = pread(fd, buf, n, (off_t)from);
	close(fd);
	size_t skip = 0;
	if (got == (ssize_t)n && cut) {
		/* started mid-line: begin after the first newline */
		char *nl = memchr(buf, '\n', n);
		skip = nl ? (size_t)(nl - buf) + 1 : n;
	}
	if (got == (ssize_t)n)
		strbuf_append(out, buf + skip, n - skip);
	free(buf);
	return got == (ssize_t)n;
}

/* parse_envelope - the magic and header lines; *pos ends after the blank line. */
static bool parse_envelope(struct strbuf *raw, struct queue_msg *m, size_t *pos, size_t *size,
			   int *version)
{
	if (raw->len < MAGIC_LEN)
		return false;
	if (memcmp(raw->data, QUEUE_MAGIC, MAGIC_LEN) == 0)
		*version = 2;
	else if (memcmp(raw->data, QUEUE_MAGIC_V1, MAGIC_LEN) == 0)
		*version = 1;
	else
		return false;
	bool have_size = false;
	*pos = MAGIC_LEN;
	for (;;) {
		char *nl = memchr(raw->data + *pos, '\n', raw->len - *pos);
		if (nl == NULL)
			return false;
		*nl = '\0';
		char *line = raw->data + *pos;
		long offset = (long)*pos;
		*pos = (size_t)(nl - raw->data) + 1;
		if (*line == '\0')
			break;
		if (!parse_header_line(m, line, offset, size, &have_size))
			return false;
	}
	return have_size && m->id[0] != '\0' && m->client_ip && m->client_name && m->helo &&
	       m->sender && m->n_rcpts > 0;
}

/* load - parse a queue file; the body too unless header_only. */
static bool load(const char *dir, const char *path, struct queue_msg *m, bool header_only,
		 char *err, size_t errlen)
{
	struct strbuf raw, state;
	size_t total = 0, pos = 0, size = 0;
	int version = 0;
	strbuf_init(&raw);
	strbuf_init(&state);
	if (!read_file(dir, path, header_only, &raw, &total)) {
		snprintf(err, errlen, "cannot read %s/%s: %s", dir, path, strerror(errno));
		strbuf_free(&raw);
		return false;
	}
	bool ok = parse_envelope(&raw, m, &pos, &size, &version) &&
		  (header_only || raw.len == total) && total - pos >= size &&
		  (version == 2 || total - pos == size);
	if (!ok)
		errno = EBADMSG;
	if (ok && header_only)
		ok = read_state(dir, path, pos + size, total, &state);
	else if (ok)
		strbuf_append(&state, raw.data + pos + size, total - pos - size);
	if (ok)
		parse_state(m, state.data ? state.data : "", state.len);
	int saved = ok ? 0 : errno;
	if (ok) {
		if (!header_only)
			strbuf_append(&m->body, raw.data + pos, size);
		m->path = xstrdup(path);
		m->body_offset = (long)pos;
		m->size = size;
	} else if (saved == 0 || saved == EBADMSG) {
		snprintf(err, errlen, "%s/%s: damaged queue file (bad header or length)", dir, path);
		saved = EBADMSG;
	} else {
		snprintf(err, errlen, "cannot read %s/%s: %s", dir, path, strerror(saved));
	}
	strbuf_free(&raw);
	strbuf_free(&state);
	errno = saved;
	return ok;
}

bool queue_load(const char *dir, const char *path, struct queue_msg *m, char *err,
		size_t errlen)
{
	return load(dir, path, m, false, err, errlen);
}

bool queue_load_header(const char *dir, const char *path, struct queue_msg *m, char *err,
		       size_t errlen)
{
	return load(dir, path, m, true, err, errlen);
}

/* mark_done - write the status bytes of finished recipients in place. */
static bool mark_done(const char *dir, const struct queue_msg *m)
{
	int base = qfd(dir);
	int fd = base < 0 ? -1 : openat(base, m->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = true;
	for (size_t i = 0; i < m->n_rcpts && ok; i++)
		if (m->rcpts[i].done && m->rcpts[i].status_offset >= 0)
			ok = pwrite(fd, "D", 1, m->rcpts[i].status_offset) == 1;
	ok = ok && fdatasync(fd) == 0;
	close(fd);
	return ok;
}

bool queue_record_progress(const char *dir, const struct queue_msg *m)
{
	return mark_done(dir, m);
}

/* format_state - one record per pending recipient that has been tried. */
static void format_state(const struct queue_msg *m, struct strbuf *sb)
{
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		if (r->done || r->attempts == 0)
			continue;
		strbuf_printf(sb, "state %zu %u %lld %lld", i, r->attempts, (long long)r->next_try,
			      (long long)r->last_try);
		put_field(sb, r->last_reply ? r->last_reply : "");
		strbuf_puts(sb, "\n");
	}
	/* last: a read of only the newest records (read_state) still sees it */
	if (m->warned > 0)
		strbuf_printf(sb, "warned %lld\n", (long long)m->warned);
}

/* copy_text - len bytes of fd from offset to out. */
static bool copy_text(int fd, off_t offset, uint64_t len, int out)
{
	char buf[65536];
	while (len > 0) {
		size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t got = pread(fd, buf, want, offset);
		if (got <= 0 || !write_all(out, buf, (size_t)got))
			return false;
		offset += got;
		len -= (uint64_t)got;
	}
	return true;
}

/* compact - rewrite the file with one state record per pending recipient:
 * the appended records of many retries must not grow without bound. The
 * new file replaces the old one atomically (rename in the same directory). */
static bool compact(const char *dir, struct queue_msg *m)
{
	struct strbuf hdr;
	strbuf_init(&hdr);
	long *old = xcalloc(m->n_rcpts + 1, sizeof(long)); /* status offsets, if we fail */
	for (size_t i = 0; i < m->n_rcpts; i++)
		old[i] = m->rcpts[i].status_offset;
	format_header(m, &hdr, false);
	/* format_header wrote "size <body.len>": the text is on disk, not in memory */
	hdr.len = (size_t)(strstr(hdr.data, "\nsize ") - hdr.data) + 1;
	strbuf_printf(&hdr, "size %llu\n\n", (unsigned long long)m->size);
	char *tmp = xasprintf("tmp/%s.compact", m->id);
	int in = openat(qfd(dir), m->path, O_RDONLY | O_CLOEXEC);
	int out = openat(qfd(dir), tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct strbuf st;
	strbuf_init(&st);
	format_state(m, &st);
	bool ok = in >= 0 && out >= 0 && write_all(out, hdr.data, hdr.len) &&
		  copy_text(in, m->body_offset, m->size, out) &&
		  write_all(out, st.data ? st.data : "", st.len) && fdatasync(out) == 0;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) != 0)
		ok = false;
	ok = ok && renameat(qfd(dir), tmp, qfd(dir), m->path) == 0;
	if (ok) {
		m->body_offset = (long)hdr.len;
	} else {
		unlinkat(qfd(dir), tmp, 0);
		for (size_t i = 0; i < m->n_rcpts; i++)
			m->rcpts[i].status_offset = old[i];
	}
	strbuf_free(&st);
	strbuf_free(&hdr);
	free(old);
	free(tmp);
	return ok;
}

bool queue_record_state(const char *dir, struct queue_msg *m, char *err, size_t errlen)
{
	struct strbuf sb;
	strbuf_init(&sb);
	format_state(m, &sb);
	int fd = openat(qfd(dir), m->path, O_RDWR | O_APPEND | O_CLOEXEC);
	char magic[MAGIC_LEN];
	struct stat st;
	bool ok = fd >= 0 && pread(fd, magic, MAGIC_LEN, 0) == MAGIC_LEN && fstat(fd, &st) == 0;
	/* compact when the records hold several passes' worth, not after every
	 * pass of a message whose one pass alone is large */
	uint64_t limit = sb.len * 4 > STATE_COMPACT ? sb.len * 4 : STATE_COMPACT;
	bool big = ok && (uint64_t)st.st_size > (uint64_t)m->body_offset + m->size + limit;
	/* O_APPEND ignores pwrite's offset on Linux: upgrade through a second fd */
	if (ok && memcmp(magic, QUEUE_MAGIC_V1, MAGIC_LEN) == 0) {
		int wfd = openat(qfd(dir), m->path, O_WRONLY | O_CLOEXEC);
		ok = wfd >= 0 && pwrite(wfd, QUEUE_MAGIC, MAGIC_LEN, 0) == MAGIC_LEN;
		if (wfd >= 0)
			close(wfd);
	}
	ok = ok && (big || sb.len == 0 || write_all(fd, sb.data, sb.len));
	if (fd >= 0)
		close(fd);
	if (ok && big)
		ok = compact(dir, m); /* fresh status offsets and records */
	ok = ok && mark_done(dir, m); /* its fdatasync covers the records too */
	if (!ok)
		snprintf(err, errlen, "cannot record delivery state in %s/%s: %s", dir, m->path,
			 strerror(errno));
	strbuf_free(&sb);
	return ok;
}

bool queue_set_next_try(const char *dir, const struct queue_msg *m)
{
	time_t next = queue_msg_next_try(m);
	struct timespec ts[2] = {{next, 0}, {next, 0}};
	return next <= 0 || utimensat(qfd(dir), m->path, ts, 0) == 0;
}

bool queue_finish(const char *dir, struct queue_msg *m, char *err, size_t errlen)
{
	bool left = false;
	for (size_t i = 0; i < m->n_rcpts; i++)
		left |= !m->rcpts[i].done;
	if (!left) {
		/* not fsync'd: after a crash the worst outcome is a duplicate */
		if (unlinkat(qfd(dir), m->path, 0) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot remove %s/%s: %s", dir, m->path, strerror(errno));
			return false;
		}
		return true;
	}
	char *deferred = xasprintf("deferred/%s", m->id);
	bool ok = mark_done(dir, m) &&
		  (strcmp(m->path, deferred) == 0 ||
		   (renameat(qfd(dir), m->path, qfd(dir), deferred) == 0 &&
		    fsync_dir(dir, "deferred")));
	if (!ok) {
		snprintf(err, errlen, "cannot move %s/%s to deferred/: %s", dir, m->path,
			 strerror(errno));
		free(deferred);
		return false;
	}
	free(m->path);
	m->path = deferred;
	return true;
}

static int compare_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **queue_list(const char *dir, const char *sub)
{
	int base = qfd(dir);
	int fd = base < 0 ? -1 : openat(base, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char **out = xcalloc(1, sizeof(char *));
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		out = xrealloc(out, (n + 2) * sizeof(char *));
		out[n++] = xasprintf("%s/%s", sub, de->d_name);
		out[n] = NULL;
	}
	closedir(d);
	qsort(out, n, sizeof(char *), compare_str);
	return out;
}

void queue_set_aside(const char *dir, const char *path)
{
	const char *base = strrchr(path, '/');
	char *dst = xasprintf("corrupt/%s", base ? base + 1 : path);
	if (renameat(qfd(dir), path, qfd(dir), dst) != 0)
		log_msg(LOG_ERROR, "cannot move %s/%s to %s/%s: %s", dir, path, dir, dst,
			strerror(errno));
	free(dst);
}

size_t queue_clean_tmp(const char *dir)
{
	char **files = queue_list(dir, "tmp");
	size_t n = 0;
	for (size_t i = 0; files && files[i]; i++) {
		if (unlinkat(qfd(dir), files[i], 0) == 0)
			n++;
		free(files[i]);
	}
	free(files);
	return n;
}

struct queue_spool *queue_spool_new(struct queue_msg *m)
{
	struct queue_spool *sp = xcalloc(1, sizeof(*sp));
	sp->fd = -1;
	snprintf(sp->tmp, sizeof(sp->tmp), "tmp/%s", m->id);
	strbuf_init(&sp->header);
	strbuf_init(&sp->prepend);
	format_header(m, &sp->header, true);
	sp->size_offset = (long)sp->header.len - 2 - SPOOL_SIZE_WIDTH;
	return sp;
}

bool queue_spool_write(const char *dir, struct queue_spool *sp, const char *data, size_t n,
		       char *err, size_t errlen)
{
	if (sp->fd < 0) {
		int base = qfd(dir);
		sp->fd = base < 0 ? -1
				  : openat(base, sp->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (sp->fd < 0 || !write_all(sp->fd, sp->header.data, sp->header.len)) {
			snprintf(err, errlen, "cannot write queue file %s/%s: %s", dir, sp->tmp,
				 strerror(errno));
			return false;
		}
	}
	if (!write_all(sp->fd, data, n)) {
		snprintf(err, errlen, "cannot write queue file %s/%s: %s", dir, sp->tmp,
			 strerror(errno));
		return false;
	}
	sp->body_len += n;
	return true;
}

void queue_spool_prepend(struct queue_spool *sp, const char *lines, size_t n)
{
	strbuf_append(&sp->prepend, lines, n);
}

void queue_spool_junk(struct queue_spool *sp)
{
	static const char junk[] = "junk\n";
	size_t at = (size_t)sp->size_offset - 5; /* before "size " */
	struct strbuf h;
	strbuf_init(&h);
	strbuf_append(&h, sp->header.data, at);
	strbuf_append(&h, junk, sizeof(junk) - 1);
	strbuf_append(&h, sp->header.data + at, sp->header.len - at);
	strbuf_free(&sp->header);
	sp->header = h;
	sp->size_offset += (long)sizeof(junk) - 1;
	sp->rewrite = true;
}

int queue_spool_open_text(const char *dir, const struct queue_spool *sp, uint64_t *text_offset)
{
	int base = qfd(dir);
	*text_offset = sp->header.len;
	return base < 0 || sp->fd < 0 ? -1 : openat(base, sp->tmp, O_RDONLY | O_CLOEXEC);
}

/* copy_rest - in from off to its end, appended to out. */
static bool copy_rest(int in, int out, off_t off)
{
	char buf[64 * 1024];
	for (;;) {
		ssize_t r = pread(in, buf, sizeof(buf), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return false;
		if (r == 0)
			return true;
		if (!write_all(out, buf, (size_t)r))
			return false;
		off += r;
	}
}

/* spool_rewrite - tmp/ID again with the prepended lines between the envelope
 * and the text (the text is copied, never held in memory). */
static bool spool_rewrite(const char *dir, struct queue_spool *sp, char *err, size_t errlen)
{
	int base = qfd(dir);
	char next[sizeof(sp->tmp) + 4];
	snprintf(next, sizeof(next), "%s.p", sp->tmp);
	int in = openat(base, sp->tmp, O_RDONLY | O_CLOEXEC);
	off_t old_len = (off_t)(sp->size_offset - (sp->rewrite ? 5 : 0) + SPOOL_SIZE_WIDTH + 2);
	int out = openat(base, next, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = in >= 0 && out >= 0 && write_all(out, sp->header.data, sp->header.len) &&
		  write_all(out, sp->prepend.data, sp->prepend.len) &&
		  copy_rest(in, out, old_len) &&
		  renameat(base, next, base, sp->tmp) == 0;
	int saved = errno;
	if (in >= 0)
		close(in);
	if (!ok) {
		if (out >= 0)
			close(out);
		unlinkat(base, next, 0);
		snprintf(err, errlen, "cannot rewrite queue file %s/%s: %s", dir, sp->tmp,
			 strerror(saved));
		return false;
	}
	close(sp->fd);
	sp->fd = out;
	sp->body_len += sp->prepend.len;
	return true;
}

bool queue_spool_commit(const char *dir, struct queue_spool *sp, struct queue_msg *m,
			char *err, size_t errlen)
{
	if ((sp->prepend.len > 0 || sp->rewrite) && sp->fd >= 0 &&
	    !spool_rewrite(dir, sp, err, errlen)) {
		queue_spool_abort(dir, sp);
		return false;
	}
	char digits[SPOOL_SIZE_WIDTH + 1];
	snprintf(digits, sizeof(digits), "%0*llu", SPOOL_SIZE_WIDTH,
		 (unsigned long long)sp->body_len);
	bool ok = sp->fd >= 0 &&
		  pwrite(sp->fd, digits, SPOOL_SIZE_WIDTH, sp->size_offset) == SPOOL_SIZE_WIDTH &&
		  fdatasync(sp->fd) == 0;
	int saved = errno;
	if (sp->fd >= 0 && close(sp->fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	sp->fd = -1;
	const char *sub = m->hold ? "hold" : "active";
	char *final = xasprintf("%s/%s", sub, m->id);
	int base = qfd(dir);
	bool renamed = ok && renameat2(base, sp->tmp, base, final, RENAME_NOREPLACE) == 0;
	if (ok && !renamed)
		saved = errno;
	ok = renamed && fsync_dir(dir, sub);
	if (renamed && !ok)
		saved = errno;
	if (!ok) {
		snprintf(err, errlen, "cannot commit queue file %s/%s: %s", dir, sp->tmp,
			 strerror(saved));
		unlinkat(base, renamed ? final : sp->tmp, 0); /* the client will send again */
		free(final);
	} else {
		free(m->path);
		m->path = final;
		m->body_offset = (long)sp->header.len;
		m->size = sp->body_len;
	}
	strbuf_free(&sp->header);
	strbuf_free(&sp->prepend);
	free(sp);
	return ok;
}

void queue_spool_abort(const char *dir, struct queue_spool *sp)
{
	if (sp->fd >= 0) {
		close(sp->fd);
		unlinkat(qfd(dir), sp->tmp, 0);
	}
	strbuf_free(&sp->header);
	strbuf_free(&sp->prepend);
	free(sp);
}

uint64_t queue_spool_size(const struct queue_spool *sp)
{
	return sp->body_len;
}
