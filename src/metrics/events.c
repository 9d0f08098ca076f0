/*
 * events.c - the server's metric families (see events.h).
 */
#include "metrics/events.h"
#include "metrics/metrics.h"

#include <string.h>

static struct metric *rate_limited, *hijack, *shared_failures;
static struct metric *connections, *refused, *sessions, *commands, *rcpts, *messages, *bytes,
	*accept_latency, *auths, *lockouts, *tls, *deliveries, *delivery_latency, *queue;

static mev_queue_fn *queue_fn;
static void *queue_arg;

/* Seconds: from a fast fsync to a slow greylisting peer. */
static const double accept_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				       0.25, 0.5, 1, 2.5, 5, 10};
static const double delivery_bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800,
					 3600, 14400, 86400};

static const char *const verbs[] = {"HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT",
				    "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS",
				    "AUTH", "ETRN", "XCLIENT", NULL};
static const char *const refusals[] = {"limit", "rate", "lockout", "shutdown", NULL};
static const char *const results[] = {"accept", "reject", "defer", NULL};
static const char *const tls_versions[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL};
static const char *const statuses[] = {"delivered", "deferred", "bounced", NULL};
static const char *const kinds[] = {"local", "smtp", "lmtp", "error", "discard", NULL};
static const char *const states[] = {"incoming", "active", "deferred", "hold"};
static const char *const limits[] = {
	"smtpd_client_connection_rate_limit", "smtpd_client_message_rate_limit",
	"smtpd_client_recipient_rate_limit", "smtpd_client_auth_rate_limit",
	"smtpd_sasl_message_rate_limit", "smtpd_sasl_recipient_rate_limit", NULL};
static const char *const hijack_events[] = {"suspended", "held", "refused", NULL};

static void collect_queue(struct metric *m, void *arg)
{
	unsigned long counts[4] = {0, 0, 0, 0};
	(void)arg;
	if (queue_fn == NULL)
		return;
	queue_fn(queue_arg, counts);
	for (size_t i = 0; i < 4; i++)
		metric_set(m, (const char *[]){states[i]}, (double)counts[i]);
}

static void make_counters(void)
{
	connections = metric_counter("relayguard_connections_total", "SMTP connections accepted",
				     NULL);
	refused = metric_counter("relayguard_connections_refused_total",
				 "SMTP connections refused at once, by reason", "reason");
	sessions = metric_gauge("relayguard_sessions_open", "SMTP sessions open now", NULL);
	commands = metric_counter("relayguard_commands_total", "SMTP commands received, by verb",
				  "verb");
	rcpts = metric_counter("relayguard_rcpt_total",
			       "RCPT decisions, by result and the restriction that decided "
			       "(reject_unauth_destination: relay denied)",
			       "result,restriction");
	messages = metric_counter("relayguard_messages_total",
				  "messages at the end of DATA, by result", "result");
	bytes = metric_counter("relayguard_message_bytes_total", "bytes of messages accepted",
			       NULL);
	auths = metric_counter("relayguard_auth_total", "SMTP AUTH attempts, by result", "result");
	lockouts = metric_counter("relayguard_auth_lockouts_total", "clients locked out", NULL);
	tls = metric_counter("relayguard_tls_handshakes_total", "TLS handshakes, by version",
			     "version");
	deliveries = metric_counter("relayguard_delivery_attempts_total",
				    "delivery attempts per recipient, by status and transport",
				    "status,transport");
	queue = metric_gauge("relayguard_queue_messages", "messages in the queue, by state",
			     "state");
	metric_collector(queue, collect_queue, NULL);
	rate_limited = metric_counter("relayguard_rate_limited_total",
				      "events refused by a rate limit, by its parameter", "limit");
	hijack = metric_counter("relayguard_hijack_total",
				"hijacked-account hold: logins suspended, messages held, MAIL refused",
				"event");
	shared_failures = metric_counter("relayguard_shared_state_failures_total",
					 "Redis (shared_state) requests that failed or timed out", NULL);
}

void mev_init(void)
{
	make_counters();
	accept_latency = metric_histogram("relayguard_accept_seconds",
					  "from the end of DATA to the reply",
					  accept_bounds, sizeof(accept_bounds) / sizeof(double));
	delivery_latency = metric_histogram("relayguard_delivery_seconds",
					    "from arrival to delivery, per recipient",
					    delivery_bounds, sizeof(delivery_bounds) / sizeof(double));
}

void mev_connection(void)
{
	metric_inc(connections, NULL);
}

void mev_connection_refused(const char *why)
{
	metric_inc(refused, (const char *[]){metric_choice(why, refusals)});
}

void mev_session_open(int delta)
{
	metric_add(sessions, NULL, delta);
}

void mev_command(const char *verb)
{
	metric_inc(commands, (const char *[]){metric_choice(verb, verbs)});
}

void mev_rcpt(const char *result, const char *restriction)
{
	metric_inc(rcpts, (const char *[]){metric_choice(result, results),
					   restriction ? restriction : ""});
}

void mev_message(bool accepted, size_t n, double seconds_to_reply)
{
	metric_inc(messages, (const char *[]){accepted ? "accepted" : "rejected"});
	if (!accepted)
		return;
	metric_add(bytes, NULL, (double)n);
	metric_observe(accept_latency, seconds_to_reply);
}

void mev_auth(bool ok)
{
	metric_inc(auths, (const char *[]){ok ? "success" : "failure"});
}

void mev_lockout(void)
{
	metric_inc(lockouts, NULL);
}

void mev_tls(const char *version)
{
	metric_inc(tls, (const char *[]){metric_choice(version, tls_versions)});
}

void mev_delivery(const char *status, const char *kind, double seconds)
{
	metric_inc(deliveries, (const char *[]){metric_choice(status, statuses),
						metric_choice(kind, kinds)});
	if (strcmp(status, "delivered") == 0)
		metric_observe(delivery_latency, seconds);
}

void mev_queue_source(mev_queue_fn *fn, void *arg)
{
	queue_fn = fn;
	queue_arg = arg;
}

void mev_rate_limited(const char *limit)
{
	metric_inc(rate_limited, (const char *[]){metric_choice(limit, limits)});
}

void mev_hijack(const char *what)
{
	metric_inc(hijack, (const char *[]){metric_choice(what, hijack_events)});
}

void mev_shared_state_failure(void)
{
	metric_inc(shared_failures, NULL);
}

void mev_reset(void)
{
	rate_limited = hijack = shared_failures = NULL;
	connections = refused = sessions = commands = rcpts = messages = bytes = NULL;
	accept_latency = auths = lockouts = tls = deliveries = delivery_latency = queue = NULL;
	queue_fn = NULL;
	queue_arg = NULL;
	metrics_reset();
}
