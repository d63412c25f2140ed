/*
 * libcsgi-util: Range header evaluation for single-part 206 responses (see
 * csgi/util.h).
 */
#include <string.h>

#include "csgi/util.h"

/* One parsed range-spec: first..last (last INT64_MAX when open), or a suffix. */
struct spec {
    int64_t first, last, suffix;
    int is_suffix;
};

static const char *
skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* 1*DIGIT, saturating at INT64_MAX. Returns the end, or NULL without a digit. */
static const char *
number(const char *p, const char *end, int64_t *v)
{
    const char *start = p;

    *v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        int d = *p - '0';
        *v = *v > (INT64_MAX - d) / 10 ? INT64_MAX : *v * 10 + d;
        p++;
    }
    return p == start ? NULL : p;
}

/* int-range / suffix-range over [p, end) (already trimmed). Returns 0 or -1. */
static int
parse_spec(const char *p, const char *end, struct spec *s)
{
    memset(s, 0, sizeof(*s));
    if (p < end && *p == '-') {
        s->is_suffix = 1;
        p = number(p + 1, end, &s->suffix);
        return p && p == end ? 0 : -1;
    }
    p = number(p, end, &s->first);
    if (!p || p == end || *p != '-')
        return -1;
    p++;
    if (p == end) {
        s->last = INT64_MAX;
        return 0;
    }
    p = number(p, end, &s->last);
    if (!p || p != end || s->last < s->first)
        return -1;
    return 0;
}

/*
 * Clip @p s to @p length. Returns 1 with a satisfiable range in @p r, 0 when
 * it is not satisfiable.
 */
static int
clip(const struct spec *s, int64_t length, struct csgi_range *r)
{
    if (s->is_suffix) {
        if (s->suffix == 0 || length == 0)
            return 0;
        r->first = s->suffix >= length ? 0 : length - s->suffix;
        r->last = length - 1;
        return 1;
    }
    if (s->first >= length)
        return 0;
    r->first = s->first;
    r->last = s->last >= length ? length - 1 : s->last;
    return 1;
}

/* Split the range-set into specs. Returns the count, or -1 (malformed or too many). */
static int
split(const char *p, const char *end, struct spec *specs)
{
    int n = 0;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *b = skip_ows(p, e);

        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        /* Empty list elements are allowed (RFC 9110 5.6.1.2). */
        if (b < e) {
            if (n == CSGI_RANGE_MAX_SPECS || parse_spec(b, e, &specs[n]) < 0)
                return -1;
            n++;
        }
        p = comma ? comma + 1 : end;
    }
    return n;
}

int
csgi_range_parse(struct csgi_str header, int64_t length, struct csgi_range *out)
{
    struct spec specs[CSGI_RANGE_MAX_SPECS];
    struct csgi_range r[CSGI_RANGE_MAX_SPECS], merged = {0, 0};
    struct csgi_str h = csgi_str_trim(header);
    int n, nsat = 0;
    const char *p;

    if (length < 0 || !out || (!header.ptr && header.len > 0))
        return CSGI_EINVAL;
    if (!csgi_str_has_iprefix(h, csgi_str_c("bytes=")))
        return 200;
    p = h.ptr + 6;
    n = split(p, h.ptr + h.len, specs);
    if (n <= 0)
        return 200;
    for (int i = 0; i < n; i++) {
        if (clip(&specs[i], length, &r[nsat]))
            nsat++;
    }
    if (nsat == 0)
        return 416;
    /* Merge: the union must be one interval (overlapping or adjacent ranges). */
    merged = r[0];
    for (int pass = 0, changed = 1; changed && pass < nsat; pass++) {
        changed = 0;
        for (int i = 1; i < nsat; i++) {
            if (r[i].first <= merged.last + 1 && r[i].last + 1 >= merged.first &&
                (r[i].first < merged.first || r[i].last > merged.last)) {
                merged.first = r[i].first < merged.first ? r[i].first : merged.first;
                merged.last = r[i].last > merged.last ? r[i].last : merged.last;
                changed = 1;
            }
        }
    }
    for (int i = 0; i < nsat; i++) {
        if (r[i].first < merged.first || r[i].last > merged.last)
            return 200;
    }
    *out = merged;
    return 206;
}
