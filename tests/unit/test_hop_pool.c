/*
 * test_hop_pool.c - the SMTP and LMTP transports' destinations (qmgr/hop_pool.h).
 *
 * Table: a script of requests queued for destinations, slots taken and
 * released, and a stop; each row says what the transport sees: which
 * request each hop_next hands out ("-": none) and which requests stop gives
 * back untried ("d<n>"). No connection is opened: those parts are the
 * integration tests' (test_outbound, test_lmtp).
 */
#include "check.h"
#include "qmgr/hop_pool.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

static const struct hop_row {
	int line;
	unsigned limit;   /* slots per destination */
	const char *ops;  /* "wA" queue, "nA" next, "rA" release a slot, "s." stop */
	const char *seen;
} hop_rows[] = {
	{__LINE__, 2, "wAwAwAnAnAnA", "1 2 -"},           /* the third waits for a slot */
	{__LINE__, 1, "wAwAnAnArAnA", "1 - 2"},           /* a released slot is taken again */
	{__LINE__, 1, "wAwAwAnArAnArAnA", "1 2 3"},       /* oldest first */
	{__LINE__, 1, "wAwBnAnBnA", "1 2 -"},             /* slots are per destination */
	{__LINE__, 1, "nA", "-"},                          /* nothing waiting */
	{__LINE__, 0, "wAnA", "-"},                        /* no slots at all */
	{__LINE__, 2, "wAwAs.nA", "d1 d2 -"},             /* stop: untried, nothing after */
	{__LINE__, 1, "wBs.nB", "d1 -"},
	{__LINE__, 1, "wAnAwAs.rAnA", "1 d2 -"},          /* the running one is not given back */
};

struct run {
	char seen[128];
	struct delivery d[16];
	size_t n;
};

/* note - one more word of what the transport saw: prefix and request number. */
static void note(struct run *r, const char *prefix, const struct delivery *d)
{
	size_t len = strlen(r->seen);
	if (d == NULL)
		snprintf(r->seen + len, sizeof(r->seen) - len, "%s-", len ? " " : "");
	else
		snprintf(r->seen + len, sizeof(r->seen) - len, "%s%s%zu", len ? " " : "", prefix,
			 (size_t)(d - r->d) + 1);
}

static void on_done(struct delivery *d)
{
	struct run *r = d->owner;
	note(r, "d", d);
}

static void run_row(const struct hop_row *row)
{
	struct hop_pool *p = hop_pool_new(NULL, 0, 0);
	struct run r;
	memset(&r, 0, sizeof(r));
	for (const char *op = row->ops; op[0] && op[1]; op += 2) {
		char key[2] = {op[1], '\0'};
		struct hop_dest *dest = hop_dest_get(p, key);
		if (op[0] == 'w' && r.n < RG_ARRAY_LEN(r.d)) {
			struct delivery *d = &r.d[r.n++];
			d->done = on_done;
			d->owner = &r;
			hop_wait(dest, d);
		} else if (op[0] == 'n') {
			note(&r, "", hop_next(dest, row->limit));
		} else if (op[0] == 'r') {
			hop_release(dest, NULL, NULL, NULL);
		} else if (op[0] == 's') {
			hop_pool_stop(p);
		}
	}
	CHECK_STR_AT(row->line, r.seen, row->seen, row->ops);
	hop_pool_free(p);
}

/* A transport's own destination embeds a hop_dest first; one per key. */
struct big_dest {
	struct hop_dest hop;
	long extra;
};

static void check_dests(void)
{
	struct hop_pool *p = hop_pool_new(NULL, sizeof(struct big_dest), 0);
	struct big_dest *a = (struct big_dest *)hop_dest_get(p, "smtp:example.com");
	struct big_dest *b = (struct big_dest *)hop_dest_get(p, "smtp:example.net");
	CHECK(a != b && a->extra == 0 && b->extra == 0, "two zeroed destinations");
	a->extra = 42;
	CHECK((struct big_dest *)hop_dest_get(p, "smtp:example.com") == a && a->extra == 42,
	      "the same key gives the same destination");
	CHECK(strcmp(a->hop.key, "smtp:example.com") == 0 && a->hop.pool == p, "key and pool");
	hop_pool_free(p);
}

int main(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(hop_rows); i++)
		run_row(&hop_rows[i]);
	check_dests();
	return check_summary("hop_pool");
}
