/*
 * tls_bench.c - a TLS load generator for relayguard's submission ports.
 *
 * DESCRIPTION
 *	Postfix's smtp-source speaks no TLS, so this small client measures what
 *	it cannot: full TLS handshakes per second on the implicit-TLS port
 *	(submissions, 465's role), and messages per second over
 *	EHLO, STARTTLS, EHLO, AUTH PLAIN, MAIL/RCPT/DATA on the submission port
 *	(587's role). N threads each run blocking sessions back to back until
 *	the shared job counter is used up.
 *
 *	handshake  connect, TLS handshake, read 220, QUIT, read 221, close.
 *	           One job = one connection. No session resumption unless
 *	           --resume (then each thread offers the ticket it got last).
 *	submit     connect, read 220, EHLO, STARTTLS, handshake, EHLO,
 *	           AUTH PLAIN <initial response>, then --messages transactions,
 *	           QUIT. One job = one session. Lock-step by default (one
 *	           command, one reply); --pipelining sends MAIL, RCPT and DATA
 *	           in one write and then reads three replies (RFC 2920), the
 *	           body and its '.' in another.
 *
 *	--quickack sets TCP_QUICKACK before every read, so this client never
 *	delays its ACKs. A diagnostic: if the server writes several small
 *	segments without TCP_NODELAY (say TLS 1.3 session tickets, then the 220
 *	greeting), Nagle holds the last one until the client's delayed ACK
 *	(about 40 ms on Linux); with --quickack that wait disappears, so the
 *	difference between the two runs is that stall.
 *
 *	Any reply code other than the expected one, any I/O or TLS failure and
 *	any timeout (--timeout seconds per read/write) counts as an error; the
 *	session is then abandoned and the thread takes the next job. The first
 *	few errors are printed.
 *
 *	Output (stdout) is "key=value" pairs on one line, for the driver
 *	script, plus the negotiated protocol and cipher of the first session.
 *	Latency figures are per job: connect until the 220 greeting has been
 *	read (what a user waits for) in handshake mode, the whole session in
 *	submit mode.
 *
 * BUILD
 *	cc -O2 -std=c17 -D_GNU_SOURCE bench/tls_bench.c -o tls_bench \
 *	   -lssl -lcrypto -pthread
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define MAX_ERRORS_SHOWN 5
#define LINE_MAX_LEN 2048
#define IOBUF 16384

enum mode { M_HANDSHAKE, M_SUBMIT };

struct opts {
	enum mode mode;
	const char *host;
	int port;
	int threads;
	long jobs;      /* handshakes, or sessions */
	int messages;   /* per session */
	int size;       /* body bytes per message */
	const char *user, *pass, *from, *to, *helo;
	bool resume, pipelining, quickack;
	int timeout;
};

/* Shared between threads. */
static struct opts opt;
static SSL_CTX *ctx;
static atomic_long next_job;
static atomic_long ok_jobs, ok_msgs, errors, resumed;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_errors[MAX_ERRORS_SHOWN][512];
static char tls_version[32], tls_cipher[96];
static char *message;       /* the DATA payload, dot-stuffing not needed */
static size_t message_len;

/* One connection: a socket, later an SSL on it, and a read buffer. */
struct conn {
	int fd;
	SSL *ssl;
	char buf[IOBUF];
	size_t have, pos;
	char err[400];
};

struct worker {
	pthread_t tid;
	int id;
	double *lat;     /* seconds, one per successful job */
	long nlat, caplat;
	SSL_SESSION *sess; /* --resume: the last ticket */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static void record_error(int worker, const char *what)
{
	long n = atomic_fetch_add(&errors, 1);
	if (n < MAX_ERRORS_SHOWN) {
		pthread_mutex_lock(&err_lock);
		snprintf(first_errors[n], sizeof(first_errors[n]), "thread %d: %s", worker, what);
		pthread_mutex_unlock(&err_lock);
	}
}

static const char *ssl_err_text(void)
{
	static _Thread_local char b[256];
	unsigned long e = ERR_get_error();
	if (e == 0)
		return errno ? strerror(errno) : "no OpenSSL error queued";
	ERR_error_string_n(e, b, sizeof(b));
	ERR_clear_error();
	return b;
}

static bool conn_open(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail(c, "socket: %s", strerror(errno));
		return false;
	}
	struct timeval tv = {.tv_sec = opt.timeout};
	int one = 1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
	if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) {
		fail(c, "bad address %s", opt.host);
		return false;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fail(c, "connect: %s", strerror(errno));
		return false;
	}
	return true;
}

