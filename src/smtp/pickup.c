/*
 * pickup.c - the local submission socket (see pickup.h).
 */
/* _GNU_SOURCE (the Makefile): struct ucred, SO_PEERCRED */
#include "smtp/pickup.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
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
	char buf[4096];
	struct passwd pw, *found = NULL;
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL &&
	    strlen(found->pw_name) < sizeof(out->login) && found->pw_name[0] != '\0')
		rg_strlcpy(out->login, found->pw_name, sizeof(out->login));
	else /* no name: still someone, and owns no address in any table */
		snprintf(out->login, sizeof(out->login), "uid%lu", (unsigned long)cred.uid);
	return true;
}
