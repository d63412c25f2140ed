/*
 * HTTP syntax checks shared by csgi-server and the helper library.
 */
#include <stdio.h>
#include <string.h>

#include "csgi_internal.h"

/*
 * Character classes, one table lookup per byte: these checks run on every
 * header of every request and response.
 */
enum { C_TCHAR = CSGI__C_TCHAR, C_VALUE = CSGI__C_VALUE };

const unsigned char csgi__cclass[256] = {
    ['\t'] = C_VALUE,          [' '] = C_VALUE,           ['!'] = C_TCHAR | C_VALUE,
    ['"'] = C_VALUE,           ['#'] = C_TCHAR | C_VALUE, ['$'] = C_TCHAR | C_VALUE,
    ['%'] = C_TCHAR | C_VALUE, ['&'] = C_TCHAR | C_VALUE, ['\''] = C_TCHAR | C_VALUE,
    ['('] = C_VALUE,           [')'] = C_VALUE,           ['*'] = C_TCHAR | C_VALUE,
    ['+'] = C_TCHAR | C_VALUE, [','] = C_VALUE,           ['-'] = C_TCHAR | C_VALUE,
    ['.'] = C_TCHAR | C_VALUE, ['/'] = C_VALUE,           ['0'] = C_TCHAR | C_VALUE,
    ['1'] = C_TCHAR | C_VALUE, ['2'] = C_TCHAR | C_VALUE, ['3'] = C_TCHAR | C_VALUE,
    ['4'] = C_TCHAR | C_VALUE, ['5'] = C_TCHAR | C_VALUE, ['6'] = C_TCHAR | C_VALUE,
    ['7'] = C_TCHAR | C_VALUE, ['8'] = C_TCHAR | C_VALUE, ['9'] = C_TCHAR | C_VALUE,
    [':'] = C_VALUE,           [';'] = C_VALUE,           ['<'] = C_VALUE,
    ['='] = C_VALUE,           ['>'] = C_VALUE,           ['?'] = C_VALUE,
    ['@'] = C_VALUE,           ['A'] = C_TCHAR | C_VALUE, ['B'] = C_TCHAR | C_VALUE,
    ['C'] = C_TCHAR | C_VALUE, ['D'] = C_TCHAR | C_VALUE, ['E'] = C_TCHAR | C_VALUE,
    ['F'] = C_TCHAR | C_VALUE, ['G'] = C_TCHAR | C_VALUE, ['H'] = C_TCHAR | C_VALUE,
    ['I'] = C_TCHAR | C_VALUE, ['J'] = C_TCHAR | C_VALUE, ['K'] = C_TCHAR | C_VALUE,
    ['L'] = C_TCHAR | C_VALUE, ['M'] = C_TCHAR | C_VALUE, ['N'] = C_TCHAR | C_VALUE,
    ['O'] = C_TCHAR | C_VALUE, ['P'] = C_TCHAR | C_VALUE, ['Q'] = C_TCHAR | C_VALUE,
    ['R'] = C_TCHAR | C_VALUE, ['S'] = C_TCHAR | C_VALUE, ['T'] = C_TCHAR | C_VALUE,
    ['U'] = C_TCHAR | C_VALUE, ['V'] = C_TCHAR | C_VALUE, ['W'] = C_TCHAR | C_VALUE,
    ['X'] = C_TCHAR | C_VALUE, ['Y'] = C_TCHAR | C_VALUE, ['Z'] = C_TCHAR | C_VALUE,
    ['['] = C_VALUE,           ['\\'] = C_VALUE,          [']'] = C_VALUE,
    ['^'] = C_TCHAR | C_VALUE, ['_'] = C_TCHAR | C_VALUE, ['`'] = C_TCHAR | C_VALUE,
    ['a'] = C_TCHAR | C_VALUE, ['b'] = C_TCHAR | C_VALUE, ['c'] = C_TCHAR | C_VALUE,
    ['d'] = C_TCHAR | C_VALUE, ['e'] = C_TCHAR | C_VALUE, ['f'] = C_TCHAR | C_VALUE,
    ['g'] = C_TCHAR | C_VALUE, ['h'] = C_TCHAR | C_VALUE, ['i'] = C_TCHAR | C_VALUE,
    ['j'] = C_TCHAR | C_VALUE, ['k'] = C_TCHAR | C_VALUE, ['l'] = C_TCHAR | C_VALUE,
    ['m'] = C_TCHAR | C_VALUE, ['n'] = C_TCHAR | C_VALUE, ['o'] = C_TCHAR | C_VALUE,
    ['p'] = C_TCHAR | C_VALUE, ['q'] = C_TCHAR | C_VALUE, ['r'] = C_TCHAR | C_VALUE,
    ['s'] = C_TCHAR | C_VALUE, ['t'] = C_TCHAR | C_VALUE, ['u'] = C_TCHAR | C_VALUE,
    ['v'] = C_TCHAR | C_VALUE, ['w'] = C_TCHAR | C_VALUE, ['x'] = C_TCHAR | C_VALUE,
    ['y'] = C_TCHAR | C_VALUE, ['z'] = C_TCHAR | C_VALUE, ['{'] = C_VALUE,
    ['|'] = C_TCHAR | C_VALUE, ['}'] = C_VALUE,           ['~'] = C_TCHAR | C_VALUE,
    /* obs-text (0x80..0xff) is filled in by value_ok(). */
};

