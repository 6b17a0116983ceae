/* mbox — see mbox.h. */
#include "util/mbox.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct msg {
    struct msg *next;
    void (*fn)(void *);
    void *arg;
} msg;

struct mbox {
    int fd;
    struct event *ev;
    pthread_mutex_t mu;
    msg *head, *tail;
};

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    mbox *m = arg;
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0) { /* spurious wake-up: the list says what there is */
    }
    pthread_mutex_lock(&m->mu);
    msg *list = m->head;
    m->head = m->tail = NULL;
    pthread_mutex_unlock(&m->mu);
    while (list) {
        msg *next = list->next;
        list->fn(list->arg);
        free(list);
        list = next;
    }
}

mbox *mbox_new(struct event_base *base)
{
    mbox *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->fd < 0) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    m->ev = event_new(base, m->fd, EV_READ | EV_PERSIST, on_ready, m);
    if (!m->ev || event_add(m->ev, NULL) < 0) {
        mbox_free(m);
        return NULL;
    }
    return m;
}

void mbox_free(mbox *m)
{
    if (!m)
        return;
    if (m->ev)
        event_free(m->ev);
    close(m->fd);
    for (msg *p = m->head; p;) {
        msg *n = p->next;
        free(p);
        p = n;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int mbox_post(mbox *m, void (*fn)(void *), void *arg)
{
    msg *p = malloc(sizeof *p);
    if (!p)
        return -1;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&m->mu);
    if (m->tail)
        m->tail->next = p;
    else
        m->head = p;
    m->tail = p;
    /* the wake-up is written under the lock: once the owner has run the last call it may free
     * the mailbox, and a write after unlocking could land on a closed (or reused) fd */
    uint64_t one = 1;
    if (write(m->fd, &one, sizeof one) < 0) { /* counter saturated: a wake-up is pending anyway */
    }
    pthread_mutex_unlock(&m->mu);
    return 0;
}
