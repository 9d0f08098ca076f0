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
 * (smtpd_dmarc_enforce), the signing table (dkim_signing_table, swapped by a
 * reload) and whose mail is signed for which domain (a login only for a
 * domain it owns; mynetworks hosts for any).
 * Must not: parse or judge anything itself (msgauth/ does), decide the SPF
 * restrictions (policy does, from tx->spf), or block the loop.
 */
#ifndef RG_SESSION_MSGAUTH_H
#define RG_SESSION_MSGAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct dns;

struct msgauth_signing;

/* At start-up, before privileges are dropped: read dkim_signing_table (its
 * keys too; errors are "file:line: ..."). False with err filled. */
bool session_msgauth_load(const struct config *cfg, char *err, size_t errlen);
/* Register the hooks (session_hooks_set) with the server's resolver. They
 * stay registered when smtpd_message_authentication is off: each session
 * reads that from its own configuration, so a reload turns it on or off. */
void session_msgauth_start(const struct config *cfg, struct dns *dns);
/* Unregister them and free the signing table. */
void session_msgauth_stop(void);

/* SIGHUP, on the reload worker: the dkim_signing_table of NEXT, read in full
 * (every key) when it names another file than the running one or its file
 * changed (inode, size, modification time); *out stays NULL when not, and the
 * running keys are not read again. Keys are read with the privileges serve
 * runs with (mail_owner), not root's. False with err ("file:line: ...") when
 * the new table is broken: refuse the whole reload. Must not run while
 * session_msgauth_apply() or _stop() can (one reload at a time). */
bool session_msgauth_prepare(const struct config *next, struct msgauth_signing **out, char *err,
			     size_t errlen);
/* On the loop, when that reload is applied: transactions from MAIL on sign
 * with next (taken; NULL: the running table stays); those already past MAIL
 * finish with the table they started with. */
void session_msgauth_apply(struct msgauth_signing *next);
/* A prepared table of a reload that was refused (NULL: nothing). */
void session_msgauth_discard(struct msgauth_signing *next);

#endif
