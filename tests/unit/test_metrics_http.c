/*
 * test_metrics_http - the metrics endpoint's connection cap when libevent's
 * evhttp fails to make a connection it accepted.
 *
 * evhttp calls our bufferevent callback (new_bev), then may give up in the
 * same accept: when the connection cannot be allocated it never takes our
 * bufferevent (it was leaked: ours to free); when the connection's first
 * request cannot, it frees connection and bufferevent before on_admit looks
 * at it. libevent's allocator is ours (event_set_mem_functions): each row
 * fails one allocation of an accept, every allocation must be given back at
 * the end, and freed memory is poisoned and kept until then, so a read of a
 * freed bufferevent finds garbage in the normal build as under ASan.
 */
#include "check.h"
#include "loopback.h"
#include "metrics/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

/* ---- libevent's allocator: counted, traced, one failure on demand ---- */

struct block {
	size_t size;
	struct block *next_freed;
	max_align_t align[]; /* the caller's bytes */
};

#define TRACE_MAX 64
static long live;              /* blocks handed out and not freed */
static long counted, fail_at;  /* allocations since armed; the one to fail (1-based) */
static bool tracing;
static size_t trace[TRACE_MAX], n_trace; /* sizes, in order, while tracing */
static struct block *freed;    /* poisoned, given back to libc at the end */

static struct block *block_of(void *p)
{
	return (struct block *)((char *)p - offsetof(struct block, align));
}

/* fail_now - count an allocation of N bytes; true when it is the one to fail. */
static bool fail_now(size_t n)
{
	if (tracing && n_trace < TRACE_MAX)
		trace[n_trace++] = n;
	return ++counted == fail_at;
}

static void *t_malloc(size_t n)
{
	if (fail_now(n))
		return NULL;
	struct block *b = malloc(sizeof(*b) + n);
	if (b == NULL)
		return NULL;
	b->size = n;
	live++;
	return b->align;
}

static void t_free(void *p)
{
	if (p == NULL)
		return;
	struct block *b = block_of(p);
	memset(b->align, 0xA5, b->size); /* a pointer read from here is garbage */
	b->next_freed = freed;
	freed = b;
	live--;
}

static void *t_realloc(void *p, size_t n)
{
	if (p == NULL)
		return t_malloc(n);
	if (fail_now(n))
		return NULL;
	void *q = t_malloc(n);
	counted--; /* one allocation, not two */
	if (q == NULL)
		return NULL;
	size_t old = block_of(p)->size;
	memcpy(q, p, old < n ? old : n);
	t_free(p);
	return q;
}

static void release_freed(void)
{
	while (freed != NULL) {
		struct block *b = freed;
		freed = b->next_freed;
		free(b);
	}
}

/* ---- the endpoint on loopback ---- */

static int connect_to(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* spin - a few loop iterations: the accept, on_admit, what follows. */
static void spin(struct event_base *base)
{
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

/* accept_failing - a client connects while libevent's Nth allocation from
 * then on fails (0: none). */
static void accept_failing(struct event_base *base, unsigned port, long n)
{
	int fd = connect_to(port);
	CHECK(fd >= 0, "connect to the endpoint (allocation %ld)", n);
	counted = 0;
	fail_at = n;
	event_base_loop(base, EVLOOP_ONCE); /* the accept, and on_admit after it */
	fail_at = 0;
	spin(base);
	if (fd >= 0)
		close(fd);
	spin(base);
}

/* nth_of_size - the (1-based) index of the Kth traced allocation of N bytes, 0 if none. */
static long nth_of_size(size_t n, int k)
{
	for (size_t i = 0; i < n_trace; i++)
		if (trace[i] == n && --k == 0)
			return (long)i + 1;
	return 0;
}

/* first_after - the first traced allocation after index I of at least N bytes. */
static long first_after(long i, size_t n)
{
	for (size_t j = (size_t)i; i > 0 && j < n_trace; j++)
		if (trace[j] >= n)
			return (long)j + 1;
	return 0;
}

/* scrape - a GET on a new connection; true when it is answered 200. */
static bool scrape(struct event_base *base, unsigned port)
{
	int fd = connect_to(port);
	const char get[] = "GET /metrics HTTP/1.0\r\n\r\n";
	char reply[16] = "";
	if (fd < 0 || write(fd, get, sizeof(get) - 1) != (ssize_t)(sizeof(get) - 1))
		return false;
	for (int i = 0; i < 100; i++) {
		spin(base);
		if (recv(fd, reply, sizeof(reply) - 1, MSG_DONTWAIT) > 0)
			break;
		usleep(10000);
	}
	close(fd);
	spin(base);
	return strstr(reply, " 200") != NULL;
}

/* cap_holds - 32 connections are kept and a 33rd is closed at once: the
 * failed accepts were not counted (nor uncounted twice). */
static void cap_holds(struct event_base *base, unsigned port)
{
	int fds[33];
	for (int i = 0; i < 33; i++) {
		fds[i] = connect_to(port);
		spin(base);
	}
	char c;
	int closed = 0;
	for (int i = 0; i < 33; i++)
		if (fds[i] >= 0 && recv(fds[i], &c, 1, MSG_DONTWAIT) == 0)
			closed += i == 32 ? 1 : 100;
	CHECK(closed == 1, "the 33rd connection alone is closed (%d)", closed);
	for (int i = 0; i < 33; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	spin(base);
}

/* The allocations of libevent 2.1's accept (evhttp_get_request) to fail,
 * found in a traced accept by the copies of "127.0.0.1" it makes: the peer's
 * name, the connection's address, its first request's remote_host. (Failing
 * others, such as the connection's copy of the address or the request's
 * header lists, crashes in libevent's own clean-up, with or without us.) */
static void failed_accepts(void)
{
	struct event_base *base = event_base_new();
	unsigned port = 0;
	char err[256] = "";
	struct metrics_http *h = NULL;
	for (int i = 0; i < 5 && h == NULL; i++) /* a free port may be taken meanwhile */
		h = metrics_http_new(base, "127.0.0.1", port = free_port(), err, sizeof(err));
	CHECK(h != NULL, "metrics_http_new: %s", err);
	if (h == NULL)
		return;
	accept_failing(base, port, 0); /* the first makes what later ones reuse */
	tracing = true;
	accept_failing(base, port, 0);
	tracing = false;
	size_t addr = sizeof("127.0.0.1");
	long conn_addr = nth_of_size(addr, 2);
	const struct {
		int line;
		const char *what;
		long n;
	} rows[] = {
		{__LINE__, "our bufferevent (evhttp makes its own)", nth_of_size(addr, 1) + 2},
		{__LINE__, "the connection (evhttp never takes our bufferevent)", conn_addr - 1},
		{__LINE__, "its first request (evhttp frees the connection)", first_after(conn_addr, 128)},
		{__LINE__, "the request's remote_host (the same)", nth_of_size(addr, 3)},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		CHECK_AT(rows[i].line, rows[i].n > 2 && conn_addr > 0,
			 "%s: not found in libevent's accept (%zu allocations)", rows[i].what, n_trace);
		if (rows[i].n > 2 && conn_addr > 0)
			accept_failing(base, port, rows[i].n);
		CHECK_AT(rows[i].line, scrape(base, port), "%s fails: a scrape after it", rows[i].what);
	}
	cap_holds(base, port);
	metrics_http_free(h);
	event_base_free(base);
	CHECK(live == 0, "libevent allocations not given back: %ld", live);
}

int main(void)
{
	event_set_mem_functions(t_malloc, t_realloc, t_free);
	failed_accepts();
	release_freed();
	return check_summary("metrics_http");
}
