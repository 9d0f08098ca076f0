/*
 * probe - relayguard probe: does an SMTP server relay for strangers?
 *
 * Owns: the battery of relay tests (battery.c), the pure decisions made on
 * their replies (judge.c), the per-target state machine that runs them on
 * the event loop through client/smtpc (runner.c), the table and JSON output
 * (output.c) and the command line (cli.c).
 * Must not: send DATA unless asked (--confirm-data), talk to anything but
 * the targets it was given, or judge a reply by a substring of its text:
 * only reply codes and enhanced status codes decide.
 */
#ifndef RG_PROBE_H
#define RG_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/util.h"

#define PROBE_NAME_MAX 256

/* What a 2xx at RCPT would mean for a test. */
enum probe_kind {
	PK_RELAY,      /* the destination is unambiguously outside: 2xx is a relay */
	PK_AMBIGUOUS,  /* routed local part at one of the target's own names */
	PK_LOCAL,      /* an unknown user of the target's domain: 2xx is backscatter risk */
	PK_AUTH_PLAIN, /* AUTH with bogus credentials on a plain-text connection */
	PK_AUTH_RELAY, /* relaying after AUTH with the user's credentials (positive control) */
	PK_SMUGGLE,    /* SMTP smuggling: a message to the target's own postmaster whose body
			* ends at a non-standard end-of-data sequence, then a second,
			* smuggled MAIL FROM/RCPT TO/DATA (only with --confirm-data) */
};

/* How a test's connection must be set up. */
enum {
	PF_FRESH = 1 << 0,      /* a connection of its own, closed afterwards */
	PF_PROXY = 1 << 1,      /* send a PROXY protocol header claiming 127.0.0.1 first */
	PF_XCLIENT = 1 << 2,    /* XCLIENT ADDR=127.0.0.1 before the transaction */
	PF_PLAINTEXT = 1 << 3,  /* never STARTTLS on this connection */
	PF_AUTH = 1 << 4,       /* AUTH PLAIN with --auth credentials */
	PF_AUTH_BOGUS = 1 << 5, /* AUTH PLAIN with made-up credentials */
	PF_SUBMISSION = 1 << 6, /* only on ports 587 and 465 */
	PF_NEEDS_AUTH = 1 << 7, /* only when --auth is given */
	PF_SENDER = 1 << 8,     /* the sender is the trick: never replaced */
	PF_SMUGGLE = 1 << 9,    /* sends real mail: only with --smuggle (or --only) and
				 * --confirm-data */
};

struct probe_test {
	const char *id;
	const char *name;
	const char *source; /* where the trick comes from */
	const char *helo;   /* template, or NULL for the default HELO name */
	const char *mail;   /* template of the MAIL FROM path, without <> */
	const char *rcpt;   /* template of the RCPT TO path, without <> */
	enum probe_kind kind;
	unsigned flags;
	const char *fix;    /* advice when this test relays (or warns) */
	const char *eod;    /* PK_SMUGGLE: the fake end-of-data bytes (may hold a NUL) */
	size_t eod_len;
};

extern const struct probe_test probe_battery[];
extern const size_t probe_battery_len;
const struct probe_test *probe_find_test(const char *id);

/* Placeholder values for the templates ({v}, {vl}, {vd}, {d}, {s}, {ip}, ...). */
struct probe_vars {
	const char *victim_local;  /* {vl} relaytest */
	const char *victim_domain; /* {vd} example.net */
	const char *domain;        /* {d}  TARGET_DOMAIN */
	const char *server;        /* {s}  the name the server gave itself */
	const char *ip;            /* {ip} address literal content: 192.0.2.1 or IPv6:... */
	const char *user;          /* {u}  a local part nobody has */
	const char *sender_local;  /* {sl} relayprobe */
	const char *helo;          /* {h}  the default HELO name */
};
/* Expand a template; false when the result does not fit. {V} is {vl}@{vd}
 * in mixed case. Unknown placeholders are copied as they are. */
bool probe_expand(const char *tmpl, const struct probe_vars *v, char *out, size_t outlen);

/* Classify a RCPT path against the target's own names: outside (PK_RELAY),
 * routed at one of its names or unqualified (PK_AMBIGUOUS), or local
 * (PK_LOCAL). own: NULL-terminated lower-case names; own_ip: literal content. */
enum probe_kind probe_classify_rcpt(const char *path, const char *const *own, const char *own_ip);

/* ---- judging (pure) ---- */

