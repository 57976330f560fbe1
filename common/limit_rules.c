/* limits.c: authorization rule. */
#include "limit_rules.h"

#include <stddef.h>

int64_t
limits_remaining(int64_t limit, int64_t used)
{
	int64_t r;

	if (__builtin_sub_overflow(limit, used, &r))
		return used < 0 ? INT64_MAX : 0;
	return r < 0 ? 0 : r;
}

void
limits_authorize(const struct limits_state *s, int64_t amount, struct limits_answer *a)
{
	a->has_monthly = s->has_monthly;
	a->monthly_remaining =
	    s->has_monthly ? limits_remaining(s->monthly_limit, s->monthly_usage) : 0;
	a->has_total = s->has_total;
	a->total_remaining = s->has_total ? limits_remaining(s->total_limit, s->exposure) : 0;
	a->allowed = false;
	if (s->status == LIMITS_TERMINATED) {
		a->reason = "terminated";
	} else if (s->status == LIMITS_SUSPENDED) {
		a->reason = "suspended";
	} else if (s->has_monthly && amount > a->monthly_remaining) {
		a->reason = "monthly_limit";
	} else if (s->has_total && amount > a->total_remaining) {
		a->reason = "total_limit";
	} else {
		a->reason = NULL;
		a->allowed = true;
	}
}
