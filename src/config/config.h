/*
 * config - main.cf syntax, Postfix parameter names, relayguard's safe defaults.
 *
 * Owns: reading a configuration file (or the embedded default), $name
 * expansion, validating every value into typed fields, loading the tables
 * it names, and refusing configurations that could never deny a relay
 * attempt. Every error is "file:line: what is wrong". Which parameters
 * exist, their defaults, limits and fields: the table in params.def.
 * Must not: open sockets or touch the queue; it only describes the server.
 */
#ifndef RG_CONFIG_H
#define RG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/maps.h"
#include "net/net.h"

enum restriction_kind {
	R_PERMIT_MYNETWORKS,
	R_PERMIT_SASL_AUTHENTICATED,
	R_REJECT_UNAUTH_DESTINATION,
	R_DEFER_UNAUTH_DESTINATION,
	R_PERMIT_AUTH_DESTINATION,
	R_REJECT_UNLISTED_RECIPIENT,
	R_REJECT_NON_FQDN_SENDER,
	R_REJECT_NON_FQDN_RECIPIENT,
	R_REJECT_NON_FQDN_HELO_HOSTNAME,
	R_REJECT_INVALID_HELO_HOSTNAME,
	R_CHECK_CLIENT_ACCESS,
	R_REJECT_SENDER_LOGIN_MISMATCH,
	R_REJECT_AUTH_SENDER_LOGIN_MISMATCH,
	R_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH,
	R_PERMIT,
	R_REJECT,
	R_DEFER,
	R_REJECT_SPF_FAIL,        /* SPF at MAIL (msgauth): 550 5.7.23 */
	R_DEFER_SPF_TEMPERROR,    /* 451 4.7.24 */
	R_REJECT_SPF_PERMERROR,   /* 550 5.7.24 */
};

struct restriction {
	enum restriction_kind kind;
	const char *name;     /* canonical name, static */
	struct map *table;    /* check_client_access */
};

struct restriction_list {
	const char *param; /* "smtpd_relay_restrictions" */
	struct restriction *items;
	size_t n;
};

/* Where the value of a parameter came from, for messages. */
struct config_origin {
	const char *file; /* NULL for a built-in default */
	unsigned line;
};

/* What a listening socket is for (RFC 6409, RFC 8314). */
enum listen_role {
	ROLE_MTA,         /* smtpd_listen: mail from the world, STARTTLS offered */
	ROLE_SUBMISSION,  /* submission_listen (587): STARTTLS, then AUTH, then mail */
	ROLE_SUBMISSIONS, /* submissions_listen (465): TLS from the first byte */
	ROLE_PICKUP,      /* <queue_directory>/pickup: local users, authenticated by uid */
};

enum tls_level { TLS_NONE, TLS_MAY, TLS_ENCRYPT };

struct listen_addr {
	char text[80]; /* "127.0.0.1:2525" as configured */
	char host[64]; /* "127.0.0.1", "::1", "*" */
	unsigned port;
	enum listen_role role;
};

enum sasl_type { SASL_PASSWD_FILE, SASL_DOVECOT };

/* smtp_tls_security_level (RFC 3207 client side; Postfix's levels) */
enum smtp_tls_level { SMTP_TLS_NONE, SMTP_TLS_MAY, SMTP_TLS_ENCRYPT, SMTP_TLS_VERIFY,
		      SMTP_TLS_SECURE, SMTP_TLS_DANE };
enum inet_protocols { INET_ALL, INET_IPV4, INET_IPV6 };
/* Parse a TLS level name ("may"); false when unknown. */
bool config_smtp_tls_level(const char *name, enum smtp_tls_level *out);