static int
value_ok(unsigned char c)
{
    return c >= 0x80 || (csgi__cclass[c] & C_VALUE);
}

/*
 * Eight bytes at a time (SWAR): a field value is mostly printable ASCII,
 * so a word is accepted with a few arithmetic instructions, and only a
 * word holding a byte below 0x20 or a DEL (a tab, say) is checked byte by
 * byte.
 */
#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static uint64_t
load64(const char *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof(w));
    return w;
}

/* Nonzero when a byte of @p w is below 0x20 or is 0x7f (exact, not per byte). */
static uint64_t
word_suspect(uint64_t w)
{
    uint64_t del = w ^ (ONES * 0x7f);

    return ((w - ONES * 0x20) & ~w & HIGHS) | ((del - ONES) & ~del & HIGHS);
}

static int
bytes_are_value(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!value_ok((unsigned char)p[i]))
            return 0;
    }
    return 1;
}

int
csgi__is_field_value(const char *p, size_t n)
{
    size_t i;

    if (n == 0)
        return 1;
    if (!p)
        return 0;
    if (n < 8)
        return bytes_are_value(p, n);
    for (i = 0; i + 8 <= n; i += 8) {
        if (word_suspect(load64(p + i)) && !bytes_are_value(p + i, 8))
            return 0;
    }
    /* The tail: the last eight bytes, overlapping what was checked. */
    if (i < n && word_suspect(load64(p + n - 8)) && !bytes_are_value(p + n - 8, 8))
        return 0;
    return 1;
}

int
csgi__is_reason(const char *p, size_t n)
{
    return csgi__is_field_value(p, n);
}

