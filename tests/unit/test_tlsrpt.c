/*
 * test_tlsrpt.c - TLS-RPT (RFC 8460) pure parts, as tables: the rua= of the
 * _smtp._tls record, the counts and details, the report JSON, the gzip (read
 * back with zlib) and the report message's headers.
 */
#include "check.h"
#include "tlspol/tlsrpt.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

static const struct {
	int line;
	const char *txt;
	bool ok;
	const char *addr;
} rua_rows[] = {
	{__LINE__, "v=TLSRPTv1; rua=mailto:tls@example.com", true, "tls@example.com"},
	{__LINE__, "v=TLSRPTv1;rua=https://r.example/x,mailto:a@example.net", true, "a@example.net"},
	{__LINE__, "v=TLSRPTv1; rua=mailto:a@example.net, mailto:b@example.net", true,
	 "a@example.net"},
	{__LINE__, "v=TLSRPTv1; rua=https://r.example/x", false, NULL},
	{__LINE__, "v=TLSRPTv2; rua=mailto:a@example.net", false, NULL},
	{__LINE__, "rua=mailto:a@example.net", false, NULL},
	{__LINE__, "v=TLSRPTv1; rua=mailto:nobody", false, NULL},               /* no '@' */
	{__LINE__, "v=TLSRPTv1; rua=mailto:a@example.net>x", false, NULL},      /* no tricks */
	{__LINE__, "v=TLSRPTv1;xrua=mailto:evil@x.example; rua=mailto:a@example.net", true,
	 "a@example.net"},                                                        /* exact key */
	{__LINE__, "v=TLSRPTv1; ext=rua=mailto:evil@x.example", false, NULL},
};

static void test_rua(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(rua_rows); i++) {
		char addr[256] = "";
		bool ok = tlsrpt_rua_mailto(rua_rows[i].txt, addr, sizeof(addr));
		CHECK_AT(rua_rows[i].line, ok == rua_rows[i].ok, "\"%s\"", rua_rows[i].txt);
		if (ok && rua_rows[i].ok)
			CHECK_STR_AT(rua_rows[i].line, addr, rua_rows[i].addr, "address");
	}
}

static void test_report(void)
{
	struct tlsrpt *r = tlsrpt_new(0);
	const char *policy = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 600";
	tlsrpt_note(r, "Example.com", TLSRPT_STS, policy, "mx.example.com", NULL, NULL, NULL);
	tlsrpt_note(r, "example.com", TLSRPT_STS, policy, "mx.example.com",
		    "starttls-not-supported", "mx.example.com", "192.0.2.1");
	tlsrpt_note(r, "example.com", TLSRPT_STS, policy, "mx.example.com",
		    "starttls-not-supported", "mx.example.com", "192.0.2.1");
	time_t start;
	struct tlsrpt_domain *d = tlsrpt_take(r, 86400, &start);
	CHECK(d != NULL && d->next == NULL && start == 0 && d->ok == 1 && d->failed == 2 &&
	      d->n_details == 1 && d->details[0].count == 2, "one domain, counts folded");
	if (d == NULL) {
		tlsrpt_free(r);
		return;
	}
	struct tlsrpt_meta m = {"mx.example.org", "postmaster@mx.example.org", "1.1.sts@mx", 0, 86400};
	struct strbuf json;
	strbuf_init(&json);
	tlsrpt_json(d, &m, &json);
	CHECK_STR_AT(__LINE__, json.data,
		     "{\"organization-name\":\"mx.example.org\",\"date-range\":{\"start-datetime\":"
		     "\"1970-01-01T00:00:00Z\",\"end-datetime\":\"1970-01-02T00:00:00Z\"},"
		     "\"contact-info\":\"postmaster@mx.example.org\",\"report-id\":\"1.1.sts@mx\","
		     "\"policies\":[{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":["
		     "\"version: STSv1\",\"mode: enforce\",\"mx: mx.example.com\",\"max_age: 600\"],"
		     "\"policy-domain\":\"example.com\",\"mx-host\":[\"mx.example.com\"]},"
		     "\"summary\":{\"total-successful-session-count\":1,"
		     "\"total-failure-session-count\":2},\"failure-details\":[{\"result-type\":"
		     "\"starttls-not-supported\",\"receiving-ip\":\"192.0.2.1\","
		     "\"receiving-mx-hostname\":\"mx.example.com\",\"failed-session-count\":2}]}]}\n",
		     "report JSON");
	struct strbuf gz;
	strbuf_init(&gz);
	CHECK(tlsrpt_gzip(json.data, json.len, &gz) && gz.len > 18 &&
	      (unsigned char)gz.data[0] == 0x1f && (unsigned char)gz.data[1] == 0x8b, "gzip magic");
	char back[4096];
	z_stream z;
	memset(&z, 0, sizeof(z));
	inflateInit2(&z, 15 + 16);
	z.next_in = (unsigned char *)gz.data;
	z.avail_in = (uInt)gz.len;
	z.next_out = (unsigned char *)back;
	z.avail_out = sizeof(back) - 1;
	int rc = inflate(&z, Z_FINISH);
	back[sizeof(back) - 1 - z.avail_out] = '\0';
	inflateEnd(&z);
	CHECK(rc == Z_STREAM_END && strcmp(back, json.data) == 0, "gunzip gives the JSON back");
	struct strbuf msg;
	strbuf_init(&msg);
	tlsrpt_message("noreply@mx.example.org", "tls@example.com", "example.com", "mx.example.org",
		       "1.1.sts@mx", 86400, gz.data, gz.len, &msg);
	CHECK(strstr(msg.data, "\r\nSubject: Report Domain: example.com Submitter: mx.example.org "
		     "Report-ID: <1.1.sts@mx>\r\n") != NULL, "subject (RFC 8460 5.3)");
	CHECK(strstr(msg.data, "Content-Type: multipart/report; report-type=\"tlsrpt\"") != NULL &&
	      strstr(msg.data, "Content-Type: application/tlsrpt+gzip\r\n") != NULL &&
	      strstr(msg.data, "filename=\"mx.example.org!example.com!19700102.json.gz\"") != NULL,
	      "MIME structure");
	strbuf_free(&msg);
	strbuf_free(&gz);
	strbuf_free(&json);
	tlsrpt_domains_free(d);
	CHECK(tlsrpt_take(r, 100, &start) == NULL && start == 86400, "counts start again");
	tlsrpt_free(r);
}

int main(void)
{
	test_rua();
	test_report();
	return check_summary("tlsrpt");
}
