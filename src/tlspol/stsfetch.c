/*
 * stsfetch.c - libcurl multi on libevent (see stsfetch.h).
 *
 * curl says which sockets to watch (socket_cb) and when to call it back
 * (timer_cb); libevent events call curl_multi_socket_action; finished
 * transfers are collected after each action and reported from a zero-delay
 * event, so a callback never runs inside curl.
 */
#include "tlspol/stsfetch.h"
#include "tlspol/mtasts.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

struct sts_fetcher {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	char *cafile;
	unsigned port, timeout_s;
	struct sts_fetch *all;
};

struct sts_fetch {
	struct sts_fetcher *f;
	CURL *easy;
	struct curl_slist *resolve;
	struct strbuf body;
	bool too_big, cancelled, done;
	char error[CURL_ERROR_SIZE];
	struct event *report;
	sts_fetch_fn fn;
	void *arg;
	struct sts_fetch *prev, *next;
};

struct sock_ctx {
	struct event *ev;
};

static void check_done(struct sts_fetcher *f);

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct sts_fetcher *f = arg;
	int running, flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
			     ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(f->multi, fd, flags, &running);
	check_done(f);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sts_fetcher *f = arg;
	int running;
	(void)fd;
	(void)what;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(f);
}

/* socket_cb - curl wants fd watched for what (or no longer: CURL_POLL_REMOVE). */
static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct sts_fetcher *f = userp;
	struct sock_ctx *sc = sockp;
	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (sc != NULL) {
			event_free(sc->ev);
			free(sc);
		}
		curl_multi_assign(f->multi, fd, NULL);
		return 0;
	}
	short kind = (short)(EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
			     ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
	if (sc == NULL) {
		sc = xcalloc(1, sizeof(*sc));
		curl_multi_assign(f->multi, fd, sc);
	} else {
		event_free(sc->ev);
	}
	sc->ev = event_new(f->base, fd, kind, on_socket, f);
	event_add(sc->ev, NULL);
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct sts_fetcher *f = userp;
	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(f->timer);
		return 0;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	evtimer_add(f->timer, &tv);
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
	struct sts_fetch *q = userp;
	size_t len = size * n;
	if (q->body.len + len > STS_POLICY_MAX) {
		q->too_big = true;
		return 0; /* aborts the transfer */
	}
	strbuf_append(&q->body, data, len);
	return len;
}

static void fetch_free(struct sts_fetch *q)
{
	struct sts_fetcher *f = q->f;
	if (q->prev)
		q->prev->next = q->next;
	else
		f->all = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (q->easy != NULL) {
		curl_multi_remove_handle(f->multi, q->easy);
		curl_easy_cleanup(q->easy);
	}
	curl_slist_free_all(q->resolve);
	event_free(q->report);
	strbuf_free(&q->body);
	free(q);
}

/* verdict - what the finished transfer means; false with q->error. */
static bool verdict(struct sts_fetch *q, CURLcode rc)
{
	long status = 0;
	char *type = NULL;
	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(q->easy, CURLINFO_CONTENT_TYPE, &type);
	if (q->too_big)
		snprintf(q->error, sizeof(q->error), "policy larger than %u bytes", STS_POLICY_MAX);
	else if (rc != CURLE_OK && q->error[0] == '\0')
		snprintf(q->error, sizeof(q->error), "%s", curl_easy_strerror(rc));
	else if (rc == CURLE_OK && status != 200)
		snprintf(q->error, sizeof(q->error), "HTTP status %ld", status);
	else if (rc == CURLE_OK && (type == NULL || strncasecmp(type, "text/plain", 10) != 0))
		snprintf(q->error, sizeof(q->error), "content type %s, not text/plain",
			 type ? type : "(none)");
	else
		return rc == CURLE_OK;
	return false;
}

static void on_report(evutil_socket_t fd, short what, void *arg)
{
	struct sts_fetch *q = arg;
	(void)fd;
	(void)what;
	if (!q->cancelled) {
		bool ok = q->error[0] == '\0';
		q->fn(q->arg, ok, ok ? (q->body.data ? q->body.data : "") : NULL,
		      ok ? q->body.len : 0, ok ? NULL : q->error);
	}
	fetch_free(q);
}

static void check_done(struct sts_fetcher *f)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		struct sts_fetch *q = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
		if (q == NULL || q->done)
			continue;
		q->done = true;
		if (verdict(q, m->data.result))
			q->error[0] = '\0';
		event_active(q->report, 0, 0);
	}
}

struct sts_fetcher *sts_fetcher_new(struct event_base *base, const char *cafile, unsigned port,
				    unsigned timeout_s, char *err, size_t errlen)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "cannot start libcurl");
		return NULL;
	}
	struct sts_fetcher *f = xcalloc(1, sizeof(*f));
	f->base = base;
	f->multi = curl_multi_init();
	f->timer = evtimer_new(base, on_timer, f);
	f->cafile = xstrdup(cafile ? cafile : "");
	f->port = port;
	f->timeout_s = timeout_s;
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
}

/* easy_setup - one GET as RFC 8461 3.3 wants it. */
static void easy_setup(struct sts_fetch *q, const char *url)
{
	CURL *e = q->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (q->f->cafile[0] != '\0')
		curl_easy_setopt(e, CURLOPT_CAINFO, q->f->cafile);
	curl_easy_setopt(e, CURLOPT_RESOLVE, q->resolve);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)q->f->timeout_s);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "relayguard");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->error);
	curl_easy_setopt(e, CURLOPT_PRIVATE, q);
}

struct sts_fetch *sts_fetch_start(struct sts_fetcher *f, const char *host,
				  const struct rg_ip *addr, sts_fetch_fn fn, void *arg)
{
	struct sts_fetch *q = xcalloc(1, sizeof(*q));
	char ip[RG_IP_STRLEN], url[400], pin[400];
	q->f = f;
	q->fn = fn;
	q->arg = arg;
	strbuf_init(&q->body);
	q->report = event_new(f->base, -1, 0, on_report, q);
	q->next = f->all;
	if (f->all)
		f->all->prev = q;
	f->all = q;
	ip_format(addr, ip, sizeof(ip));
	snprintf(url, sizeof(url), "https://%s:%u/.well-known/mta-sts.txt", host, f->port);
	snprintf(pin, sizeof(pin), addr->family == AF_INET6 ? "%s:%u:[%s]" : "%s:%u:%s", host,
		 f->port, ip);
	q->resolve = curl_slist_append(NULL, pin);
	q->easy = curl_easy_init();
	if (q->easy == NULL || q->resolve == NULL) {
		snprintf(q->error, sizeof(q->error), "cannot start an HTTPS transfer");
		q->done = true;
		event_active(q->report, 0, 0);
		return q;
	}
	easy_setup(q, url);
	curl_multi_add_handle(f->multi, q->easy); /* curl's timer callback starts it */
	return q;
}

void sts_fetch_cancel(struct sts_fetch *q)
{
	q->cancelled = true;
	if (!q->done) { /* no report pending: free now */
		fetch_free(q);
	}
}

void sts_fetcher_free(struct sts_fetcher *f)
{
	if (f == NULL)
		return;
	while (f->all != NULL)
		fetch_free(f->all);
	curl_multi_cleanup(f->multi); /* its sockets go through socket_cb: events freed */
	event_free(f->timer);
	free(f->cafile);
	free(f);
	curl_global_cleanup();
}
