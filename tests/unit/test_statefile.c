/*
 * test_statefile.c - the background writer of state files (tls-memory,
 * mta-sts): a write that failed is not forgotten, the next one saves it.
 */
#include "check.h"
#include "files.h"
#include "tlspol/statefile.h"
#include "util/basedir.h"
#include "util/dirsync.h"

#include <sys/stat.h>

#include <event2/event.h>

static void snapshot(void *arg, struct strbuf *out)
{
	(void)arg;
	strbuf_puts(out, "state\n");
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
	event_base_free(base);
	basedir_close_all();
	dirsync_cleanup();
	rmdir(dir);
	return check_summary("statefile");
}
