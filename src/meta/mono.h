/*
 * mono.h - monotonic time for the metadata library's background threads
 * (controller election, node keeper, etcd watch).
 *
 * Their waits (lease renewals, retry backoff, interruptible sleeps) must
 * not stretch or shrink when the wall clock is stepped, so deadlines and
 * the condition variables that time them use CLOCK_MONOTONIC.
 */
#ifndef CAIRN_META_MONO_H
#define CAIRN_META_MONO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds. */
int64_t meta_mono_ms(void);

/* The CLOCK_MONOTONIC instant `ms` from now, for pthread_cond_timedwait()
 * on a condition variable made by meta_cond_init(). */
struct timespec meta_mono_deadline(int ms);

/* pthread_cond_init() with CLOCK_MONOTONIC as the clock of timed waits. */
int meta_cond_init(pthread_cond_t *cv);

/* Sleep up to `ms` on `cv` (a meta_cond_init() one, `mu` not held),
 * waking early once `*stop` - guarded by `mu`, set with a broadcast - is
 * true. Returns *stop: whether the thread should end. */
bool meta_sleep_unless(pthread_mutex_t *mu, pthread_cond_t *cv,
                       const bool *stop, int ms);

#endif
