/*
 * session_msgauth - SPF, DKIM and DMARC in `relayguard serve` (issue 9): the
 * session hooks (session.h) that run the msgauth modules for each message.
 *
 * Owns: when the checks apply (smtpd_message_authentication; loopback clients
 * without dns_servers are not checked, like their names), SPF at MAIL on the
 * loop, DKIM key and DMARC record lookups on the loop between two end-of-data
 * stages, DKIM verification, DMARC evaluation and DKIM signing on the worker
 * pool, the Received-SPF: and Authentication-Results: fields, dropping forged
 * Authentication-Results: that claim our authserv-id, the DMARC disposition
 * (smtpd_dmarc_enforce) and the signing table (dkim_signing_table).
 * Must not: parse or judge anything itself (msgauth/ does), decide the SPF
 * restrictions (policy does, from tx->spf), or block the loop.
 */
#ifndef RG_SESSION_MSGAUTH_H
#define RG_SESSION_MSGAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct dns;

/* At start-up, before privileges are dropped: read dkim_signing_table (its
 * keys too; errors are "file:line: ..."). False with err filled. */
bool session_msgauth_load(const struct config *cfg, char *err, size_t errlen);
/* Register the hooks (session_hooks_set) with the server's resolver. */
void session_msgauth_start(const struct config *cfg, struct dns *dns);
/* Unregister them and free the signing table. */
void session_msgauth_stop(void);

#endif
