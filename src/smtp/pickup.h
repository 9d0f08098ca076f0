/*
 * pickup - the local submission socket <queue_directory>/pickup that
 * `relayguard sendmail` (and a `sendmail` link) talks SMTP to.
 *
 * Owns: creating the socket (mode 0666; the queue directory gets o+x so
 * local users can reach it, but not list it: its subdirectories stay 0700),
 * and the peer's identity from the kernel (SO_PEERCRED uid -> user name, the
 * name looked up on a worker: getpwuid_r may ask LDAP or sssd for seconds).
 * The client is never trusted to say who it is. Who may submit: every local
 * user, as with sendmail; what a user may send as is the policy's business
 * (smtpd_sender_login_maps, policy.h).
 * Must not: speak SMTP (the session does, as an authenticated session).
 */
#ifndef RG_PICKUP_H
#define RG_PICKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PICKUP_SOCKET_NAME "pickup"
#define PICKUP_LOGIN_MAX 64

/* Bind and listen on <dirfd>/pickup (PATH names it in messages), replacing a
 * stale socket; returns the non-blocking listening descriptor or -1 with ERR. */
int pickup_listen(int dirfd, const char *path, char *err, size_t errlen);

/* Remove the socket at shutdown (only if it is a socket). */
void pickup_unlink(int dirfd);

struct pickup_peer {
	uid_t uid;
	char login[PICKUP_LOGIN_MAX]; /* the user name; "uid<N>" when it has none */
};

/* The connected peer's uid (SO_PEERCRED), at once: login is "uid<N>" until
 * pickup_lookup_start names it. False when the kernel cannot tell. */
bool pickup_peer(int fd, struct pickup_peer *out);

/* Look UID's user name up on a thread of W (getpwuid_r: a file read with
 * files NSS, a network round trip with LDAP or sssd; never on the loop).
 * DONE(arg, login) runs later on the loop with the name, or "uid<N>" when
 * there is none. One look-up runs at a time, the others wait in turn, so a
 * slow user database holds one thread of W, never all of them. */
struct workers;
struct pickup_lookup;
struct pickup_lookup *pickup_lookup_start(struct workers *w, uid_t uid,
					  void (*done)(void *arg, const char *login), void *arg);
/* The asker is gone: DONE will not run (a look-up already on its thread ends
 * there and is dropped). */
void pickup_lookup_cancel(struct pickup_lookup *l);

#endif
