/*
 * The server's monotonic clock, in milliseconds. Every deadline, age and
 * timeout in the server is measured with one of these two, never with the
 * wall clock (which steps).
 */
#ifndef SRV_CLOCK_H
#define SRV_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC in ms: ages, reload and stop deadlines, the watchdog. */
static inline long long
srv_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * CLOCK_MONOTONIC_COARSE in ms: cheaper (a vDSO read of the last tick, no TSC
 * read) but only as fine as the kernel tick (1-10 ms), and a little behind
 * srv_clock_ms(). For the per-request hot path, where deadlines are counted
 * in seconds.
 */
static inline long long
srv_clock_coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif /* SRV_CLOCK_H */
