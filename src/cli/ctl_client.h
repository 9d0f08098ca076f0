/*
 * ctl_client - the command line's side of the control socket (control.h):
 * one request to the running server, and what to tell the operator when it
 * does not answer.
 *
 * Owns: connecting (through /proc when the path is too long for a socket
 * address), the reply's bounds and time limit, and splitting off its final
 * "ok"/"error ..." line.
 * Must not: know what any command means (queue_cmd.c, tlsmem_cmd.c do).
 */
#ifndef RG_CTL_CLIENT_H
#define RG_CTL_CLIENT_H

#include <stddef.h>

#include "util/util.h"

enum ctl_result {
	CTL_OK,     /* reply holds the answer */
	CTL_FAILED, /* the server refused: err says why */
	CTL_ABSENT, /* no server listens */
	CTL_DENIED, /* not allowed to use the socket */
	CTL_BROKEN, /* no complete answer: err says why */
};

/* One request line to the server of queue directory qdir; the reply (less
 * its final status line) is appended to reply. */
enum ctl_result ctl_request(const char *qdir, const char *request, struct strbuf *reply,
			    char *err, size_t errlen);
/* Tell the operator about a result other than CTL_OK; returns exit status 1. */
int ctl_say_failure(const char *qdir, enum ctl_result r, const char *err);

#endif
