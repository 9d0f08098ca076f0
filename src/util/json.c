/*
 * json.c - JSON string escaping (see json.h).
 */
#include "util/json.h"

void json_string(struct strbuf *sb, const char *s)
{
	strbuf_puts(sb, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': strbuf_puts(sb, "\\\""); break;
		case '\\': strbuf_puts(sb, "\\\\"); break;
		case '\n': strbuf_puts(sb, "\\n"); break;
		case '\r': strbuf_puts(sb, "\\r"); break;
		case '\t': strbuf_puts(sb, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f || *p >= 0x80)
				/* bytes >= 0x80 may not be UTF-8: keep JSON valid, lose nothing */
				strbuf_printf(sb, "\\u%04x", *p);
			else
				strbuf_append(sb, (const char *)p, 1);
		}
	}
	strbuf_puts(sb, "\"");
}
