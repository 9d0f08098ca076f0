/*
 * maildir.c - Maildir delivery (see maildir.h).
 */
#include "delivery/maildir.h"
#include "util/basedir.h"
#include "util/dirsync.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	if (!make_dir(bfd, base, domain, ".") || !make_dir(bfd, base, dir, domain))
		return false;
	static const char *const subs[] = {"tmp", "new", "cur"};
	for (size_t i = 0; i < RG_ARRAY_LEN(subs); i++) {
		char sub[4200];
		snprintf(sub, sizeof(sub), "%s/%s", dir, subs[i]);
		if (!make_dir(bfd, base, sub, dir))
			return false;
	}
	return true;
}

/* host_part - the host name with '/' and ':' escaped as Dovecot does. */
static void host_part(char *out, size_t len)
{
	char host[256];
	if (gethostname(host, sizeof(host)) != 0)
		rg_strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
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

/* write_lf - the message with CRLF turned into LF, in 64 KiB pieces (a CR at
 * the end of one piece is decided by the first byte of the next). */
static bool write_lf(int fd, const struct source *src, size_t *written)
{
	char in[65536], out[65536 + 1];
	size_t done = 0;
	bool pending_cr = false;
	*written = 0;
	while (done < src->len) {
		ssize_t n = read_chunk(src, done, in, sizeof(in));
		if (n <= 0)
			return false;
		done += (size_t)n;
		size_t o = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (pending_cr && in[i] != '\n')
				out[o++] = '\r'; /* a lone CR stays */
			pending_cr = in[i] == '\r';
			if (!pending_cr)
				out[o++] = in[i];
		}
		if (!write_out(fd, out, o))
			return false;
		*written += o;
	}
	if (pending_cr) {
		if (!write_out(fd, "\r", 1))
			return false;
		*written += 1;
	}
	return true;
}

static bool deliver(const char *base, const char *domain, const char *local,
		    const struct source *src, char *path, size_t pathlen, char *newdir,
		    size_t newdirlen, char *err, size_t errlen);

bool maildir_deliver(const char *base, const char *domain, const char *local,
		     const char *msg, size_t len, char *path, size_t pathlen,
		     char *newdir, size_t newdirlen, char *err, size_t errlen)
{
	struct source src = {msg ? msg : "", -1, 0, len};
	return deliver(base, domain, local, &src, path, pathlen, newdir, newdirlen, err,
		       errlen);
}

bool maildir_deliver_fd(const char *base, const char *domain, const char *local, int fd,
			off_t offset, size_t len, char *path, size_t pathlen, char *newdir,
			size_t newdirlen, char *err, size_t errlen)
{
	struct source src = {NULL, fd, offset, len};
	return deliver(base, domain, local, &src, path, pathlen, newdir, newdirlen, err,
		       errlen);
}

static bool deliver(const char *base, const char *domain, const char *local,
		    const struct source *src, char *path, size_t pathlen, char *newdir,
		    size_t newdirlen, char *err, size_t errlen)
{
	size_t len = src->len;
	char dir[4096], host[512], name[1024], tmp[4200], dst[4200];
	if (!maildir_component_ok(domain) || !maildir_component_ok(local)) {
		snprintf(err, errlen, "unsafe mailbox name %s@%s", local, domain);
		return false;
	}
	int bfd = basedir_fd(base);
	if (bfd < 0 || !make_maildir(bfd, base, domain, local, dir, sizeof(dir))) {
		snprintf(err, errlen, "cannot create Maildir %s/%s/%s: %s", base, domain, local,
			 strerror(errno));
		return false;
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	host_part(host, sizeof(host));
	unsigned q = atomic_fetch_add(&delivery_counter, 1);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%lld.M%ldP%dQ%u.%s", dir, (long long)tv.tv_sec,
		 (long)tv.tv_usec, (int)getpid(), q, host);
	int fd = openat(bfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t size = 0;
	bool ok = fd >= 0 && write_lf(fd, src, &size) && fsync(fd) == 0;
	int saved = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	snprintf(name, sizeof(name), "%lld.M%ldP%dQ%u.%s,S=%zu,W=%zu", (long long)tv.tv_sec,
		 (long)tv.tv_usec, (int)getpid(), q, host, size, len);
	snprintf(dst, sizeof(dst), "%s/new/%s", dir, name);
	if (ok && renameat(bfd, tmp, bfd, dst) != 0) {
		ok = false;
		saved = errno;
	}
	snprintf(newdir, newdirlen, "%s/new", dir);
	if (!ok) {
		unlinkat(bfd, tmp, 0);
		snprintf(err, errlen, "cannot deliver to %s/%s: %s", base, dir, strerror(saved));
		return false;
	}
	snprintf(path, pathlen, "%s/%s", base, dst);
	return true;
}
