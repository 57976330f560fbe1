/* daycount.c: day-count conventions (see daycount.h). */
#include "daycount.h"

#include <string.h>

#include "civil.h"

static const char *const names[] = {
    [DAYCOUNT_ACT_365] = "actual/365",
    [DAYCOUNT_ACT_ACT] = "actual/actual",
    [DAYCOUNT_ACT_360] = "actual/360",
};

int
daycount_parse(const char *s, size_t len, enum daycount *out)
{
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
			*out = (enum daycount)i;
			return 0;
		}
	}
	return -1;
}

const char *
daycount_name(enum daycount dc)
{
	if ((unsigned)dc >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[dc];
}

int
daycount_denominator(enum daycount dc, int32_t day)
{
	switch (dc) {
	case DAYCOUNT_ACT_365:
		return 365;
	case DAYCOUNT_ACT_ACT:
		return civil_days_in_year(civil_year(day));
	case DAYCOUNT_ACT_360:
		return 360;
	}
	return 0;
}