struct config {
	char *file; /* NULL when the embedded default is used */
	char *myhostname, *mydomain, *myorigin, *smtpd_banner;
	char **mydestination; /* NULL-terminated, lower case */
	char **relay_domains;
	struct cidr *mynetworks;
	size_t n_mynetworks;
	struct map **local_recipient_maps; /* NULL-terminated; empty: accept all */
	struct map **relay_recipient_maps; /* NULL-terminated; empty: accept all */
	struct restriction_list client, helo, sender, relay, recipient;
	uint64_t message_size_limit, smtpd_recipient_limit, smtpd_timeout;
	uint64_t smtpd_hard_error_limit, smtpd_client_connection_count_limit;
	uint64_t smtpd_junk_command_limit;
	struct listen_addr *listen;
	size_t n_listen;
	char *queue_directory, *virtual_mailbox_base, *mail_owner;
	bool direct_local_delivery; /* all-local mail goes to the Maildirs before 250 */
	bool smtpd_peername_lookup; /* verified reverse DNS name of each client */
	/* message authentication (issue 9): SPF, DKIM, DMARC in serve */
	bool smtpd_message_authentication, smtpd_dmarc_enforce;
	char *dkim_signing_table;   /* "": no signing */
	bool dkim_sign_any_from_domain; /* yes: a login's mail is signed for any From: domain */
	/* TLS (RFC 3207, RFC 8314) */
	enum tls_level smtpd_tls_security_level, submission_tls_security_level;
	char *smtpd_tls_cert_file, *smtpd_tls_key_file; /* "": self-signed in data_directory */
	bool smtpd_tls_auth_only;
	char *data_directory;
	/* SMTP AUTH (RFC 4954) */
	bool smtpd_sasl_auth_enable;
	enum sasl_type smtpd_sasl_type;
	char *smtpd_sasl_path;
	bool smtpd_sasl_authenticated_header; /* login name in Received: (Postfix: no) */
	uint64_t smtpd_sasl_failure_delay, smtpd_sasl_failure_limit;
	uint64_t smtpd_sasl_failure_window, smtpd_sasl_lockout_time;
	struct map **smtpd_sender_login_maps; /* NULL-terminated; empty: a login owns itself */
	/* used instead of smtpd_{client,sender}_restrictions on submission ports */
	struct restriction_list submission_client, submission_sender;
	char *dns_servers;          /* "" : /etc/resolv.conf */
	/* outbound delivery: the SMTP client and the queue manager (Postfix's names) */
	char *relayhost;            /* "": deliver by MX; "[host]:port", "host:port", "domain" */
	char *default_transport;    /* for mail not routed by transport_maps: "smtp", "error:..." */
	struct map **transport_maps;          /* domain -> "smtp:[host]:port", "local", "error:..." */
	struct map **smtp_tls_policy_maps;    /* next hop or domain -> a TLS level */
	struct map **smtp_sasl_password_maps; /* next hop or domain -> "user:password" */
	bool smtp_sasl_auth_enable;
	bool smtp_sasl_plaintext_ok;          /* smtp_sasl_security_options without noplaintext */
	bool smtp_sasl_tls_plaintext_ok;      /* the same of smtp_sasl_tls_security_options */
	enum smtp_tls_level smtp_tls_security_level;
	char *smtp_tls_CAfile, *smtp_tls_CApath;
	char *smtp_helo_name, *smtp_bind_address, *smtp_bind_address6;
	unsigned smtp_tcp_port;
	enum inet_protocols inet_protocols;
	enum inet_protocols smtp_address_preference; /* INET_ALL: any */
	uint64_t smtp_connect_timeout, smtp_helo_timeout, smtp_mail_timeout, smtp_rcpt_timeout;
	uint64_t smtp_data_init_timeout, smtp_data_xfer_timeout, smtp_data_done_timeout;
	uint64_t smtp_quit_timeout;
	uint64_t minimal_backoff_time, maximal_backoff_time, queue_run_delay;
	uint64_t maximal_queue_lifetime, bounce_queue_lifetime, delay_warning_time;
	uint64_t bounce_size_limit, default_destination_concurrency_limit;
	uint64_t default_destination_recipient_limit, qmgr_message_active_limit;
	uint64_t in_flow_delay;         /* seconds a 250 may wait for delivery (0: never) */
	uint64_t in_flow_backlog_limit; /* messages waiting for delivery before it does */
	/* message limits (Postfix's names and defaults) */
	uint64_t hopcount_limit;    /* Received: headers a message may carry */
	uint64_t header_size_limit; /* bytes per header field; the excess is discarded */
	/* resource limits (issue 11) */
	uint64_t smtpd_connection_limit;   /* all clients together; 0: from RLIMIT_NOFILE */
	bool smtpd_per_record_deadline;    /* smtpd_timeout bounds a whole line, not one read */
	uint64_t smtpd_min_data_rate;      /* bytes/s of DATA that earn more time */
	uint64_t smtpd_data_memory_limit;  /* message text held in memory, all sessions */
	uint64_t queue_minfree;            /* free bytes the queue needs; see README */
	/* the relay self-test at serve start (issue 10): refuse to start, log, or skip */
	enum relay_selftest { SELFTEST_ENFORCE, SELFTEST_WARN, SELFTEST_OFF } relay_selftest;
	/* abuse control for authenticated relaying (issue 13); 0: no limit */
	uint64_t anvil_rate_time_unit;     /* the window of every rate limit */
	uint64_t smtpd_client_connection_rate_limit, smtpd_client_message_rate_limit;
	uint64_t smtpd_client_recipient_rate_limit, smtpd_client_auth_rate_limit;
	uint64_t smtpd_sasl_message_rate_limit, smtpd_sasl_recipient_rate_limit;
	struct cidr *smtpd_client_event_limit_exceptions; /* no client rate limits */
	size_t n_smtpd_client_event_limit_exceptions;
	struct cidr *smtpd_sasl_lockout_exceptions; /* never locked out, no AUTH rate limit */
	size_t n_smtpd_sasl_lockout_exceptions;
	uint64_t smtpd_sasl_hijack_threshold;         /* new recipient domains per window */
	uint64_t smtpd_sasl_hijack_window, smtpd_sasl_hijack_message_threshold;
	uint64_t smtpd_sasl_hijack_wide_message, smtpd_sasl_hijack_suspend_time;
	char *shared_state;        /* "": in-process; redis://IP:PORT/DB or unix:/PATH */
	/* metrics (issue 12) */
	char *metrics_listen_text;         /* as configured; "": off */
	struct listen_addr metrics_listen; /* GET /metrics here when metrics_enabled */
	bool metrics_enabled;
	/* outbound TLS that cannot be stripped (issue 14) */
	uint64_t smtp_tls_memory_lifetime; /* downgrade memory; 0: none */
	bool smtp_dns_support_dnssec;      /* smtp_dns_support_level = dnssec (DANE default) */
	bool smtp_mta_sts;                 /* look up and apply MTA-STS policies (RFC 8461) */
	char *smtp_mta_sts_CAfile;         /* trust store of policy fetches; "": the system's */
	unsigned smtp_mta_sts_https_port;  /* 443; another only for tests */
	uint64_t smtp_mta_sts_recheck_time; /* TXT look-ups per domain at most this often */
	bool smtp_tls_reporting;           /* TLS-RPT (RFC 8460): count and send daily reports */
	/* delivery to Dovecot over LMTP (issue 12) */
	char *mailbox_transport;  /* mydestination mail: "" Maildir, "lmtp:unix:/p", "lmtp:inet:IP:port" */
	char *virtual_transport;  /* virtual_mailbox_domains mail: the same values */
	uint64_t lmtp_destination_concurrency_limit; /* connections per LMTP server */
	uint64_t lmtp_connection_cache_limit;        /* idle connections kept per LMTP server */