enum probe_verdict {
	V_PENDING,
	V_RELAY_ACCEPTED,
	V_ACCEPTED_AMBIGUOUS,
	V_DENIED,
	V_DENIED_TEMPORARY,
	V_DEFERRED,
	V_INCONCLUSIVE,
	V_ERROR,
	V_TIMEOUT,
	V_RELAY_CONFIRMED,
	V_NOT_RELAYED,
	V_DELIVERED_LOCALLY,
	V_WARNING,
	V_SKIPPED,
	V_AUTH_OK,
	V_AUTH_FAILED,
	V_SMUGGLING_ACCEPTED, /* the smuggled message was accepted, or arrived on its own */
	V_NOT_SMUGGLED,       /* one message: the smuggled commands stayed in its body */
};
const char *probe_verdict_name(enum probe_verdict v);

/* The step of a test at which its transaction ended. */
enum probe_role {
	ROLE_CONNECT,
	ROLE_GREETING,
	ROLE_HELO,
	ROLE_SETUP, /* PROXY, XCLIENT */
	ROLE_AUTH,
	ROLE_MAIL,
	ROLE_RCPT,
};

enum probe_status { PS_REPLY, PS_TIMEOUT, PS_CLOSED, PS_ERROR };

struct probe_outcome {
	enum probe_role role;
	enum probe_status status;
	int code;          /* the reply at that step (2xx at RCPT: accepted) */
	char enhanced[16];
};

/* A test's verdict from its first attempt, and from the retry of a 4xx when
 * there was one (retry NULL: first attempt only; V_DEFERRED asks for a retry). */
enum probe_verdict probe_judge(enum probe_kind kind, const struct probe_outcome *first,
			       const struct probe_outcome *retry, char *note, size_t notelen);

/* A refused EHLO that was sent again on a session that already had one
 * (to change the HELO name) says nothing about the test: RFC 5321 4.1.4
 * allows it, but OpenSMTPD answers 503 "Already identified" and Exim counts
 * it against smtp_accept_max_nonmail (554). True when the test must run
 * again on a new connection that starts with its own name. */
bool probe_redo_with_own_helo(const struct probe_outcome *o, bool repeated_ehlo);

/* ---- SMTP smuggling (pure) ---- */

#define PROBE_SMUGGLE_REPLIES 32 /* replies read after the smuggling payload, at most */

/* The verdict of a PK_SMUGGLE test from the reply codes that followed its
 * payload (n may be 0; end says how the reading ended: PS_TIMEOUT when the
 * server fell quiet, PS_CLOSED/PS_ERROR when the connection ended). One
 * reply: the server read one message (2xx: not-smuggled, else denied).
 * More than one: it ended the message at the fake end-of-data and read the
 * smuggled commands; a 354 later followed by a 2xx is smuggling-accepted,
 * anything else a warning (it split the message but refused the smuggled one). */
enum probe_verdict probe_judge_smuggle(const int *codes, size_t n, enum probe_status end,
				       char *note, size_t notelen);

/* Where a smuggling test's two tokens are in one delivered file. */
enum probe_arrival {
	ARR_NONE,     /* neither */
	ARR_WHOLE,    /* both: the message arrived as one, the smuggled part in its body */
	ARR_OUTER,    /* only the outer message's: it was cut at the fake end-of-data */
	ARR_SMUGGLED, /* only the smuggled message's: it arrived as a message of its own */
};
enum probe_arrival probe_smuggle_arrival(const char *buf, size_t len, const char *outer_token,
					 const char *smuggled_token);

/* "<CR><LF>.<LF>" for "\r\n.\n" (<NUL>, and \xHH for other control bytes). */
void probe_eod_name(const char *eod, size_t len, char *out, size_t outlen);

enum probe_target_verdict {
	TV_CLOSED,
	TV_OPEN,
	TV_SUSPICIOUS,
	TV_INCONCLUSIVE,
	TV_UNREACHABLE,
	TV_VULNERABLE, /* no relay, but a smuggled message was accepted (exit 4) */
};
const char *probe_target_verdict_name(enum probe_target_verdict v);
enum probe_target_verdict probe_target_verdict(const enum probe_verdict *v, size_t n,
					       bool reachable);
int probe_exit_code(enum probe_target_verdict v);
/* The worse of two exit codes in the order 1 > 4 > 3 > 2 > 0. */
int probe_worse_exit(int a, int b);
/* Does the probe connect from a loopback address, which nearly every server
 * trusts (mynetworks)? SOURCE: --source (NULL: none, the kernel picks, and it
 * answers a loopback destination from a loopback address); TARGET: the server. */
bool probe_source_loopback(const char *source, const struct sockaddr_storage *target);

