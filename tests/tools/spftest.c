/*
 * spftest.c - run one SPF check against zone data given on stdin, served by
 * an in-process stub resolver (tests/integration/test_spf_suite.py).
 *
 * Input, one item a line (HEX: the bytes in hex, "-" for none; every owner
 * name is HEX too, since the suite has names with spaces; a NUL becomes \1):
 *	TXT name HEX | A name addr | AAAA name addr | MX name pref host |
 *	PTR name target | CNAME name target | TIMEOUT name | EXISTS name
 *	CHECK ip mailfrom-HEX helo-HEX [helo]     ("helo": the HELO identity)
 * Zone lines come first; each CHECK runs one check against them (several
 * CHECK lines: several checks, one scenario per process).
 * A name in no line is NXDOMAIN; a TIMEOUT name times out for every type it
 * has no records of. CNAMEs are followed. Answers are delivered from a queue
 * after query() has returned, as a real resolver does.
 * Output per check: result=, explanation=, problem=, header=, queries=N, end.
 */
#include "msgauth/spf.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RR 4096

struct rr {
	char type[8], name[300], data[2048];
	unsigned pref;
};

static struct rr zone[MAX_RR];
static size_t n_zone;

struct pending {
	enum spf_qtype type;
	char name[300];
	spf_dns_fn fn;
	void *arg;
	bool cancelled;
	struct pending *next;
};

static struct pending *head, *tail;
static unsigned queries;

static void *stub_query(void *rctx, enum spf_qtype type, const char *name, spf_dns_fn fn,
			void *arg)
{
	(void)rctx;
	struct pending *p = xcalloc(1, sizeof(*p));
	p->type = type;
	rg_strlcpy(p->name, name, sizeof(p->name));
	p->fn = fn;
	p->arg = arg;
	if (tail != NULL)
		tail->next = p;
	else
		head = p;
	tail = p;
	queries++;
	return p;
}

static void stub_cancel(void *rctx, void *h)
{
	(void)rctx;
	((struct pending *)h)->cancelled = true;
}

static const char *type_name(enum spf_qtype t)
{
	static const char *const n[] = {"TXT", "A", "AAAA", "MX", "PTR"};
	return n[t];
}

static bool same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && rg_strncasecmp(a, b, la) == 0;
}

/* answer - the zone's answer for (type, name), following CNAMEs. */
static void answer(const struct pending *p, struct spf_dns_answer *a, const char **names,
		   struct rg_ip *addrs)
{
	const char *name = p->name;
	memset(a, 0, sizeof(*a));
	a->names = names;
	a->addrs = addrs;
	for (int hops = 0; hops < 8; hops++) {
		bool exists = false, timeout = false, alias = false;
		for (size_t i = 0; i < n_zone; i++) {
			if (!same_name(zone[i].name, name))
				continue;
			exists = true;
			timeout |= strcmp(zone[i].type, "TIMEOUT") == 0;
			if (strcmp(zone[i].type, "CNAME") == 0) {
				name = zone[i].data;
				alias = true;
				break;
			}
			if (strcmp(zone[i].type, type_name(p->type)) != 0 || a->n >= 64)
				continue;
			if (p->type == SPF_Q_A || p->type == SPF_Q_AAAA) {
				if (ip_parse(zone[i].data, &addrs[a->n]))
					a->n++;
			} else {
				names[a->n++] = zone[i].data;
			}
		}
		if (alias)
			continue;
		a->rcode = !exists ? SPF_DNS_NXDOMAIN : timeout && a->n == 0 ? SPF_DNS_TIMEOUT
									  : SPF_DNS_NOERROR;
		return;
	}
	a->rcode = SPF_DNS_SERVFAIL; /* a CNAME loop */
}

static void deliver_all(void)
{
	while (head != NULL) {
		struct pending *p = head;
		head = p->next;
		if (head == NULL)
			tail = NULL;
		if (!p->cancelled) {
			struct spf_dns_answer a;
			const char *names[64];
			struct rg_ip addrs[64];
			answer(p, &a, names, addrs);
			p->fn(p->arg, &a);
		}
		free(p);
	}
}

/* unhex - "-" is empty; false on bad input. */
static bool unhex(const char *h, char *out, size_t len)
{
	size_t n = strcmp(h, "-") == 0 ? 0 : strlen(h);
	if (n % 2 != 0 || n / 2 >= len)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = v == 0 ? '\1' : (char)v; /* a NUL stays a control byte */
	}
	out[n / 2] = '\0';
	return true;
}

static void show(const char *key, const char *v)
{
	printf("%s=", key);
	for (; *v != '\0'; v++)
		putchar((unsigned char)*v >= 0x20 && (unsigned char)*v < 0x7f ? *v : '?');
	putchar('\n');
}

static bool finished;

static void on_done(void *arg, const struct spf_outcome *o)
{
	char hdr[2048];
	(void)arg;
	show("result", spf_result_name(o->result));
	show("explanation", o->explanation);
	show("problem", o->problem);
	spf_received_header(o, hdr, sizeof(hdr));
	printf("header=");
	for (const char *c = hdr; *c; c++)
		fputs(*c == '\r' ? "\\r" : *c == '\n' ? "\\n" : (char[]){*c, 0}, stdout);
	putchar('\n');
	finished = true;
}

static int check(char *args)
{
	char ip_s[80] = "", mf_h[2100] = "", helo_h[2100] = "", mode[8] = "";
	char mf[1100], helo[1100];
	struct rg_ip ip;
	if (sscanf(args, "%79s %2099s %2099s %7s", ip_s, mf_h, helo_h, mode) < 3 ||
	    !ip_parse(ip_s, &ip) || !unhex(mf_h, mf, sizeof(mf)) || !unhex(helo_h, helo, sizeof(helo))) {
		fprintf(stderr, "spftest: bad CHECK line\n");
		return 64;
	}
	static const struct spf_resolver stub = {stub_query, stub_cancel};
	if (strcmp(mode, "helo") == 0)
		spf_helo_check_start(&stub, NULL, &ip, helo, "receiver.example", on_done, NULL);
	else
		spf_check_start(&stub, NULL, &ip, mf, helo, "receiver.example", on_done, NULL);
	deliver_all();
	printf("queries=%u\n", queries);
	queries = 0;
	bool done = finished;
	finished = false;
	return done ? 0 : 1;
}

static bool zone_line(char *line)
{
	struct rr *r = &zone[n_zone];
	char data[4200] = "", name[700];
	int k = sscanf(line, "%7s %699s %4199s %299s", r->type, name, data, r->data);
	if (k < 2 || n_zone >= MAX_RR || !unhex(name, r->name, sizeof(r->name)))
		return false;
	if (strcmp(r->type, "TXT") == 0)
		return k == 3 && unhex(data, r->data, sizeof(r->data)) && ++n_zone;
	if (strcmp(r->type, "MX") == 0) {
		r->pref = (unsigned)atoi(data);
		return k == 4 && ++n_zone;
	}
	if (k == 3)
		rg_strlcpy(r->data, data, sizeof(r->data));
	n_zone++;
	return true;
}

int main(void)
{
	char line[8192];
	int rc = 64, checks = 0;
	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (strncmp(line, "CHECK ", 6) == 0) {
			rc = check(line + 6);
			printf("end\n");
			fflush(stdout);
			if (rc != 0)
				return rc;
			checks++;
			continue;
		}
		if (!zone_line(line)) {
			fprintf(stderr, "spftest: bad line: %s\n", line);
			return 64;
		}
	}
	if (checks == 0)
		fprintf(stderr, "spftest: no CHECK line\n");
	return checks > 0 ? 0 : 64;
}
