/* test_hold.c: see test_hold.h. */
#include "test_hold.h"

#ifdef POPGATE_TEST_HOOKS

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST_HOLD_POLL_NS 10000000L   /* 10 ms */

void test_hold(const char *point, const char *name)
{
    const char *dir = getenv("POPGATE_TEST_HOLD_DIR");
    if (!dir || !dir[0] || strlen(point) > TEST_HOLD_NAME_MAX || strlen(name) > TEST_HOLD_NAME_MAX ||
        strchr(name, '/'))
        return;
    char hold[PATH_MAX], held[PATH_MAX];
    int n = snprintf(hold, sizeof hold, "%s/%s.%s.hold", dir, point, name);
    int m = snprintf(held, sizeof held, "%s/%s.%s.held", dir, point, name);
    if (n < 0 || (size_t)n >= sizeof hold || m < 0 || (size_t)m >= sizeof held || access(hold, F_OK) != 0)
        return;
    int fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    const struct timespec pause = { 0, TEST_HOLD_POLL_NS };
    for (long waited = 0; access(hold, F_OK) == 0 && waited < TEST_HOLD_MAX * 1000000000L;
         waited += TEST_HOLD_POLL_NS)
        nanosleep(&pause, NULL);
}

#else
/* ISO C wants something in a translation unit. */
typedef int test_hold_not_built;
#endif
