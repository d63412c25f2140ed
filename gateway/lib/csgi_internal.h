/*
 * Internal helpers shared by the server and the helper library. Not installed,
 * not part of the ABI: symbols are csgi__*.
 */
#ifndef CSGI_INTERNAL_H
#define CSGI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <csgi/csgi.h>

/* Character classes of the HTTP checks, one byte per octet (httpcheck.c). */
enum { CSGI__C_TCHAR = 1, CSGI__C_VALUE = 2 };
extern const unsigned char csgi__cclass[256];

/*
 * True when [p, p+n) is a non-empty RFC 9110 token (tchar only). Inline:
 * every request checks its method and header names, every response its
 * header names.
 */
static inline int
csgi__is_token(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;

    if (!p || n == 0)
        return 0;
    /* Four lookups per branch: a name is mostly tchar. */
    for (; i + 4 <= n; i += 4) {
        if (!(csgi__cclass[u[i]] & csgi__cclass[u[i + 1]] & csgi__cclass[u[i + 2]] &
              csgi__cclass[u[i + 3]] & CSGI__C_TCHAR))
            return 0;
    }
    for (; i < n; i++) {
        if (!(csgi__cclass[u[i]] & CSGI__C_TCHAR))
            return 0;
    }
    return 1;
}

/*
 * True when [p, p+n) is a valid field value: VCHAR, obs-text, SP and HTAB
 * only (no NUL, CR, LF, other controls or DEL).
 */
int csgi__is_field_value(const char *p, size_t n);

/* True when a reason phrase is valid (HTAB, SP, VCHAR, obs-text). */
int csgi__is_reason(const char *p, size_t n);

/* True when [a, a+an) equals the NUL-terminated b, ASCII case-insensitively. */
int csgi__str_ieq(const char *a, size_t an, const char *b);

/*
 * True when the token [p, p+n) equals @p lower (@p lower_len bytes of
 * lower-case letters, digits and '-'), ASCII case-insensitively. Faster than
 * csgi__str_ieq() for the hot header-name compares, but only exact when
 * [p, p+n) is already known to be a token: a byte is folded with | 0x20,
 * which also maps CR onto '-'.
 */
static inline int
csgi__token_ieq(const char *p, size_t n, const char *lower, size_t lower_len)
{
    if (n != lower_len)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)p[i] | 0x20) != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

/*
 * True when [a, a+n) and [b, b+n) hold the same bytes. Inline, without a
 * loop up to 32 bytes: the memos of the hot path compare short strings,
 * where a call to memcmp() costs more than the compare. Two loads from each
 * end cover the string, overlapping in the middle: four (or two) bytes each
 * below eight, eight each below sixteen, sixteen each (SSE2 on x86-64, GCC
 * vectors elsewhere) from there; longer strings go sixteen at a time.
 */
static inline int
csgi__v16_eq(const char *a, const char *b)
{
#if defined(__SSE2__)
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)a);
    __m128i y = _mm_loadu_si128((const __m128i *)(const void *)b);

    return _mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) == 0xffff;
#else
    uint64_t w[4];

    memcpy(w, a, 16);
    memcpy(w + 2, b, 16);
    return ((w[0] ^ w[2]) | (w[1] ^ w[3])) == 0;
#endif
}

static inline int
csgi__bytes_eq(const char *a, const char *b, size_t n)
{
    if (n < 8) {
        uint32_t w[4];
        uint16_t h[4];

        if (n >= 4) {
            memcpy(&w[0], a, 4);
            memcpy(&w[1], b, 4);
            memcpy(&w[2], a + n - 4, 4);
            memcpy(&w[3], b + n - 4, 4);
            return ((w[0] ^ w[1]) | (w[2] ^ w[3])) == 0;
        }
        if (n >= 2) {
            memcpy(&h[0], a, 2);
            memcpy(&h[1], b, 2);
            memcpy(&h[2], a + n - 2, 2);
            memcpy(&h[3], b + n - 2, 2);
            return ((h[0] ^ h[1]) | (h[2] ^ h[3])) == 0;
        }
        return n == 0 || a[0] == b[0];
    }
    if (n < 16) {
        uint64_t x[4];

        memcpy(&x[0], a, 8);
        memcpy(&x[1], b, 8);
        memcpy(&x[2], a + n - 8, 8);
        memcpy(&x[3], b + n - 8, 8);
        return ((x[0] ^ x[1]) | (x[2] ^ x[3])) == 0;
    }
    for (size_t i = 0; i + 32 < n; i += 16) {
        if (!csgi__v16_eq(a + i, b + i))
            return 0;
    }
    /* The last 32 (or fewer) bytes: two loads of sixteen, overlapping what was compared. */
    return csgi__v16_eq(a + (n >= 32 ? n - 32 : 0), b + (n >= 32 ? n - 32 : 0)) &&
           csgi__v16_eq(a + n - 16, b + n - 16);
}

/*
 * True when the header name is hop-by-hop or connection-specific (Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade).
 */
int csgi__is_hop_by_hop(const char *name, size_t n);

/* Value of a hex digit, or -1. */
int csgi__hexval(unsigned char c);

/*
 * Decode the %HH escapes of a request path [in, in+n) into out (n + 1
 * bytes, NUL-terminated); '+' stays '+'. Returns the decoded length, or -1
 * for a bad escape or a decoded NUL. csgi-server and the test client decode
 * paths with this one function, so they accept and refuse the same targets.
 */
long csgi__percent_decode(const char *in, size_t n, char *out);

/* The standard reason phrase of a status code, or "Unknown". Static. */
const char *csgi__status_reason(int status);

/*
 * Parse a Content-Length value: 1..18 decimal digits, nothing else.
 * Returns the value, or -1 when invalid.
 */
int64_t csgi__parse_content_length(const char *p, size_t n);

/*
 * Check a response head as start_response() must (SPEC.md section 4.4):
 * status 200..599 (also 100..199 refused), reason, header names and values,
 * no Status header, no hop-by-hop header, at most one well-formed
 * Content-Length and none on 204/304.
 *
 * On failure writes a one-line reason into why (if non-NULL) and returns
 * CSGI_ESTATUS or CSGI_EHEADER. On success returns 0 and, when
 * content_length is non-NULL, stores the declared length there (-1 if none).
 */
int csgi__check_response_head(int status, struct csgi_str reason, const struct csgi_header *headers,
                              size_t n_headers, int64_t *content_length, char *why, size_t why_len);

#endif /* CSGI_INTERNAL_H */
