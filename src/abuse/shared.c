/*
 * shared.c - Redis through hiredis on the event loop (see shared.h).
 *
 * DESCRIPTION
 *	Two connections: one for commands, one subscribed to the lock-out
 *	channel (a subscribed connection takes no other commands). Each is
 *	re-opened a second after it is lost. A request has a deadline timer;
 *	when it fires, the request is answered -1 at once and the connection is
 *	dropped (a Redis that stopped answering gets no more requests queued
 *	behind the late one); hiredis then hands the request back with no
 *	reply, and only then is it freed.
 */
#include "abuse/shared.h"
#include "metrics/events.h"
#include "net/net.h"
#include "util/log.h"
#include "util/util.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#define RECONNECT_SECONDS 1
#define WARN_INTERVAL 10 /* seconds between two shared-state-failed lines */
#define CHANNEL "rg:lockout:" /* + the database number: pub/sub ignores SELECT */

static const char incr_script[] =
	"local n = redis.call('INCR', KEYS[1]) "
	"if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n";

/* One message of a login to domains new to it on the asking host.
 * KEYS: known set, new-domain zset, message zset. ARGV: now, window, message
 * id, learn-below (domains), learn-below (messages), known max, known ttl,
 * domains... Domains in the known set (learnt on any host) do not count. The
 * domains are learnt only while both counts stay below their thresholds: a
 * spam run never teaches its targets. Returns {new domains, messages}. */
static const char hijack_script[] =
	"local now, win = tonumber(ARGV[1]), tonumber(ARGV[2]) "
	"local fresh = {} "
	"for i = 8, #ARGV do "
	"  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then "
	"    redis.call('ZADD', KEYS[2], now, ARGV[i]) fresh[#fresh + 1] = ARGV[i] end end "
	"if #fresh > 0 then redis.call('ZADD', KEYS[3], now, ARGV[3]) end "
	"redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - win) "
	"redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - win) "
	"redis.call('EXPIRE', KEYS[2], win) redis.call('EXPIRE', KEYS[3], win) "
	"local d, m = redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]) "
	"local dl, ml = tonumber(ARGV[4]), tonumber(ARGV[5]) "
	"if #fresh > 0 and (dl == 0 or d < dl) and (ml == 0 or m < ml) then "
	"  redis.call('SADD', KEYS[1], unpack(fresh)) "
	"  local over = redis.call('SCARD', KEYS[1]) - tonumber(ARGV[6]) "
	"  if over > 0 then redis.call('SPOP', KEYS[1], over) end "
	"  redis.call('EXPIRE', KEYS[1], ARGV[7]) end "
	"return {d, m}";

/* What every host should know at start and after an outage: the keys
 * under each ARGV prefix (ARGV[2] on) still alive. One call runs one SCAN
 * step from cursor ARGV[1] and returns {next cursor, key, value, ttl, ...};
 * the next call goes out once this one is answered. A whole-keyspace walk in
 * one script would block Redis for seconds with a large keyspace and outlast
 * SHARED_DEADLINE_MS, dropping the connection and starting over for ever.
 * At most CATCH_UP_MAX keys, in at most CATCH_UP_STEPS calls. */
#define CATCH_UP_MAX 10000
#define CATCH_UP_STEPS 20000
#define CATCH_UP_COUNT "250" /* SCAN COUNT: keys looked at per call */
static const char catch_up_script[] =
	"local out = {} "
	"local r = redis.call('SCAN', ARGV[1], 'MATCH', 'rg:*', 'COUNT', " CATCH_UP_COUNT ") "
	"out[1] = r[1] "
	"for _, k in ipairs(r[2]) do "
	"  for i = 2, #ARGV do "
	"    if string.sub(k, 1, #ARGV[i]) == ARGV[i] then "
	"      local ttl, v = redis.call('TTL', k), redis.pcall('GET', k) "
	"      if ttl > 0 and type(v) == 'string' then "
	"        out[#out + 1] = k out[#out + 1] = v out[#out + 1] = ttl end "
	"      break end end end "
	"return out";

struct shared {
	struct event_base *base;
	char host[64], path[108];
	char user[64], pass[256]; /* AUTH [user] pass before SELECT/SUBSCRIBE; "" : none */
	int port, db;
	redisAsyncContext *cmd, *sub;
	char channel[32];
	bool ready;               /* cmd answered SELECT: requests go to our database */
	struct event *reconnect;
	shared_lock_fn *on_lock;
	shared_suspend_fn *on_suspend;
	void *arg;
	shared_tls_fn *on_tls;    /* NULL: "tls" messages are ignored */
	void *tls_arg;
	unsigned long failures;
	size_t pending;           /* requests not answered yet */
	unsigned caught[3];       /* catch-up so far: lock-outs, suspensions, TLS raises */
	unsigned catch_steps;     /* catch-up calls so far */
	time_t warned;
	bool was_down, freeing;
};

