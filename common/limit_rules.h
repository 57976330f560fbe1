/* limit_rules.h: the credit limit rules used to answer authorization from memory
 * (R3.6, R4.1-R4.3). The database applies the same rules when it records
 * events (sql/0002_usage.sql creditd_evaluate_limits). Pure. */
#ifndef CREDITD_LIMIT_RULES_H
#define CREDITD_LIMIT_RULES_H

#include <stdbool.h>
#include <stdint.h>

enum limits_status { LIMITS_ACTIVE = 0, LIMITS_SUSPENDED, LIMITS_TERMINATED };

struct limits_state {
	enum limits_status status;
	bool has_monthly;
	int64_t monthly_limit;
	int64_t monthly_usage; /* of the current billing month (0 if the counter is older) */
	bool has_total;
	int64_t total_limit;
	int64_t exposure;
};

struct limits_answer {
	bool allowed;
	const char *reason; /* NULL, "suspended", "terminated", "monthly_limit", "total_limit" */
	bool has_monthly;
	int64_t monthly_remaining; /* limit - usage, never below 0 */
	bool has_total;
	int64_t total_remaining;
};

/* May the account spend `amount` (> 0) now? Allowed only when active and the
 * amount fits within the remaining headroom of both limits (amount <= remaining;
 * reaching a limit exactly is allowed, R4.3 then suspends). */
void limits_authorize(const struct limits_state *s, int64_t amount, struct limits_answer *a);

/* Headroom: max(0, limit - used) with overflow saturated. */
int64_t limits_remaining(int64_t limit, int64_t used);

#endif
