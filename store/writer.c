/*
 * store/writer.c — see writer.h. Two lists under one mutex: `todo` (for the thread) and `done`
 * (for the loop); a condition variable wakes the thread, an async handle wakes the loop.
 */
#include <pthread.h>
#include <stdlib.h>

#include "store/writer.h"

struct wop {
    struct wop *next;
    store_write_fn fn;
    store_write_done done;
    void *arg;
    int status;
};

struct store_writer {
    struct store *st;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct wop *todo_head, *todo_tail, *done_head, *done_tail;
    int pending;
    int stop;
};

static void wq_push(struct wop **head, struct wop **tail, struct wop *op)
{
    op->next = NULL;
    if (*tail)
        (*tail)->next = op;
    else
        *head = op;
    *tail = op;
}

static void *writer_main(void *arg)
{
    struct store_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->todo_head && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        struct wop *op = w->todo_head;
        if (!op)
            break; /* stop, nothing left */
        w->todo_head = op->next;
        if (!w->todo_head)
            w->todo_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        op->status = store_write(w->st, op->fn, op->arg);
        pthread_mutex_lock(&w->lock);
        wq_push(&w->done_head, &w->done_tail, op);
        uv_async_send(&w->async);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void writer_deliver(uv_async_t *a)
{
    struct store_writer *w = a->data;
    pthread_mutex_lock(&w->lock);
    struct wop *op = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    while (op) {
        struct wop *next = op->next;
        if (op->done)
            op->done(op->arg, op->status);
        pthread_mutex_lock(&w->lock);
        w->pending--;
        pthread_mutex_unlock(&w->lock);
        free(op);
        op = next;
    }
}

struct store_writer *store_writer_create(uv_loop_t *loop, struct store *st)
{
    struct store_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->st = st;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    uv_async_init(loop, &w->async, writer_deliver);
    w->async.data = w;
    if (pthread_create(&w->thread, NULL, writer_main, w)) {
        uv_close((uv_handle_t *)&w->async, NULL);
        return NULL; /* leaks w until the loop closes the handle: start-up failure only */
    }
    return w;
}

static void writer_closed(uv_handle_t *h)
{
    struct store_writer *w = h->data;
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

void store_writer_free(struct store_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    writer_deliver(&w->async);
    uv_close((uv_handle_t *)&w->async, writer_closed);
}

int store_writer_submit(struct store_writer *w, store_write_fn fn, store_write_done done, void *arg)
{
    struct wop *op = calloc(1, sizeof(*op));
    if (!op)
        return -1;
    op->fn = fn;
    op->done = done;
    op->arg = arg;
    pthread_mutex_lock(&w->lock);
    wq_push(&w->todo_head, &w->todo_tail, op);
    w->pending++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

int store_writer_pending(struct store_writer *w)
{
    pthread_mutex_lock(&w->lock);
    int n = w->pending;
    pthread_mutex_unlock(&w->lock);
    return n;
}