struct request {
	struct shared *s;
	shared_count_fn *done;          /* an integer reply; or */
	shared_pair_fn *pair_done;      /* two integers; or */
	shared_members_fn *members_done; /* an array of strings; or */
	void (*catch_up)(struct shared *s, const redisReply *r); /* the catch-up list */
	void *arg;
	struct event *deadline;
	bool answered;
};

/* warn - a Redis failure: counted always, logged at most every WARN_INTERVAL. */
static void warn(struct shared *s, const char *what, const char *reason)
{
	s->failures++;
	mev_shared_state_failure();
	s->was_down = true;
	time_t now = time(NULL);
	if (now - s->warned < WARN_INTERVAL)
		return;
	s->warned = now;
	char n[24];
	snprintf(n, sizeof(n), "%lu", s->failures);
	log_ev(LOG_WARNING, "shared-state-failed", {"what", what}, {"reason", reason},
	       {"failures", n}, {"action", "local state only until Redis is back"});
}

/* parse_auth - "[USER]:PASSWORD@" at *P (none: nothing); *P moves past it. */
static bool parse_auth(struct shared *s, const char **p)
{
	const char *at = strrchr(*p, '@');
	if (at == NULL)
		return true;
	const char *colon = memchr(*p, ':', (size_t)(at - *p));
	size_t ulen = colon ? (size_t)(colon - *p) : 0, plen = colon ? (size_t)(at - colon - 1) : 0;
	if (colon == NULL || plen == 0 || ulen >= sizeof(s->user) || plen >= sizeof(s->pass))
		return false;
	memcpy(s->user, *p, ulen);
	memcpy(s->pass, colon + 1, plen);
	*p = at + 1;
	return true;
}

/* parse_url - redis://[[USER]:PASSWORD@]IP:PORT/DB (IPv6 in []) or unix:/PATH. */
static bool parse_url(struct shared *s, const char *url)
{
	s->port = 6379;
	if (strncmp(url, "unix:", 5) == 0)
		return url[5] == '/' && rg_strlcpy(s->path, url + 5, sizeof(s->path)) <
						sizeof(s->path);
	const char *h = url + 8, *end;
	if (strncmp(url, "redis://", 8) != 0 || !parse_auth(s, &h))
		return false;
	if (*h == '[') {
		end = strchr(h, ']');
		if (end == NULL)
			return false;
		h++;
	} else {
		end = h + strcspn(h, ":/");
	}
	if (end == h || (size_t)(end - h) >= sizeof(s->host))
		return false;
	memcpy(s->host, h, (size_t)(end - h));
	const char *p = *end == ']' ? end + 1 : end;
	char *stop;
	if (*p == ':') {
		s->port = (int)strtol(p + 1, &stop, 10);
		p = stop;
	}
	if (*p == '/') {
		s->db = (int)strtol(p + 1, &stop, 10);
		p = stop;
	}
	struct rg_ip ip;
	return *p == '\0' && s->port > 0 && s->port < 65536 && s->db >= 0 && ip_parse(s->host, &ip);
}

bool shared_url_valid(const char *url)
{
	struct shared *s = xcalloc(1, sizeof(*s));
	bool ok = parse_url(s, url);
	explicit_bzero(s, sizeof(*s)); /* it held the password */
	free(s);
	return ok;
}

/* The whole offline lift, connection included, is over by then: hiredis's
 * own timeout is per read, and a Redis answering a byte every second kept
 * the CLI, and the queue lock it holds, for ever. */
#define SYNC_SECONDS 2

/* sync_command - FMT sent and its reply read before DEADLINE (CLOCK_MONOTONIC
 * seconds); NULL with c->errstr set when the time is up or the connection fails. */
static redisReply *sync_command(redisContext *c, double deadline, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = redisvAppendCommand(c, fmt, ap);
	va_end(ap);
	void *reply = NULL;
	for (int done = 0; rc == REDIS_OK && !done;)
		rc = redisBufferWrite(c, &done); /* a few bytes: the socket buffer takes them */
	while (rc == REDIS_OK && (rc = redisGetReplyFromReader(c, &reply)) == REDIS_OK &&
	       reply == NULL) {
		double left = deadline - rg_monotonic();
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) {
			snprintf(c->errstr, sizeof(c->errstr), "no answer within %d s", SYNC_SECONDS);
			return NULL;
		}
		rc = redisBufferRead(c);
	}
	return reply;
}

