/*
 * rate - event rates per key over a sliding window, in bounded memory.
 *
 * Owns: one counter per key (a client's address key or a login, prefixed
 * by the caller with what is counted: "c:", "m:", ...), the window
 * arithmetic and eviction. The window slides: the count of the current
 * fixed window plus the previous window's count weighted by the share of
 * it still inside the sliding window (no burst of 2x at a window edge, as a
 * plain fixed window allows, and two numbers per key instead of a time
 * stamp per event). Events refused by rate_take are not counted, so a
 * client that slows down below the limit gets through again. The table
 * holds at most max_entries keys; a newcomer to a full table pushes out
 * the least recently seen key (whose count starts again from zero).
 * Must not: do I/O, read the clock (the caller passes the time, so tests
 * can) or know which limit is configured for what.
 */
#ifndef RG_ABUSE_RATE_H
#define RG_ABUSE_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define RATE_KEY_MAX 300 /* longer keys are cut (a login is at most 255 bytes) */

struct rate;

/* One sliding window (what each key of a table holds; hijack.c keeps its own). */
struct rate_window {
	time_t start;          /* of the current fixed window, a multiple of its length */
	unsigned cur, prev;    /* events in it and in the one before */
};
/* rate_window_count - W's sliding count at NOW over WINDOW seconds (W moved on to NOW). */
unsigned rate_window_count(struct rate_window *w, unsigned window, time_t now);
/* rate_window_add - N more events in W at NOW (saturating). */
void rate_window_add(struct rate_window *w, unsigned window, unsigned n, time_t now);

/* A table counting over WINDOW seconds (at least 1), at most MAX_ENTRIES keys. */
struct rate *rate_new(unsigned window, size_t max_entries);
void rate_free(struct rate *r);

/* rate_take - N events for KEY at NOW, if that keeps its count within LIMIT
 * (0: no limit). True: counted. False: refused, not counted. *COUNT (may be
 * NULL) gets the count the decision was made on, before these N. */
bool rate_take(struct rate *r, const char *key, unsigned n, unsigned limit, time_t now,
	       unsigned *count);
/* rate_count - KEY's count at NOW (0 when unknown); counts nothing. */
unsigned rate_count(struct rate *r, const char *key, time_t now);
/* rate_merge - other hosts say KEY had COUNT events (ours included) in the
 * fixed window that began at START: KEY's count there becomes at least that.
 * Nothing happens when KEY is unknown or has moved on to another window. */
void rate_merge(struct rate *r, const char *key, time_t start, unsigned count);
/* rate_window_start - the fixed window NOW is in (what rate_merge's START means). */
time_t rate_window_start(const struct rate *r, time_t now);
/* rate_forget - drop KEY (an operator lifted its limit). True if it was there. */
bool rate_forget(struct rate *r, const char *key);

/* Keys tracked now, and keys pushed out by newcomers so far. */
size_t rate_size(const struct rate *r);
unsigned long rate_evictions(const struct rate *r);

#endif
