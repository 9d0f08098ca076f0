/*
 * ctl_client.c - one request to the running server (see ctl_client.h).
 */
#include "cli/ctl_client.h"
#include "control/control.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY_MAX (256u << 20)   /* a listing of a huge queue, still bounded */
#define REPLY_TIMEOUT_SECONDS 60

/* socket_address - queue_dir/control; through /proc when the path is too long. */
static bool socket_address(const char *qdir, struct sockaddr_un *sun, int *dirfd)
{
	*sun = (struct sockaddr_un){.sun_family = AF_UNIX};
	*dirfd = -1;
	if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", qdir,
			     CONTROL_SOCKET_NAME) < sizeof(sun->sun_path))
		return true;
	*dirfd = open(qdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	snprintf(sun->sun_path, sizeof(sun->sun_path), "/proc/self/fd/%d/%s", *dirfd,
		 CONTROL_SOCKET_NAME);
	return *dirfd >= 0;
}

/* ctl_connect - a connected socket, or -1 with the reason in *res. */
static int ctl_connect(const char *qdir, enum ctl_result *res)
{
	struct sockaddr_un sun;
	int dirfd, fd = -1;
	bool ok = socket_address(qdir, &sun, &dirfd);
	if (ok && (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		*res = CTL_OK;
	} else {
		int e = errno;
		*res = e == EACCES || e == EPERM ? CTL_DENIED
		       : e == ENOENT || e == ECONNREFUSED || e == ENOTDIR ? CTL_ABSENT
									    : CTL_BROKEN;
		if (fd >= 0)
			close(fd);
		fd = -1;
		errno = e;
	}
	if (dirfd >= 0)
		close(dirfd);
	return fd;
}

/* read_reply - everything until the server closes; false on error or excess. */
static bool read_reply(int fd, struct strbuf *reply)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && reply->len > 0)
			break; /* it answered before reading our request (too busy): that answer */
		if (n < 0 || reply->len + (size_t)n > REPLY_MAX)
			return false;
		strbuf_append(reply, buf, (size_t)n);
	}
	return true;
}

/* split_status - cut the final "ok"/"error ..." line off reply. */
static enum ctl_result split_status(struct strbuf *reply, char *err, size_t errlen)
{
	if (reply->len == 0 || reply->data[reply->len - 1] != '\n') {
		snprintf(err, errlen, "the server's reply ended early");
		return CTL_BROKEN;
	}
	reply->data[--reply->len] = '\0';
	char *last = strrchr(reply->data, '\n');
	last = last ? last + 1 : reply->data;
	enum ctl_result r = CTL_BROKEN;
	if (strcmp(last, "ok") == 0 || strncmp(last, "ok ", 3) == 0)
		r = CTL_OK;
	else if (strncmp(last, "error ", 6) == 0)
		r = CTL_FAILED;
	snprintf(err, errlen, "%s", r == CTL_FAILED ? last + 6 : last);
	reply->len = (size_t)(last - reply->data);
	reply->data[reply->len] = '\0';
	return r;
}

/* ctl_request - one request to the running server. */
enum ctl_result ctl_request(const char *qdir, const char *request, struct strbuf *reply,
			    char *err, size_t errlen)
{
	enum ctl_result res;
	int fd = ctl_connect(qdir, &res);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return res;
	}
	struct timeval tv = {REPLY_TIMEOUT_SECONDS, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char *line = xasprintf("%s\n", request);
	/* no SIGPIPE: a server that refused us has written why; read it either way */
	ssize_t sent = send(fd, line, strlen(line), MSG_NOSIGNAL);
	bool ok = read_reply(fd, reply) && (sent == (ssize_t)strlen(line) || reply->len > 0);
	int e = errno;
	free(line);
	close(fd);
	if (!ok) {
		snprintf(err, errlen, "no complete reply from the server: %s", strerror(e));
		return CTL_BROKEN;
	}
	return split_status(reply, err, errlen);
}

/* say_denied - who may use the socket: root and the queue directory's group. */
static void say_denied(const char *qdir)
{
	struct stat st;
	char group[64] = "?";
	if (stat(qdir, &st) == 0) {
		struct group *g = getgrgid(st.st_gid);
		if (g != NULL)
			snprintf(group, sizeof(group), "%s", g->gr_name);
		else
			snprintf(group, sizeof(group), "%u", (unsigned)st.st_gid);
	}
	fprintf(stderr, "relayguard: permission denied: %s/%s (you need to be root or in group %s)\n",
		qdir, CONTROL_SOCKET_NAME, group);
}

int ctl_say_failure(const char *qdir, enum ctl_result r, const char *err)
{
	if (r == CTL_DENIED)
		say_denied(qdir);
	else if (r == CTL_FAILED)
		fprintf(stderr, "relayguard: %s\n", err);
	else
		fprintf(stderr, "relayguard: %s/%s: %s\n", qdir, CONTROL_SOCKET_NAME, err);
	return 1;
}
