/* civil.c: proleptic Gregorian dates and RFC 3339 timestamps (see civil.h). */
#include "civil.h"

#include <string.h>

/* Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms": days_from_civil. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);                       /* [0, 399] */
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
	return era * 146097 + (int64_t)doe - 719468;
}

/* civil_from_days; z is any int64_t well inside range (callers pass int32_t). */
static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
	unsigned mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

bool
civil_is_leap(int year)
{
	return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

int
civil_days_in_month(int year, int month)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (month < 1 || month > 12)
		return 0;
	if (month == 2 && civil_is_leap(year))
		return 29;
	return dim[month - 1];
}

int
civil_days_in_year(int year)
{
	return civil_is_leap(year) ? 366 : 365;
}

bool
civil_day_valid(int32_t day)
{
	return day >= CIVIL_DAY_MIN && day <= CIVIL_DAY_MAX;
}

int
civil_from_ymd(int year, int month, int mday, int32_t *day)
{
	if (year < CIVIL_YEAR_MIN || year > CIVIL_YEAR_MAX || month < 1 || month > 12 || mday < 1 ||
	    mday > civil_days_in_month(year, month))
		return -1;
	*day = (int32_t)days_from_civil(year, (unsigned)month, (unsigned)mday);
	return 0;
}

void
civil_to_ymd(int32_t day, int *year, int *month, int *mday)
{
	int64_t y;
	unsigned m, d;

	civil_from_days(day, &y, &m, &d);
	/* |day| <= 2^31 keeps y within about +-5.9 million: fits an int. */
	*year = (int)y;
	*month = (int)m;
	*mday = (int)d;
}

