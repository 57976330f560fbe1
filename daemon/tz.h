/* tz.h: the billing time zone (R1.5). The process time zone is set to
 * [billing] timezone at start-up, so the C library's zone data does the
 * conversions; business logic in common/ only sees days and offsets. */
#ifndef CREDITD_TZ_H
#define CREDITD_TZ_H

#include <stdint.h>

/* Set and validate the zone (IANA name). Returns 0 or -1 if unknown. */
int tz_init(const char *name);
/* Local calendar day (days since 1970-01-01) of an instant. */
int32_t tz_day_of(int64_t usec);
/* The instant local midnight of `day` begins. */
int64_t tz_day_start(int32_t day);
/* First day of the billing month containing the instant. */
int32_t tz_month_of(int64_t usec);
/* The instant a local day + minutes after midnight begins. */
int64_t tz_local_time(int32_t day, int minutes);

#endif
