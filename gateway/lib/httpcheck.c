/*
 * HTTP syntax checks shared by csgi-server and the helper library.
 */
#include <stdio.h>
#include <string.h>

#include "csgi_internal.h"

static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int
csgi__is_token(const char *p, size_t n)
{
    if (!p || n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)p[i]))
            return 0;
    }
    return 1;
}

int
csgi__is_field_value(const char *p, size_t n)
{
    if (n == 0)
        return 1;
    if (!p)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
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
    size_t bn = strlen(b);

    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

int
csgi__is_hop_by_hop(const char *name, size_t n)
{
    static const char *const hop[] = {"connection",        "keep-alive", "proxy-connection",
                                      "te",                "trailer",    "transfer-encoding",
                                      "upgrade",           NULL};

    for (size_t i = 0; hop[i]; i++) {
        if (csgi__str_ieq(name, n, hop[i]))
            return 1;
    }
    return 0;
}

const char *
csgi__status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
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
        int len = an > 200 ? 200 : (int)an;
        snprintf(why, why_len, "%s \"%.*s\"%s", what, len, a ? a : "", rest);
    }
    return code;
}

int
csgi__check_response_head(int status, struct csgi_str reason, const struct csgi_header *headers,
                          size_t n_headers, int64_t *content_length, char *why, size_t why_len)
{
    int64_t cl = -1;

    if (status < 200 || status > 599) {
        char num[32];
        snprintf(num, sizeof(num), "%d", status);
        return fail(why, why_len, CSGI_ESTATUS, "status", num, strlen(num), " is outside 200..599");
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
        if (csgi__str_ieq(nm->ptr, nm->len, "status"))
            return fail(why, why_len, CSGI_EHEADER, "header", nm->ptr, nm->len, " is not allowed");
        if (csgi__is_hop_by_hop(nm->ptr, nm->len))
            return fail(why, why_len, CSGI_EHEADER, "hop-by-hop header", nm->ptr, nm->len,
                        " is not allowed");
        if (csgi__str_ieq(nm->ptr, nm->len, "content-length")) {
            if (cl >= 0)
                return fail(why, why_len, CSGI_EHEADER, "duplicate header", nm->ptr, nm->len, "");
            cl = csgi__parse_content_length(val->ptr, val->len);
            if (cl < 0)
                return fail(why, why_len, CSGI_EHEADER, "invalid Content-Length", val->ptr, val->len,
                            "");
            if (status == 204 || status == 304)
                return fail(why, why_len, CSGI_EHEADER, "Content-Length with status",
                            status == 204 ? "204" : "304", 3, " is not allowed");
        }
    }
    if (content_length)
        *content_length = cl;
    return CSGI_OK;
}