int
civil_year(int32_t day)
{
	int y, m, d;

	civil_to_ymd(day, &y, &m, &d);
	return y;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* n ASCII digits at s; -1 if any is not a digit. */
static int
digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "YYYY-MM-DD" at s (10 bytes available); 0 or -1. */
static int
parse_ymd(const char *s, int *y, int *m, int *d)
{
	if (s[4] != '-' || s[7] != '-')
		return -1;
	*y = digits(s, 4);
	*m = digits(s + 5, 2);
	*d = digits(s + 8, 2);
	if (*y < 0 || *m < 0 || *d < 0)
		return -1;
	return 0;
}

int
civil_parse_date(const char *s, size_t len, int32_t *day)
{
	int y, m, d;

	if (s == NULL || len != 10 || parse_ymd(s, &y, &m, &d) < 0)
		return -1;
	return civil_from_ymd(y, m, d, day);
}

static void
put_digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

int
civil_format_date(int32_t day, char buf[CIVIL_DATE_LEN])
{
	int y, m, d;

	buf[0] = '\0';
	if (!civil_day_valid(day))
		return -1;
	civil_to_ymd(day, &y, &m, &d);
	put_digits(buf, (unsigned)y, 4);
	buf[4] = '-';
	put_digits(buf + 5, (unsigned)m, 2);
	buf[7] = '-';
	put_digits(buf + 8, (unsigned)d, 2);
	buf[10] = '\0';
	return 0;
}

int
civil_add_months(int32_t day, int months, int32_t *out)
{
	int y, m, d;
	int64_t idx;

	if (!civil_day_valid(day))
		return -1;
	civil_to_ymd(day, &y, &m, &d);
	/* Month index since year 0: |months| <= 2^31, so int64_t cannot overflow. */
	idx = (int64_t)y * 12 + (m - 1) + months;
	if (idx < (int64_t)CIVIL_YEAR_MIN * 12 || idx > (int64_t)CIVIL_YEAR_MAX * 12 + 11)
		return -1;
	y = (int)(idx / 12);
	m = (int)(idx % 12) + 1;
	if (d > civil_days_in_month(y, m))
		d = civil_days_in_month(y, m);
	return civil_from_ymd(y, m, d, out);
}

int32_t
civil_month_start(int32_t day)
{
	int y, m, d;

	civil_to_ymd(day, &y, &m, &d);
	return day - (d - 1);
}

int32_t
civil_year_start(int32_t day)
{
	int y, m, d;

	civil_to_ymd(day, &y, &m, &d);
	return (int32_t)days_from_civil(y, 1, 1);
}

int32_t
civil_half_year_start(int32_t day)
{
	int y, m, d;

	civil_to_ymd(day, &y, &m, &d);
	return (int32_t)days_from_civil(y, m <= 6 ? 1 : 7, 1);
}

int
civil_weekday(int32_t day)
{
	/* 1970-01-01 was a Thursday (3). */
	int64_t w = ((int64_t)day + 3) % 7;

	return (int)(w < 0 ? w + 7 : w);
}

int
civil_add_working_days(int32_t day, int n, int32_t *out)
{
	int64_t cur = day;
	int64_t weeks, rem, step;
	int wd;

	if (!civil_day_valid(day))
		return -1;
	if (n == 0) {
		*out = day;
		return 0;
	}
	step = n > 0 ? 1 : -1;
	wd = civil_weekday(day);
	/* A weekend start counts as the nearest working day against the direction. */
	if (wd >= 5)
		cur += n > 0 ? 4 - wd : 7 - wd;
	weeks = (int64_t)n / 5;
	rem = (int64_t)n % 5;
	cur += weeks * 7;
	while (rem != 0) {
		cur += step;
		wd = civil_weekday((int32_t)(cur % 7)); /* weekday only depends on cur mod 7 */
		if (wd < 5)
			rem -= step;
	}
	if (cur < CIVIL_DAY_MIN || cur > CIVIL_DAY_MAX)
		return -1;
	*out = (int32_t)cur;
	return 0;
}

int
civil_parse_rfc3339(const char *s, size_t len, int64_t *usec)
{
	int y, mo, d, h, mi, sec, oh, om;
	int64_t frac = 0, secs;
	int32_t day;
	size_t pos;

	/* Shortest form: "YYYY-MM-DDTHH:MM:SSZ" (20 bytes). */
	if (s == NULL || len < 20 || len > 36)
		return -1;
	if (parse_ymd(s, &y, &mo, &d) < 0)
		return -1;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return -1;
	if (s[13] != ':' || s[16] != ':')
		return -1;
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	sec = digits(s + 17, 2);
	if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
		return -1;
	if (y < 1970 || civil_from_ymd(y, mo, d, &day) < 0)
		return -1;
	pos = 19;
	if (s[pos] == '.') {
		int nd = 0;

		pos++;
		while (pos < len && is_digit(s[pos])) {
			if (nd < 6)
				frac = frac * 10 + (s[pos] - '0');
			nd++;
			pos++;
		}
		if (nd < 1 || nd > 9)
			return -1;
		for (; nd < 6; nd++)
			frac *= 10;
	}
	secs = (int64_t)day * 86400 + h * 3600 + mi * 60 + sec;
	if (pos + 1 == len && (s[pos] == 'Z' || s[pos] == 'z')) {
		/* UTC */
	} else if (pos + 6 == len && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
		oh = digits(s + pos + 1, 2);
		om = digits(s + pos + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -1;
		/* local = UTC + offset, so UTC = local - offset */
		secs += (s[pos] == '+' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
	} else {
		return -1;
	}
	/* Years <= 9999 keep secs below 2.6e11: no overflow in int64_t. */
	*usec = secs * CIVIL_USEC_PER_SEC + frac;
	return 0;
}

/* Floor division and its non-negative remainder (b > 0). */
static int64_t
floor_divmod(int64_t a, int64_t b, int64_t *r)
{
	int64_t q = a / b, m = a % b;

	if (m < 0) {
		m += b;
		q--;
	}
	*r = m;
	return q;
}

int
civil_format_rfc3339(int64_t usec, char buf[CIVIL_TS_LEN])
{
	int64_t tod, sub, days;
	int32_t day;
	unsigned s;

	buf[0] = '\0';
	days = floor_divmod(usec, CIVIL_USEC_PER_DAY, &tod);
	if (days < CIVIL_DAY_MIN || days > CIVIL_DAY_MAX)
		return -1;
	day = (int32_t)days;
	civil_format_date(day, buf);
	sub = tod % CIVIL_USEC_PER_SEC;
	s = (unsigned)(tod / CIVIL_USEC_PER_SEC);
	buf[10] = 'T';
	put_digits(buf + 11, s / 3600, 2);
	buf[13] = ':';
	put_digits(buf + 14, s / 60 % 60, 2);
	buf[16] = ':';
	put_digits(buf + 17, s % 60, 2);
	if (sub != 0) {
		buf[19] = '.';
		put_digits(buf + 20, (unsigned)sub, 6);
		buf[26] = 'Z';
		buf[27] = '\0';
	} else {
		buf[19] = 'Z';
		buf[20] = '\0';
	}
	return 0;
}

int32_t
civil_ts_to_day(int64_t usec, int32_t offset_seconds)
{
	int64_t tod, tod2, q;

	q = floor_divmod(usec, CIVIL_USEC_PER_DAY, &tod);
	/* tod in [0, 86400e6); offset_seconds * 1e6 fits easily: no overflow. */
	q += floor_divmod(tod + (int64_t)offset_seconds * CIVIL_USEC_PER_SEC, CIVIL_USEC_PER_DAY,
	                  &tod2);
	/* |q| <= 2^63 / 86400e6 + 25000 < 2^31 */
	return (int32_t)q;
}

int
civil_day_to_ts(int32_t day, int32_t offset_seconds, int64_t *usec)
{
	int64_t t;

	if (__builtin_mul_overflow((int64_t)day, CIVIL_USEC_PER_DAY, &t) ||
	    __builtin_sub_overflow(t, (int64_t)offset_seconds * CIVIL_USEC_PER_SEC, &t))
		return -1;
	*usec = t;
	return 0;
}
