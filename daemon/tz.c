/* tz.c: billing time zone conversions with the C library's zone data. */
#include "tz.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "civil.h"

/* A zone file: a regular file that starts with the TZif magic (a readable
 * directory such as "America" is no zone). */
static bool
tz_file_ok(const char *path)
{
	char magic[4];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 &&
	     memcmp(magic, "TZif", 4) == 0;
	close(fd);
	return ok;
}

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
		if (!tz_file_ok(path))
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

/* The zone's UTC offset in seconds at an instant. */
static long
tz_offset_at(int64_t secs)
{
	time_t t = (time_t)secs;
	struct tm tm;

	localtime_r(&t, &tm);
	return tm.tm_gmtoff;
}

/* Deterministic, unlike mktime(tm_isdst = -1), whose answer for a time that
 * exists twice depends on its previous call: a local time that exists twice
 * (clocks put back) is its first occurrence, one that does not exist (clocks
 * put forward) is read with the offset before the gap, so 02:30 in a gap
 * from 02:00 to 03:00 is 03:30. Offsets are taken a day either side of the
 * wall time, so one change of offset near it is handled (R1.5, R5.1). */
int64_t
tz_local_time(int32_t day, int minutes)
{
	int64_t wall = (int64_t)day * 86400 + (int64_t)minutes * 60;
	long before = tz_offset_at(wall - 86400), after = tz_offset_at(wall + 86400);
	int64_t t1 = wall - before, t2 = wall - after, t;
	bool ok1 = tz_offset_at(t1) == before, ok2 = tz_offset_at(t2) == after;

	if (ok1 && ok2)
		t = t1 < t2 ? t1 : t2;
	else if (ok1)
		t = t1;
	else if (ok2)
		t = t2;
	else
		t = wall - before; /* in the gap */
	return t * 1000000;
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
