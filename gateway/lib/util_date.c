/*
 * libcsgi-util: HTTP-date formatting and parsing (RFC 9110 5.6.7), with no
 * dependence on the locale, TZ or the C library's time functions (see
 * csgi/util.h).
 */
#include <string.h>
#include <time.h>

#include "csgi/util.h"

static const char *const wday_short[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wday_long[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char *const month_name[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse of days_from_civil(). */
static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void
put_num(char *p, unsigned v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

int
csgi_http_date_format(int64_t t, char dst[CSGI_HTTP_DATE_LEN + 1])
{
    int64_t days, y, secs;
    unsigned m, d;

    if (!dst || t < CSGI_HTTP_DATE_MIN || t > CSGI_HTTP_DATE_MAX)
        return CSGI_EINVAL;
    days = t / 86400;
    secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    /* 1970-01-01 was a Thursday (4). */
    memcpy(dst, wday_short[((days % 7) + 11) % 7], 3);
    memcpy(dst + 3, ", ", 2);
    put_num(dst + 5, d, 2);
    dst[7] = ' ';
    memcpy(dst + 8, month_name[m - 1], 3);
    dst[11] = ' ';
    put_num(dst + 12, (unsigned)y, 4);
    dst[16] = ' ';
    put_num(dst + 17, (unsigned)(secs / 3600), 2);
    dst[19] = ':';
    put_num(dst + 20, (unsigned)(secs / 60 % 60), 2);
    dst[22] = ':';
    put_num(dst + 23, (unsigned)(secs % 60), 2);
    memcpy(dst + 25, " GMT", 5);
    return 0;
}

/* A cursor over the date text; every reader fails softly at the end. */
struct cur {
    const char *p, *end;
};

static int
lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* Exactly @p n digits. */
static int
digits(struct cur *c, int n, unsigned *v)
{
    *v = 0;
    if (c->end - c->p < n)
        return 0;
    for (int i = 0; i < n; i++) {
        unsigned dg = (unsigned)((unsigned char)c->p[i] - '0');
        if (dg > 9)
            return 0;
        *v = *v * 10 + dg;
    }
    c->p += n;
    return 1;
}

/* One of @p n names (exact case, as the grammar's %s"..." literals). */
static int
name(struct cur *c, const char *const *names, int n, int *idx)
{
    for (int i = 0; i < n; i++) {
        if (lit(c, names[i])) {
            *idx = i;
            return 1;
        }
    }
    return 0;
}

/* time-of-day = hour ":" minute ":" second */
static int
time_of_day(struct cur *c, unsigned *h, unsigned *mi, unsigned *s)
{
    return digits(c, 2, h) && lit(c, ":") && digits(c, 2, mi) && lit(c, ":") && digits(c, 2, s);
}

static int
days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

static int
to_time(int64_t y, unsigned m, unsigned d, unsigned h, unsigned mi, unsigned s, int64_t *t)
{
    if (m < 1 || m > 12 || d < 1 || (int)d > days_in_month(y, m) || h > 23 || mi > 59 || s > 60)
        return CSGI_EINVAL;
    *t = days_from_civil(y, m, d) * 86400 + (int64_t)(h * 3600 + mi * 60 + s);
    return 0;
}

/* RFC 9110: a two-digit year more than 50 years in the future is in the past century. */
static int64_t
rfc850_year(unsigned yy)
{
    time_t now = time(NULL);
    int64_t days = (int64_t)now / 86400, cy;
    unsigned m, d;
    int64_t y;

    civil_from_days(days, &cy, &m, &d);
    y = cy - cy % 100 + yy;
    if (y > cy + 50)
        y -= 100;
    return y;
}

int
csgi_http_date_parse(struct csgi_str s, int64_t *t)
{
    struct cur c = {s.ptr, s.ptr + s.len};
    unsigned d, y, h, mi, sec;
    int wd, mo;
    int64_t year;

    if (!t || !s.ptr)
        return CSGI_EINVAL;
    if (name(&c, wday_long, 7, &wd)) {
        /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
        if (!(lit(&c, ", ") && digits(&c, 2, &d) && lit(&c, "-") && name(&c, month_name, 12, &mo) &&
              lit(&c, "-") && digits(&c, 2, &y) && lit(&c, " ") && time_of_day(&c, &h, &mi, &sec) &&
              lit(&c, " GMT")))
            return CSGI_EINVAL;
        year = rfc850_year(y);
    } else if (name(&c, wday_short, 7, &wd)) {
        if (lit(&c, ", ")) {
            /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            if (!(digits(&c, 2, &d) && lit(&c, " ") && name(&c, month_name, 12, &mo) &&
                  lit(&c, " ") && digits(&c, 4, &y) && lit(&c, " ") &&
                  time_of_day(&c, &h, &mi, &sec) && lit(&c, " GMT")))
                return CSGI_EINVAL;
        } else {
            /* asctime-date: Sun Nov  6 08:49:37 1994 */
            if (!(lit(&c, " ") && name(&c, month_name, 12, &mo) && lit(&c, " ")))
                return CSGI_EINVAL;
            if (!(lit(&c, " ") ? digits(&c, 1, &d) : digits(&c, 2, &d)))
                return CSGI_EINVAL;
            if (!(lit(&c, " ") && time_of_day(&c, &h, &mi, &sec) && lit(&c, " ") &&
                  digits(&c, 4, &y)))
                return CSGI_EINVAL;
        }
        year = y;
    } else {
        return CSGI_EINVAL;
    }
    if (c.p != c.end)
        return CSGI_EINVAL;
    return to_time(year, (unsigned)mo + 1, d, h, mi, sec, t);
}
