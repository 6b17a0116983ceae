/* util/duration — see duration.h. */
#include "util/duration.h"

#include <ctype.h>
#include <string.h>

/* Largest accepted duration: about 300 years. Past that a timestamp stops being meaningful and
 * the arithmetic would have to care about overflow. */
#define MAX_DURATION_S (300LL * 366 * 86400)

int duration_days_in_month(int year, int mon0)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon0 == 1 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return d[mon0];
}

/* "<digits><unit>" → n and the unit's length in seconds (0 for months). */
static int duration_split(const char *s, long long *n, long long *unit_s)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    long long v = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p - '0');
        if (v > MAX_DURATION_S)
            return -1;
        p++;
    }
    if (!strcmp(p, "s"))
        *unit_s = 1;
    else if (!strcmp(p, "m"))
        *unit_s = 60;
    else if (!strcmp(p, "h"))
        *unit_s = 3600;
    else if (!strcmp(p, "d"))
        *unit_s = 86400;
    else if (!strcmp(p, "w"))
        *unit_s = 7 * 86400;
    else if (!strcmp(p, "mo"))
        *unit_s = 0;
    else
        return -1;
    if (*unit_s && v > MAX_DURATION_S / *unit_s)
        return -1;
    if (!*unit_s && v > 300 * 12)
        return -1;
    *n = v;
    return 0;
}

int duration_add(time_t from, const char *s, time_t *out)
{
    long long n, unit;
    if (duration_split(s, &n, &unit) < 0)
        return -1;
    if (unit) {
        *out = from + (time_t)(n * unit);
        return 0;
    }
    struct tm tm;
    if (!gmtime_r(&from, &tm))
        return -1;
    long long m = (long long)tm.tm_mon + n;
    int year = tm.tm_year + 1900 + (int)(m / 12);
    int mon = (int)(m % 12);
    int dim = duration_days_in_month(year, mon);
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    if (tm.tm_mday > dim)
        tm.tm_mday = dim;
    *out = timegm(&tm);
    return 0;
}