/* sync_ok - a blocking reply R is a status/integer, not an error; ERR otherwise. */
static bool sync_ok(redisContext *c, redisReply *r, const char *what, char *err, size_t errlen)
{
	bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
	if (!ok)
		snprintf(err, errlen, "shared_state: %s: %s", what,
			 r && r->str ? r->str : c->errstr[0] ? c->errstr : "no reply");
	freeReplyObject(r);
	return ok;
}

/* sync_open - a blocking connection to S, authenticated and on S's database. */
static redisContext *sync_open(const struct shared *s, double deadline, char *err,
			       size_t errlen)
{
	struct timeval tv = {2, 0};
	redisContext *c = s->path[0] ? redisConnectUnixWithTimeout(s->path, tv)
				     : redisConnectWithTimeout(s->host, s->port, tv);
	if (c == NULL || c->err) {
		snprintf(err, errlen, "shared_state: connect: %s", c ? c->errstr : "out of memory");
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	bool ok = true;
	if (s->pass[0] && s->user[0])
		ok = sync_ok(c, sync_command(c, deadline, "AUTH %s %s", s->user, s->pass), "auth",
			     err, errlen);
	else if (s->pass[0])
		ok = sync_ok(c, sync_command(c, deadline, "AUTH %s", s->pass), "auth", err, errlen);
	if (ok)
		ok = sync_ok(c, sync_command(c, deadline, "SELECT %d", s->db), "select", err,
			     errlen);
	if (!ok) {
		redisFree(c);
		return NULL;
	}
	return c;
}

bool shared_lift_blocking(const char *url, const char *login, char *err, size_t errlen)
{
	struct shared *s = xcalloc(1, sizeof(*s));
	bool ok = parse_url(s, url);
	if (!ok)
		snprintf(err, errlen, "shared_state: not a redis:// or unix: address");
	snprintf(s->channel, sizeof(s->channel), CHANNEL "%d", s->db);
	double deadline = rg_monotonic() + SYNC_SECONDS;
	redisContext *c = ok ? sync_open(s, deadline, err, errlen) : NULL;
	char *msg = xasprintf("resume %s", login);
	ok = c != NULL &&
	     sync_ok(c, sync_command(c, deadline, "DEL rg:susp:%s", login), "del", err, errlen) &&
	     sync_ok(c, sync_command(c, deadline, "PUBLISH %s %s", s->channel, msg), "publish",
		     err, errlen);
	free(msg);
	redisFree(c);
	explicit_bzero(s, sizeof(*s)); /* it held the password */
	free(s);
	return ok;
}

static void schedule_reconnect(struct shared *s)
{
	if (s->freeing)
		return;
	struct timeval tv = {RECONNECT_SECONDS, 0};
	evtimer_add(s->reconnect, &tv);
}

static void on_cmd_lost(const redisAsyncContext *ac, int status)
{
	struct shared *s = ac->data;
	s->cmd = NULL;
	s->ready = false;
	if (status != REDIS_OK)
		warn(s, "connection", ac->errstr[0] ? ac->errstr : "lost");
	schedule_reconnect(s);
}

static void on_sub_lost(const redisAsyncContext *ac, int status)
{
	struct shared *s = ac->data;
	s->sub = NULL;
	if (status != REDIS_OK)
		warn(s, "subscription", ac->errstr[0] ? ac->errstr : "lost");
	schedule_reconnect(s);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
	struct shared *s = ac->data;
	if (status != REDIS_OK) /* hiredis frees it; the disconnect callback will not run */
		(ac == s->cmd ? on_cmd_lost : on_sub_lost)(ac, status);
	/* recovered only once Redis answers SELECT (a stopped one still accepts connections) */
}

/* on_message - the lock-out channel: "lock IP SECONDS" or "clear IP" (and
 * suspend/resume, and tls raises); the guarded reader let through only a 3-string array. */
static void on_message(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared *s = priv;
	redisReply *reply = r;
	(void)ac;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
		return;
	for (size_t i = 0; i < 2; i++)
		if (reply->element[i] == NULL || reply->element[i]->type != REDIS_REPLY_STRING ||
		    reply->element[i]->str == NULL)
			return;
	const redisReply *body = reply->element[2];
	if (body == NULL || body->type != REDIS_REPLY_STRING || body->str == NULL ||
	    strcmp(reply->element[0]->str, "message") != 0 ||
	    strcmp(reply->element[1]->str, s->channel) != 0)
		return;
	char who[256];
	unsigned seconds = 0;
	int used = 0;
	const char *text = body->str;
	if (sscanf(text, "lock %64s %u", who, &seconds) == 2 && seconds > 0)
		s->on_lock(who, seconds, s->arg);
	else if (sscanf(text, "clear %64s", who) == 1)
		s->on_lock(who, 0, s->arg);
	else if (sscanf(text, "suspend %255s %u %n", who, &seconds, &used) == 2 && used > 0 &&
		 seconds > 0)
		s->on_suspend(who, seconds, text + used, s->arg);
	else if (sscanf(text, "resume %255s", who) == 1)
		s->on_suspend(who, 0, "", s->arg);
	else if (strncmp(text, "tls ", 4) == 0 && s->on_tls != NULL)
		s->on_tls(text + 4, s->tls_arg);
}

/* ---- the guarded reader ----
 * hiredis asserts (aborts the process) on replies it does not expect: a
 * pub/sub array whose first two elements are not strings, an unsubscribe
 * count that is not an integer, a reply no command is waiting for. A
 * spoofed or hostile Redis could send those, so each reply object is
 * checked as it is built; returning NULL makes the reader fail, and the
 * connection is dropped (and re-opened later) instead. */

static redisReplyObjectFunctions base_fns, guard_fns;

/* shape_ok - may an object of TYPE (an array: of ELEMENTS) be built at T on its connection? */
static bool shape_ok(const redisReadTask *t, int type, int elements)
{
	const redisAsyncContext *ac = t->privdata;
	const struct shared *s = ac->data;
	if (t->parent == NULL) {
		if (ac != s->sub) /* a reply nobody asked for: hiredis asserts */
			return ac->replies.head != NULL || type == REDIS_REPLY_ERROR;
		return type != REDIS_REPLY_ARRAY || elements == 3;
	}
	if (ac != s->sub)
		return true;
	if (t->parent->parent != NULL)
		return false;
	if (t->idx < 2)
		return type == REDIS_REPLY_STRING;
	const redisReply *kind = ((const redisReply *)t->parent->obj)->element[0];
	bool message = kind && kind->str && strcasecmp(kind->str, "message") == 0;
	return type == (message ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER);
}

/* kind_ok - the kind of a push on the subscribed connection: we never
 * unsubscribe, and hiredis leaves subscribed mode on "unsubscribe ... 0",
 * then asserts on the next reply no command waits for. */
static bool kind_ok(const redisReadTask *t, const char *str, size_t len)
{
	const redisAsyncContext *ac = t->privdata;
	const struct shared *s = ac->data;
	if (ac != s->sub || t->parent == NULL || t->idx != 0)
		return true;
	return (len == 7 && strncasecmp(str, "message", 7) == 0) ||
	       (len == 9 && strncasecmp(str, "subscribe", 9) == 0);
}

static void *guard_string(const redisReadTask *t, char *str, size_t len)
{
	return shape_ok(t, t->type, 0) && kind_ok(t, str, len) ? base_fns.createString(t, str, len)
							       : NULL;
}

static void *guard_array(const redisReadTask *t, int elements)
{
	return shape_ok(t, REDIS_REPLY_ARRAY, elements) ? base_fns.createArray(t, elements) : NULL;
}

static void *guard_integer(const redisReadTask *t, long long value)
{
	return shape_ok(t, REDIS_REPLY_INTEGER, 0) ? base_fns.createInteger(t, value) : NULL;
}

static void *guard_nil(const redisReadTask *t)
{
	return shape_ok(t, REDIS_REPLY_NIL, 0) ? base_fns.createNil(t) : NULL;
}

/* guard_reader - AC's replies are built by the guarded functions. */
static void guard_reader(redisAsyncContext *ac)
{
	if (guard_fns.createString == NULL) {
		base_fns = *ac->c.reader->fn;
		guard_fns = base_fns;
		guard_fns.createString = guard_string;
		guard_fns.createArray = guard_array;
		guard_fns.createInteger = guard_integer;
		guard_fns.createNil = guard_nil;
	}
	ac->c.reader->fn = &guard_fns;
	ac->c.reader->privdata = ac;
}

/* open_one - a connection attached to the loop (connecting in the background). */
static redisAsyncContext *open_one(struct shared *s, redisDisconnectCallback *lost)
{
	redisAsyncContext *ac = s->path[0] ? redisAsyncConnectUnix(s->path)
					   : redisAsyncConnect(s->host, s->port);
	if (ac == NULL)
		return NULL;
	if (ac->err) {
		warn(s, "connect", ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = s;
	guard_reader(ac);
	redisLibeventAttach(ac, s->base);
	redisAsyncSetConnectCallback(ac, on_connected);
	redisAsyncSetDisconnectCallback(ac, lost);
	return ac;
}

static void catch_up(struct shared *s);

/* on_select - requests go out only once SELECT is answered OK: after a
 * failed one (no such database) they would land in database 0. */
static void on_select(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared *s = priv;
	redisReply *reply = r;
	if (reply == NULL || ac != s->cmd)
		return;
	if (reply->type != REDIS_REPLY_STATUS || reply->str == NULL ||
	    strcmp(reply->str, "OK") != 0) {
		warn(s, "select", reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
										  : "unexpected reply");
		redisAsyncDisconnect(ac); /* on_cmd_lost runs; retried a second later */
		return;
	}
	s->ready = true;
	if (s->was_down) {
		s->was_down = false;
		log_ev(LOG_INFO, "shared-state-recovered", {"action", "counting in Redis again"});
	}
	catch_up(s);
}

/* on_auth - a refused password: say so (SELECT or SUBSCRIBE would only say NOAUTH). */
static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
	struct shared *s = priv;
	redisReply *reply = r;
	if (reply == NULL || reply->type == REDIS_REPLY_STATUS)
		return;
	warn(s, "auth", reply->type == REDIS_REPLY_ERROR && reply->str ? reply->str
									 : "unexpected reply");
	redisAsyncDisconnect(ac); /* retried a second later */
}

/* send_auth - AUTH first when the URL has a password (Redis 6 ACL: with a user). */
static void send_auth(struct shared *s, redisAsyncContext *ac)
{
	if (s->pass[0] == '\0')
		return;
	if (s->user[0])
		redisAsyncCommand(ac, on_auth, s, "AUTH %s %s", s->user, s->pass);
	else
		redisAsyncCommand(ac, on_auth, s, "AUTH %s", s->pass);
}

static void connect_all(struct shared *s)
{
	if (s->cmd == NULL && (s->cmd = open_one(s, on_cmd_lost)) != NULL) {
		s->ready = false;
		send_auth(s, s->cmd);
		redisAsyncCommand(s->cmd, on_select, s, "SELECT %d", s->db);
	}
	if (s->sub == NULL && (s->sub = open_one(s, on_sub_lost)) != NULL) {
		send_auth(s, s->sub);
		redisAsyncCommand(s->sub, on_message, s, "SUBSCRIBE %s", s->channel);
	}
	if (s->cmd == NULL || s->sub == NULL)
		schedule_reconnect(s);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	connect_all(arg);
}

/* redact - URL as it may be logged: a password becomes "***". */
static void redact(const char *url, char *out, size_t len)
{
	const char *at = strrchr(url, '@');
	if (strncmp(url, "redis://", 8) != 0 || at == NULL)
		snprintf(out, len, "%s", url);
	else
		snprintf(out, len, "redis://***@%s", at + 1);
}

struct shared *shared_new(struct event_base *base, const char *url, shared_lock_fn *on_lock,
			  shared_suspend_fn *on_suspend, void *arg, char *err, size_t errlen)
{
	struct shared *s = xcalloc(1, sizeof(*s));
	char shown[128];
	redact(url, shown, sizeof(shown));
	if (!parse_url(s, url)) {
		snprintf(err, errlen, "shared_state: \"%s\" is not "
			 "redis://[[USER]:PASSWORD@]IP:PORT/DB or unix:/PATH "
			 "(host names are not looked up)", shown);
		explicit_bzero(s, sizeof(*s));
		free(s);
		return NULL;
	}
	snprintf(s->channel, sizeof(s->channel), CHANNEL "%d", s->db);
	s->base = base;
	s->on_lock = on_lock;
	s->on_suspend = on_suspend;
	s->arg = arg;
	s->reconnect = evtimer_new(base, on_reconnect, s);
	connect_all(s);
	log_ev(LOG_INFO, "shared-state", {"url", shown});
	return s;
}

void shared_free(struct shared *s)
{
	if (s == NULL)
		return;
	s->freeing = true;
	if (s->cmd)
		redisAsyncFree(s->cmd); /* pending requests come back with no reply */
	if (s->sub)
		redisAsyncFree(s->sub);
	event_free(s->reconnect);
	explicit_bzero(s->pass, sizeof(s->pass));
	free(s);
}

/* give_up - REQ gets no answer: its caller decides on local state alone. */
static void give_up(struct request *rq)
{
	rq->answered = true;
	if (rq->done)
		rq->done(-1, rq->arg);
	else if (rq->pair_done)
		rq->pair_done(-1, -1, rq->arg);
	else if (rq->members_done)
		rq->members_done(NULL, 0, rq->arg);
}

/* on_deadline - no answer in time: answer -1, drop the connection. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct request *rq = arg;
	struct shared *s = rq->s;
	(void)fd;
	(void)what;
	give_up(rq);
	warn(s, "request", "no answer within the deadline");
	redisAsyncContext *ac = s->cmd;
	s->cmd = NULL;
	s->ready = false;
	if (ac) /* now, not after the pending replies (they may never come); frees rq */
		redisAsyncFree(ac);
	schedule_reconnect(s);
}

/* reply_ok - is R the shape REQ waits for? */
static bool reply_ok(const struct request *rq, const redisReply *r)
{
	if (r == NULL)
		return false;
	if (rq->done)
		return r->type == REDIS_REPLY_INTEGER;
	if (r->type != REDIS_REPLY_ARRAY)
		return false;
	if (rq->catch_up)
		return true; /* each entry is checked as it is used */
	if (rq->members_done) {
		for (size_t i = 0; i < r->elements; i++)
			if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i]->str == NULL)
				return false;
		return true;
	}
	return r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
	       r->element[1]->type == REDIS_REPLY_INTEGER;
}

