/* work_pool: a few worker threads for CPU-heavy steps that must not run on
 * the event loop (the Argon2id derivation of an app password, ~41 ms of CPU).
 *
 * A job is submitted from the loop thread; a worker runs work(job); the
 * loop thread then runs done(job, cancelled) through an ev_async. So:
 * - work() runs on a worker thread: it touches only the job's own memory (no
 *   loop, no session, no log);
 * - done() runs on the loop thread, exactly once for every accepted job, in
 *   submission order per worker but not overall.
 *
 * Bounds: at most queue_max jobs wait (the default WORK_POOL_QUEUE_DEFAULT,
 * 256: at ~41 ms a job and two threads, about five seconds of work; a login
 * beyond that would wait longer than a POP3 client's login delay anyway).
 * work_pool_submit()
 * returns NULL when the queue is full or the pool is stopping: the caller
 * answers [SYS/TEMP] at once instead of queueing without end.
 *
 * Cancelling (a session ended while its job waits or runs): the job's
 * memory must stay valid until done runs, so the job owns everything work()
 * needs, and done(job, cancelled = true) only frees it. A job cancelled
 * before a worker took it never runs work().
 *
 * work_pool_free() stops the threads after the job each one is running,
 * then calls done(job, true) for every job whose done has not run yet
 * (waiting, cancelled or finished but not delivered). */
#ifndef POPGATE_WORK_POOL_H
#define POPGATE_WORK_POOL_H

#include <stdbool.h>

#include <ev.h>

#define WORK_POOL_QUEUE_DEFAULT 256
#define WORK_POOL_THREADS_MAX   16

typedef void (*work_fn)(void *job);
typedef void (*work_done_fn)(void *job, bool cancelled);

struct work_pool;
struct work_item;

/* threads 1..WORK_POOL_THREADS_MAX, queue_max >= 1. NULL on failure. */
struct work_pool *work_pool_new(struct ev_loop *loop, unsigned threads, unsigned queue_max);
void work_pool_free(struct work_pool *p);

/* Queue a job. NULL when the queue is full (nothing is called then). The
 * handle is valid until done runs. */
struct work_item *work_pool_submit(struct work_pool *p, work_fn work, work_done_fn done, void *job);

/* Mark it cancelled: done(job, true) follows from the loop (never from
 * inside this call). Not allowed once done ran. */
void work_pool_cancel(struct work_item *it);

/* Jobs queued or running (for tests and metrics). */
unsigned work_pool_pending(const struct work_pool *p);

#endif
