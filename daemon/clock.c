/* clock.c: real or test clock (R1.6). */
#include "clock.h"

#include <time.h>

static bool clock_test;
static int64_t clock_test_now;

static int64_t
clock_read(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
clock_init_real(void)
{
	clock_test = false;
}

void
clock_init_test(int64_t start_usec)
{
	clock_test = true;
	clock_test_now = start_usec;
}

bool
clock_is_test(void)
{
	return clock_test;
}

int64_t
clock_now(void)
{
	return clock_test ? clock_test_now : clock_read(CLOCK_REALTIME);
}

int
clock_set(int64_t t)
{
	if (!clock_test || t < clock_test_now)
		return -1;
	clock_test_now = t;
	return 0;
}

int64_t
clock_monotonic(void)
{
	return clock_read(CLOCK_MONOTONIC);
}

int64_t
clock_wall(void)
{
	return clock_read(CLOCK_REALTIME);
}