	/* aliases and hosted domains (issue 12; Postfix's names, see address/expand.h) */
	struct map **alias_maps;            /* aliases(5) files: local parts of mydestination */
	char **virtual_alias_domains;       /* hosted domains whose addresses are all aliases */
	struct map **virtual_alias_maps;    /* address -> addresses, for every domain */
	char **virtual_mailbox_domains;     /* hosted domains with Maildirs */
	struct map **virtual_mailbox_maps;  /* address -> "dir/user/" under virtual_mailbox_base */
	char *recipient_delimiter;          /* "": none; each character separates an extension */
	uint64_t virtual_alias_recursion_limit, virtual_alias_expansion_limit;
	/* every parameter, expanded, in table order (for "relayguard config") */
	char **names, **values;
	struct config_origin *origins;
	size_t n_params;
};

/*
 * Load path (NULL: the embedded default). On failure returns NULL and fills
 * errors with one "file:line: message" per line.
 */
struct config *config_load(const char *path, char **errors);
/* config_load_pinned - the same, but every parameter only a restart changes
 * (no RELOADS in params.def) keeps RUNNING's value, tables included (copied,
 * their files not read again), as the listeners and the transports built at
 * start do. The tables of RELOADS parameters (alias_maps, virtual_*_maps,
 * transport_maps, ...) are read again: sessions and the queue manager both
 * take them from the new configuration (smtp/reload.h). */
struct config *config_load_pinned(const char *path, const struct config *running,
				  char **errors);
void config_free(struct config *cfg);
/* config_table_differs - parameter I (params.h order) is a table whose lines
 * differ between A and B, though its value may be the same (a file edited). */
bool config_table_differs(const struct config *a, const struct config *b, size_t i);

/* Print every parameter as "name = value" (postconf style). */
void config_print(const struct config *cfg, FILE *out);
/* config_print_param - parameter I (params.h order) as config_print shows it
 * (postconf NAME); with SET_ONLY only when the file sets it (postconf -n).
 * False when nothing was printed. */
bool config_print_param(const struct config *cfg, size_t i, bool set_only, FILE *out);
/* config_param_id - NAME's row in params.h order, or PARAM_COUNT. */
size_t config_param_id(const char *name);
/* config_closest_param - the parameter a misspelt NAME most likely means, or NULL. */
const char *config_closest_param(const char *name);
/* config_edit_distance - for "did you mean" hints (parameters, restrictions,
 * the command line's commands). */
size_t config_edit_distance(const char *a, const char *b);

/* Warnings about a configuration that works but is risky; one per line. */
char *config_warnings(const struct config *cfg);

/* Does any listener need a TLS certificate? */
bool config_needs_tls(const struct config *cfg);

/* Is ip in one of the n networks of list? */
bool config_in_networks(const struct cidr *list, size_t n, const struct rg_ip *ip);

/* Install and run (issue 12): true makes the defaults of queue_directory,
 * virtual_mailbox_base and data_directory /var/spool/relayguard,
 * /var/mail/vhosts and /var/lib/relayguard instead of ./var/...; set once,
 * before any config_load (main.c: when the binary is not in a build tree). */
void config_use_installed_paths(bool on);

/* Is ip in mynetworks? */
bool config_in_mynetworks(const struct config *cfg, const struct rg_ip *ip);

#endif
