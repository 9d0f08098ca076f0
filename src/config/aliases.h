/*
 * aliases - alias_maps in the aliases(5) format of /etc/aliases.
 *
 * Owns: reading "name: value, value" files (continuation lines start with
 * white space, '#' comments) into a lookup table, and refusing at load time,
 * with file:line, what the first version cannot do: ":include:" files,
 * "|command" pipes and "/file" deliveries.
 * Must not: expand aliases (address/expand.c does) or look at the domain:
 * keys are local parts.
 */
#ifndef RG_ALIASES_H
#define RG_ALIASES_H

#include <stddef.h>

#include "config/maps.h"

/* Load "/path", "texthash:/path" or "hash:/path" (the text source of the
 * .db Postfix would read). Keys lower case, values as written (commas kept).
 * NULL with err ("file:line: reason") on failure. */
struct map *aliases_open(const char *spec, char *err, size_t errlen);

#endif
