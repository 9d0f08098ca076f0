/*
 * net - IP addresses and CIDR networks, parsed strictly.
 *
 * Owns: the one representation of a client address (IPv4-mapped IPv6 is
 * folded to IPv4, so "::ffff:127.0.0.1" cannot slip past a 127.0.0.0/8 rule),
 * CIDR parsing and matching, and the list of the host's own networks.
 * Must not: do DNS or any other I/O besides reading the interface list.
 */
#ifndef RG_NET_H
#define RG_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RG_IP_STRLEN 64

struct rg_ip {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
};

struct cidr {
	struct rg_ip net;
	unsigned prefix;
};

bool ip_parse(const char *s, struct rg_ip *ip);
bool ip_from_sockaddr(const struct sockaddr *sa, struct rg_ip *ip);
void ip_format(const struct rg_ip *ip, char *buf, size_t len);
bool ip_equal(const struct rg_ip *a, const struct rg_ip *b);
/* A hash of the address, for tables keyed by client (ip_equal-consistent). */
unsigned ip_hash(const struct rg_ip *ip);
bool ip_is_loopback(const struct rg_ip *ip);
/* ip and port as a sockaddr (IPv4 or IPv6) in ss; returns its length. */
socklen_t ip_to_sockaddr(const struct rg_ip *ip, unsigned port, struct sockaddr_storage *ss);
/* The unit a client is counted as: an IPv4 address, or the IPv6 /64 it is in
 * (one host usually holds a whole /64 and can step through it). */
struct rg_ip ip_client_key(const struct rg_ip *ip);

/* "10.0.0.0/8", "[2001:db8::]/32", "::1/128", "192.0.2.1" (a host).
 * On failure writes a human-readable reason into err. */
bool cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen);
bool cidr_match(const struct cidr *c, const struct rg_ip *ip);
/* Is every address of inner also in outer? */
bool cidr_contains(const struct cidr *outer, const struct cidr *inner);
void cidr_format(const struct cidr *c, char *buf, size_t len);

/* One of the host's own networks, as read from its interfaces. */
struct host_network {
	struct rg_ip addr; /* the interface's own address */
	struct cidr cidr;
	char ifname[32];
};
/* Fills up to max entries; returns the count (0 when unreadable). */
size_t host_networks(struct host_network *out, size_t max);

#endif
