/*
 * from - the RFC 5322 From: field, reduced to what DMARC needs: its author
 * domains.
 *
 * Owns: the syntax of a From: field value (mailbox-list with display names,
 * quoted strings, nested comments, angle addresses, groups, obsolete routes
 * and empty list elements) and the classification of the result into one
 * named outcome: exactly one author domain, no address, several different
 * domains, an address without a usable domain, or unparseable. These are
 * distinct on purpose: folding "several" or "garbage" into "the first
 * address" is the OpenDMARC CVE-2019-16378 bug (DMARC checked against one
 * domain while the reader sees another).
 * Must not: unfold or find header fields (the header splitter does), look
 * anything up, or allocate: the caller owns all storage; input is bounded.
 */
#ifndef RG_MSGAUTH_FROM_H
#define RG_MSGAUTH_FROM_H

#include <stddef.h>

#define FROM_VALUE_MAX 16384  /* longer field values are refused as syntax */
#define FROM_DOMAIN_MAX 253   /* a DNS name, without a trailing dot */
#define FROM_DOMAINS_MAX 8    /* distinct domains kept (more are counted) */
#define FROM_COMMENT_DEPTH 16 /* nested comments deeper than this: syntax */
#define FROM_LOCAL_MAX 130    /* a local part as written (64 octets, quoted) */

enum from_status {
	FROM_OK,               /* one or more mailboxes, all in one domain */
	FROM_EMPTY,            /* no mailbox at all ("", "undisclosed:;") */
	FROM_MULTIPLE_DOMAINS, /* mailboxes in two or more different domains */
	FROM_NO_DOMAIN,        /* a mailbox without a DNS domain (bare local
				* part, address literal, bad domain syntax) */
	FROM_SYNTAX,           /* not a mailbox-list at all */
};

struct from_result {
	enum from_status status;
	size_t mailboxes;  /* mailboxes seen (also past FROM_DOMAINS_MAX) */
	size_t ndomains;   /* distinct domains seen */
	/* distinct domains, lower case, first FROM_DOMAINS_MAX; domain[0] is
	 * the author domain when status == FROM_OK */
	char domain[FROM_DOMAINS_MAX][FROM_DOMAIN_MAX + 1];
	char detail[96];   /* what was wrong, for the log */
	/* the first mailbox's local part as written (one dot-atom or one quoted
	 * string); "" when it was several words (obsolete syntax) or longer than
	 * FROM_LOCAL_MAX: with domain[0], who the author is (DKIM signing asks
	 * whether the login owns that address) */
	char local[FROM_LOCAL_MAX + 1];
};

/* from_parse - classify the From: field value value[0..len) (unfolded or
 * not: CR, LF, SP and HT are all folding white space here). Returns
 * r->status. NUL and other control bytes are syntax errors. */
enum from_status from_parse(const char *value, size_t len, struct from_result *r);

/* from_status_name - "ok", "empty", "multiple-domains", ... for logs. */
const char *from_status_name(enum from_status s);

#endif
