/*
 * lru - an intrusive list of entries ordered by when they were last seen,
 * for tables that push out the least recently seen entry when full
 * (auth/lockout, abuse/rate, abuse/hijack).
 *
 * Owns: the order only. An entry embeds a struct lru_node; lru_entry()
 * gives the entry back from its node.
 * Must not: allocate, free or look up entries (the table that embeds the
 * nodes does, and unlinks a node before freeing its entry).
 */
#ifndef RG_LRU_H
#define RG_LRU_H

#include <stdbool.h>
#include <stddef.h>

struct lru_node {
	struct lru_node *newer, *older;
};

struct lru {
	struct lru_node *newest, *oldest; /* NULL, NULL: empty */
};

/* lru_linked - is n on l? */
static inline bool lru_linked(const struct lru *l, const struct lru_node *n)
{
	return n->newer != NULL || n->older != NULL || l->oldest == n;
}

/* lru_unlink - take n (which is on l) off l. */
static inline void lru_unlink(struct lru *l, struct lru_node *n)
{
	*(n->newer ? &n->newer->older : &l->newest) = n->older;
	*(n->older ? &n->older->newer : &l->oldest) = n->newer;
	n->newer = n->older = NULL;
}

/* lru_touch - n was just seen: it goes (or moves) to the newest end. */
static inline void lru_touch(struct lru *l, struct lru_node *n)
{
	if (l->newest == n)
		return;
	if (lru_linked(l, n))
		lru_unlink(l, n);
	n->older = l->newest;
	if (l->newest)
		l->newest->newer = n;
	l->newest = n;
	if (l->oldest == NULL)
		l->oldest = n;
}

/* lru_owner - the entry holding n at offset, or NULL for NULL; like
 * strchr, it takes a const node and gives a plain pointer. */
static inline void *lru_owner(const struct lru_node *n, size_t offset)
{
	return n == NULL ? NULL : (void *)((const char *)n - offset);
}

/* lru_entry - the TYPE whose MEMBER is node n (NULL for NULL). */
#define lru_entry(n, type, member) ((type *)lru_owner((n), offsetof(type, member)))

#endif