/* members_answer - the strings of R (at most the count asked for) to REQ's caller. */
static void members_answer(struct request *rq, const redisReply *r)
{
	size_t n = r->elements < SHARED_MEMBERS_MAX ? r->elements : SHARED_MEMBERS_MAX;
	const char **items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i] = r->element[i]->str;
	rq->members_done(items, n, rq->arg);
	free(items);
}

/* answer - REQ's good reply R to its caller. */
static void answer(struct request *rq, const redisReply *r)
{
	rq->answered = true;
	if (rq->done)
		rq->done(r->integer, rq->arg);
	else if (rq->pair_done)
		rq->pair_done(r->element[0]->integer, r->element[1]->integer, rq->arg);
	else if (rq->members_done)
		members_answer(rq, r);
	else
		rq->catch_up(rq->s, r);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct request *rq = priv;
	redisReply *reply = r;
	(void)ac;
	rq->s->pending--;
	if (!rq->answered) { /* freeing too: DONE may own memory (-1 lets it go) */
		bool ok = reply_ok(rq, reply);
		if (!ok) {
			warn(rq->s, "request", reply && reply->type == REDIS_REPLY_ERROR ? reply->str
											  : "no reply");
			give_up(rq);
		}
		if (ok && rq->s->was_down) {
			rq->s->was_down = false;
			log_ev(LOG_INFO, "shared-state-recovered", {"action", "counting in Redis again"});
		}
		if (ok)
			answer(rq, reply);
	}
	event_free(rq->deadline);
	free(rq);
}

