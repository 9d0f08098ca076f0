/*
 * test_dane.c - the pure parts of DANE (RFC 7672): TLSA records read out of
 * raw DNS messages (bounds-checked) and the AD bit, as tables; and TXT
 * records (MTA-STS) read the same way.
 */
#include "check.h"
#include "dns/answer.h"
#include "util/util.h"

#include <string.h>

/* A DNS response header, one question (a.test TLSA), then answer records. */
static size_t message(unsigned char *m, unsigned flags2, unsigned an, const unsigned char *rrs,
		      size_t rrlen)
{
	static const unsigned char head[] = {0x12, 0x34, 0x81, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
					     1, 'a', 4, 't', 'e', 's', 't', 0, 0, 52, 0, 1};
	memcpy(m, head, sizeof(head));
	m[3] = (unsigned char)flags2;
	m[7] = (unsigned char)an;
	memcpy(m + sizeof(head), rrs, rrlen);
	return sizeof(head) + rrlen;
}

/* rr: a pointer to the question name, type, class IN, TTL 300, rdata. */
#define RR(type, rdlen) 0xc0, 12, 0, (type), 0, 1, 0, 0, 1, 44, 0, (rdlen)

static const unsigned char tlsa_3_1_1[] = {RR(52, 7), 3, 1, 1, 0xde, 0xad, 0xbe, 0xef};
static const unsigned char two[] = {RR(52, 4), 2, 0, 1, 0xaa, RR(5, 2), 0xc0, 12,
				    RR(52, 5), 3, 0, 2, 0xbb, 0xcc};
static const unsigned char short_rdata[] = {RR(52, 3), 3, 1, 1};
static const unsigned char truncated[] = {RR(52, 9), 3, 1, 1, 0xde};

static const struct {
	int line;
	const unsigned char *rrs;
	size_t rrlen;
	unsigned an, flags2;
	size_t want, skipped;
	unsigned usage0, len0;
	bool ad;
} rows[] = {
	{__LINE__, tlsa_3_1_1, sizeof(tlsa_3_1_1), 1, 0xa0, 1, 0, 3, 4, true},
	{__LINE__, tlsa_3_1_1, sizeof(tlsa_3_1_1), 1, 0x80, 1, 0, 3, 4, false},
	{__LINE__, two, sizeof(two), 3, 0xa0, 2, 0, 2, 1, true}, /* a CNAME among them */
	{__LINE__, short_rdata, sizeof(short_rdata), 1, 0xa0, 0, 1, 0, 0, true},
	{__LINE__, truncated, sizeof(truncated), 1, 0xa0, 0, 0, 0, 0, true},
	{__LINE__, tlsa_3_1_1, sizeof(tlsa_3_1_1), 2, 0xa0, 1, 0, 3, 4, true}, /* count lies */
};

/* TXT: two character-strings joined; a control byte; a string past the rdata. */
static const unsigned char txt_two[] = {RR(16, 17), 8, 'v', '=', 'S', 'T', 'S', 'v', '1', ';',
					 7, ' ', 'i', 'd', '=', '4', '2', ';'};
static const unsigned char txt_ctl[] = {RR(16, 3), 2, 'a', 0x01};
static const unsigned char txt_over[] = {RR(16, 3), 5, 'a', 'b'};

static void test_txt(void)
{
	static const struct {
		int line;
		const unsigned char *rrs;
		size_t rrlen;
		size_t want, skipped;
		const char *first;
	} txt_rows[] = {
		{__LINE__, txt_two, sizeof(txt_two), 1, 0, "v=STSv1; id=42;"},
		{__LINE__, txt_ctl, sizeof(txt_ctl), 0, 1, NULL},
		{__LINE__, txt_over, sizeof(txt_over), 0, 1, NULL},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(txt_rows); i++) {
		unsigned char m[512];
		size_t len = message(m, 0x80, 1, txt_rows[i].rrs, txt_rows[i].rrlen);
		char out[2][DNS_TXT_LEN];
		size_t skipped = 99;
		size_t n = dns_txt_parse(m, len, out, 2, &skipped);
		CHECK_AT(txt_rows[i].line, n == txt_rows[i].want && skipped == txt_rows[i].skipped,
			 "got %zu TXT, %zu skipped", n, skipped);
		if (n > 0)
			CHECK_STR_AT(txt_rows[i].line, out[0], txt_rows[i].first, "joined strings");
	}
}

/* A full-certificate record (3 0 0) of 2100 bytes and 10 records in one
 * answer: all kept, none skipped (a skipped one could be the usable one). */
static void test_big_and_many(void)
{
	static unsigned char m[4096];
	static const unsigned char head[] = {0x12, 0x34, 0x81, 0xa0, 0, 1, 0, 11, 0, 0, 0, 0,
					     1, 'a', 4, 't', 'e', 's', 't', 0, 0, 52, 0, 1};
	memcpy(m, head, sizeof(head));
	size_t len = sizeof(head);
	const unsigned char big[] = {RR(52, 0), 3, 0, 0};
	memcpy(m + len, big, sizeof(big));
	m[len + 10] = 2103 >> 8, m[len + 11] = 2103 & 0xff;
	len += sizeof(big);
	memset(m + len, 0xab, 2100);
	len += 2100;
	for (int i = 0; i < 10; i++, len += sizeof(tlsa_3_1_1))
		memcpy(m + len, tlsa_3_1_1, sizeof(tlsa_3_1_1));
	struct dns_tlsa out[DNS_TLSA_BOUND(sizeof(m))];
	size_t skipped = 99;
	size_t n = dns_tlsa_parse(m, len, out, DNS_TLSA_BOUND(len), &skipped);
	CHECK(n == 11 && skipped == 0, "big and many: got %zu records, %zu skipped", n, skipped);
	CHECK(n > 0 && out[0].len == 2100 && out[0].data[2099] == 0xab, "the big record whole");
	dns_tlsa_free(out, n);
}

int main(void)
{
	test_txt();
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		unsigned char m[512];
		size_t len = message(m, rows[i].flags2, rows[i].an, rows[i].rrs, rows[i].rrlen);
		struct dns_tlsa out[4];
		size_t skipped = 99;
		size_t n = dns_tlsa_parse(m, len, out, 4, &skipped);
		CHECK_AT(rows[i].line, n == rows[i].want && skipped == rows[i].skipped,
			 "got %zu records, %zu skipped", n, skipped);
		if (n > 0)
			CHECK_AT(rows[i].line, out[0].usage == rows[i].usage0 &&
				 out[0].len == rows[i].len0, "first record %u/%zu", out[0].usage,
				 out[0].len);
		struct dns_msg_info info;
		bool scanned = dns_msg_scan(m, len, &info);
		CHECK_AT(rows[i].line, !scanned || info.ad == rows[i].ad, "AD bit");
		dns_tlsa_free(out, n);
	}
	test_big_and_many();
	size_t skipped;
	CHECK(dns_tlsa_parse(NULL, 0, NULL, 0, &skipped) == 0, "no message");
	unsigned char m[512];
	size_t len = message(m, 0xa0, 1, tlsa_3_1_1, sizeof(tlsa_3_1_1));
	struct dns_tlsa one[1];
	CHECK(dns_tlsa_parse(m, len, one, 0, &skipped) == 0 && skipped == 1, "max 0: skipped");
	return check_summary("dane");
}
