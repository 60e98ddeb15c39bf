/* test_hold: a pause the integration tests use to make a race certain
 * instead of likely (tests/integration/test_oauth.py: one login's app
 * password hash outlasting another login's whole token refresh).
 *
 * Only in the test build: the ASan build (build/asan/, make integration)
 * compiles with POPGATE_TEST_HOOKS; the release build (./popgate, the
 * package) gets an empty inline function and reads no environment.
 *
 * test_hold(point, name), with POPGATE_TEST_HOLD_DIR set to a directory:
 * when DIR/<point>.<name>.hold exists, it creates DIR/<point>.<name>.held
 * (the test's sign that the code got there) and waits until the .hold file
 * is removed, at most TEST_HOLD_MAX seconds. Without the variable or the
 * file it returns at once.
 *
 * It blocks the calling thread: call it only where blocking is allowed
 * (a work_pool worker, work_pool.h), never on the event loop. point and
 * name are at most TEST_HOLD_NAME_MAX octets each, else no hold. */
#ifndef POPGATE_TEST_HOLD_H
#define POPGATE_TEST_HOLD_H

#define TEST_HOLD_MAX      60
#define TEST_HOLD_NAME_MAX 64

#ifdef POPGATE_TEST_HOOKS
void test_hold(const char *point, const char *name);
#else
static inline void test_hold(const char *point, const char *name)
{
    (void)point;
    (void)name;
}
#endif

#endif
