/* daily.h: the daily job (R6.2-R6.7, API.md "Jobs"): overdue notices and
 * reminders, overdue and inactivity suspension, due reactivations, and the
 * interest accrual of every overdue invoice with the interest engine. */
#ifndef CREDITD_DAILY_H
#define CREDITD_DAILY_H

#include <stdbool.h>

struct app;
struct job_run;

void daily_start(struct job_run *run);
/* Schedule the next run (tomorrow 00:05 in the billing zone; or a retry). */
void daily_schedule_next(struct app *app, bool retry);
/* At start: today's run (catching up a missed one). */
void daily_db_ready(struct app *app);

#endif
