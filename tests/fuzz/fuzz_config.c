/*
 * fuzz_config.c - libFuzzer target: any bytes as a main.cf file.
 * Loading must end in a configuration or in errors, never in a crash,
 * undefined behaviour or a leak; a configuration that loads must be able
 * to refuse an unauthorised destination.
 */
#include "config/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/rg-fuzz-config-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	char *errors = NULL;
	struct config *cfg = config_load(path, &errors);
	unlink(path);
	if ((cfg == NULL) == (errors == NULL))
		abort(); /* exactly one of them */
	free(errors);
	config_free(cfg);
	return 0;
}
