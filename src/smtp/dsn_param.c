/*
 * dsn_param.c - RFC 3461 parameter syntax (see dsn_param.h).
 */
#include "smtp/dsn_param.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

static int hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* RFC 3461: upper-case hex only */
}

bool dsn_xtext_decode(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for (const char *p = in; *p; p++) {
		int c = (unsigned char)*p;
		if (c == '+') {
			if (hex(p[1]) < 0 || hex(p[2]) < 0)
				return false;
			c = hex(p[1]) * 16 + hex(p[2]);
			p += 2;
		} else if (c < 0x21 || c > 0x7e || c == '=') {
			return false;
		}
		if (c < 0x20 || c > 0x7e || o + 1 >= outlen)
			return false; /* decoded control bytes never reach our files */
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return true;
}

bool dsn_param_ret(const char *value, char *out, size_t outlen)
{
	if (rg_strcasecmp(value, "FULL") != 0 && rg_strcasecmp(value, "HDRS") != 0)
		return false;
	rg_strlcpy(out, rg_strcasecmp(value, "FULL") == 0 ? "FULL" : "HDRS", outlen);
	return true;
}

bool dsn_param_envid(const char *value, char *out, size_t outlen)
{
	char buf[DSN_ENVID_MAX + 1];
	if (!dsn_xtext_decode(value, buf, sizeof(buf)) || buf[0] == '\0')
		return false;
	return rg_strlcpy(out, buf, outlen) < outlen;
}

/* notify_word - the bit of one NOTIFY keyword, 0 when unknown. */
static unsigned notify_word(const char *w, size_t n)
{
	static const char *const words[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
	for (size_t k = 0; k < RG_ARRAY_LEN(words); k++)
		if (strlen(words[k]) == n && rg_strncasecmp(w, words[k], n) == 0)
			return 1u << k;
	return 0;
}

bool dsn_param_notify(const char *value, char *out, size_t outlen)
{
	unsigned seen = 0;
	for (const char *p = value;;) {
		size_t n = strcspn(p, ",");
		unsigned bit = notify_word(p, n);
		if (bit == 0 || (seen & bit))
			return false;
		seen |= bit;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	if ((seen & 1u) && seen != 1u)
		return false; /* NEVER stands alone */
	snprintf(out, outlen, "%s%s%s%s", seen & 1u ? "NEVER" : "",
		 seen & 2u ? "SUCCESS" : "", seen & 4u ? (seen & 2u ? ",FAILURE" : "FAILURE") : "",
		 seen & 8u ? (seen & 6u ? ",DELAY" : "DELAY") : "");
	return true;
}

bool dsn_param_orcpt(const char *value, char *out, size_t outlen)
{
	const char *semi = strchr(value, ';');
	char type[32], addr[DSN_ORCPT_MAX + 1];
	size_t n = semi ? (size_t)(semi - value) : 0;
	if (n == 0 || n >= sizeof(type) || !dsn_xtext_decode(semi + 1, addr, sizeof(addr)) ||
	    addr[0] == '\0')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = value[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		type[i] = c;
	}
	type[n] = '\0';
	rg_str_lower(type);
	return (size_t)snprintf(out, outlen, "%s;%s", type, addr) < outlen;
}
