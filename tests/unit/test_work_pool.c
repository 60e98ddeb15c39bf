/* Tests for io/work_pool.c: real Argon2id derivations (the job the pool is
 * for) run off the loop while a 10 ms loop timer keeps ticking; done runs on
 * the loop thread once per job; the queue bound refuses the job past it;
 * cancelling a waiting job skips its work, a running one still ends with
 * done(cancelled); freeing the pool delivers done(cancelled) to the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <cmocka.h>
#include <ev.h>

#include "app_password.h"
#include "work_pool.h"

static struct ev_loop *loop;
static pthread_t loop_thread;
static unsigned ticks;

static int setup(void **state)
{
    (void)state;
    loop = ev_loop_new(EVFLAG_AUTO);
    loop_thread = pthread_self();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ev_loop_destroy(loop);
    return 0;
}

static void stop_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    ticks++;
}

/* Run the loop until *flag or 20 s. */
static void run_until(const unsigned *count, unsigned want)
{
    ev_timer guard;
    ev_timer_init(&guard, stop_cb, 20.0, 0.0);
    ev_timer_start(loop, &guard);
    while (*count < want && ev_is_active(&guard))
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
}

/* ---- Argon2id jobs ------------------------------------------------------------- */

struct derive_job {
    struct app_password_record rec;
    uint8_t raw[APP_PASSWORD_RAW_LEN];
    uint8_t verifier[APP_PASSWORD_VERIFIER_LEN];
    uint8_t kek[APP_PASSWORD_KEK_LEN];
    enum app_password_status st;
    bool ran_on_loop_thread;
};

static unsigned derived;

static void derive_work(void *arg)
{
    struct derive_job *j = arg;
    j->ran_on_loop_thread = pthread_equal(pthread_self(), loop_thread);
    j->st = app_password_derive(&j->rec, j->raw, j->verifier, j->kek);
}

static void derive_done(void *arg, bool cancelled)
{
    struct derive_job *j = arg;
    assert_true(pthread_equal(pthread_self(), loop_thread));
    assert_false(cancelled);
    assert_false(j->ran_on_loop_thread);
    derived++;
}

static void test_argon2_off_the_loop(void **state)
{
    (void)state;
    uint8_t data_key[ENVELOPE_KEY_LEN] = { 0 };
    char text[APP_PASSWORD_TEXT_MAX];
    struct app_password_record rec;
    assert_int_equal(app_password_issue("alice", "scanner", data_key, text, &rec), APP_PASSWORD_OK);

    struct work_pool *p = work_pool_new(loop, 2, WORK_POOL_QUEUE_DEFAULT);
    assert_non_null(p);
    enum { N = 4 };
    struct derive_job jobs[N];
    for (int i = 0; i < N; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].rec = rec;
        assert_true(app_password_decode(text, strlen(text), jobs[i].raw));
        if (i % 2)
            jobs[i].raw[0] ^= 1;   /* a wrong password */
        assert_non_null(work_pool_submit(p, derive_work, derive_done, &jobs[i]));
    }
    assert_int_equal(work_pool_pending(p), N);
    ev_timer tick;
    ev_timer_init(&tick, tick_cb, 0.01, 0.01);
    ev_timer_start(loop, &tick);
    ticks = 0;
    derived = 0;
    ev_tstamp t0 = ev_time();
    run_until(&derived, N);
    double ms = (ev_time() - t0) * 1000.0;
    ev_timer_stop(loop, &tick);
    print_message("      %d Argon2id derivations on 2 workers: %.0f ms, %u loop ticks of 10 ms meanwhile\n", N, ms,
                  ticks);
    assert_int_equal(derived, N);
    assert_int_equal(work_pool_pending(p), 0);
    /* The loop kept running: at least a third of the ticks that fit. */
    assert_true(ticks >= (unsigned)(ms / 10.0 / 3.0));
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].st, APP_PASSWORD_OK);
        assert_int_equal(app_password_verifier_equal(jobs[i].verifier, rec.verifier), i % 2 == 0);
    }
    work_pool_free(p);
}

/* ---- jobs held on a gate, for the queue bound and cancelling ------------------ */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static unsigned started;

struct gated_job {
    bool worked;
    bool done_called;
    bool cancelled;
};

static unsigned dones;

static void gated_work(void *arg)
{
    struct gated_job *j = arg;
    pthread_mutex_lock(&gate_mu);
    started++;
    pthread_cond_broadcast(&gate_cv);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    j->worked = true;
}

static void gated_done(void *arg, bool cancelled)
{
    struct gated_job *j = arg;
    assert_false(j->done_called);   /* exactly once */
    j->done_called = true;
    j->cancelled = cancelled;
    dones++;
}

static void wait_started(unsigned n)
{
    pthread_mutex_lock(&gate_mu);
    while (started < n)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

static void set_gate(bool open)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = open;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static void test_queue_bound_and_cancel(void **state)
{
    (void)state;
    set_gate(false);
    started = 0;
    dones = 0;
    struct work_pool *p = work_pool_new(loop, 1, 2);
    struct gated_job j[5];
    memset(j, 0, sizeof j);
    struct work_item *running = work_pool_submit(p, gated_work, gated_done, &j[0]);
    assert_non_null(running);
    wait_started(1);   /* the one worker holds j[0] */
    struct work_item *w1 = work_pool_submit(p, gated_work, gated_done, &j[1]);
    assert_non_null(w1);
    assert_non_null(work_pool_submit(p, gated_work, gated_done, &j[2]));
    /* Two wait: the bound. */
    assert_null(work_pool_submit(p, gated_work, gated_done, &j[3]));
    assert_int_equal(work_pool_pending(p), 3);

    /* Cancel a waiting job: done(cancelled) from the loop, never inside cancel. */
    work_pool_cancel(w1);
    assert_false(j[1].done_called);
    run_until(&dones, 1);
    assert_true(j[1].done_called && j[1].cancelled && !j[1].worked);
    /* Its place is free again. */
    assert_non_null(work_pool_submit(p, gated_work, gated_done, &j[3]));

    /* Cancel the running one: it finishes its work, done says cancelled. */
    work_pool_cancel(running);
    set_gate(true);
    run_until(&dones, 4);
    assert_true(j[0].worked && j[0].cancelled);
    assert_true(j[2].worked && !j[2].cancelled);
    assert_true(j[3].worked && !j[3].cancelled);
    assert_false(j[4].done_called);
    assert_int_equal(work_pool_pending(p), 0);
    work_pool_free(p);
}

static void test_free_cancels_the_rest(void **state)
{
    (void)state;
    set_gate(false);
    started = 0;
    dones = 0;
    struct work_pool *p = work_pool_new(loop, 1, 8);
    struct gated_job j[3];
    memset(j, 0, sizeof j);
    for (int i = 0; i < 3; i++)
        assert_non_null(work_pool_submit(p, gated_work, gated_done, &j[i]));
    wait_started(1);
    set_gate(true);   /* the running one may finish; free must not wait for the queue */
    work_pool_free(p);
    assert_int_equal(dones, 3);
    for (int i = 0; i < 3; i++)
        assert_true(j[i].done_called && j[i].cancelled);
    assert_true(j[0].worked);
    assert_null(work_pool_new(loop, 0, 1));
    assert_null(work_pool_new(loop, WORK_POOL_THREADS_MAX + 1, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argon2_off_the_loop),
        cmocka_unit_test(test_queue_bound_and_cancel),
        cmocka_unit_test(test_free_cancels_the_rest),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
