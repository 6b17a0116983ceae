/* util/duration — durations as LiteLLM writes them in configs and the management API. */
#ifndef SLUICE_UTIL_DURATION_H
#define SLUICE_UTIL_DURATION_H

#include <time.h>

/* "<n>s", "<n>m", "<n>h", "<n>d", "<n>w", "<n>mo": from + the duration into *out; months are
 * calendar months with the day clamped to the month's last day (Jan 31 + 1mo = Feb 28/29).
 * 0, or -1 for anything else (empty, negative, unknown unit, trailing text, over ~300 years). */
int duration_add(time_t from, const char *s, time_t *out);

/* Days in month mon0 (0 = January) of a Gregorian year. */
int duration_days_in_month(int year, int mon0);

#endif
