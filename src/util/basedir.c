/*
 * basedir.c - open base directories (see basedir.h).
 */
#include "util/basedir.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BASEDIRS 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *path;
	int fd;
} dirs[MAX_BASEDIRS];
static size_t n_dirs;

int basedir_fd(const char *path)
{
	int fd = -1;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_dirs && fd < 0; i++)
		if (strcmp(dirs[i].path, path) == 0)
			fd = dirs[i].fd;
	if (fd < 0 && n_dirs < MAX_BASEDIRS) {
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			dirs[n_dirs].path = xstrdup(path);
			dirs[n_dirs++].fd = fd;
		}
	} else if (fd < 0) {
		errno = EMFILE;
	}
	pthread_mutex_unlock(&lock);
	return fd;
}

bool basedir_open(const char *path)
{
	return basedir_fd(path) >= 0;
}

void basedir_close_all(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n_dirs; i++) {
		close(dirs[i].fd);
		free(dirs[i].path);
	}
	n_dirs = 0;
	pthread_mutex_unlock(&lock);
}
