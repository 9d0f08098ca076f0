/*
 * dns_route_check - run mail routing lookups through src/dns/route.c.
 *
 * usage: dns_route_check [-t MS] [-f all|ipv4|ipv6] [-p any|ipv4|ipv6] [-H]
 *                        [-n REPEAT] [-P] [-c] [-F] SERVERS NAME...
 *        dns_route_check [options] -i SERVERS
 *
 * SERVERS is a dns_servers value ("127.0.0.1:5353"). Each NAME (REPEAT
 * times) goes to dns_mx_route(), or with -H to dns_host_route(), one after
 * another on one resolver, so later lookups meet the cache; -P starts them
 * all at once instead. One JSON line per lookup, in argument order:
 *   {"name":N,"status":"ok|nxdomain|null-mx|no-address|temp","error":E,
 *    "implicit_mx":B,"ms":T,"hosts":[{"name":H,"pref":P,"temp_failed":B,
 *    "addrs":["127.0.0.5",...]},...]}
 * -i reads one NAME per stdin line and answers each before reading the next,
 * so a test can stop the DNS server between two lookups. -c cancels each
 * lookup right after starting it and waits for the resolver to finish
 * ({"name":N,"cancelled":true}); -F frees the resolver while -P lookups are
 * in flight ({"name":N,"freed":true}). -t is the resolver's timeout per try
 * (default 1000 ms). Exit status 0 when every lookup ended exactly once and
 * never inside the call that started it, 2 on usage errors, 1 otherwise.
 * Test tool; not installed.
 */
#include "dns/dns.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

struct lookup {
	const char *name;
	int calls;
	struct timespec t0;
	char *json;
};

static struct event_base *loop;
static size_t pending;
static int starting; /* inside dns_mx_route(): a callback now is a bug */
static int bad;

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* json_str - s as a JSON string; bytes outside printable ASCII as \u00XX. */
static void json_str(struct strbuf *sb, const char *s)
{
	strbuf_puts(sb, "\"");
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			strbuf_printf(sb, "\\u%04x", c);
		else
			strbuf_append(sb, s, 1);
	}
	strbuf_puts(sb, "\"");
}

static void json_host(struct strbuf *sb, const struct dns_route_host *h)
{
	strbuf_puts(sb, "{\"name\":");
	json_str(sb, h->name);
	strbuf_printf(sb, ",\"pref\":%u,\"temp_failed\":%s,\"addrs\":[", h->pref,
		      h->temp_failed ? "true" : "false");
	for (size_t j = 0; j < h->n_addrs; j++) {
		char ip[64];
		ip_format(&h->addrs[j], ip, sizeof(ip));
		strbuf_printf(sb, "%s\"%s\"", j ? "," : "", ip);
	}
	strbuf_puts(sb, "]}");
}

static void on_route(void *arg, const struct dns_route *r)
{
	struct lookup *l = arg;
	struct strbuf sb;
	if (starting) {
		fprintf(stderr, "%s: callback inside the call that started it\n", l->name);
		bad = 1;
	}
	if (l->calls++ > 0) {
		fprintf(stderr, "%s: callback ran twice\n", l->name);
		bad = 1;
		return;
	}
	strbuf_init(&sb);
	strbuf_puts(&sb, "{\"name\":");
	json_str(&sb, l->name);
	strbuf_printf(&sb, ",\"status\":\"%s\",\"error\":", dns_route_status_name(r->status));
	json_str(&sb, r->error);
	strbuf_printf(&sb, ",\"implicit_mx\":%s,\"ms\":%.1f,\"hosts\":[",
		      r->implicit_mx ? "true" : "false", ms_since(&l->t0));
	for (size_t i = 0; i < r->n_hosts; i++) {
		strbuf_puts(&sb, i ? "," : "");
		json_host(&sb, &r->hosts[i]);
	}
	strbuf_puts(&sb, "]}");
	l->json = strbuf_steal(&sb);
	if (--pending == 0)
		event_base_loopbreak(loop);
}

static struct {
	int family, prefer, host, cancel;
} opt = {AF_UNSPEC, AF_UNSPEC, 0, 0};

static struct dns_query *start(struct dns *d, struct lookup *l)
{
	clock_gettime(CLOCK_MONOTONIC, &l->t0);
	starting = 1;
	struct dns_query *q = opt.host ? dns_host_route(d, l->name, opt.family, opt.prefer,
							 on_route, l)
				       : dns_mx_route(d, l->name, opt.family, opt.prefer, on_route, l);
	starting = 0;
	if (q == NULL) {
		fprintf(stderr, "%s: NULL handle\n", l->name);
		bad = 1;
	}
	return q;
}