static void conn_close(struct conn *c, bool clean)
{
	if (c->ssl != NULL) {
		if (clean)
			SSL_shutdown(c->ssl); /* send close_notify; do not wait for the peer's */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static bool conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		if (c->ssl != NULL) {
			size_t done = 0;
			errno = 0;
			if (SSL_write_ex(c->ssl, p, n, &done) != 1) {
				fail(c, "TLS write: %s", ssl_err_text());
				return false;
			}
			w = (ssize_t)done;
		} else {
			w = write(c->fd, p, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fail(c, "write: %s", w < 0 ? strerror(errno) : "nothing written");
				return false;
			}
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool conn_fill(struct conn *c)
{
	c->have = c->pos = 0;
	if (opt.quickack) { /* Linux clears it again after a while: set it before each read */
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
	}
	if (c->ssl != NULL) {
		size_t got = 0;
		errno = 0;
		if (SSL_read_ex(c->ssl, c->buf, sizeof(c->buf), &got) != 1) {
			int e = SSL_get_error(c->ssl, 0);
			fail(c, "TLS read: %s", e == SSL_ERROR_ZERO_RETURN ? "close_notify from server"
					       : e == SSL_ERROR_SYSCALL && errno == 0 ? "EOF"
					       : e == SSL_ERROR_SYSCALL && errno == EAGAIN ? "timeout"
					       : ssl_err_text());
			return false;
		}
		c->have = got;
		return true;
	}
	for (;;) {
		ssize_t r = read(c->fd, c->buf, sizeof(c->buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fail(c, "read: %s", r == 0 ? "EOF" : errno == EAGAIN ? "timeout" : strerror(errno));
			return false;
		}
		c->have = (size_t)r;
		return true;
	}
}

/* read_line - one reply line without CRLF; false on EOF, error or an overlong line. */
static bool read_line(struct conn *c, char *line, size_t cap)
{
	size_t n = 0;
	for (;;) {
		if (c->pos == c->have && !conn_fill(c))
			return false;
		char ch = c->buf[c->pos++];
		if (ch == '\n')
			break;
		if (n + 1 >= cap) {
			fail(c, "reply line longer than %zu bytes", cap);
			return false;
		}
		line[n++] = ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return true;
}

/* reply - read a whole (multi-line) reply; its code, or -1. The last line goes to LAST. */
static int reply(struct conn *c, char *last, size_t cap)
{
	for (;;) {
		if (!read_line(c, last, cap))
			return -1;
		if (strlen(last) < 3 || last[0] < '2' || last[0] > '5') {
			fail(c, "malformed reply line \"%.80s\"", last);
			return -1;
		}
		if (last[3] != '-')
			return atoi(last);
	}
}

/* expect - read a reply and check its code; WHAT names the command for the error. */
static bool expect(struct conn *c, int want, const char *what)
{
	char line[LINE_MAX_LEN];
	int code = reply(c, line, sizeof(line));
	if (code < 0) {
		char why[sizeof(c->err)];
		memcpy(why, c->err, sizeof(why));
		fail(c, "%s: no reply (%.300s)", what, why);
		return false;
	}
	if (code != want) {
		fail(c, "%s: expected %d, got \"%.300s\"", what, want, line);
		return false;
	}
	return true;
}

static bool cmd(struct conn *c, const char *text, int want)
{
	char line[512];
	snprintf(line, sizeof(line), "%s\r\n", text);
	return conn_write(c, line, strlen(line)) && expect(c, want, text);
}

static void note_tls(SSL *ssl)
{
	static atomic_bool noted;
	bool f = false;
	if (!atomic_compare_exchange_strong(&noted, &f, true))
		return;
	snprintf(tls_version, sizeof(tls_version), "%s", SSL_get_version(ssl));
	snprintf(tls_cipher, sizeof(tls_cipher), "%s", SSL_get_cipher_name(ssl));
}

static bool start_tls(struct worker *w, struct conn *c)
{
	if (c->pos != c->have) {
		fail(c, "server sent bytes after its 220 to STARTTLS, before the handshake");
		return false;
	}
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		fail(c, "SSL_new: %s", ssl_err_text());
		return false;
	}
	if (opt.resume && w->sess != NULL)
		SSL_set_session(c->ssl, w->sess);
	errno = 0;
	if (SSL_connect(c->ssl) != 1) {
		fail(c, "TLS handshake: %s", errno == EAGAIN ? "timeout" : ssl_err_text());
		return false;
	}
	if (SSL_session_reused(c->ssl))
		atomic_fetch_add(&resumed, 1);
	note_tls(c->ssl);
	return true;
}

/* keep_ticket - with --resume, the session to offer next time (TLS 1.3 tickets
 * arrive after the handshake, so call this after the first read). */
static void keep_ticket(struct worker *w, struct conn *c)
{
	if (!opt.resume)
		return;
	SSL_SESSION *s = SSL_get1_session(c->ssl);
	if (s == NULL)
		return;
	if (SSL_SESSION_is_resumable(s)) {
		SSL_SESSION_free(w->sess);
		w->sess = s;
	} else {
		SSL_SESSION_free(s);
	}
}

static void add_latency(struct worker *w, double t)
{
	if (w->nlat == w->caplat) {
		w->caplat = w->caplat ? w->caplat * 2 : 256;
		w->lat = realloc(w->lat, (size_t)w->caplat * sizeof(*w->lat));
		if (w->lat == NULL) {
			perror("realloc");
			exit(2);
		}
	}
	w->lat[w->nlat++] = t;
}

static bool job_handshake(struct worker *w, struct conn *c)
{
	double t0 = now();
	if (!conn_open(c) || !start_tls(w, c) || !expect(c, 220, "greeting"))
		return false;
	double t1 = now();
	keep_ticket(w, c);
	if (!cmd(c, "QUIT", 221))
		return false;
	add_latency(w, t1 - t0);
	return true;
}

static bool transaction(struct conn *c)
{
	char mail[320], rcpt[320];
	snprintf(mail, sizeof(mail), "MAIL FROM:<%s>", opt.from);
	snprintf(rcpt, sizeof(rcpt), "RCPT TO:<%s>", opt.to);
	if (opt.pipelining) {
		char batch[700];
		snprintf(batch, sizeof(batch), "%s\r\n%s\r\nDATA\r\n", mail, rcpt);
		if (!conn_write(c, batch, strlen(batch)) || !expect(c, 250, "MAIL FROM") ||
		    !expect(c, 250, "RCPT TO") || !expect(c, 354, "DATA"))
			return false;
	} else if (!cmd(c, mail, 250) || !cmd(c, rcpt, 250) || !cmd(c, "DATA", 354)) {
		return false;
	}
	return conn_write(c, message, message_len) && expect(c, 250, "end of DATA");
}

static bool job_submit(struct worker *w, struct conn *c)
{
	char ehlo[300], auth[1200];
	double t0 = now();
	snprintf(ehlo, sizeof(ehlo), "EHLO %s", opt.helo);
	if (!conn_open(c) || !expect(c, 220, "greeting") || !cmd(c, ehlo, 250) ||
	    !cmd(c, "STARTTLS", 220) || !start_tls(w, c) || !cmd(c, ehlo, 250))
		return false;
	keep_ticket(w, c);
	/* AUTH PLAIN with an initial response: base64("\0user\0pass") */
	unsigned char raw[600];
	size_t ul = strlen(opt.user), pl = strlen(opt.pass);
	if (ul + pl + 2 > sizeof(raw)) {
		fail(c, "user name or password too long");
		return false;
	}
	raw[0] = '\0';
	memcpy(raw + 1, opt.user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, opt.pass, pl);
	memcpy(auth, "AUTH PLAIN ", 11);
	int n = EVP_EncodeBlock((unsigned char *)auth + 11, raw, (int)(ul + pl + 2));
	memcpy(auth + 11 + n, "\r\n", 3);
	/* the label leaves the credentials out of error messages */
	if (!conn_write(c, auth, strlen(auth)) || !expect(c, 235, "AUTH PLAIN"))
		return false;
	for (int i = 0; i < opt.messages; i++) {
		if (!transaction(c))
			return false;
		atomic_fetch_add(&ok_msgs, 1);
	}
	if (!cmd(c, "QUIT", 221))
		return false;
	add_latency(w, now() - t0);
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct conn *c = malloc(sizeof(*c));
	if (c == NULL) {
		perror("malloc");
		exit(2);
	}
	while (atomic_fetch_add(&next_job, 1) < opt.jobs) {
		bool ok = opt.mode == M_HANDSHAKE ? job_handshake(w, c) : job_submit(w, c);
		if (ok)
			atomic_fetch_add(&ok_jobs, 1);
		else
			record_error(w->id, c->err);
		ERR_clear_error();
		conn_close(c, ok);
	}
	free(c);
	SSL_SESSION_free(w->sess);
	return NULL;
}

/* build_message - headers and a body of about opt.size bytes in 76-character lines. */
static void build_message(void)
{
	size_t cap = (size_t)opt.size + 2048;
	message = malloc(cap);
	if (message == NULL) {
		perror("malloc");
		exit(2);
	}
	int n = snprintf(message, cap,
			 "From: <%s>\r\nTo: <%s>\r\nSubject: tls_bench\r\n"
			 "Message-ID: <tls-bench@client.example.org>\r\n"
			 "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
			 opt.from, opt.to);
	size_t len = (size_t)n, body = 0;
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	while (body < (size_t)opt.size) {
		size_t line = (size_t)opt.size - body >= 78 ? 76 : (size_t)opt.size - body;
		if (line < 1)
			line = 1;
		for (size_t i = 0; i < line; i++)
			message[len++] = alphabet[(body + i) % (sizeof(alphabet) - 1)];
		message[len++] = '\r';
		message[len++] = '\n';
		body += line + 2;
	}
	memcpy(message + len, ".\r\n", 3);
	message_len = len + 3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: tls_bench handshake|submit --port N [--host 127.0.0.1] [--threads 20]\n"
		"         [--count N] [--messages M] [--size BYTES] [--user U --pass P]\n"
		"         [--from ADDR] [--to ADDR] [--helo NAME] [--resume] [--pipelining]\n"
		"         [--quickack] [--timeout SECONDS]\n"
		"  handshake: --count connections to the implicit-TLS port\n"
		"  submit:    --count sessions of --messages messages each (STARTTLS + AUTH PLAIN)\n");
	exit(2);
}

static long num(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "tls_bench: bad number \"%s\" (want %ld..%ld)\n", s, lo, hi);
		exit(2);
	}
	return v;
}

static void parse(int argc, char **argv)
{
	opt = (struct opts){.host = "127.0.0.1", .threads = 20, .jobs = 1000, .messages = 10,
			    .size = 4096, .from = "alice@example.com", .to = "alice@example.com",
			    .helo = "client.example.org", .timeout = 30};
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "handshake") == 0)
		opt.mode = M_HANDSHAKE;
	else if (strcmp(argv[1], "submit") == 0)
		opt.mode = M_SUBMIT;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--resume") == 0) {
			opt.resume = true;
			continue;
		}
		if (strcmp(a, "--pipelining") == 0) {
			opt.pipelining = true;
			continue;
		}
		if (strcmp(a, "--quickack") == 0) {
			opt.quickack = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--host") == 0)
			opt.host = v;
		else if (strcmp(a, "--port") == 0)
			opt.port = (int)num(v, 1, 65535);
		else if (strcmp(a, "--threads") == 0)
			opt.threads = (int)num(v, 1, 1000);
		else if (strcmp(a, "--count") == 0)
			opt.jobs = num(v, 1, 100000000);
		else if (strcmp(a, "--messages") == 0)
			opt.messages = (int)num(v, 0, 1000000);
		else if (strcmp(a, "--size") == 0)
			opt.size = (int)num(v, 0, 100000000);
		else if (strcmp(a, "--timeout") == 0)
			opt.timeout = (int)num(v, 1, 3600);
		else if (strcmp(a, "--user") == 0)
			opt.user = v;
		else if (strcmp(a, "--pass") == 0)
			opt.pass = v;
		else if (strcmp(a, "--from") == 0)
			opt.from = v;
		else if (strcmp(a, "--to") == 0)
			opt.to = v;
		else if (strcmp(a, "--helo") == 0)
			opt.helo = v;
		else
			usage();
	}
	if (opt.port == 0 || (opt.mode == M_SUBMIT && (opt.user == NULL || opt.pass == NULL)))
		usage();
}

