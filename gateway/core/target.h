/*
 * Request-target and header-value parsing: pure functions on bytes, with no
 * libmicrohttpd types, so that they are unit-tested and fuzzed directly.
 */
#ifndef CSGI_TARGET_H
#define CSGI_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* A parsed request-target. Pointers point into the raw target or into out_buf. */
struct csgi__target {
    /* Percent-decoded path, NUL-terminated, no NUL inside; "*" for asterisk-form. */
    char *path;
    size_t path_len;
    /* Raw (undecoded) path as received, without query. */
    const char *raw_path;
    size_t raw_path_len;
    /* Query after the first '?', undecoded; "" when absent. */
    const char *query;
    size_t query_len;
    /* Host and port from an absolute-form target; NULL when origin-form. */
    const char *host;
    size_t host_len;
    /* Length of the host name alone (without ":port"). */
    size_t host_name_len;
    /* 1 for asterisk-form ("*"). */
    int asterisk;
};

/*
 * Parse a request-target of `len` bytes. out_buf must hold len + 1 bytes and
 * receives the decoded path. Accepted forms: origin-form ("/p?q"), absolute-
 * form ("http://host[:port]/p?q", scheme case-insensitive, http or https) and
 * asterisk-form ("*"). Rejected (returns -1, *why set to a static string):
 * empty target, other forms, bytes outside VCHAR, a '#', a bad %-escape,
 * %00 anywhere in the path, userinfo in an absolute-form authority.
 * Returns 0 on success.
 */
int csgi__target_parse(const char *raw, size_t len, char *out_buf, struct csgi__target *t,
                       const char **why);

/*
 * Validate a Host header value (RFC 9110 7.2 / RFC 3986 authority without
 * userinfo): reg-name, IPv4 or [IPv6], optional ":port" of 0..5 digits
 * (<= 65535). On success returns 0 and sets name/port spans (port_len 0 when
 * absent). Returns -1 when invalid.
 */
int csgi__host_parse(const char *p, size_t n, size_t *name_len, const char **port,
                     size_t *port_len);

/*
 * Check a request's Transfer-Encoding value. Returns 0 when it is exactly
 * "chunked" (ASCII case-insensitive, no parameters, no list, no surrounding
 * whitespace left after the parser's trim); 501 for a well-formed list of
 * codings that ends in "chunked" after codings the server does not implement
 * ("gzip, chunked"); 400 for anything else: a final coding other than
 * "chunked" ("gzip", "identity", "chunked, gzip": RFC 9112 6.3), "chunked"
 * twice, or a malformed value ("chunked ", "chunked;q=1").
 */
int csgi__te_check(const char *p, size_t n);

/* True when the method is one csgi-server implements (RFC 9110 + PATCH). */
int csgi__method_known(const char *m, size_t n);

#endif /* CSGI_TARGET_H */
