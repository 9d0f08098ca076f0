/*
 * route.c - transport_maps, relayhost and MX routing (see route.h).
 */
#include "qmgr/route.h"
#include "config/config.h"
#include "net/net.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

/* host_ok - a host name or an IP address; nothing that could smuggle syntax. */
static bool host_ok(const char *h)
{
	struct rg_ip ip;
	if (ip_parse(h, &ip))
		return true;
	if (h[0] == '\0' || h[0] == '.' || h[0] == '-' || strlen(h) > 253)
		return false;
	for (const char *p = h; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
			return false;
	return true;
}

/* parse_port - ":N" at s, or the default when s is empty. */
static bool parse_port(const char *s, unsigned def, unsigned *port)
{
	uint64_t v;
	if (*s == '\0') {
		*port = def;
		return true;
	}
	if (*s != ':' || !rg_parse_u64(s + 1, &v) || v == 0 || v > 65535)
		return false;
	*port = (unsigned)v;
	return true;
}

/* split_nexthop - host part and the rest (":port" or ""); false when malformed. */
static bool split_nexthop(const char *s, const char **host, size_t *n, const char **rest,
			  bool *mx)
{
	struct rg_ip ip;
	*mx = s[0] != '[';
	if (!*mx) {
		const char *end = strchr(s, ']');
		if (end == NULL)
			return false;
		*host = s + 1;
		*n = (size_t)(end - s - 1);
		*rest = end + 1;
		return true;
	}
	*host = s;
	if (ip_parse(s, &ip)) { /* a bare IP (IPv6 has colons of its own): no MX */
		*n = strlen(s);
		*rest = s + *n;
		*mx = false;
		return true;
	}
	const char *colon = strchr(s, ':');
	*n = colon ? (size_t)(colon - s) : strlen(s);
	*rest = s + *n;
	return true;
}

bool route_parse_nexthop(const char *s, unsigned default_port, char *host, size_t hostlen,
			 unsigned *port, bool *mx)
{
	const char *h, *rest;
	size_t n;
	if (!split_nexthop(s, &h, &n, &rest, mx) || n == 0 || n >= hostlen)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	return host_ok(host) && parse_port(rest, default_port, port);
}

static void set_key(struct route *r)
{
	if (r->mx)
		snprintf(r->key, sizeof(r->key), "%s", r->host);
	else
		snprintf(r->key, sizeof(r->key), "[%s]:%u", r->host, r->port);
}

/* parse_lmtp_unix - an absolute socket path that fits sun_path, printable. */
static bool parse_lmtp_unix(const char *path, struct route *out, char *err, size_t errlen)
{
	size_t n = strlen(path);
	bool ok = path[0] == '/' && n <= ROUTE_UNIX_PATH_MAX;
	for (const unsigned char *p = (const unsigned char *)path; ok && *p; p++)
		ok = *p > 0x20 && *p < 0x7f;
	if (!ok) {
		snprintf(err, errlen, "lmtp:unix:%.120s: not an absolute socket path of at most "
			 "%d printable bytes", path, ROUTE_UNIX_PATH_MAX);
		return false;
	}
	out->unix_socket = true;
	memcpy(out->host, path, n + 1);
	snprintf(out->key, sizeof(out->key), "lmtp:unix:%s", path);
	return true;
}

/* parse_lmtp - "unix:/path", or "inet:IP:port" / "inet:[IP]:port" (port 24 by
 * default). A host name is refused: LMTP servers are local, and a name
 * would need a DNS lookup the route cannot do. */
static bool parse_lmtp(const char *rest, struct route *out, char *err, size_t errlen)
{
	struct rg_ip ip;
	bool mx;
	out->kind = ROUTE_LMTP;
	if (strncmp(rest, "unix:", 5) == 0)
		return parse_lmtp_unix(rest + 5, out, err, errlen);
	if (strncmp(rest, "inet:", 5) != 0 ||
	    !route_parse_nexthop(rest + 5, LMTP_DEFAULT_PORT, out->host, sizeof(out->host),
				 &out->port, &mx) ||
	    !ip_parse(out->host, &ip)) {
		snprintf(err, errlen, "\"lmtp:%.200s\": not lmtp:unix:/path or lmtp:inet:IP:port "
			 "(an IP address: names are not resolved)", rest);
		return false;
	}
	snprintf(out->key, sizeof(out->key), strchr(out->host, ':') ? "lmtp:inet:[%s]:%u"
								    : "lmtp:inet:%s:%u",
		 out->host, out->port);
	return true;
}

/* parse_error - "error:5.7.1 text" (the status is optional: 5.0.0). */
static bool parse_error(const char *rest, struct route *out, char *err, size_t errlen)
{
	out->kind = ROUTE_ERROR;
	rg_strlcpy(out->status, "5.0.0", sizeof(out->status));
	int a, b, c, used = 0;
	if (sscanf(rest, "%1d.%3d.%3d%n", &a, &b, &c, &used) == 3 &&
	    (rest[used] == ' ' || rest[used] == '\0')) {
		if (a != 4 && a != 5) {
			snprintf(err, errlen, "error: status %.*s must start with 4 or 5", used, rest);
			return false;
		}
		snprintf(out->status, sizeof(out->status), "%d.%d.%d", a, b, c);
		rest += used;
	}
	while (*rest == ' ')
		rest++;
	rg_strlcpy(out->text, *rest ? rest : "delivery refused by transport_maps",
		   sizeof(out->text));
	return true;
}

bool route_parse_transport(const char *value, const char *domain, unsigned default_port,
			   struct route *out, char *err, size_t errlen)
{
	const char *colon = strchr(value, ':');
	size_t tlen = colon ? (size_t)(colon - value) : strlen(value);
	const char *rest = colon ? colon + 1 : "";
	memset(out, 0, sizeof(*out));
	rg_strlcpy(out->via, "transport_maps", sizeof(out->via));
	if (tlen == 5 && strncmp(value, "error", 5) == 0)
		return parse_error(rest, out, err, errlen);
	if (tlen == 7 && strncmp(value, "discard", 7) == 0) {
		out->kind = ROUTE_DISCARD;
		return true;
	}
	if ((tlen == 5 && strncmp(value, "local", 5) == 0) ||
	    (tlen == 7 && strncmp(value, "virtual", 7) == 0)) {
		out->kind = ROUTE_LOCAL;
		return true;
	}
	if (tlen == 4 && strncmp(value, "lmtp", 4) == 0)
		return parse_lmtp(rest, out, err, errlen);
	if (!((tlen == 4 && strncmp(value, "smtp", 4) == 0) ||
	      (tlen == 5 && strncmp(value, "relay", 5) == 0))) {
		snprintf(err, errlen, "\"%s\": unknown transport (smtp, relay, lmtp, local, "
			 "error, discard)", value);
		return false;
	}
	out->kind = ROUTE_SMTP;
	if (*rest == '\0') { /* "smtp:" : the domain's own MX */
		rg_strlcpy(out->host, domain, sizeof(out->host));
		out->port = default_port;
		out->mx = true;
	} else if (!route_parse_nexthop(rest, default_port, out->host, sizeof(out->host),
					&out->port, &out->mx)) {
		snprintf(err, errlen, "\"%s\": bad next hop (host, [host], host:port or "
			 "[host]:port)", value);
		return false;
	}
	set_key(out);
	return true;
}

/* lookup_transport - the domain itself, then ".parent" keys, in every table. */
static const char *lookup_transport(const struct config *cfg, const char *domain)
{
	for (const char *d = domain; d != NULL; d = strchr(d + 1, '.')) {
		for (size_t k = 0; cfg->transport_maps && cfg->transport_maps[k]; k++) {
			const char *v = map_lookup(cfg->transport_maps[k], d);
			if (v != NULL)
				return v;
		}
	}
	return NULL;
}

bool route_for_mailbox(const char *value, const char *via, const char *domain,
		       unsigned smtp_port, struct route *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (value == NULL || value[0] == '\0') {
		out->kind = ROUTE_LOCAL;
		rg_strlcpy(out->via, "local", sizeof(out->via));
		return true;
	}
	if (!route_parse_transport(value, domain, smtp_port, out, err, errlen))
		return false;
	rg_strlcpy(out->via, via, sizeof(out->via));
	return true;
}

bool route_for_domain(const struct config *cfg, const char *domain,
		      enum route_domain_class cls, struct route *out, char *err, size_t errlen)
{
	const char *v = lookup_transport(cfg, domain);
	if (v != NULL)
		return route_parse_transport(v, domain, cfg->smtp_tcp_port, out, err, errlen);
	if (cls == ROUTE_DOMAIN_VIRTUAL)
		return route_for_mailbox(cfg->virtual_transport, "virtual_transport", domain,
					 cfg->smtp_tcp_port, out, err, errlen);
	if (cls == ROUTE_DOMAIN_MYDESTINATION)
		return route_for_mailbox(cfg->mailbox_transport, "mailbox_transport", domain,
					 cfg->smtp_tcp_port, out, err, errlen);
	memset(out, 0, sizeof(*out));
	/* default_transport: "smtp" (relayhost or MX), "smtp:[host]", or error/discard */
	if (!route_parse_transport(cfg->default_transport, domain, cfg->smtp_tcp_port, out, err,
				   errlen))
		return false;
	rg_strlcpy(out->via, "default_transport", sizeof(out->via));
	if (out->kind != ROUTE_SMTP || strchr(cfg->default_transport, ':') != NULL)
		return true;
	if (cfg->relayhost[0] != '\0') {
		out->relayhost = true;
		rg_strlcpy(out->via, "relayhost", sizeof(out->via));
		if (!route_parse_nexthop(cfg->relayhost, cfg->smtp_tcp_port, out->host,
					 sizeof(out->host), &out->port, &out->mx)) {
			snprintf(err, errlen, "relayhost \"%s\": bad next hop", cfg->relayhost);
			return false;
		}
	} else {
		rg_strlcpy(out->via, "mx", sizeof(out->via));
	}
	set_key(out);
	return true;
}
