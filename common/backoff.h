/* backoff.h: retry delays, exponential with bounded jitter (R8.2: the
 * webhook's "retries and exponential backoff"). Without jitter, deliveries
 * that failed together (a receiver down for a while fails every head of the
 * outbox at once) are retried together, in lock-step, at every step of the
 * backoff. Pure: the random numbers come from the caller (backoff_rand, a
 * seeded generator), so that tests are exact. */
#ifndef CREDITD_BACKOFF_H
#define CREDITD_BACKOFF_H

#include <stdint.h>

struct backoff {
	int64_t base_ms; /* the ceiling after the first failure (>= 1) */
	int64_t min_ms;  /* never shorter than this ... */
	int64_t max_ms;  /* ... and never longer than this (wins over min_ms) */
};

/* The ceiling after `failures` earlier failed attempts (0 at the first
 * failure): min(max_ms, base_ms * 2^failures), without overflow; a negative
 * count is 0. */
int64_t backoff_ceiling_ms(const struct backoff *b, int failures);

/* The delay: "equal jitter", uniform in [ceiling / 2, ceiling] as `rnd`
 * picks it (rnd % (span + 1): a bias below 2^-37 for spans up to a day),
 * then kept within [min_ms, max_ms]. Half the exponential delay is kept, so
 * the delays still grow; the other half spreads the retries. */
int64_t backoff_delay_ms(const struct backoff *b, int failures, uint64_t rnd);

/* splitmix64: the next number of the sequence that *state (any seed) holds. */
uint64_t backoff_rand(uint64_t *state);

#endif
