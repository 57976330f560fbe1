/*
 * daycount.h: day-count conventions for simple daily interest (R6.3).
 *
 * Interest for one day d is balance * annual_rate / daycount_denominator(dc, d).
 */
#ifndef CREDITD_DAYCOUNT_H
#define CREDITD_DAYCOUNT_H

#include <stddef.h>
#include <stdint.h>

enum daycount {
	DAYCOUNT_ACT_365, /* "actual/365": every day is 1/365 of a year (the default) */
	DAYCOUNT_ACT_ACT, /* "actual/actual" (ISDA): 1/365 or 1/366 by day's calendar year */
	DAYCOUNT_ACT_360, /* "actual/360": every day is 1/360 of a year */
};

/* Least common multiple of every denominator (360 * 365 * 366 / gcds = 1603080). */
#define DAYCOUNT_LCM 1603080

/* Exact names "actual/365", "actual/actual", "actual/360" (len bytes of s); 0 or -1. */
int daycount_parse(const char *s, size_t len, enum daycount *out);
/* The name, or NULL for an invalid value. */
const char *daycount_name(enum daycount dc);
/* 365, 366 or 360 for day (days since 1970-01-01); 0 for an invalid convention. */
int daycount_denominator(enum daycount dc, int32_t day);

#endif
