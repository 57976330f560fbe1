/* backoff.c: exponential backoff with bounded jitter; see backoff.h. */
#include "backoff.h"

int64_t
backoff_ceiling_ms(const struct backoff *b, int failures)
{
	int64_t c = b->base_ms > 0 ? b->base_ms : 1;

	/* doubling stops at the maximum: at most 63 steps, whatever the count */
	for (int i = 0; i < failures && c < b->max_ms; i++)
		c = c > b->max_ms / 2 ? b->max_ms : c * 2;
	return c < b->max_ms ? c : b->max_ms;
}

int64_t
backoff_delay_ms(const struct backoff *b, int failures, uint64_t rnd)
{
	int64_t c = backoff_ceiling_ms(b, failures);
	int64_t lo = c / 2, d = lo;

	if (c > lo)
		d = lo + (int64_t)(rnd % (uint64_t)(c - lo + 1));
	if (d < b->min_ms)
		d = b->min_ms;
	if (d > b->max_ms)
		d = b->max_ms;
	return d;
}

uint64_t
backoff_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}
