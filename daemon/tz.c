/* tz.c: billing time zone conversions with the C library's zone data. */
#include "tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "civil.h"

int
tz_init(const char *name)
{
	char path[512];

	static const char zoneinfo[] = "/usr/share/zoneinfo/";
	size_t n = strlen(name);

	if (n == 0 || n > 200 || strstr(name, "..") != NULL)
		return -1;
	if (strcmp(name, "UTC") != 0) {
		memcpy(path, zoneinfo, sizeof zoneinfo - 1);
		memcpy(path + sizeof zoneinfo - 1, name, n + 1);
		if (access(path, R_OK) != 0)
			return -1;
	}
	setenv("TZ", name, 1);
	tzset();
	return 0;
}

int32_t
tz_day_of(int64_t usec)
{
	time_t t = (time_t)(usec >= 0 ? usec / 1000000 : (usec - 999999) / 1000000);
	struct tm tm;
	int32_t day;

	localtime_r(&t, &tm);
	if (civil_from_ymd(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, &day) != 0)
		return 0;
	return day;
}

int64_t
tz_local_time(int32_t day, int minutes)
{
	int y, m, d;
	struct tm tm;
	time_t t;

	civil_to_ymd(day, &y, &m, &d);
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_hour = minutes / 60;
	tm.tm_min = minutes % 60;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	return (int64_t)t * 1000000;
}

int64_t
tz_day_start(int32_t day)
{
	return tz_local_time(day, 0);
}

int32_t
tz_month_of(int64_t usec)
{
	return civil_month_start(tz_day_of(usec));
}
