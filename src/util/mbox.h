/* mbox — hand a function call to another thread's event loop. A mailbox belongs to one
 * event_base; any thread may post to it; the posted calls run on the owning loop, in order.
 * Used where work finishes on a thread other than the request's (Google token refreshes today,
 * the store thread later). One eventfd and a mutex-protected list: posts are rare (not per
 * request), so the lock is never contended on the hot path. */
#ifndef SLUICE_MBOX_H
#define SLUICE_MBOX_H

struct event_base;
typedef struct mbox mbox;

mbox *mbox_new(struct event_base *base);
/* Runs nothing that is still queued; call on the owning thread after its loop has stopped. */
void mbox_free(mbox *m);
/* Queues fn(arg) to run on m's loop. Thread-safe. 0, or -1 when out of memory. */
int mbox_post(mbox *m, void (*fn)(void *arg), void *arg);

#endif
