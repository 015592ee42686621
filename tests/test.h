/* test.h — the smallest test harness: checks count, failures print file:line, and
 * test_finish() returns the exit status (non-zero when anything failed). */
#ifndef DR_TEST_H
#define DR_TEST_H

#include <math.h>
#include <stdio.h>

static int test_checks_run, test_checks_failed;

#define TEST_CHECK(cond, ...)                                                    \
    do {                                                                         \
        test_checks_run++;                                                       \
        if (!(cond)) {                                                           \
            test_checks_failed++;                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

/* |a - b| <= tol * max(1, |a|, |b|)-style checks are spelled out by each test. */
static inline double test_rel_err(double a, double b) {
    double d = fabs(a - b), s = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return s > 0 ? d / s : d;
}

static inline int test_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks_run, test_checks_failed);
    return test_checks_failed ? 1 : 0;
}

#endif