int
csgi__str_ieq(const char *a, size_t an, const char *b)
{
    size_t i;

    /* Walk b once: no strlen, and most mismatches stop at the first byte. */
    for (i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (y == 0)
            return 0;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return b[i] == '\0';
}

int
csgi__is_hop_by_hop(const char *name, size_t n)
{
    /* Dispatch on length first: most header names are rejected without a compare. */
    switch (n) {
    case 2:
        return csgi__str_ieq(name, n, "te");
    case 7:
        return csgi__str_ieq(name, n, "trailer") || csgi__str_ieq(name, n, "upgrade");
    case 10:
        return csgi__str_ieq(name, n, "connection") || csgi__str_ieq(name, n, "keep-alive");
    case 16:
        return csgi__str_ieq(name, n, "proxy-connection");
    case 17:
        return csgi__str_ieq(name, n, "transfer-encoding");
    default:
        return 0;
    }
}

const char *
csgi__status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 418:
        return "I'm a teapot";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int64_t
csgi__parse_content_length(const char *p, size_t n)
{
    int64_t v = 0;

    if (!p || n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Write "<what> \"<subject>\"<rest>" into why and return code. */
static int
fail(char *why, size_t why_len, int code, const char *what, const char *a, size_t an,
     const char *rest)
{
    if (why && why_len) {
        /* The subject is the application's bytes: escape controls so the reason stays one line. */
        static const char hex[] = "0123456789abcdef";
        char subj[4 * 200 + 1];
        size_t n = 0;
        for (size_t i = 0; a && i < an && i < 200; i++) {
            unsigned char c = (unsigned char)a[i];
            if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
                subj[n++] = '\\';
                subj[n++] = 'x';
                subj[n++] = hex[c >> 4];
                subj[n++] = hex[c & 15];
            } else {
                subj[n++] = (char)c;
            }
        }
        subj[n] = '\0';
        snprintf(why, why_len, "%s \"%s\"%s", what, subj, rest);
    }
    return code;
}

int
csgi__check_response_head(int status, struct csgi_str reason, const struct csgi_header *headers,
                          size_t n_headers, int64_t *content_length, char *why, size_t why_len)
{
    int64_t cl = -1;

    if ((status < 200 && status != 101) || status > 599) {
        char num[32];
        snprintf(num, sizeof(num), "%d", status);
        return fail(why, why_len, CSGI_ESTATUS, "status", num, strlen(num),
                    " is outside 200..599 (and not 101)");
    }
    if (reason.len && !csgi__is_reason(reason.ptr, reason.len))
        return fail(why, why_len, CSGI_ESTATUS, "reason phrase", reason.ptr, reason.len,
                    " has a control character");
    if (n_headers && !headers)
        return fail(why, why_len, CSGI_EHEADER, "headers array", "NULL", 4, " with n_headers > 0");
    for (size_t i = 0; i < n_headers; i++) {
        const struct csgi_str *nm = &headers[i].name, *val = &headers[i].value;

        if (!csgi__is_token(nm->ptr, nm->len))
            return fail(why, why_len, CSGI_EHEADER, "header name", nm->ptr, nm->len,
                        " is not a token");
        if (!csgi__is_field_value(val->ptr, val->len))
            return fail(why, why_len, CSGI_EHEADER, "value of header", nm->ptr, nm->len,
                        " has a control character");
        /* The name is a token now: csgi__token_ieq() applies. Length first. */
        switch (nm->len) {
        case 6:
            if (csgi__token_ieq(nm->ptr, nm->len, "status", 6))
                return fail(why, why_len, CSGI_EHEADER, "header", nm->ptr, nm->len,
                            " is not allowed");
            break;
        case 14:
            if (!csgi__token_ieq(nm->ptr, nm->len, "content-length", 14))
                break;
            if (cl >= 0)
                return fail(why, why_len, CSGI_EHEADER, "duplicate header", nm->ptr, nm->len, "");
            cl = csgi__parse_content_length(val->ptr, val->len);
            if (cl < 0)
                return fail(why, why_len, CSGI_EHEADER, "invalid Content-Length", val->ptr,
                            val->len, "");
            if (status == 204 || status == 304)
                return fail(why, why_len, CSGI_EHEADER, "Content-Length with status",
                            status == 204 ? "204" : "304", 3, " is not allowed");
            break;
        default:
            /* A 101 names its protocol (SPEC 4.15): Upgrade, and Connection: upgrade. */
            if (status == 101 && (csgi__token_ieq(nm->ptr, nm->len, "upgrade", 7) ||
                                  csgi__token_ieq(nm->ptr, nm->len, "connection", 10)))
                break;
            if (csgi__is_hop_by_hop(nm->ptr, nm->len))
                return fail(why, why_len, CSGI_EHEADER, "hop-by-hop header", nm->ptr, nm->len,
                            " is not allowed");
            break;
        }
    }
    if (content_length)
        *content_length = cl;
    return CSGI_OK;
}

int
csgi__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long
csgi__percent_decode(const char *in, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = csgi__hexval((unsigned char)in[i + 1]);
            lo = csgi__hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            if (c == 0)
                return -1;
            i += 2;
        } else if (c == 0) {
            return -1;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}
