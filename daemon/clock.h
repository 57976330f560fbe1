/* clock.h: the one source of "now" for business logic (R1.6).
 * Times are int64 microseconds since the Unix epoch, UTC. In test mode the
 * clock only moves when an admin sets it (PUT /v1/test/clock). */
#ifndef CREDITD_CLOCK_H
#define CREDITD_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

void clock_init_real(void);
void clock_init_test(int64_t start_usec);
bool clock_is_test(void);
int64_t clock_now(void);
/* Test mode only: move forward; returns -1 if t is before now. */
int clock_set(int64_t t);
/* Monotonic microseconds for intervals and latency (never business time). */
int64_t clock_monotonic(void);
/* Real wall clock (for the test clock's default start and logs only). */
int64_t clock_wall(void);

#endif
