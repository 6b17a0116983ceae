/* util/thread — see thread.h. */
#include "util/thread.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

void thread_name(const char *name)
{
    pthread_setname_np(pthread_self(), name);
}

void thread_background(const char *name)
{
    thread_name(name);
    /* On Linux, nice is a property of each thread: PRIO_PROCESS with a thread id sets it for
     * that thread alone. Failure (a container forbidding it) only costs the optimisation. */
    pid_t tid = (pid_t)syscall(SYS_gettid);
    (void)setpriority(PRIO_PROCESS, (id_t)tid, 10);
}
