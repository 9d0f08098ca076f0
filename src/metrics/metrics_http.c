/*
 * metrics_http.c - GET /metrics (see metrics_http.h).
 *
 * CONNECTION CAP
 *	libevent 2.1's evhttp has no connection limit (evhttp_set_max_connections
 *	is 2.2), so a local client could hold thousands of connections and take
 *	the descriptors the SMTP listeners need. Its one per-connection hook is
 *	the bufferevent callback (evhttp_set_bevcb), called on accept before the
 *	connection exists. We make the bufferevent there and activate on_admit,
 *	which runs in the same loop iteration, after evhttp has built the
 *	connection and before any of its input is read: the bufferevent's
 *	callback argument is then that connection. Up to CONNECTIONS_MAX are
 *	counted (their close callback uncounts them); beyond, one is freed at once.
 *	evhttp may fail to make the connection after taking our bufferevent (it
 *	frees it) or before (it leaves it to us): we hold a reference until
 *	on_admit, and the argument stays ours (h) until evhttp takes it.
 */
#include "metrics/metrics_http.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#define HEADERS_MAX 8192
#define TIMEOUT_SECONDS 10
#define CONNECTIONS_MAX 32   /* a scraper or two needs a few; the rest is a flood */
#define REFUSED_LOG_INTERVAL 10

struct metrics_http {
	struct evhttp *http;
	struct event *admit_ev;       /* on_admit: judge the connections just accepted */
	struct bufferevent **fresh;   /* their bufferevents (new_bev), judged once */
	size_t n_fresh, cap_fresh;
	unsigned open;                /* admitted, not closed yet */
	unsigned long refused;        /* since the last log line */
	time_t refused_logged;
};

/* new_bev - evhttp's bufferevent for an accepted connection; on_admit judges it. */
static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	struct metrics_http *h = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL; /* evhttp makes its own: that one is not counted */
	/* h stays the callback argument if evhttp never takes the bufferevent
	 * (it cannot make the connection); our reference keeps it readable for
	 * on_admit if evhttp frees it at once (it cannot make the first request) */
	bufferevent_setcb(bev, NULL, NULL, NULL, h);
	bufferevent_incref(bev);
	if (h->n_fresh == h->cap_fresh) {
		h->cap_fresh = h->cap_fresh ? 2 * h->cap_fresh : 8;
		h->fresh = xrealloc(h->fresh, h->cap_fresh * sizeof(*h->fresh));
	}
	h->fresh[h->n_fresh++] = bev;
	event_active(h->admit_ev, EV_TIMEOUT, 0); /* this iteration, not the next */
	return bev;
}

/* on_closed - an admitted connection is gone (evhttp frees it). */
static void on_closed(struct evhttp_connection *evcon, void *arg)
{
	struct metrics_http *h = arg;
	(void)evcon;
	h->open--;
}

/* log_refused - at most one line per interval, with a count. */
static void log_refused(struct metrics_http *h)
{
	h->refused++;
	time_t now = time(NULL);
	if (now - h->refused_logged < REFUSED_LOG_INTERVAL)
		return;
	char count[24], limit[24];
	snprintf(count, sizeof(count), "%lu", h->refused);
	snprintf(limit, sizeof(limit), "%d", CONNECTIONS_MAX);
	log_ev(LOG_WARNING, "metrics-connection-limit", {"limit", limit}, {"refused", count});
	h->refused = 0;
	h->refused_logged = now;
}

/* admit - count BEV's connection, or close it when CONNECTIONS_MAX are open. */
static void admit(struct metrics_http *h, struct bufferevent *bev)
{
	void *cbarg = NULL;
	bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
	if (cbarg == h) { /* evhttp could not make the connection: ours to free */
		bufferevent_free(bev);
	} else if (cbarg != NULL) { /* NULL: evhttp made it and freed it again */
		struct evhttp_connection *evcon = cbarg; /* evhttp's callback argument */
		if (h->open >= CONNECTIONS_MAX) {
			log_refused(h);
			evhttp_connection_free(evcon);
		} else {
			h->open++;
			evhttp_connection_set_closecb(evcon, on_closed, h);
		}
	}
	bufferevent_decref(bev); /* new_bev's reference */
}

/* on_admit - judge the connections accepted since the last call. */
static void on_admit(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *h = arg;
	(void)fd, (void)what;
	for (size_t k = 0; k < h->n_fresh; k++)
		admit(h, h->fresh[k]);
	h->n_fresh = 0;
}

static void reply_plain(struct evhttp_request *req, int code, const char *reason,
			const char *text)
{
	struct evbuffer *body = evbuffer_new();
	evbuffer_add(body, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	evhttp_send_reply(req, code, reason, body);
	evbuffer_free(body);
}

/* on_request - /metrics (a query string is ignored, as Prometheus may add one). */
static void on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	size_t path_len = strcspn(uri ? uri : "", "?");
	if (uri == NULL || path_len != 8 || strncmp(uri, "/metrics", 8) != 0) {
		reply_plain(req, HTTP_NOTFOUND, "Not Found", "only /metrics is served here\n");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_plain(req, 405, "Method Not Allowed", "GET or HEAD\n");
		return;
	}
	struct strbuf text;
	strbuf_init(&text);
	metrics_render(&text);
	struct evbuffer *body = evbuffer_new();
	evbuffer_add(body, text.data ? text.data : "", text.len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
	strbuf_free(&text);
}

struct metrics_http *metrics_http_new(struct event_base *base, const char *host, unsigned port,
				      char *err, size_t errlen)
{
	struct metrics_http *h = xcalloc(1, sizeof(*h));
	h->http = evhttp_new(base);
	const char *bind_host = strcmp(host, "*") == 0 ? "::" : host;
	if (h->http == NULL || evhttp_bind_socket(h->http, bind_host, (unsigned short)port) != 0) {
		snprintf(err, errlen, "metrics_listen: cannot listen on %s:%u: %s", host, port,
			 strerror(errno));
		metrics_http_free(h);
		return NULL;
	}
	evhttp_set_max_headers_size(h->http, HEADERS_MAX);
	evhttp_set_max_body_size(h->http, 0);
	evhttp_set_timeout(h->http, TIMEOUT_SECONDS);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(h->http, on_request, NULL);
	h->admit_ev = event_new(base, -1, 0, on_admit, h);
	evhttp_set_bevcb(h->http, new_bev, h);
	return h;
}

void metrics_http_free(struct metrics_http *h)
{
	if (h == NULL)
		return;
	if (h->http)
		evhttp_free(h->http); /* its connections' close callbacks still see h */
	on_admit(-1, 0, h); /* not judged yet: evhttp freed or never took them */
	if (h->admit_ev)
		event_free(h->admit_ev);
	free(h->fresh);
	free(h);
}
