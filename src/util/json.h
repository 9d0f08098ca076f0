/*
 * json - the one JSON string escaper of the project.
 *
 * Owns: turning any byte string (from the network, a queue file, a config)
 * into a valid JSON string literal, quotes included.
 * Must not: build documents; callers write their own objects and arrays.
 */
#ifndef RG_JSON_H
#define RG_JSON_H

#include "util/util.h"

/* json_string - append s as a quoted JSON string. Control characters, DEL
 * and bytes >= 0x80 (not necessarily UTF-8) become \u00XX: always valid. */
void json_string(struct strbuf *sb, const char *s);

#endif
