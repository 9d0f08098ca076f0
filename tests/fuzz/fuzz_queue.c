/*
 * fuzz_queue.c - libFuzzer target: any bytes as a queue file in active/.
 * A damaged file must be refused (it is moved to corrupt/ by the server),
 * never crash the loader or leak.
 */
#include "queue/queue.h"
#include "util/basedir.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/rg-fuzz-queue-XXXXXX";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char err[512];
	if (!ready) {
		if (mkdtemp(dir) == NULL || !queue_init(dir, err, sizeof(err)))
			abort();
		ready = 1;
	}
	int fd = openat(basedir_fd(dir), "active/F", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	struct queue_msg *m = calloc(1, sizeof(*m));
	if (queue_load(dir, "active/F", m, err, sizeof(err)) && m->n_rcpts == 0)
		abort(); /* a loaded file always has recipients */
	queue_msg_free(m);
	return 0;
}
