/*
 * metrics_http.c - GET /metrics (see metrics_http.h).
 */
#include "metrics/metrics_http.h"
#include "metrics/metrics.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#define HEADERS_MAX 8192
#define TIMEOUT_SECONDS 10

struct metrics_http {
	struct evhttp *http;
};

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
	return h;
}

void metrics_http_free(struct metrics_http *h)
{
	if (h == NULL)
		return;
	if (h->http)
		evhttp_free(h->http);
	free(h);
}
