/*
 * pickup.c - the local submission socket (see pickup.h).
 */
/* _GNU_SOURCE (the Makefile): struct ucred, SO_PEERCRED */
#include "smtp/pickup.h"
#include "util/util.h"
#include "util/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* remove_stale - a socket left by a killed server; anything else is not ours. */
static bool remove_stale(int dirfd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (fstatat(dirfd, PICKUP_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return true;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; remove it", path);
		return false;
	}
	if (unlinkat(dirfd, PICKUP_SOCKET_NAME, 0) != 0) {
		snprintf(err, errlen, "cannot remove stale %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

/* bind_at - bind through /proc/self/fd/N (the path may not fit in sun_path). */
static bool bind_at(int fd, int dirfd, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d/%s", dirfd,
		 PICKUP_SOCKET_NAME);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return true;
	if (errno != ENOENT || strlen(path) >= sizeof(sun.sun_path))
		return false;
	rg_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)); /* no /proc */
	return bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
}

/* open_access - socket 0666 and the directory o+x: any local user may connect;
 * the directory stays unreadable, its subdirectories closed (0700). */
static bool open_access(int dirfd)
{
	struct stat st;
	return fstat(dirfd, &st) == 0 && fchmod(dirfd, (st.st_mode & 07777) | S_IXOTH) == 0 &&
	       fchmodat(dirfd, PICKUP_SOCKET_NAME, 0666, 0) == 0;
}

int pickup_listen(int dirfd, const char *path, char *err, size_t errlen)
{
	if (dirfd < 0) {
		snprintf(err, errlen, "the queue directory is not open");
		return -1;
	}
	if (!remove_stale(dirfd, path, err, errlen))
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || !bind_at(fd, dirfd, path) || !open_access(dirfd) || listen(fd, 64) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlinkat(dirfd, PICKUP_SOCKET_NAME, 0);
		return -1;
	}
	return fd;
}

void pickup_unlink(int dirfd)
{
	struct stat st;
	if (dirfd >= 0 && fstatat(dirfd, PICKUP_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode))
		unlinkat(dirfd, PICKUP_SOCKET_NAME, 0);
}

bool pickup_peer(int fd, struct pickup_peer *out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred))
		return false;
	out->uid = cred.uid;
	snprintf(out->login, sizeof(out->login), "uid%lu", (unsigned long)cred.uid);
	return true;
}

/* user_name - UID's name into LOGIN (a worker: this may block); "uid<N>"
 * stays when it has none: still someone, and owns no address in any table. */
static void user_name(uid_t uid, char *login, size_t len)
{
	char buf[4096];
	struct passwd pw, *found = NULL;
	snprintf(login, len, "uid%lu", (unsigned long)uid);
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL &&
	    strlen(found->pw_name) < len && found->pw_name[0] != '\0')
		rg_strlcpy(login, found->pw_name, len);
}

struct pickup_lookup {
	uid_t uid;
	char login[PICKUP_LOGIN_MAX]; /* written by the worker, read by the loop after */
	struct workers *w;
	void (*done)(void *arg, const char *login);
	void *arg;
	bool cancelled;               /* the asker is gone while it runs */
	struct pickup_lookup *next;
};

/* The look-up on a worker, and those waiting for their turn (loop thread only). */
static struct pickup_lookup *running, *waiting, **waiting_tail = &waiting;

static void lookup_next(void);

static void lookup_work(void *arg)
{
	struct pickup_lookup *l = arg;
	user_name(l->uid, l->login, sizeof(l->login));
}

/* lookup_done - on the loop: answer the asker, if still there; the next turn. */
static void lookup_done(void *arg)
{
	struct pickup_lookup *l = arg;
	running = NULL;
	if (!l->cancelled)
		l->done(l->arg, l->login);
	free(l);
	lookup_next();
}

/* lookup_next - start the first waiting look-up unless one is running. */
static void lookup_next(void)
{
	if (running != NULL || waiting == NULL)
		return;
	running = waiting;
	waiting = running->next;
	if (waiting == NULL)
		waiting_tail = &waiting;
	workers_submit(running->w, lookup_work, lookup_done, running);
}

struct pickup_lookup *pickup_lookup_start(struct workers *w, uid_t uid,
					  void (*done)(void *arg, const char *login), void *arg)
{
	struct pickup_lookup *l = xcalloc(1, sizeof(*l));
	l->uid = uid;
	l->w = w;
	l->done = done;
	l->arg = arg;
	*waiting_tail = l;
	waiting_tail = &l->next;
	lookup_next();
	return l;
}

void pickup_lookup_cancel(struct pickup_lookup *l)
{
	if (l == running) { /* its worker cannot be stopped: lookup_done drops it */
		l->cancelled = true;
		return;
	}
	for (struct pickup_lookup **p = &waiting; *p != NULL; p = &(*p)->next) {
		if (*p != l)
			continue;
		*p = l->next;
		if (waiting_tail == &l->next)
			waiting_tail = p;
		free(l);
		return;
	}
}
