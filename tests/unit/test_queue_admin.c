/*
 * test_queue_admin.c - queue id syntax and the listing formats (mailq text
 * and JSON) that `relayguard queue list` and the control socket print.
 *
 * Times are shown in local time: TZ is set to UTC so the rows are exact.
 */
#include "check.h"
#include "queue/queue_admin.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
	int line;
	const char *id;
	bool valid;
} id_rows[] = {
	{__LINE__, "0000018C2A3B4C5D", true},
	{__LINE__, "0000018C2A3B4C5D0123", true},      /* QUEUE_ID_LEN */
	{__LINE__, "0000018C2A3B4C5D01234", false},    /* one too many */
	{__LINE__, "0000018C2A3B4C5", false},          /* one too few */
	{__LINE__, "0000018c2a3b4c5d", false},         /* ids are upper case */
	{__LINE__, "0000018C2A3B4C5G", false},
	{__LINE__, "../deferred/0000", false},
	{__LINE__, "0000018C2A3B4C5D ", false},
	{__LINE__, "", false},
};

/* msg - a queued message: sender, arrival, recipients "local@domain" with a
 * leading '+' for done ones. */
static struct queue_msg *msg(const char *id, const char *sender, uint64_t size,
			     const char *const *rcpts)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	rg_strlcpy(m->id, id, sizeof(m->id));
	m->arrival = 1796392800; /* Fri Dec  4 14:00:00 2026 UTC */
	m->sender = xstrdup(sender);
	m->size = size;
	for (; *rcpts; rcpts++) {
		const char *r = **rcpts == '+' ? *rcpts + 1 : *rcpts;
		char *local = xstrdup(r), *at = strchr(local, '@');
		*at = '\0';
		queue_msg_add_rcpt(m, r, local, at + 1, ADDR_CLASS_REMOTE);
		m->rcpts[m->n_rcpts - 1].done = **rcpts == '+';
		free(local);
	}
	return m;
}

#define HDR "-Queue ID-           --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
#define PAD "                                                   " /* 51: the address column */

static const struct {
	int line;
	const char *sender;
	uint64_t size;
	enum queue_state state;
	const char *rcpts[4];
	const char *text, *json;
} list_rows[] = {
	{__LINE__, "alice@example.com", 1234, QUEUE_STATE_DEFERRED,
	 {"bob@example.net", "+carol@example.org", "dave@example.net", NULL},
	 HDR "0000018C2A3B4C5D         1234 Fri Dec  4 14:00:00  alice@example.com\n"
	 PAD "bob@example.net\n" PAD "dave@example.net\n\n-- 2 Kbytes in 1 Request.\n",
	 "[\n{\"id\":\"0000018C2A3B4C5D\",\"queue\":\"deferred\",\"size\":1234,"
	 "\"arrival\":1796392800,\"arrival_iso\":\"2026-12-04T14:00:00Z\","
	 "\"sender\":\"alice@example.com\",\"held\":false,\"delivering\":false,"
	 "\"next_try\":null,\"recipients\":["
	 "{\"address\":\"bob@example.net\",\"done\":false,\"last_reply\":null},"
	 "{\"address\":\"carol@example.org\",\"done\":true,\"last_reply\":null},"
	 "{\"address\":\"dave@example.net\",\"done\":false,\"last_reply\":null}]}\n]\n"},
	{__LINE__, "", 1, QUEUE_STATE_HELD, {"bob@example.net", NULL},
	 HDR "0000018C2A3B4C5D!           1 Fri Dec  4 14:00:00  MAILER-DAEMON\n"
	 PAD "bob@example.net\n\n-- 1 Kbytes in 1 Request.\n",
	 NULL},
	{__LINE__, "evil\x1b[2J\"@example.com", 0, QUEUE_STATE_ACTIVE, {"bob@example.net", NULL},
	 HDR "0000018C2A3B4C5D*           0 Fri Dec  4 14:00:00  evil?[2J\"@example.com\n"
	 PAD "bob@example.net\n\n-- 0 Kbytes in 1 Request.\n",
	 "[\n{\"id\":\"0000018C2A3B4C5D\",\"queue\":\"active\",\"size\":0,"
	 "\"arrival\":1796392800,\"arrival_iso\":\"2026-12-04T14:00:00Z\","
	 "\"sender\":\"evil\\u001b[2J\\\"@example.com\",\"held\":false,\"delivering\":true,"
	 "\"next_try\":null,\"recipients\":["
	 "{\"address\":\"bob@example.net\",\"done\":false,\"last_reply\":null}]}\n]\n"},
};

static void check_ids(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(id_rows); i++)
		CHECK_AT(id_rows[i].line, queue_id_valid(id_rows[i].id) == id_rows[i].valid,
			 "queue_id_valid(\"%s\")", id_rows[i].id);
}

/* listing - one message through begin/add/end. */
static char *listing(struct queue_msg *m, enum queue_state st, bool json)
{
	struct strbuf out;
	struct queue_listing l;
	strbuf_init(&out);
	queue_listing_begin(&l, &out, json);
	if (m != NULL)
		queue_listing_add(&l, m, st);
	queue_listing_end(&l);
	return strbuf_steal(&out);
}

static void check_listings(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(list_rows); i++) {
		struct queue_msg *m = msg("0000018C2A3B4C5D", list_rows[i].sender,
					  list_rows[i].size, list_rows[i].rcpts);
		char *text = listing(m, list_rows[i].state, false);
		char *json = listing(m, list_rows[i].state, true);
		CHECK_STR_AT(list_rows[i].line, text, list_rows[i].text, "text");
		if (list_rows[i].json)
			CHECK_STR_AT(list_rows[i].line, json, list_rows[i].json, "json");
		free(text);
		free(json);
		queue_msg_free(m);
	}
	char *empty = listing(NULL, QUEUE_STATE_DEFERRED, false);
	CHECK_STR_AT(__LINE__, empty, "Mail queue is empty\n", "empty text");
	free(empty);
	empty = listing(NULL, QUEUE_STATE_DEFERRED, true);
	CHECK_STR_AT(__LINE__, empty, "[]\n", "empty json");
	free(empty);
}

static void check_states(void)
{
	CHECK(queue_state_of("hold/0000018C2A3B4C5D") == QUEUE_STATE_HELD, "hold/");
	CHECK(queue_state_of("active/0000018C2A3B4C5D") == QUEUE_STATE_ACTIVE, "active/");
	CHECK(queue_state_of("deferred/0000018C2A3B4C5D") == QUEUE_STATE_DEFERRED, "deferred/");
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	check_ids();
	check_listings();
	check_states();
	return check_summary("queue_admin");
}
