/*
 * test_lru.c - the last-seen list (util/lru.h).
 *
 * Table: a script of touches and unlinks on five entries, each row followed
 * by the order the list must then hold, read from newest to oldest and back
 * from oldest to newest (both links must agree).
 */
#include "check.h"
#include "util/lru.h"
#include "util/util.h"

#include <string.h>

struct item {
	char name;
	struct lru_node lru; /* not first: lru_entry must undo the offset */
};

static const struct lru_row {
	int line;
	const char *ops;   /* "+a": touch a; "-a": unlink a */
	const char *order; /* newest first; "": empty */
} lru_rows[] = {
	{__LINE__, "", ""},
	{__LINE__, "+a", "a"},
	{__LINE__, "+a+b+c", "cba"},
	{__LINE__, "+a+b+c+a", "acb"},          /* the oldest moves to the front */
	{__LINE__, "+a+b+c+b", "bca"},          /* a middle one moves to the front */
	{__LINE__, "+a+b+c+c", "cba"},          /* the newest stays */
	{__LINE__, "+a+b+c-b", "ca"},
	{__LINE__, "+a+b+c-a", "cb"},           /* the oldest goes: the next is oldest */
	{__LINE__, "+a+b+c-c", "ba"},           /* the newest goes */
	{__LINE__, "+a-a", ""},
	{__LINE__, "+a-a+a", "a"},              /* unlinked, then back */
	{__LINE__, "+a+b-a-b+b+a", "ab"},
	{__LINE__, "+a+b+c+d+e-c+a-e+c", "cadb"},
};

/* order - the list's names newest first; "?..." when the two directions disagree. */
static void order(const struct lru *l, char *out, size_t len)
{
	char back[16] = "";
	size_t n = 0, m = 0;
	for (const struct item *it = lru_entry(l->newest, struct item, lru); it && n + 1 < len;
	     it = lru_entry(it->lru.older, struct item, lru))
		out[n++] = it->name;
	out[n] = '\0';
	for (const struct item *it = lru_entry(l->oldest, struct item, lru);
	     it && m + 1 < sizeof(back); it = lru_entry(it->lru.newer, struct item, lru))
		back[m++] = it->name;
	for (size_t i = 0; i < m / 2; i++) {
		char c = back[i];
		back[i] = back[m - 1 - i];
		back[m - 1 - i] = c;
	}
	back[m] = '\0';
	if (strcmp(out, back) != 0)
		rg_strlcpy(out, "? the two directions disagree", len);
}

static void run_row(const struct lru_row *r)
{
	struct item items[5];
	struct lru l = {NULL, NULL};
	memset(items, 0, sizeof(items));
	for (size_t i = 0; i < 5; i++)
		items[i].name = (char)('a' + i);
	for (const char *p = r->ops; p[0] && p[1]; p += 2) {
		struct lru_node *n = &items[p[1] - 'a'].lru;
		if (p[0] == '+')
			lru_touch(&l, n);
		else
			lru_unlink(&l, n);
	}
	char got[64];
	order(&l, got, sizeof(got));
	CHECK_STR_AT(r->line, got, r->order, r->ops);
	for (size_t i = 0; i < 5; i++)
		CHECK_AT(r->line, lru_linked(&l, &items[i].lru) == (strchr(r->order, items[i].name) != NULL),
			 "%s: lru_linked(%c)", r->ops, items[i].name);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(lru_rows) / sizeof(lru_rows[0]); i++)
		run_row(&lru_rows[i]);
	CHECK(lru_entry((struct lru_node *)NULL, struct item, lru) == NULL,
	      "lru_entry(NULL) is NULL");
	return check_summary("lru");
}
