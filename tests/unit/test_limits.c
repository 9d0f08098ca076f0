/*
 * test_limits.c - who a client is counted as (IPv6 /64), the overall
 * connection limit derived from RLIMIT_NOFILE, and the queue's free-space floor.
 */
#include "check.h"
#include "config/config.h"
#include "net/net.h"
#include "smtp/server.h"

struct key_row {
	int line;
	const char *a, *b;
	bool same; /* counted as one client */
};

static const struct key_row key_rows[] = {
	{__LINE__, "192.0.2.1", "192.0.2.1", true},
	{__LINE__, "192.0.2.1", "192.0.2.2", false},        /* IPv4: each address */
	{__LINE__, "2001:db8:1:2::1", "2001:db8:1:2::2", true},
	{__LINE__, "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
	{__LINE__, "2001:db8:1:2::1", "2001:db8:1:3::1", false}, /* another /64 */
	{__LINE__, "::ffff:192.0.2.1", "192.0.2.1", true},  /* mapped is IPv4 */
	{__LINE__, "::ffff:192.0.2.1", "192.0.2.2", false}, /* not zeroed as a /64 */
};

static void test_client_key(void)
{
	for (size_t i = 0; i < sizeof(key_rows) / sizeof(key_rows[0]); i++) {
		const struct key_row *r = &key_rows[i];
		struct rg_ip a, b;
		CHECK_AT(r->line, ip_parse(r->a, &a) && ip_parse(r->b, &b), "parse");
		struct rg_ip ka = ip_client_key(&a), kb = ip_client_key(&b);
		CHECK_AT(r->line, ip_equal(&ka, &kb) == r->same, "%s vs %s: want %s", r->a, r->b,
			 r->same ? "one client" : "two clients");
		CHECK_AT(r->line, !r->same || ip_hash(&ka) == ip_hash(&kb), "hash");
	}
}

struct limit_row {
	int line;
	uint64_t configured, nofile;
	size_t want;
};

static const struct limit_row limit_rows[] = {
	{__LINE__, 0, 300, 86},          /* (300 - 128) / 2: socket + spool file each */
	{__LINE__, 0, 1024, 448},
	{__LINE__, 0, 65536, 32704},
	{__LINE__, 0, 100, 10},          /* below the reserve: still a few */
	{__LINE__, 0, 1ull << 40, 1000000},
	{__LINE__, 500, 300, 500},       /* configured: taken as it is */
};

static void test_connection_limit(void)
{
	for (size_t i = 0; i < sizeof(limit_rows) / sizeof(limit_rows[0]); i++) {
		const struct limit_row *r = &limit_rows[i];
		size_t got = server_connection_limit_for(r->configured, r->nofile);
		CHECK_AT(r->line, got == r->want, "got %zu, want %zu", got, r->want);
	}
}

static void test_queue_minfree(void)
{
	struct config cfg = {0};
	cfg.message_size_limit = 10240000;
	CHECK(server_queue_minfree(&cfg) == 15360000, "0: 1.5 x message_size_limit");
	cfg.queue_minfree = 100000000;
	CHECK(server_queue_minfree(&cfg) == 100000000, "a larger queue_minfree wins");
	cfg.queue_minfree = 1000;
	CHECK(server_queue_minfree(&cfg) == 15360000, "never below 1.5 x message_size_limit");
}

int main(void)
{
	test_client_key();
	test_connection_limit();
	test_queue_minfree();
	return check_summary("limits");
}