static void make_ctx(void)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		fprintf(stderr, "tls_bench: SSL_CTX_new: %s\n", ssl_err_text());
		exit(2);
	}
	/* the server's certificate is self-signed: we measure, we do not verify */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* resumption only ever through the per-thread session of --resume */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	make_ctx();
	if (opt.mode == M_SUBMIT)
		build_message();
	struct worker *w = calloc((size_t)opt.threads, sizeof(*w));
	if (w == NULL) {
		perror("calloc");
		return 2;
	}
	double t0 = now();
	for (int i = 0; i < opt.threads; i++) {
		w[i].id = i;
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0) {
			perror("pthread_create");
			return 2;
		}
	}
	for (int i = 0; i < opt.threads; i++)
		pthread_join(w[i].tid, NULL);
	double wall = now() - t0;

	long nlat = 0;
	for (int i = 0; i < opt.threads; i++)
		nlat += w[i].nlat;
	double *all = malloc((size_t)(nlat ? nlat : 1) * sizeof(*all));
	long k = 0;
	for (int i = 0; i < opt.threads; i++) {
		if (w[i].nlat)
			memcpy(all + k, w[i].lat, (size_t)w[i].nlat * sizeof(*all));
		k += w[i].nlat;
		free(w[i].lat);
	}
	qsort(all, (size_t)nlat, sizeof(*all), cmp_double);
	double p50 = nlat ? all[nlat / 2] : 0, p99 = nlat ? all[(nlat * 99) / 100] : 0,
	       max = nlat ? all[nlat - 1] : 0;
	free(all);
	free(w);

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu_user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	double cpu_sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;

	long ok = atomic_load(&ok_jobs), msgs = atomic_load(&ok_msgs), errs = atomic_load(&errors);
	printf("mode=%s threads=%d jobs=%ld ok=%ld errors=%ld wall=%.3f rate=%.1f",
	       opt.mode == M_HANDSHAKE ? "handshake" : "submit", opt.threads, opt.jobs, ok, errs,
	       wall, (double)ok / wall);
	if (opt.mode == M_SUBMIT)
		printf(" messages=%ld msg_rate=%.1f pipelining=%s", msgs, (double)msgs / wall,
		       opt.pipelining ? "yes" : "no");
	printf(" resumed=%ld lat_p50_ms=%.2f lat_p99_ms=%.2f lat_max_ms=%.2f"
	       " client_cpu_user=%.2f client_cpu_sys=%.2f tls_version=%s tls_cipher=%s\n",
	       atomic_load(&resumed), p50 * 1e3, p99 * 1e3, max * 1e3, cpu_user, cpu_sys,
	       tls_version[0] ? tls_version : "-", tls_cipher[0] ? tls_cipher : "-");
	for (long i = 0; i < errs && i < MAX_ERRORS_SHOWN; i++)
		printf("error: %s\n", first_errors[i]);
	SSL_CTX_free(ctx);
	free(message);
	return errs ? 1 : 0;
}
