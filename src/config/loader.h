/*
 * loader - the state of one config_load(), shared by config.c (reading,
 * $name expansion) and convert.c (typed values, cross-parameter checks).
 *
 * Owns: nothing beyond one load; private to src/config/.
 * Must not: be included outside src/config/.
 */
#ifndef RG_CONFIG_LOADER_H
#define RG_CONFIG_LOADER_H

#include "config/config.h"
#include "config/params.h"
#include "util/util.h"

/* Loading state: raw values, their origins, and the error report. */
struct loader {
	const char *file;
	char *raw[PARAM_COUNT];
	char *expanded[PARAM_COUNT];
	bool expanding[PARAM_COUNT]; /* on the stack of expand(): a $name loop */
	struct config_origin origin[PARAM_COUNT];
	struct strbuf errors;
	struct config *cfg;
	const struct config *running; /* a reload: its tables are kept (pinned_maps) */
};

/* config_error - "file:line: message" for parameter param (PARAM_COUNT: no line). */
void config_error(struct loader *ld, size_t param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Every expanded value into its typed field, then the cross-parameter checks. */
void config_convert(struct loader *ld);

/* Free every field the table says cfg owns. */
void config_free_fields(struct config *cfg);


/* A host or domain name (no address literal, no trailing dot)? */
bool config_hostname_ok(const char *name);

#endif