/* request_send - RQ (its caller set) with a deadline; it is answered once. */
static void request_send(struct shared *s, int argc, const char **argv, struct request *rq)
{
	if (!s->ready) { /* down: the caller's local state decides alone */
		warn(s, "request", "not connected");
		give_up(rq);
		free(rq);
		return;
	}
	rq->s = s;
	rq->deadline = evtimer_new(s->base, on_deadline, rq);
	if (redisAsyncCommandArgv(s->cmd, on_reply, rq, argc, argv, NULL) != REDIS_OK) {
		event_free(rq->deadline);
		warn(s, "request", "cannot send");
		give_up(rq);
		free(rq);
		return;
	}
	s->pending++;
	struct timeval tv = {0, SHARED_DEADLINE_MS * 1000};
	evtimer_add(rq->deadline, &tv);
}

static struct request *request_new(void)
{
	return xcalloc(1, sizeof(struct request));
}

void shared_incr(struct shared *s, const char *key, unsigned ttl, shared_count_fn *done,
		 void *arg)
{
	char ttl_text[16];
	snprintf(ttl_text, sizeof(ttl_text), "%u", ttl ? ttl : 1);
	const char *argv[] = {"EVAL", incr_script, "1", key, ttl_text};
	struct request *rq = request_new();
	rq->done = done;
	rq->arg = arg;
	request_send(s, 5, argv, rq);
}

