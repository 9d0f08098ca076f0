/*
 * test_lmtp.c - the address an LMTP recipient is sent as: the resolved
 * local part and domain, quoted when the local part is not a dot-atom, and
 * refused when it holds a byte that would end or break the command.
 */
#include "check.h"
#include "qmgr/transport_lmtp.h"
#include "util/util.h"

struct rcpt_row {
	int line;
	const char *local, *domain;
	size_t outlen;
	bool ok;
	const char *want;
};

static const struct rcpt_row rcpt_rows[] = {
	{__LINE__, "alice", "example.test", 300, true, "alice@example.test"},
	{__LINE__, "first.last", "example.test", 300, true, "first.last@example.test"},
	{__LINE__, "a+tag", "example.test", 300, true, "a+tag@example.test"},
	{__LINE__, "o'hara", "example.test", 300, true, "o'hara@example.test"},
	/* not a dot-atom: quoted, with \ before " and \ */
	{__LINE__, "john doe", "example.test", 300, true, "\"john doe\"@example.test"},
	{__LINE__, ".lead", "example.test", 300, true, "\".lead\"@example.test"},
	{__LINE__, "a..b", "example.test", 300, true, "\"a..b\"@example.test"},
	{__LINE__, "trail.", "example.test", 300, true, "\"trail.\"@example.test"},
	{__LINE__, "say\"hi\\", "example.test", 300, true, "\"say\\\"hi\\\\\"@example.test"},
	{__LINE__, "a@b", "example.test", 300, true, "\"a@b\"@example.test"},
	{__LINE__, "a<b>", "example.test", 300, true, "\"a<b>\"@example.test"},
	/* bytes that would end the command line: refused */
	{__LINE__, "a\r\nRSET", "example.test", 300, false, NULL},
	{__LINE__, "a\tb", "example.test", 300, false, NULL},
	{__LINE__, "a\x7f", "example.test", 300, false, NULL},
	/* empty parts and a buffer too small */
	{__LINE__, "", "example.test", 300, false, NULL},
	{__LINE__, "alice", "", 300, false, NULL},
	{__LINE__, "alice", "example.test", 18, false, NULL},
	{__LINE__, "alice", "example.test", 19, true, "alice@example.test"},
};

static void test_rcpt_address(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(rcpt_rows); i++) {
		const struct rcpt_row *r = &rcpt_rows[i];
		char out[300] = "";
		bool ok = lmtp_rcpt_address(r->local, r->domain, out, r->outlen);
		CHECK_AT(r->line, ok == r->ok, "\"%s\": ok %d, want %d", r->local, ok, r->ok);
		if (ok && r->ok)
			CHECK_STR_AT(r->line, out, r->want, "address");
	}
}

int main(void)
{
	test_rcpt_address();
	return check_summary("lmtp");
}
