/*
 * test_statefile.c - the background writer of state files (tls-memory,
 * mta-sts, hijack-state): a write that failed is not forgotten, the next one
 * saves it; a link planted where the temporary file goes is not written through.
 */
#include "check.h"
#include "files.h"
#include "util/statefile.h"
#include "util/basedir.h"
#include "util/dirsync.h"

#include <sys/stat.h>

#include <event2/event.h>

static void snapshot(void *arg, struct strbuf *out)
{
	(void)arg;
	strbuf_puts(out, "state\n");
}

/* A link where NAME.tmp is made (whoever owns the directory put it there,
 * for root's command line to write through): the target keeps its bytes. */
static void check_planted_links(const char *dir, int dfd)
{
	static const struct {
		int line;
		bool hard;
	} rows[] = {{__LINE__, false}, {__LINE__, true}};
	char *victim = xasprintf("%s/victim", dir);
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		FILE *f = fopen(victim, "w");
		fputs("precious\n", f);
		fclose(f);
		int linked = rows[i].hard ? linkat(AT_FDCWD, victim, dfd, "lk.tmp", 0)
					  : symlinkat(victim, dfd, "lk.tmp");
		char err[300] = "";
		bool ok = statefile_write(dir, "lk", "state\n", 6, err, sizeof(err));
		struct strbuf v = read_at(AT_FDCWD, victim), st = read_at(dfd, "lk");
		CHECK_AT(rows[i].line, linked == 0 && ok, "written: %s", err);
		CHECK_STR_AT(rows[i].line, v.data ? v.data : "", "precious\n", "the link's target");
		CHECK_STR_AT(rows[i].line, st.data ? st.data : "", "state\n", "the state file");
		strbuf_free(&v);
		strbuf_free(&st);
		unlink(victim);
		unlinkat(dfd, "lk", 0);
	}
	free(victim);
}

int main(void)
{
	char dir[] = "/tmp/rg-statefile-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 2;
	struct event_base *base = event_base_new();
	struct statefile *sf = statefile_new(base, dir, "st", snapshot, NULL);
	int dfd = basedir_fd(dir);
	CHECK(mkdirat(dfd, "st", 0700) == 0, "a directory in the way: the rename fails");
	statefile_changed(sf);
	event_base_loop(base, EVLOOP_ONCE); /* the failed write is handed back */
	CHECK(unlinkat(dfd, "st", AT_REMOVEDIR) == 0, "the way is clear again");
	statefile_free(sf); /* saves what is still unsaved */
	struct strbuf sb = read_at(dfd, "st");
	CHECK_STR_AT(__LINE__, sb.data ? sb.data : "", "state\n", "the failed write retried");
	strbuf_free(&sb);
	unlinkat(dfd, "st", 0);
	check_planted_links(dir, dfd);
	event_base_free(base);
	basedir_close_all();
	dirsync_cleanup();
	rmdir(dir);
	return check_summary("statefile");
}
