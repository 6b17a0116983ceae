/* util/thread — naming the process's threads and lowering the priority of background ones. */
#ifndef SLUICE_UTIL_THREAD_H
#define SLUICE_UTIL_THREAD_H

/* Names the calling thread (at most 15 characters: top -H, perf, /proc/PID/task/N/comm). */
void thread_name(const char *name);

/* Names the calling thread and gives it a lower CPU priority (nice +10 for this thread only):
 * batch work such as writing spend rows must not preempt the threads serving requests when the
 * cores are busy. It still gets the CPU the workers leave idle. */
void thread_background(const char *name);

#endif