/* run_one - start, wait for the answer (or, with -c, for the resolver to settle). */
static void run_one(struct dns *d, struct lookup *l, unsigned timeout_ms)
{
	struct dns_query *q = start(d, l);
	if (q != NULL && opt.cancel) {
		dns_cancel(q);
		struct timeval tv = {0, 0};
		tv.tv_sec = (time_t)(timeout_ms * 4 / 1000 + 1); /* c-ares gives up by then */
		event_base_loopexit(loop, &tv);
		event_base_dispatch(loop);
		l->json = xasprintf("{\"name\":\"%s\",\"cancelled\":true}", l->name);
		l->calls = l->calls == 0 ? 1 : 2; /* a callback after cancel is a second end */
		return;
	}
	pending = 1;
	if (q != NULL)
		event_base_dispatch(loop);
}

static int finish(struct lookup *l)
{
	if (l->calls != 1) {
		fprintf(stderr, "%s: ended %d times\n", l->name, l->calls);
		bad = 1;
	}
	printf("%s\n", l->json != NULL ? l->json : "{\"status\":\"not-completed\"}");
	fflush(stdout);
	free(l->json);
	l->json = NULL;
	return 0;
}

static int interactive(struct dns *d, unsigned timeout_ms)
{
	char buf[1024];
	while (fgets(buf, sizeof(buf), stdin) != NULL) {
		buf[strcspn(buf, "\r\n")] = '\0';
		struct lookup l = {.name = buf};
		run_one(d, &l, timeout_ms);
		finish(&l);
	}
	return 0;
}

/* parallel - every lookup at once; with free_early the resolver goes mid-way. */
static void parallel(struct dns *d, struct lookup *ls, size_t n, int free_early)
{
	pending = n;
	for (size_t i = 0; i < n; i++)
		start(d, &ls[i]);
	if (free_early) {
		event_base_loop(loop, EVLOOP_NONBLOCK);
		dns_free(d);
		event_base_loop(loop, EVLOOP_NONBLOCK); /* nothing may fire now */
		for (size_t i = 0; i < n; i++) {
			if (ls[i].calls == 0) {
				ls[i].json = xasprintf("{\"name\":\"%s\",\"freed\":true}", ls[i].name);
				ls[i].calls = 1;
			}
		}
		return;
	}
	event_base_dispatch(loop);
}

static int family_arg(const char *s, int *out)
{
	if (strcmp(s, "all") == 0 || strcmp(s, "any") == 0)
		*out = AF_UNSPEC;
	else if (strcmp(s, "ipv4") == 0)
		*out = AF_INET;
	else if (strcmp(s, "ipv6") == 0)
		*out = AF_INET6;
	else
		return 0;
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: dns_route_check [-t MS] [-f all|ipv4|ipv6] [-p any|ipv4|ipv6]"
			" [-H] [-n REPEAT] [-P] [-c] [-F] [-i] SERVERS NAME...\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned timeout = 1000;
	int repeat = 1, par = 0, free_early = 0, inter = 0, o;
	while ((o = getopt(argc, argv, "t:f:p:Hn:PcFi")) != -1) {
		switch (o) {
		case 't': timeout = (unsigned)atoi(optarg); break;
		case 'f': if (!family_arg(optarg, &opt.family)) return usage(); break;
		case 'p': if (!family_arg(optarg, &opt.prefer)) return usage(); break;
		case 'H': opt.host = 1; break;
		case 'n': repeat = atoi(optarg); break;
		case 'P': par = 1; break;
		case 'c': opt.cancel = 1; break;
		case 'F': free_early = par = 1; break;
		case 'i': inter = 1; break;
		default: return usage();
		}
	}
	int names = argc - optind - 1;
	if (argc - optind < 1 || repeat < 1 || (!inter && names < 1) || (par && opt.cancel))
		return usage();
	loop = event_base_new();
	char err[256];
	struct dns *d = dns_new(loop, argv[optind], timeout, err, sizeof(err));
	if (d == NULL) {
		fprintf(stderr, "%s\n", err);
		event_base_free(loop);
		return 2;
	}
	size_t total = inter ? 0 : (size_t)names * (size_t)repeat;
	struct lookup *ls = xcalloc(total ? total : 1, sizeof(*ls));
	for (size_t i = 0; i < total; i++)
		ls[i].name = argv[optind + 1 + i / (size_t)repeat];
	if (inter)
		interactive(d, timeout);
	else if (par)
		parallel(d, ls, total, free_early);
	else
		for (size_t i = 0; i < total; i++)
			run_one(d, &ls[i], timeout);
	for (size_t i = 0; i < total; i++)
		finish(&ls[i]);
	if (!free_early)
		dns_free(d);
	event_base_free(loop);
	free(ls);
	return bad;
}
