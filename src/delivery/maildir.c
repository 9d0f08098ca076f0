/*
 * maildir.c - Maildir delivery (see maildir.h).
 */
#include "delivery/maildir.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static atomic_uint delivery_counter;

bool maildir_component_ok(const char *s)
{
	if (s[0] == '\0' || s[0] == '.' || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

#define JUNK_FOLDER "/.Junk" /* Maildir++: a DMARC quarantine (queue_msg.junk) */

/* local_ok - a mailbox, or its Junk folder ("user/.Junk"). */
static bool local_ok(const char *local)
{
	const char *slash = strchr(local, '/');
	if (slash == NULL)
		return maildir_component_ok(local);
	char user[256];
	size_t n = (size_t)(slash - local);
	if (strcmp(slash, JUNK_FOLDER) != 0 || n >= sizeof(user))
		return false;
	memcpy(user, local, n);
	user[n] = '\0';
	return maildir_component_ok(user);
}

/* make_dir - mkdirat() that also makes a new entry durable in its parent. */
static bool make_dir(int bfd, const char *base, const char *rel, const char *parent)
{
	/* EEXIST too: another thread may have made it and not synced it yet */
	if (mkdirat(bfd, rel, 0700) != 0 && errno != EEXIST)
		return false;
	return dirsync(base, parent);
}

/* make_maildir - domain/local/{tmp,new,cur} under base; dir gets "domain/local". */
static bool make_maildir(int bfd, const char *base, const char *domain, const char *local,
			 char *dir, size_t len)
{
	char probe[4200];
	struct stat st;
	snprintf(dir, len, "%s/%s", domain, local);
	snprintf(probe, sizeof(probe), "%s/cur", dir);
	if (fstatat(bfd, probe, &st, 0) == 0)
		return true; /* the common case: an existing mailbox */
	const char *slash = strrchr(local, '/');
	if (slash != NULL) { /* a Maildir++ folder ("user/.Junk"): the mailbox first */
		char parent[4200], pdir[4200];
		snprintf(parent, sizeof(parent), "%.*s", (int)(slash - local), local);
		if (!make_maildir(bfd, base, domain, parent, pdir, sizeof(pdir)) ||
		    !make_dir(bfd, base, dir, pdir))
			return false;
	} else if (!make_dir(bfd, base, domain, ".") || !make_dir(bfd, base, dir, domain)) {
		return false;
	}
	static const char *const subs[] = {"tmp", "new", "cur"};
	for (size_t i = 0; i < RG_ARRAY_LEN(subs); i++) {
		char sub[4200];
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		if (!make_dir(bfd, base, sub, dir))
			return false;
	}
	return true;
}

/* The host name, read once: a uname(2) per copy cost more than the name
 * is worth (it changes, if ever, with a restart). */
static char host_name[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void host_read(void)
{
	if (gethostname(host_name, sizeof(host_name)) != 0)
		rg_strlcpy(host_name, "localhost", sizeof(host_name));
	host_name[sizeof(host_name) - 1] = '\0';
}

/* host_part - the host name with '/' and ':' escaped as Dovecot does. */
static void host_part(char *out, size_t len)
{
	pthread_once(&host_once, host_read);
	const char *host = host_name;
	size_t o = 0;
	for (const char *p = host; *p && o + 5 < len; p++) {
		if (*p == '/')
			o += (size_t)snprintf(out + o, len - o, "\\057");
		else if (*p == ':')
			o += (size_t)snprintf(out + o, len - o, "\\072");
		else
			out[o++] = *p;
	}
	out[o] = '\0';
}

/* Where the message text comes from: memory, or a range of an open file. */
struct source {
	const char *mem;
	int fd;
	off_t offset;
	size_t len;
};

static bool write_out(int fd, const char *p, size_t n)
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

/* read_chunk - the next piece of the source (at most cap bytes). */
static ssize_t read_chunk(const struct source *src, size_t done, char *buf, size_t cap)
{
	size_t n = src->len - done < cap ? src->len - done : cap;
	if (src->mem != NULL) {
		memcpy(buf, src->mem + done, n);
		return (ssize_t)n;
	}
	ssize_t r;
	do
		r = pread(src->fd, buf, n, src->offset + (off_t)done);
	while (r < 0 && errno == EINTR);
	return r;
}

/* write_lf - the lines hdr (hlen <= WRITE_HDR_MAX), then the message with
 * CRLF turned into LF, in 64 KiB pieces (a CR at the end of one piece is
 * decided by the first byte of the next); a small message is one write. */
#define WRITE_HDR_MAX 2048
static bool write_lf(int fd, const char *hdr, size_t hlen, const struct source *src,
		     size_t *written)
{
	char in[65536], out[WRITE_HDR_MAX + 65536 + 1];
	size_t done = 0, o = hlen;
	bool pending_cr = false;
	memcpy(out, hdr, hlen);
	*written = 0;
	while (done < src->len) {
		ssize_t n = read_chunk(src, done, in, sizeof(in));
		if (n <= 0)
			return false;
		done += (size_t)n;
		for (ssize_t i = 0; i < n; i++) {
			if (pending_cr && in[i] != '\n')
				out[o++] = '\r'; /* a lone CR stays */
			pending_cr = in[i] == '\r';
			if (!pending_cr)
				out[o++] = in[i];
		}
		if (pending_cr && done == src->len)
			out[o++] = '\r'; /* a lone CR at the very end stays */
		if (!write_out(fd, out, o))
			return false;
		*written += o;
		o = 0;
	}
	if (src->len == 0 && !write_out(fd, out, o))
		return false;
	*written += src->len == 0 ? o : 0;
	*written -= hlen; /* the caller counts the lines itself */
	return true;
}

/* append - s into out at *o, cut to fit; control bytes dropped when clean
 * (a line break in a value would forge a header). */
static void append(char *out, size_t len, size_t *o, const char *s, bool clean)
{
	for (; *s && *o + 1 < len; s++)
		if (!clean || ((unsigned char)*s >= 0x20 && (unsigned char)*s != 0x7f))
			out[(*o)++] = *s;
	out[*o] = '\0';
}

/* header_lines - "Return-Path: <s>\nDelivered-To: a\n" as c asks, LF line
 * ends; *lines gets how many lines, for the CRLF size. */
static size_t header_lines(const struct maildir_copy *c, char *out, size_t len,
			   size_t *lines)
{
	const char *fmt[2] = {"Return-Path: <", "Delivered-To: "};
	const char *end[2] = {">\n", "\n"};
	const char *val[2] = {c ? c->sender : NULL, c ? c->delivered_to : NULL};
	size_t o = 0;
	*lines = 0;
	out[0] = '\0';
	for (int k = 0; k < 2; k++) {
		if (val[k] == NULL)
			continue; /* values are addresses, far below len: cutting is a backstop */
		append(out, len - 3, &o, fmt[k], false);
		append(out, len - 3, &o, val[k], true);
		append(out, len, &o, end[k], false);
		(*lines)++;
	}
	return o;
}

/* file_base - "<time>.<unique>.<host>": c's deterministic one, or a fresh one. */
static void file_base(const struct maildir_copy *c, char *out, size_t len)
{
	char host[512];
	host_part(host, sizeof(host));
	if (c != NULL && c->unique != NULL) {
		snprintf(out, len, "%lld.%s.%s", c->time, c->unique, host);
		return;
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	unsigned q = atomic_fetch_add(&delivery_counter, 1);
	snprintf(out, len, "%lld.%sM%ldP%dQ%u.%s", (long long)tv.tv_sec, MAILDIR_UNIQUE_MARK,
		 (long)tv.tv_usec, (int)getpid(), q, host);
}

/* write_text - the added lines, the text, fsync, into the open file fd. */
static bool write_text(int fd, const char *hdr, size_t hlen, const struct source *src,
		       size_t *size)
{
	bool ok = hlen <= WRITE_HDR_MAX && write_lf(fd, hdr, hlen, src, size) && fsync(fd) == 0;
	*size += hlen;
	return ok;
}

/* close_keep - close fd; the first error (saved or close's) stays in errno. */
static bool close_keep(int fd, bool ok)
{
	int saved = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	errno = saved;
	return ok;
}

/* walk_nofollow - open_beneath one component at a time (kernels before
 * openat2, or a sandbox that refuses it). */
static int walk_nofollow(int bfd, const char *rel)
{
	char buf[4200];
	int dfd = bfd;
	rg_strlcpy(buf, rel, sizeof(buf));
	for (char *save, *c = strtok_r(buf, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
		int fd = openat(dfd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd != bfd)
			close_keep(dfd, true);
		if (fd < 0)
			return -1;
		dfd = fd;
	}
	return dfd == bfd ? openat(bfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : dfd;
}

/* open_beneath - the directory rel under bfd, never through a symbolic
 * link: whoever can write in a mailbox could otherwise turn new/ or tmp/
 * (or the mailbox) into a link and have our text written, under a name we
 * chose, anywhere we may write. -1 with errno (ELOOP: a link). */
static int open_beneath(int bfd, const char *rel)
{
	static atomic_bool openat2_usable = true; /* cleared at the first refusal */
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
	if (!atomic_load(&openat2_usable))
		return walk_nofollow(bfd, rel);
	int fd = (int)syscall(SYS_openat2, bfd, rel, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd;
	atomic_store(&openat2_usable, false); /* before Linux 5.6, or a sandbox's filter */
	return walk_nofollow(bfd, rel);
}

/* write_tmp - tmp/NAME (NAME in tfd): the added lines, the text, fsync. A
 * deterministic name may be left over from a crash: it is ours, so it is
 * replaced. */
static bool write_tmp(int tfd, const char *tmp, const char *hdr, size_t hlen,
		      const struct source *src, size_t *size)
{
	if (unlinkat(tfd, tmp, 0) != 0 && errno != ENOENT)
		return false;
	int fd = openat(tfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write_text(fd, hdr, hlen, src, size);
	return close_keep(fd, ok);
}

/* Can this kernel and file system make unnamed files (O_TMPFILE)? Cleared
 * at the first refusal; then every delivery goes through tmp/. */
static atomic_bool tmpfile_usable = true;
/* Does linkat(AT_EMPTY_PATH) work for us (kernels before 6.10 want
 * CAP_DAC_READ_SEARCH for it)? Cleared at the first refusal; then the
 * /proc/self/fd link, which needs no capability. */
static atomic_bool empty_path_usable = true;

void maildir_force_way(enum maildir_way way)
{
	atomic_store(&tmpfile_usable, way != MAILDIR_WAY_TMP);
	atomic_store(&empty_path_usable, way == MAILDIR_WAY_AUTO);
}

/* open_unnamed - an unnamed file in the directory nfd (no name until
 * link_unnamed); -1 with errno, ENOTSUP when O_TMPFILE cannot be used here. */
static int open_unnamed(int nfd)
{
	if (!atomic_load(&tmpfile_usable)) {
		errno = ENOTSUP;
		return -1;
	}
	int fd = openat(nfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		atomic_store(&tmpfile_usable, false); /* old kernel or file system */
		errno = ENOTSUP;
	}
	return fd;
}

/* link_unnamed - give the unnamed file fd the name dst in nfd; -1 with
 * errno ENOTSUP when neither way can work here (no capability, no /proc). */
static int link_unnamed(int fd, int nfd, const char *dst)
{
	if (atomic_load(&empty_path_usable)) {
		if (linkat(fd, "", nfd, dst, AT_EMPTY_PATH) == 0)
			return 0;
		if (errno != ENOENT && errno != EPERM)
			return -1;
		atomic_store(&empty_path_usable, false); /* ENOENT: no capability */
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, nfd, dst, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno == ENOENT && access("/proc/self/fd", F_OK) != 0) {
		atomic_store(&tmpfile_usable, false); /* no /proc (a chroot): tmp/ from now on */
		errno = ENOTSUP;
	}
	return -1;
}

static bool deliver(const char *base, const char *domain, const char *local,
		    const struct maildir_copy *c, const struct source *src, char *path,
		    size_t pathlen, char *newdir, size_t newdirlen, char *err, size_t errlen);

bool maildir_deliver(const char *base, const char *domain, const char *local,
		     const char *msg, size_t len, char *path, size_t pathlen,
		     char *newdir, size_t newdirlen, char *err, size_t errlen)
{
	struct source src = {msg ? msg : "", -1, 0, len};
	return deliver(base, domain, local, NULL, &src, path, pathlen, newdir, newdirlen, err,
		       errlen);
}

bool maildir_deliver_fd(const char *base, const char *domain, const char *local, int fd,
			off_t offset, size_t len, char *path, size_t pathlen, char *newdir,
			size_t newdirlen, char *err, size_t errlen)
{
	struct source src = {NULL, fd, offset, len};
	return deliver(base, domain, local, NULL, &src, path, pathlen, newdir, newdirlen, err,
		       errlen);
}

bool maildir_deliver_copy(const char *base, const char *domain, const char *local,
			  const struct maildir_copy *c, int fd, off_t offset, size_t len,
			  char *path, size_t pathlen, char *newdir, size_t newdirlen,
			  char *err, size_t errlen)
{
	struct source src = {NULL, fd, offset, len};
	return deliver(base, domain, local, c, &src, path, pathlen, newdir, newdirlen, err,
		       errlen);
}

bool maildir_deliver_copy_mem(const char *base, const char *domain, const char *local,
			      const struct maildir_copy *c, const char *msg, size_t len,
			      char *path, size_t pathlen, char *newdir, size_t newdirlen,
			      char *err, size_t errlen)
{
	struct source src = {msg ? msg : "", -1, 0, len};
	return deliver(base, domain, local, c, &src, path, pathlen, newdir, newdirlen, err,
		       errlen);
}

/* One copy on its way into a Maildir. */
struct landing {
	int bfd;                  /* the mailbox base */
	char dir[4096];           /* "domain/local" */
	char fbase[1024];         /* "<time>.<unique>.<host>" */
	char hdr[2048];           /* the added lines */
	size_t hlen, lines;
	const struct source *src;
	bool deterministic;       /* a queued copy's name: the same at every try */
	char dst[4200];           /* "domain/local/new/<fbase>,S=..,W=.." */
};

/* final_name - l->dst, now that the size written is known. */
static void final_name(struct landing *l, size_t size)
{
	snprintf(l->dst, sizeof(l->dst), "%s/new/%s,S=%zu,W=%zu", l->dir, l->fbase, size,
		 l->src->len + l->hlen + l->lines);
}

/* dst_name - the file name part of l->dst (what goes in new/). */
static const char *dst_name(const struct landing *l)
{
	return l->dst + strlen(l->dir) + strlen("/new/");
}

/* open_sub - the mailbox's directory sub ("new", "tmp"), never via a link. */
static int open_sub(const struct landing *l, const char *sub)
{
	char rel[4200];
	snprintf(rel, sizeof(rel), "%s/%s", l->dir, sub);
	return open_beneath(l->bfd, rel);
}

/* copy_there - is the entry name in nfd, which a link refused, an earlier
 * try of this queued copy? Only whole, synced files are ever linked or
 * renamed into new/, under names only we write: a regular file is that
 * copy. Anything else (a symbolic link, say) is not: errno stays EEXIST. */
static bool copy_there(int nfd, const char *name)
{
	struct stat st;
	bool file = fstatat(nfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	errno = EEXIST;
	return file;
}

/* land_unnamed - write an unnamed file in new/, fsync it, then link it
 * under its final name: no tmp/ entry, no rename across directories, no
 * unlink, and a crash leaves nothing behind (the file system frees an
 * unnamed file). A reader never sees it before it is whole. 1 on success,
 * 0 on failure (errno), -1 when O_TMPFILE cannot be used here. */
static int land_unnamed(struct landing *l)
{
	size_t size = 0;
	int nfd = open_sub(l, "new");
	int fd = nfd < 0 ? -1 : open_unnamed(nfd);
	bool ok = fd >= 0 && write_text(fd, l->hdr, l->hlen, l->src, &size);
	final_name(l, size);
	/* taken: an earlier try of this queued copy landed */
	if (ok && link_unnamed(fd, nfd, dst_name(l)) != 0 &&
	    !(errno == EEXIST && l->deterministic && copy_there(nfd, dst_name(l))))
		ok = false;
	bool unusable = !ok && errno == ENOTSUP; /* written for nothing: again via tmp/ */
	ok = close_keep(fd, ok);
	ok = close_keep(nfd, ok);
	return ok ? 1 : unusable ? -1 : 0;
}

/* land_via_tmp - tmp/NAME, fsync, rename into new/ (the classic way). */
static bool land_via_tmp(struct landing *l)
{
	size_t size = 0;
	int tfd = open_sub(l, "tmp"), nfd = tfd < 0 ? -1 : open_sub(l, "new");
	bool ok = nfd >= 0 && write_tmp(tfd, l->fbase, l->hdr, l->hlen, l->src, &size);
	final_name(l, size);
	if (ok && renameat(tfd, l->fbase, nfd, dst_name(l)) != 0)
		ok = false;
	if (!ok && nfd >= 0) {
		int saved = errno;
		unlinkat(tfd, l->fbase, 0);
		errno = saved;
	}
	ok = close_keep(nfd, ok);
	return close_keep(tfd, ok);
}

static bool deliver(const char *base, const char *domain, const char *local,
		    const struct maildir_copy *c, const struct source *src, char *path,
		    size_t pathlen, char *newdir, size_t newdirlen, char *err, size_t errlen)
{
	struct landing l = {.bfd = basedir_fd(base), .src = src};
	if (!maildir_component_ok(domain) || !local_ok(local) ||
	    (c && c->unique && !maildir_component_ok(c->unique))) {
		snprintf(err, errlen, "unsafe mailbox name %s@%s", local, domain);
		return false;
	}
	if (l.bfd < 0 || !make_maildir(l.bfd, base, domain, local, l.dir, sizeof(l.dir))) {
		snprintf(err, errlen, "cannot create Maildir %s/%s/%s: %s", base, domain, local,
			 strerror(errno));
		return false;
	}
	file_base(c, l.fbase, sizeof(l.fbase));
	l.hlen = header_lines(c, l.hdr, sizeof(l.hdr), &l.lines);
	l.deterministic = c != NULL && c->unique != NULL;
	int landed = land_unnamed(&l);
	bool ok = landed < 0 ? land_via_tmp(&l) : landed == 1;
	snprintf(newdir, newdirlen, "%s/new", l.dir);
	if (!ok) {
		snprintf(err, errlen, "cannot deliver to %s/%s: %s", base, l.dir, strerror(errno));
		return false;
	}
	snprintf(path, pathlen, "%s/%s", base, l.dst);
	return true;
}

/* unique_is - does the file name's unique part (after the first '.') equal u? */
static bool unique_is(const char *name, const char *u, size_t ulen)
{
	const char *p = strchr(name, '.');
	return p != NULL && strncmp(p + 1, u, ulen) == 0 && p[1 + ulen] == '.';
}

/* open_dir - a directory under dfd, never through a symbolic link. */
static DIR *open_dir(int dfd, const char *rel)
{
	int fd = openat(dfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (fd >= 0 && d == NULL)
		close(fd);
	return d;
}

/* find_in - the name of an entry of rel whose unique part is u, into out. */
static bool find_in(int bfd, const char *rel, const char *u, char *out, size_t len)
{
	DIR *d = open_dir(bfd, rel);
	size_t ulen = strlen(u);
	bool found = false;
	for (struct dirent *e; d != NULL && !found && (e = readdir(d)) != NULL;)
		if (unique_is(e->d_name, u, ulen)) {
			snprintf(out, len, "%s", e->d_name);
			found = true;
		}
	if (d != NULL)
		closedir(d);
	return found;
}

bool maildir_find_delivered(const char *base, const char *domain, const char *local,
			    const char *unique, char *path, size_t pathlen, char *dir,
			    size_t dirlen)
{
	static const char *const subs[] = {"new", "cur"};
	char rel[4200], name[512];
	int bfd = basedir_fd(base);
	if (bfd < 0 || !maildir_component_ok(domain) || !local_ok(local))
		return false;
	for (size_t i = 0; i < RG_ARRAY_LEN(subs); i++) {
		snprintf(rel, sizeof(rel), "%s/%s/%s", domain, local, subs[i]);
		if (find_in(bfd, rel, unique, name, sizeof(name))) {
			snprintf(path, pathlen, "%s/%s/%s", base, rel, name);
			snprintf(dir, dirlen, "%s", rel);
			return true;
		}
	}
	return false;
}

bool maildir_parse_unique(const char *name, uint64_t *qid, uint32_t *idx)
{
	const char *p = strchr(name, '.');
	size_t mlen = strlen(MAILDIR_UNIQUE_MARK);
	if (p == NULL || strncmp(p + 1, MAILDIR_UNIQUE_MARK, mlen) != 0)
		return false;
	p += 1 + mlen;
	uint64_t q = 0;
	for (int i = 0; i < 16; i++, p++) {
		int v = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
		if (v < 0)
			return false;
		q = q << 4 | (uint64_t)v;
	}
	if (*p++ != '_' || *p < '0' || *p > '9')
		return false;
	char *end;
	unsigned long n = strtoul(p, &end, 10);
	if (*end != '.' || n > UINT32_MAX)
		return false;
	*qid = q;
	*idx = (uint32_t)n;
	return true;
}

bool maildir_scan_copies(const char *base, const char *domain, const char *local,
			 void (*fn)(void *arg, uint64_t qid, uint32_t idx, bool in_cur),
			 void *arg)
{
	int bfd = basedir_fd(base);
	if (bfd < 0 || !maildir_component_ok(domain) || !local_ok(local))
		return false;
	for (int cur = 0; cur < 2; cur++) {
		char rel[4200];
		snprintf(rel, sizeof(rel), "%s/%s/%s", domain, local, cur ? "cur" : "new");
		DIR *d = open_dir(bfd, rel);
		if (d == NULL && errno != ENOENT)
			return false;
		uint64_t q;
		uint32_t i;
		for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
			if (maildir_parse_unique(e->d_name, &q, &i))
				fn(arg, q, i, cur);
		if (d != NULL)
			closedir(d);
	}
	return true;
}

/* fresh_parts - the time (microseconds) and pid in a fresh unique part
 * ("<secs>.rgM<usecs>P<pid>Q<n>.<host>"); false for any other name. */
static bool fresh_parts(const char *name, long long *usecs, long *pid)
{
	const char *p = strchr(name, '.');
	char mark[8];
	snprintf(mark, sizeof(mark), "%sM", MAILDIR_UNIQUE_MARK);
	long long secs = strtoll(name, NULL, 10);
	if (p == NULL || strncmp(p + 1, mark, strlen(mark)) != 0)
		return false;
	char *end;
	long us = strtol(p + 1 + strlen(mark), &end, 10);
	if (*end != 'P')
		return false;
	*pid = strtol(end + 1, &end, 10);
	*usecs = secs * 1000000ll + us;
	return *end == 'Q';
}

/* orphan - is tmp/name (ours: marked "rg") left over from before start
 * (microseconds)? A queued copy's name holds its queue id, the time the
 * message arrived: this process only writes copies of messages that
 * arrived before it started once this clean-up is over (the local
 * transport waits for it), and copies of its own messages, which are
 * newer. A fresh name holds its writer's pid and time. Any other name is
 * judged by its file time, less a clock tick (file times are coarse). */
static bool orphan(const char *name, const struct stat *st, long long start_us)
{
	uint64_t qid;
	uint32_t idx;
	long long us;
	long pid;
	if (maildir_parse_unique(name, &qid, &idx))
		return (long long)qid < start_us;
	if (fresh_parts(name, &us, &pid))
		return pid != (long)getpid() || us < start_us;
	return (long long)st->st_mtim.tv_sec * 1000000ll + st->st_mtim.tv_nsec / 1000 <
	       start_us - MAILDIR_CLOCK_SLACK_MS * 1000ll;
}

/* clean_one_tmp - remove our old files from one tmp/ directory. */
static size_t clean_one_tmp(int mbfd, long long before)
{
	DIR *d = open_dir(mbfd, "tmp");
	size_t removed = 0, mlen = strlen(MAILDIR_UNIQUE_MARK);
	for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
		const char *u = strchr(e->d_name, '.');
		struct stat st;
		if (e->d_name[0] == '.' || u == NULL || strncmp(u + 1, MAILDIR_UNIQUE_MARK, mlen) != 0)
			continue; /* not ours: a client's or another MDA's */
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && orphan(e->d_name, &st, before) &&
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			removed++;
	}
	if (d != NULL)
		closedir(d);
	return removed;
}

/* clean_domain - every Maildir of one domain directory, within the budget. */
static size_t clean_domain(int dfd, long long before, size_t max, size_t *visited)
{
	DIR *d = open_dir(dfd, ".");
	size_t removed = 0;
	for (struct dirent *e; d != NULL && *visited < max && (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		int mb = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (mb < 0)
			continue;
		(*visited)++;
		removed += clean_one_tmp(mb, before);
		close(mb);
	}
	if (d != NULL)
		closedir(d);
	return removed;
}

size_t maildir_clean_tmp(const char *base, const struct timespec *started,
			 size_t max_mailboxes, size_t *visited)
{
	long long before = (long long)started->tv_sec * 1000000ll + started->tv_nsec / 1000;
	int bfd = basedir_fd(base);
	DIR *d = bfd < 0 ? NULL : open_dir(bfd, ".");
	size_t removed = 0;
	*visited = 0;
	for (struct dirent *e; d != NULL && *visited < max_mailboxes && (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		int dom = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dom < 0)
			continue;
		removed += clean_domain(dom, before, max_mailboxes, visited);
		close(dom);
	}
	if (d != NULL)
		closedir(d);
	return removed;
}