/* ---- targets and names (pure) ---- */

/* "host", "host:port", "[v6]:port", "v6addr" (no port). */
bool probe_parse_target(const char *s, int default_port, char *host, size_t hostlen, int *port,
			char *err, size_t errlen);
/* The host name in a greeting or EHLO reply ("220 mx.lab.test ESMTP" ->
 * "mx.lab.test"); "" when the first word is not a domain name. */
void probe_reply_name(const char *reply_text, char *out, size_t outlen);
/* Candidates for TARGET_DOMAIN: the name itself, then its parent when that
 * still has two labels. Returns the count (0..2). */
size_t probe_domain_candidates(const char *name, char out[][PROBE_NAME_MAX], size_t max);
/* Does buf hold token as a whole word (not as the start of a longer token)? */
bool probe_token_in(const char *buf, size_t len, const char *token);

/* ---- running ---- */

struct probe_options {
	int port;
	bool starttls;
	bool implicit_tls;
	bool json;
	const char *auth_user;
	const char *auth_pass;
	const char *source;    /* local address to bind */
	const char *dns_servers; /* "127.0.0.1:5353,..." or NULL: /etc/resolv.conf */
	const char *domain;
	const char *victim;    /* local@domain */
	const char *helo;
	unsigned timeout_ms;
	unsigned retry_after_ms;
	bool confirm_data;
	bool smuggle;          /* include the smuggle-* tests (they need --confirm-data) */
	const char *canary_dir;
	const char *local_dir;
	unsigned canary_wait_ms;
	unsigned concurrency;
	unsigned lanes;           /* parallel connections per target */
	unsigned rejections_per_conn; /* reconnect after this many 4xx/5xx */
	const char *only;         /* comma-separated test ids, or NULL */
	bool progress;            /* print a progress line on standard error */
};

struct probe_transcript {
	bool client;
	char *text;
};

struct probe_result {
	const struct probe_test *test;
	char helo[PROBE_NAME_MAX];
	char mail[PROBE_NAME_MAX + 8];
	char rcpt[PROBE_NAME_MAX + 8];
	enum probe_verdict verdict;
	char note[512];
	struct probe_transcript *transcript;
	size_t n_transcript;
	/* runner state */
	struct probe_outcome first;
	bool have_first;
	unsigned attempts;     /* connection-level attempts */
	bool running;
	bool sender_replaced;  /* MAIL FROM refused: the RCPT form went with a plain sender */
	bool own_helo;         /* a repeated EHLO was refused: open with the test's name */
	uint64_t due_ms;       /* not before (retries) */
	char token[64];        /* with --confirm-data */
	char smuggle_token[72]; /* PK_SMUGGLE: the smuggled message's own token */
	int smuggle_codes[PROBE_SMUGGLE_REPLIES]; /* replies after the payload */
	size_t n_smuggle_codes;
	bool smuggle_cut;      /* the carrier arrived cut short at the fake end-of-data */
	bool smuggle_sent;     /* the payload went out: both tokens are worth showing */
	bool data_accepted;
	bool token_found;      /* looked for and found: no more scanning */
};

struct probe_target {
	char spec[PROBE_NAME_MAX + 16]; /* as given */
	char host[PROBE_NAME_MAX];
	int port;
	char addr_text[64];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *tls; /* "none" | "starttls" | "implicit" */
	char banner[512];
	char server_name[PROBE_NAME_MAX];
	char domain[PROBE_NAME_MAX];
	char ip_literal[80];
	bool reachable;
	bool cap_starttls, cap_auth_plain_text, cap_xclient;
	enum probe_target_verdict verdict;
	bool loopback_trusted; /* the plain test relayed for a probe from loopback: the
				* verdict is a trusted client's (probe_build_advice) */
	struct strbuf advice; /* lines separated by '\n' */
	struct probe_result *results;
	size_t n_results;
	uint64_t elapsed_ms;
	char error[256];
};

/* Run every target; results are printed as targets finish. Returns the exit code. */
int probe_run(const struct probe_options *o, char **targets, size_t n_targets);

/* ---- output ---- */
void probe_print_table(const struct probe_target *t, const struct probe_options *o);
void probe_print_json(const struct probe_target *t);
/* The escaper lives in util/json.h (json_string); this name stays for old callers. */
void probe_json_string(struct strbuf *sb, const char *s);
/* Advice lines for a finished target (appended to t->advice). */
void probe_build_advice(struct probe_target *t, const struct probe_options *o);

int probe_main(int argc, char **argv);

#endif
