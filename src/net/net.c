/*
 * net.c - IP addresses and CIDR networks (see net.h).
 */
#include "net/net.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* fold_mapped - an IPv4-mapped IPv6 address is the IPv4 address. */
static void fold_mapped(struct rg_ip *ip)
{
	if (ip->family == AF_INET6 && memcmp(ip->addr, v4mapped_prefix, 12) == 0) {
		uint8_t v4[4];
		memcpy(v4, ip->addr + 12, 4);
		memset(ip->addr, 0, sizeof(ip->addr));
		memcpy(ip->addr, v4, 4);
		ip->family = AF_INET;
	}
}

bool ip_parse(const char *s, struct rg_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, ip->addr) == 1) {
		ip->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, ip->addr) == 1) {
		ip->family = AF_INET6;
		fold_mapped(ip);
		return true;
	}
	return false;
}

bool ip_from_sockaddr(const struct sockaddr *sa, struct rg_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		ip->family = AF_INET;
		memcpy(ip->addr, &sin->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		ip->family = AF_INET6;
		memcpy(ip->addr, &sin6->sin6_addr, 16);
		fold_mapped(ip);
		return true;
	}
	return false;
}

void ip_format(const struct rg_ip *ip, char *buf, size_t len)
{
	if (inet_ntop(ip->family, ip->addr, buf, (socklen_t)len) == NULL)
		rg_strlcpy(buf, "?", len);
}

bool ip_equal(const struct rg_ip *a, const struct rg_ip *b)
{
	size_t n = a->family == AF_INET ? 4 : 16;
	return a->family == b->family && memcmp(a->addr, b->addr, n) == 0;
}

struct rg_ip ip_client_key(const struct rg_ip *ip)
{
	struct rg_ip k = *ip;
	if (k.family == AF_INET6)
		memset(k.addr + 8, 0, 8);
	return k;
}

unsigned ip_hash(const struct rg_ip *ip)
{
	unsigned h = 2166136261u; /* FNV-1a over the address bytes */
	size_t n = ip->family == AF_INET ? 4 : 16;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ip->addr[i]) * 16777619u;
	return h;
}

bool ip_is_loopback(const struct rg_ip *ip)
{
	static const uint8_t v6_loopback[16] = {[15] = 1};
	if (ip->family == AF_INET)
		return ip->addr[0] == 127;
	return memcmp(ip->addr, v6_loopback, 16) == 0;
}

static unsigned family_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* prefix_equal - do the first bits of a and b agree? */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

/* split_cidr - "[addr]/len", "addr/len" or "addr" into its two halves. */
static bool split_cidr(const char *s, char *addr, size_t addrlen, const char **len)
{
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n == 0 || n >= addrlen)
		return false;
	memcpy(addr, s, n);
	addr[n] = '\0';
	*len = slash ? slash + 1 : NULL;
	return true;
}

bool cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen)
{
	char addr[RG_IP_STRLEN];
	const char *len;
	memset(out, 0, sizeof(*out));
	if (!split_cidr(s, addr, sizeof(addr), &len) || !ip_parse(addr, &out->net)) {
		snprintf(err, errlen, "\"%s\" is not an IP address or network", s);
		return false;
	}
	unsigned max = family_bits(out->net.family);
	uint64_t prefix = max;
	if (len != NULL && (!rg_parse_u64(len, &prefix) || prefix > max)) {
		snprintf(err, errlen, "\"%s\": prefix length must be 0..%u%s", s, max,
			 out->net.family == AF_INET && strchr(addr, ':') ?
			 " (IPv4-mapped IPv6 addresses are IPv4 here: write the IPv4 network)" : "");
		return false;
	}
	out->prefix = (unsigned)prefix;
	struct rg_ip zero = {.family = out->net.family};
	uint8_t masked[16];
	memcpy(masked, out->net.addr, 16);
	for (unsigned bit = out->prefix; bit < max; bit++)
		masked[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	if (memcmp(masked, out->net.addr, 16) != 0) {
		memcpy(zero.addr, masked, 16);
		char fixed[RG_IP_STRLEN];
		ip_format(&zero, fixed, sizeof(fixed));
		snprintf(err, errlen, "\"%s\" has host bits set beyond /%u (did you mean %s/%u?)",
			 s, out->prefix, fixed, out->prefix);
		return false;
	}
	return true;
}

bool cidr_match(const struct cidr *c, const struct rg_ip *ip)
{
	return c->net.family == ip->family && prefix_equal(c->net.addr, ip->addr, c->prefix);
}

bool cidr_contains(const struct cidr *outer, const struct cidr *inner)
{
	return outer->net.family == inner->net.family && outer->prefix <= inner->prefix &&
	       prefix_equal(outer->net.addr, inner->net.addr, outer->prefix);
}

void cidr_format(const struct cidr *c, char *buf, size_t len)
{
	char ip[RG_IP_STRLEN];
	ip_format(&c->net, ip, sizeof(ip));
	if (c->net.family == AF_INET6)
		snprintf(buf, len, "[%s]/%u", ip, c->prefix);
	else
		snprintf(buf, len, "%s/%u", ip, c->prefix);
}

/* netmask_bits - the prefix length of a contiguous netmask. */
static unsigned netmask_bits(const struct rg_ip *mask)
{
	unsigned bits = 0, max = family_bits(mask->family);
	while (bits < max && (mask->addr[bits / 8] & (0x80 >> (bits % 8))))
		bits++;
	return bits;
}

size_t host_networks(struct host_network *out, size_t max)
{
	struct ifaddrs *ifa, *it;
	size_t n = 0;
	if (getifaddrs(&ifa) != 0)
		return 0;
	for (it = ifa; it != NULL && n < max; it = it->ifa_next) {
		struct rg_ip ip, mask;
		if (it->ifa_addr == NULL || it->ifa_netmask == NULL ||
		    !ip_from_sockaddr(it->ifa_addr, &ip))
			continue;
		/* ifa_netmask of an IPv6 address has no family set on some kernels */
		struct sockaddr_storage ms;
		memcpy(&ms, it->ifa_netmask, it->ifa_addr->sa_family == AF_INET
					  ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		ms.ss_family = it->ifa_addr->sa_family;
		if (!ip_from_sockaddr((struct sockaddr *)&ms, &mask))
			continue;
		out[n].addr = ip;
		out[n].cidr.prefix = netmask_bits(&mask);
		out[n].cidr.net = ip;
		for (unsigned bit = out[n].cidr.prefix; bit < family_bits(ip.family); bit++)
			out[n].cidr.net.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
		rg_strlcpy(out[n].ifname, it->ifa_name, sizeof(out[n].ifname));
		n++;
	}
	freeifaddrs(ifa);
	return n;
}

socklen_t ip_to_sockaddr(const struct rg_ip *ip, unsigned port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ip->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		memcpy(&s6->sin6_addr, ip->addr, 16);
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	memcpy(&s4->sin_addr, ip->addr, 4);
	return sizeof(*s4);
}
