/* tests/check.h — the CHECK macro of the test programs that count their
 * checks themselves (no cmocka): a failed check prints "FAIL: <message>"
 * and counts; main() returns non-zero when g_failed > 0. */
#ifndef SX_TESTS_CHECK_H
#define SX_TESTS_CHECK_H

#include <stdio.h>

static int g_failed, g_passed;

#define CHECK(cond, ...)                  \
    do {                                  \
        if (cond) {                       \
            g_passed++;                   \
        } else {                          \
            g_failed++;                   \
            printf("FAIL: " __VA_ARGS__); \
            printf("\n");                 \
        }                                 \
    } while (0)

#endif
