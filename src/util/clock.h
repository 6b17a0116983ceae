/* util/clock — the two clocks sluice reads, as double seconds. */
#ifndef SLUICE_UTIL_CLOCK_H
#define SLUICE_UTIL_CLOCK_H

#include <time.h>

/* Wall-clock time (CLOCK_REALTIME): for what is stored, shown, or compared across processes
 * (rate-limit windows, cooldown ends, budget resets). */
static inline double clock_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Monotonic time (CLOCK_MONOTONIC): for durations and local deadlines. */
static inline double clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