void shared_lock(struct shared *s, const char *ip, unsigned seconds)
{
	if (!s->ready) {
		warn(s, "lock", "not connected");
		return;
	}
	char msg[RG_IP_STRLEN + 32];
	if (seconds > 0) {
		redisAsyncCommand(s->cmd, NULL, NULL, "SET rg:lock:%s 1 EX %u", ip, seconds);
		snprintf(msg, sizeof(msg), "lock %s %u", ip, seconds);
	} else {
		redisAsyncCommand(s->cmd, NULL, NULL, "DEL rg:lock:%s rg:authfail:%s", ip, ip);
		snprintf(msg, sizeof(msg), "clear %s", ip);
	}
	redisAsyncCommand(s->cmd, NULL, NULL, "PUBLISH %s %s", s->channel, msg);
}

bool shared_up(const struct shared *s)
{
	return s->ready && s->cmd != NULL && (s->cmd->c.flags & REDIS_CONNECTED);
}

unsigned long shared_failures(const struct shared *s)
{
	return s->failures;
}

size_t shared_pending(const struct shared *s)
{
	return s->pending;
}

void shared_suspend(struct shared *s, const char *login, unsigned seconds, const char *why)
{
	if (!s->ready) {
		warn(s, "suspend", "not connected");
		return;
	}
	char *msg = seconds ? xasprintf("suspend %s %u %s", login, seconds, why)
			    : xasprintf("resume %s", login);
	char *key = xasprintf("rg:susp:%s", login), ex[16];
	snprintf(ex, sizeof(ex), "%u", seconds);
	const char *set[] = {"SET", key, why, "EX", ex}, *del[] = {"DEL", key};
	if (seconds)
		redisAsyncCommandArgv(s->cmd, NULL, NULL, 5, set, NULL);
	else
		redisAsyncCommandArgv(s->cmd, NULL, NULL, 2, del, NULL);
	const char *argv[] = {"PUBLISH", s->channel, msg};
	redisAsyncCommandArgv(s->cmd, NULL, NULL, 3, argv, NULL);
	free(key);
	free(msg);
}

