/*
 * hijack - does a login's mail look like a stolen account's?
 *
 * Owns: per login, the recipient domains it has written to before (a
 * bounded FIFO of hashes), sliding windows of never-before-seen domains and
 * of messages, the verdict, and the suspension that follows (until a time
 * or until an operator clears it). A login trips when, within the window,
 *	- new_domains distinct recipient domains it never wrote to before, or
 *	- messages messages with at least one recipient in a new domain (mail
 *	  only to known domains never counts: a newsletter), or
 *	- one message with wide_message recipients or more, at least half of
 *	  them in domains new to it,
 * are reached (each 0: off). A stolen account sprays mail at many
 * unrelated domains; a user's own burst (a newsletter, a reply-all) goes
 * to domains it has written to before. Domains are learnt only from mail
 * that was not held: a spam run never teaches its targets as "known".
 * Logins are at most max_logins; a newcomer pushes out the least recently
 * seen login that is not suspended. Must not: do I/O or read the clock.
 */
#ifndef RG_ABUSE_HIJACK_H
#define RG_ABUSE_HIJACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct hijack_limits {
	unsigned window;        /* seconds, for new_domains and messages */
	unsigned new_domains, messages, wide_message;
	unsigned suspend_time;  /* seconds a tripped login stays suspended */
	size_t known_domains;   /* domains remembered per login */
	size_t max_logins;
};

#define HIJACK_WHY_MAX 160
#define HIJACK_KNOWN_DOMAINS 500 /* per login: 4 KB; 40 MB if all 10,000 are full */
#define HIJACK_MAX_LOGINS 10000

struct hijack;

struct hijack *hijack_new(const struct hijack_limits *lim);
void hijack_free(struct hijack *h);

/* hijack_message - a message from LOGIN to recipients in DOMAINS (N of them,
 * repeats allowed) at NOW. True: the login is suspended (it tripped just now,
 * or was already): hold the message; WHY gets the reason. False: deliver it. */
bool hijack_message(struct hijack *h, const char *login, const char *const *domains, size_t n,
		    time_t now, char *why, size_t len);
/* hijack_unknown - the indices (into DOMAINS, first of each) of the distinct
 * domains LOGIN has not written to, in OUT (room for N); their number. For
 * asking the other hosts about them (call it before hijack_message, which learns). */
size_t hijack_unknown(const struct hijack *h, const char *login, const char *const *domains,
		      size_t n, size_t *out);
/* hijack_suspended - is LOGIN suspended at NOW? WHY, *UNTIL (may be NULL) say why, till when. */
bool hijack_suspended(struct hijack *h, const char *login, time_t now, char *why, size_t len,
		      time_t *until);
/* hijack_clear - lift LOGIN's suspension and restart its windows (the operator
 * has looked); what it learnt stays. True if it was suspended. */
bool hijack_clear(struct hijack *h, const char *login);

/* hijack_suspend - another host suspended LOGIN until UNTIL because of WHY. */
void hijack_suspend(struct hijack *h, const char *login, time_t now, time_t until,
		    const char *why);

typedef void hijack_each_fn(const char *login, time_t until, const char *why, void *arg);
/* hijack_each - FN for every login suspended at NOW; returns how many. */
size_t hijack_each(struct hijack *h, time_t now, hijack_each_fn *fn, void *arg);

/* hijack_learn - LOGIN has written to DOMAINS (N) elsewhere (another host
 * learnt them: shared_state): they are not new to it here either. */
void hijack_learn(struct hijack *h, const char *login, const char *const *domains, size_t n,
		  time_t now);
/* hijack_learnt - domains learnt so far, by any login: when it grows, there is
 * something new to save. */
unsigned long hijack_learnt(const struct hijack *h);

/* What a restart keeps (hijack_state.h reads and writes it): LOGIN's
 * suspension (UNTIL 0: none; WHY) and the hashes of its known domains,
 * oldest first. */
typedef void hijack_login_fn(const char *login, time_t until, const char *why,
			     const uint64_t *known, size_t n_known, void *arg);
/* hijack_each_login - FN for every login suspended at NOW, and for the
 * MAX_KNOWN (0: all) most recently seen that know a domain, least recently
 * seen first; returns how many. Only those MAX_KNOWN come with their known
 * domains (an older suspended login with none). */
size_t hijack_each_login(const struct hijack *h, time_t now, size_t max_known,
			 hijack_login_fn *fn, void *arg);
/* hijack_restore - LOGIN knew the domains of KNOWN (N hashes as
 * hijack_each_login gave them, oldest first). */
void hijack_restore(struct hijack *h, const char *login, const uint64_t *known, size_t n,
		    time_t now);

#endif
