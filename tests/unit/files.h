/*
 * files.h - file helpers shared by the unit tests that touch the disk.
 */
#ifndef RG_TEST_FILES_H
#define RG_TEST_FILES_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/util.h"

/* read_at - the whole file at dirfd/path (AT_FDCWD for plain paths); empty
 * when it cannot be read. */
static inline struct strbuf read_at(int dirfd, const char *path)
{
	struct strbuf sb;
	strbuf_init(&sb);
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sb;
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strbuf_append(&sb, buf, (size_t)n);
	close(fd);
	return sb;
}

static inline int files_rm_entry(const char *path, const struct stat *st, int flag,
				 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* remove_tree - rm -rf of a test's temporary directory. */
static inline void remove_tree(const char *top)
{
	nftw(top, files_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* dir_entries - the names in base/rel (without . and ..), or -1 if unreadable;
 * the first name goes to first when it is not NULL. */
static inline int dir_entries(const char *base, const char *rel, char *first, size_t len)
{
	char *p = xasprintf("%s/%s", base, rel);
	DIR *d = opendir(p);
	free(p);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first != NULL)
			rg_strlcpy(first, de->d_name, len);
	}
	closedir(d);
	return n;
}

#endif
