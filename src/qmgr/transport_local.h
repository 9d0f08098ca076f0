/*
 * transport_local - the local transport (our own Maildirs) behind the
 * transport interface.
 *
 * Owns: batching local delivery requests onto a pool of delivery threads.
 * Must not: decide retries or touch queue files (the queue manager does).
 */
#ifndef RG_TRANSPORT_LOCAL_H
#define RG_TRANSPORT_LOCAL_H

#include "config/config.h"
#include "qmgr/transport.h"

struct event_base;

struct transport *transport_local_new(struct event_base *base, const struct config *cfg);

#endif
