/* tap.h: a small TAP producer for the C unit tests, after git's test-lib.h.
 * Each check prints "ok N - what" or "not ok N - what" with the location and
 * both values; tap_done() prints the plan and gives the exit status. */
#ifndef TGPT_TAP_H
#define TGPT_TAP_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tap_count, tap_failed;

static inline int tap_result(int ok, const char *file, int line, const char *what)
{
	++tap_count;
	printf("%sok %d - %s\n", ok ? "" : "not ", tap_count, what);
	if (!ok) {
		++tap_failed;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return ok;
}

#define ok(cond, what) tap_result(!!(cond), __FILE__, __LINE__, (what))

#define is_int(got, want, what) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	if (!tap_result(g_ == w_, __FILE__, __LINE__, (what))) \
		printf("#   got %lld, want %lld\n", g_, w_); \
} while (0)

#define is_u64(got, want, what) do { \
	uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want); \
	if (!tap_result(g_ == w_, __FILE__, __LINE__, (what))) \
		printf("#   got %" PRIu64 ", want %" PRIu64 "\n", g_, w_); \
} while (0)

#define is_str(got, want, what) do { \
	const char *g_ = (got), *w_ = (want); \
	int same_ = g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_; \
	if (!tap_result(same_, __FILE__, __LINE__, (what))) \
		printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

/* |got - want| <= tol */
#define is_near(got, want, tol, what) do { \
	double g_ = (got), w_ = (want); \
	if (!tap_result(fabs(g_ - w_) <= (tol), __FILE__, __LINE__, (what))) \
		printf("#   got %.9g, want %.9g (tolerance %.3g)\n", g_, w_, (double)(tol)); \
} while (0)

#define is_mem(got, want, n, what) \
	ok(memcmp((got), (want), (n)) == 0, (what))

/* A scratch directory for a test's files: tap_tmpdir("t-NAME") makes
 * $TMPDIR/t-NAME.XXXXXX (0, or -1 after a "Bail out!" line), tap_path(file)
 * names a file in it (four calls' results live at once), tap_rmdir removes
 * it once the test has unlinked its files. */
static char tap_dir[256];

static inline int tap_tmpdir(const char *name)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(tap_dir, sizeof tap_dir, "%s/%s.XXXXXX", tmp ? tmp : "/tmp", name);
	if (mkdtemp(tap_dir))
		return 0;
	printf("Bail out! mkdtemp %s\n", tap_dir);
	return -1;
}

static inline const char *tap_path(const char *file)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tap_dir, file);
	return buf[k];
}

static inline void tap_rmdir(void)
{
	rmdir(tap_dir);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	if (tap_failed)
		printf("# %d of %d failed\n", tap_failed, tap_count);
	return tap_failed ? 1 : 0;
}

#endif
