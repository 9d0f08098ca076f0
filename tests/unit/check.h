/*
 * check.h - a header-only harness for relayguard's table-driven unit tests.
 *
 *	CHECK(cond, fmt, ...)            fails with the caller's file:line
 *	CHECK_AT(line, cond, fmt, ...)   fails with a table row's line instead,
 *	                                 so a FAIL points at the row, not the loop
 *	CHECK_STR_AT(line, got, want, what)  exact string equality
 *	check_summary("suite")           prints "<suite>: N passed, N failed" as
 *	                                 the last line; returns the exit status
 *
 * Everything is static inline: each test is one translation unit, and unused
 * helpers must not trip -Wunused-function.
 */
#ifndef RG_CHECK_H
#define RG_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static unsigned check_passed, check_failed;

static inline void check_at(bool ok, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline void check_at(bool ok, const char *file, int line, const char *fmt, ...)
{
	if (ok) {
		check_passed++;
		return;
	}
	check_failed++;
	/* only the basename: rows are found by line, and paths differ per build */
	const char *slash = strrchr(file, '/');
	printf("FAIL %s:%d: ", slash ? slash + 1 : file, line);
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

#define CHECK(cond, ...) check_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_AT(line, cond, ...) check_at(!!(cond), __FILE__, (line), __VA_ARGS__)

/* A NULL on either side only equals NULL, so a missing value is a failure. */
static inline bool check_str_eq(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static inline void check_str_at(const char *file, int line, const char *got,
				const char *want, const char *what)
{
	check_at(check_str_eq(got, want), file, line, "%s: got \"%s\", want \"%s\"", what,
		 got ? got : "(null)", want ? want : "(null)");
}

#define CHECK_STR_AT(line, got, want, what) check_str_at(__FILE__, (line), (got), (want), (what))

static inline int check_summary(const char *suite)
{
	printf("%s: %u passed, %u failed\n", suite, check_passed, check_failed);
	fflush(stdout);
	return check_failed == 0 ? 0 : 1;
}

#endif
