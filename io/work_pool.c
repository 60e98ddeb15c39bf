/* work_pool.c: see work_pool.h.
 *
 * One mutex guards the queue of waiting jobs and the list of finished ones;
 * workers sleep on a condition variable; a finished job goes on the finished
 * list and wakes the loop with ev_async_send (async-signal-safe and made for
 * exactly this), whose callback runs the done functions on the loop thread. */
#include "work_pool.h"

#include <pthread.h>
#include <stdlib.h>

enum item_state { ITEM_QUEUED, ITEM_RUNNING, ITEM_FINISHED };

struct work_item {
    struct work_pool *p;
    work_fn work;
    work_done_fn done;
    void *job;
    enum item_state state;
    bool cancelled;
    struct work_item *next;
};

struct work_pool {
    struct ev_loop *loop;
    ev_async async;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[WORK_POOL_THREADS_MAX];
    unsigned nthreads;
    unsigned queue_max;
    unsigned queued;       /* waiting for a worker */
    unsigned pending;      /* accepted, done not yet run */
    bool stopping;
    struct work_item *q_head, *q_tail;       /* waiting, FIFO */
    struct work_item *fin_head, *fin_tail;   /* finished or cancelled, done not yet run */
};

static void push(struct work_item **head, struct work_item **tail, struct work_item *it)
{
    it->next = NULL;
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
}

static void *worker_main(void *arg)
{
    struct work_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && p->q_head == NULL)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break;
        struct work_item *it = p->q_head;
        p->q_head = it->next;
        if (p->q_head == NULL)
            p->q_tail = NULL;
        p->queued--;
        it->state = ITEM_RUNNING;
        pthread_mutex_unlock(&p->mu);
        it->work(it->job);
        pthread_mutex_lock(&p->mu);
        it->state = ITEM_FINISHED;
        push(&p->fin_head, &p->fin_tail, it);
        ev_async_send(p->loop, &p->async);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Run the done functions of everything finished, on the loop thread. A done
 * may submit or cancel other jobs: the list is taken whole first. */
static void deliver(struct work_pool *p, bool force_cancelled)
{
    pthread_mutex_lock(&p->mu);
    struct work_item *it = p->fin_head;
    p->fin_head = p->fin_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (it != NULL) {
        struct work_item *next = it->next;
        p->pending--;
        it->done(it->job, it->cancelled || force_cancelled);
        free(it);
        it = next;
    }
}

static void async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    deliver(w->data, false);
}

struct work_pool *work_pool_new(struct ev_loop *loop, unsigned threads, unsigned queue_max)
{
    if (threads < 1 || threads > WORK_POOL_THREADS_MAX || queue_max < 1)
        return NULL;
    struct work_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->loop = loop;
    p->queue_max = queue_max;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    ev_async_init(&p->async, async_cb);
    p->async.data = p;
    ev_async_start(loop, &p->async);
    for (; p->nthreads < threads; p->nthreads++) {
        if (pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) != 0) {
            work_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void work_pool_free(struct work_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    /* No worker left: what still waits is cancelled, then everything goes. */
    while (p->q_head != NULL) {
        struct work_item *it = p->q_head;
        p->q_head = it->next;
        it->cancelled = true;
        push(&p->fin_head, &p->fin_tail, it);
    }
    p->q_tail = NULL;
    deliver(p, true);
    ev_async_stop(p->loop, &p->async);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

struct work_item *work_pool_submit(struct work_pool *p, work_fn work, work_done_fn done, void *job)
{
    struct work_item *it = calloc(1, sizeof *it);
    if (it == NULL)
        return NULL;
    it->p = p;
    it->work = work;
    it->done = done;
    it->job = job;
    it->state = ITEM_QUEUED;
    pthread_mutex_lock(&p->mu);
    if (p->stopping || p->queued >= p->queue_max) {
        pthread_mutex_unlock(&p->mu);
        free(it);
        return NULL;
    }
    push(&p->q_head, &p->q_tail, it);
    p->queued++;
    p->pending++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return it;
}

void work_pool_cancel(struct work_item *it)
{
    struct work_pool *p = it->p;
    pthread_mutex_lock(&p->mu);
    it->cancelled = true;
    if (it->state == ITEM_QUEUED) {
        /* Out of the queue, never run; done follows from the loop. */
        struct work_item **pp = &p->q_head, *prev = NULL;
        while (*pp != it) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = it->next;
        if (p->q_tail == it)
            p->q_tail = prev;
        p->queued--;
        it->state = ITEM_FINISHED;
        push(&p->fin_head, &p->fin_tail, it);
        ev_async_send(p->loop, &p->async);
    }
    pthread_mutex_unlock(&p->mu);
}

unsigned work_pool_pending(const struct work_pool *p)
{
    return p->pending;
}
