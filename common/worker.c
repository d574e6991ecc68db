/* worker — see worker.h. Two mutex-protected FIFO lists (to do, done);
 * a condition variable wakes the thread, ev_async wakes the loop. */
#include "worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

typedef struct job job_t;
struct job {
    void (*work)(void *arg);
    void (*done)(void *arg);
    void *arg;
    job_t *next;
};

typedef struct {
    job_t *head, *tail;
} queue_t;

struct worker {
    struct ev_loop *loop;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    queue_t todo, done;
    bool stop;
    unsigned pending;
    ev_async async_w;
};

static void push(queue_t *q, job_t *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
}

static job_t *take_all(queue_t *q)
{
    job_t *all = q->head;
    q->head = q->tail = NULL;
    return all;
}

static void *thread_main(void *arg)
{
    worker_t *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->todo.head && !w->stop)
            pthread_cond_wait(&w->wake, &w->lock);
        job_t *j = w->todo.head;
        if (!j)
            break; /* stop requested and nothing left */
        w->todo.head = j->next;
        if (!w->todo.head)
            w->todo.tail = NULL;
        pthread_mutex_unlock(&w->lock);
        j->work(j->arg);
        pthread_mutex_lock(&w->lock);
        push(&w->done, j);
        ev_async_send(w->loop, &w->async_w);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void run_done(worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    job_t *j = take_all(&w->done);
    pthread_mutex_unlock(&w->lock);
    while (j) {
        job_t *next = j->next;
        w->pending--;
        if (j->done)
            j->done(j->arg);
        free(j);
        j = next;
    }
}

static void on_async(struct ev_loop *loop, ev_async *a, int revents)
{
    run_done(a->data);
}

worker_t *worker_new(struct ev_loop *loop)
{
    worker_t *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    ev_async_init(&w->async_w, on_async);
    w->async_w.data = w;
    ev_async_start(loop, &w->async_w);
    int rc = pthread_create(&w->thread, NULL, thread_main, w);
    if (rc != 0) {
        log_error("pthread_create: %s", strerror(rc));
        ev_async_stop(loop, &w->async_w);
        free(w);
        return NULL;
    }
    return w;
}

void worker_submit(worker_t *w, void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
    job_t *j = xmalloc(sizeof *j);
    j->work = work;
    j->done = done;
    j->arg = arg;
    w->pending++;
    pthread_mutex_lock(&w->lock);
    push(&w->todo, j);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

unsigned worker_pending(const worker_t *w)
{
    return w->pending;
}

void worker_destroy(worker_t **wp)
{
    if (!wp || !*wp)
        return;
    worker_t *w = *wp;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    run_done(w);
    ev_async_stop(w->loop, &w->async_w);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    *wp = NULL;
}