void shared_set_tls(struct shared *s, shared_tls_fn *fn, void *arg)
{
	s->on_tls = fn;
	s->tls_arg = arg;
}

void shared_tls(struct shared *s, const char *domain, const char *level, unsigned ttl)
{
	if (!s->ready) {
		warn(s, "tls", "not connected");
		return;
	}
	char key[300], msg[300], ex[16];
	snprintf(key, sizeof(key), "rg:tls:%s", domain);
	snprintf(msg, sizeof(msg), "tls %s %s", domain, level);
	snprintf(ex, sizeof(ex), "%u", ttl ? ttl : 1);
	const char *set[] = {"SET", key, level, "EX", ex};
	const char *pub[] = {"PUBLISH", s->channel, msg};
	redisAsyncCommandArgv(s->cmd, NULL, NULL, 5, set, NULL);
	redisAsyncCommandArgv(s->cmd, NULL, NULL, 3, pub, NULL);
}

void shared_hijack(struct shared *s, const struct shared_hijack_msg *m, shared_pair_fn *done,
		   void *arg)
{
	char known[300], fresh[300], msgs[300], now[24], win[16], ld[16], lm[16], kmax[24], kttl[16];
	snprintf(known, sizeof(known), "rg:hjk:%s", m->login);
	snprintf(fresh, sizeof(fresh), "rg:hjn:%s", m->login);
	snprintf(msgs, sizeof(msgs), "rg:hjm:%s", m->login);
	snprintf(now, sizeof(now), "%lld", (long long)m->now);
	snprintf(win, sizeof(win), "%u", m->window ? m->window : 1);
	snprintf(ld, sizeof(ld), "%u", m->new_domains);
	snprintf(lm, sizeof(lm), "%u", m->messages);
	snprintf(kmax, sizeof(kmax), "%zu", m->known_max ? m->known_max : 1);
	snprintf(kttl, sizeof(kttl), "%u", m->known_ttl ? m->known_ttl : 1);
	size_t argc = 13 + m->n;
	const char **argv = xcalloc(argc, sizeof(*argv));
	const char *head[] = {"EVAL", hijack_script, "3", known, fresh, msgs, now, win,
			      m->message_id, ld, lm, kmax, kttl};
	memcpy(argv, head, sizeof(head));
	for (size_t i = 0; i < m->n; i++)
		argv[13 + i] = m->domains[i];
	struct request *rq = request_new();
	rq->pair_done = done;
	rq->arg = arg;
	request_send(s, (int)argc, argv, rq);
	free(argv);
}

/* entry_text - element I of the catch-up list as a string (NULL: not one). */
static const char *entry_text(const redisReply *r, size_t i)
{
	const redisReply *e = r->element[i];
	return e && e->type == REDIS_REPLY_STRING && e->str ? e->str : NULL;
}

/* heard_key - KEY (VALUE, alive TTL more seconds) from the catch-up, to its
 * callback as if it had come off the channel; the callbacks clean it. */
static void heard_key(struct shared *s, const char *key, const char *value, unsigned ttl,
		      unsigned *counts)
{
	char text[600];
	if (strncmp(key, "rg:lock:", 8) == 0) {
		s->on_lock(key + 8, ttl, s->arg);
		counts[0]++;
	} else if (strncmp(key, "rg:susp:", 8) == 0) {
		s->on_suspend(key + 8, ttl, value, s->arg);
		counts[1]++;
	} else if (strncmp(key, "rg:tls:", 7) == 0 && s->on_tls != NULL &&
		   strcspn(key + 7, " ") == strlen(key + 7)) {
		snprintf(text, sizeof(text), "%.280s %.16s", key + 7, value);
		s->on_tls(text, s->tls_arg);
		counts[2]++;
	}
}

static void catch_up_step(struct shared *s, const char *cursor);

/* cursor_ok - a SCAN cursor as Redis sends it: decimal digits, not too long. */
static bool cursor_ok(const char *c)
{
	size_t n = c != NULL ? strlen(c) : 0;
	return n > 0 && n < 24 && strspn(c, "0123456789") == n;
}

/* catch_up_done - the catch-up is over (or gave up on a bad reply): log it. */
static void catch_up_done(struct shared *s, const char *reason)
{
	char l[16], su[16], t[16];
	snprintf(l, sizeof(l), "%u", s->caught[0]);
	snprintf(su, sizeof(su), "%u", s->caught[1]);
	snprintf(t, sizeof(t), "%u", s->caught[2]);
	log_ev(LOG_INFO, "shared-state-caught-up", {"lockouts", l}, {"suspensions", su},
	       {"tls_raises", t}, {"stopped", reason});
}

/* caught_up - one step's lock-outs, suspensions and TLS raises; then the next step. */
static void caught_up(struct shared *s, const redisReply *r)
{
	const char *cursor = r->elements > 0 ? entry_text(r, 0) : NULL;
	for (size_t i = 1; i + 2 < r->elements; i += 3) {
		unsigned total = s->caught[0] + s->caught[1] + s->caught[2];
		const char *key = entry_text(r, i), *value = entry_text(r, i + 1);
		const redisReply *ttl = r->element[i + 2];
		if (total < CATCH_UP_MAX && key && value && ttl &&
		    ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0)
			heard_key(s, key, value, (unsigned)(ttl->integer < (1LL << 30) ? ttl->integer : (1LL << 30)), s->caught);
	}
	if (!cursor_ok(cursor))
		catch_up_done(s, "bad reply");
	else if (strcmp(cursor, "0") == 0)
		catch_up_done(s, NULL);
	else if (s->caught[0] + s->caught[1] + s->caught[2] >= CATCH_UP_MAX)
		catch_up_done(s, "key limit");
	else if (++s->catch_steps >= CATCH_UP_STEPS)
		catch_up_done(s, "step limit");
	else
		catch_up_step(s, cursor);
}

/* catch_up_step - one SCAN step of the catch-up, from CURSOR. */
static void catch_up_step(struct shared *s, const char *cursor)
{
	const char *argv[] = {"EVAL", catch_up_script, "0", cursor, "rg:lock:", "rg:susp:",
			      "rg:tls:"};
	struct request *rq = request_new();
	rq->catch_up = caught_up;
	request_send(s, 7, argv, rq);
}

/* catch_up - read back what other hosts decided while we were away (or not running). */
static void catch_up(struct shared *s)
{
	memset(s->caught, 0, sizeof(s->caught));
	s->catch_steps = 0;
	catch_up_step(s, "0");
}

void shared_known(struct shared *s, const char *login, size_t max, shared_members_fn *done,
		  void *arg)
{
	char key[300], count[24];
	snprintf(key, sizeof(key), "rg:hjk:%s", login);
	snprintf(count, sizeof(count), "%zu", max < SHARED_MEMBERS_MAX ? max : SHARED_MEMBERS_MAX);
	const char *argv[] = {"SRANDMEMBER", key, count}; /* a positive count: distinct, bounded */
	struct request *rq = request_new();
	rq->members_done = done;
	rq->arg = arg;
	request_send(s, 3, argv, rq);
}
