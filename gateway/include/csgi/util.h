/*
 * CSGI plugin author's kit: parsing and building helpers (issue 15).
 *
 * Part of libcsgi-util, a static library linked into the plugin: nothing here
 * is part of the plugin ABI, and the server does not provide these functions.
 * Every function is a pure function of its arguments unless it takes a host
 * api (then it allocates from the request arena with api->alloc(), never with
 * malloc()) or an input stream (then it reads from it). Work is bounded by the
 * size of the input; parsers never read past the length they are given and
 * never need a NUL terminator. Results that point into an argument are
 * Borrowed from it and valid as long as that argument is.
 *
 * Error codes are the CSGI_E* of errors.h: CSGI_EINVAL for a NULL pointer or
 * malformed input, CSGI_ENOENT for "not present", CSGI_ETOOBIG when a result
 * does not fit the caller's buffer or limit, CSGI_EHEADER when a value cannot
 * be put in a header safely, CSGI_ENOMEM when api->alloc() fails.
 */
#ifndef CSGI_UTIL_H
#define CSGI_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Strings                                                             */
/* ------------------------------------------------------------------ */

/**
 * A csgi_str over a NUL-terminated string.
 * @param s borrowed; NULL gives {NULL, 0}.
 * @return the string, pointing into @p s.
 */
struct csgi_str csgi_str_c(const char *s);

/** 1 when @p a and @p b hold the same bytes, else 0. {NULL, 0} equals "". */
int csgi_str_eq(struct csgi_str a, struct csgi_str b);

/** As csgi_str_eq(), ASCII case-insensitive (only A-Z fold; other bytes compare exactly). */
int csgi_str_ieq(struct csgi_str a, struct csgi_str b);

/** csgi_str_eq() against a NUL-terminated string; a NULL @p b equals nothing. */
int csgi_str_eq_c(struct csgi_str a, const char *b);

/** csgi_str_ieq() against a NUL-terminated string; a NULL @p b equals nothing. */
int csgi_str_ieq_c(struct csgi_str a, const char *b);

/** 1 when @p s starts with @p prefix (an empty prefix always matches), else 0. */
int csgi_str_has_prefix(struct csgi_str s, struct csgi_str prefix);

/** As csgi_str_has_prefix(), ASCII case-insensitive. */
int csgi_str_has_iprefix(struct csgi_str s, struct csgi_str prefix);

/**
 * @p s without leading and trailing optional white space (SP and HTAB, RFC 9110 5.6.3).
 * @return a string pointing into @p s (borrowed).
 */
struct csgi_str csgi_str_trim(struct csgi_str s);

/**
 * Parse a decimal int64: an optional '-', then 1 to 19 or so digits, nothing
 * else (no '+', no spaces).
 * @param out out: the value; unchanged on failure.
 * @return 0, or CSGI_EINVAL when @p s is not such a number or is outside
 *         INT64_MIN..INT64_MAX.
 */
int csgi_str_to_i64(struct csgi_str s, int64_t *out);

/* ------------------------------------------------------------------ */
/* Header lookup                                                       */
/* ------------------------------------------------------------------ */

/**
 * Find the @p index-th header called @p name (ASCII case-insensitive) in an
 * array of @p n headers, for instance a response's. Field values are returned
 * as they are, not trimmed and not joined.
 * @param value out: the value, pointing into @p headers (borrowed).
 * @return 0; CSGI_ENOENT when there are not @p index + 1 such headers;
 *         CSGI_EINVAL when @p value, @p name, or @p headers with @p n > 0 is NULL.
 */
int csgi_headers_find(const struct csgi_header *headers, size_t n, struct csgi_str name,
                      size_t index, struct csgi_str *value);

/**
 * csgi_headers_find() over a request's env->headers; works the same in every
 * host and needs no host api. @p value is valid until the request is finished.
 */
int csgi_header_get(const struct csgi_environ *env, const char *name, size_t index,
                    struct csgi_str *value);

/* ------------------------------------------------------------------ */
/* Percent-decoding, query strings and urlencoded forms                */
/* ------------------------------------------------------------------ */

/** csgi_url_decode() flags. */
enum csgi_url_flags {
    /** Decode '+' as a space (application/x-www-form-urlencoded, HTML forms). */
    CSGI_URL_PLUS_SPACE = 1u << 0,
    /** Keep a '%' not followed by two hex digits as it is instead of failing. */
    CSGI_URL_LENIENT = 1u << 1,
    /** Refuse "%00", so that the result is also a safe C string. */
    CSGI_URL_NO_NUL = 1u << 2
};

/**
 * Percent-decode @p in into @p dst. The decoded length is never more than
 * @p in.len, so a buffer of @p in.len bytes (plus one for the terminator)
 * always suffices. @p dst is NUL-terminated when there is room for it. @p dst
 * may equal @p in.ptr (decoding in place).
 * @param flags enum csgi_url_flags.
 * @param len   out: the decoded length. May be NULL.
 * @return 0; CSGI_EINVAL for a bad escape ('%' without two hex digits, unless
 *         CSGI_URL_LENIENT), for "%00" with CSGI_URL_NO_NUL, or a NULL
 *         @p dst with @p cap > 0; CSGI_ETOOBIG when the result does not fit
 *         @p cap. On failure the contents of @p dst are unspecified.
 */
int csgi_url_decode(struct csgi_str in, unsigned flags, char *dst, size_t cap, size_t *len);

/**
 * 1 when @p raw, percent-decoded with @p flags, equals @p name; 0 otherwise
 * (and for a bad escape unless CSGI_URL_LENIENT). Does not allocate.
 */
int csgi_url_decoded_eq(struct csgi_str raw, unsigned flags, struct csgi_str name);

/**
 * Iterator over the pairs of a query string or urlencoded form body: the
 * parts between '&' (empty parts are skipped), each split at its first '='.
 * Initialise with csgi_query_iter_init(); the fields are private.
 */
struct csgi_query_iter {
    const char *p;
    const char *end;
};

/** Start iterating @p data (borrowed: it must outlive the iterator). */
void csgi_query_iter_init(struct csgi_query_iter *it, struct csgi_str data);

/**
 * The next pair, still encoded (decode with csgi_url_decode()).
 * @param key   out: the raw key, pointing into the data (borrowed).
 * @param value out: the raw value; "" when the pair has no '=' (borrowed).
 * @return 1 with a pair, 0 at the end, CSGI_EINVAL for NULL arguments.
 */
int csgi_query_next(struct csgi_query_iter *it, struct csgi_str *key, struct csgi_str *value);

/**
 * Find the @p index-th value of key @p name (compared after decoding) in
 * @p data and decode it into @p dst (NUL-terminated), without allocating.
 * @param flags enum csgi_url_flags, applied to keys and values.
 * @param value out: the decoded value, pointing into @p dst.
 * @return 0; CSGI_ENOENT; or as csgi_url_decode() for the value.
 */
int csgi_query_find(struct csgi_str data, struct csgi_str name, size_t index, unsigned flags,
                    char *dst, size_t cap, struct csgi_str *value);

/**
 * Find parameter @p name of the request's query string (the first one when it
 * repeats) and decode it as a form field: '+' is a space, a bad '%' escape
 * stays as it is (CSGI_URL_PLUS_SPACE | CSGI_URL_LENIENT, as browsers and
 * WSGI frameworks do). The value may contain NUL bytes from "%00".
 * @param value out: the value, NUL-terminated, in request memory from
 *              api->alloc(). Valid until the request is finished.
 * @return 0, CSGI_ENOENT, CSGI_ENOMEM, or CSGI_EINVAL for a NULL argument.
 */
int csgi_query_get(const struct csgi_host_api *api, const struct csgi_environ *env,
                   const char *name, struct csgi_str *value);

/**
 * As csgi_query_get() over an application/x-www-form-urlencoded body (read
 * it with csgi_read_body()).
 * @param form the body; borrowed.
 */
int csgi_form_get(const struct csgi_host_api *api, const struct csgi_environ *env,
                  struct csgi_str form, const char *name, struct csgi_str *value);

/* ------------------------------------------------------------------ */
/* Request body                                                        */
/* ------------------------------------------------------------------ */

/**
 * Read the whole request body from env->input into request memory,
 * NUL-terminated. With a Content-Length the buffer is allocated once; without
 * one (chunked) it grows by doubling from 4 KiB, so the arena may hold up to
 * twice the body. Does not rewind: call it before anything else reads input.
 * @param limit the largest body accepted, in bytes.
 * @param body  out: the body. Valid until the request is finished.
 * @return 0; CSGI_ETOOBIG when the Content-Length or the bytes read exceed
 *         @p limit (the input is then left partly read); CSGI_ENOMEM; the
 *         input stream's negative code (CSGI_ECONNRESET, CSGI_EIO);
 *         CSGI_EINVAL for a NULL argument.
 */
int csgi_read_body(const struct csgi_host_api *api, const struct csgi_environ *env, size_t limit,
                   struct csgi_str *body);

/**
 * Read an input stream to its end into a caller buffer (no allocation).
 * @param len out: bytes stored. May be NULL.
 * @return 0; CSGI_ETOOBIG when the body is longer than @p cap (the first
 *         @p cap bytes are stored); the stream's negative code; CSGI_EINVAL.
 */
int csgi_input_read_all(const struct csgi_input *in, char *buf, size_t cap, size_t *len);

/* ------------------------------------------------------------------ */
/* Cookies                                                             */
/* ------------------------------------------------------------------ */

/**
 * Iterator over the pairs of a Cookie request header ("a=1; b=2"), parsed
 * leniently but safely (RFC 6265 5.4 and 4.2.1): pairs are split at ';',
 * optional white space around names and values is dropped, a pair without '='
 * or with an empty name is skipped, a value in double quotes loses them.
 * Values are not decoded. Fields are private.
 */
struct csgi_cookie_iter {
    const char *p;
    const char *end;
};

/** Start iterating the value of one Cookie header (borrowed). */
void csgi_cookie_iter_init(struct csgi_cookie_iter *it, struct csgi_str header);

/**
 * The next cookie.
 * @param name  out: the name, pointing into the header (borrowed).
 * @param value out: the value, possibly empty (borrowed).
 * @return 1 with a cookie, 0 at the end, CSGI_EINVAL for NULL arguments.
 */
int csgi_cookie_next(struct csgi_cookie_iter *it, struct csgi_str *name, struct csgi_str *value);

/**
 * Find cookie @p name in the request's Cookie header fields (all of them, in
 * order; the first match wins, as RFC 6265 orders cookies most specific first).
 * @param value out: the value, valid until the request is finished.
 * @return 0, CSGI_ENOENT, or CSGI_EINVAL for a NULL argument.
 */
int csgi_cookie_get(const struct csgi_environ *env, const char *name, struct csgi_str *value);

/** struct csgi_cookie.same_site. */
enum csgi_same_site {
    CSGI_SAME_SITE_UNSET = 0, /**< no attribute (the browser's default) */
    CSGI_SAME_SITE_LAX = 1,
    CSGI_SAME_SITE_STRICT = 2,
    CSGI_SAME_SITE_NONE = 3 /**< requires CSGI_COOKIE_SECURE */
};

/** struct csgi_cookie.flags. */
enum csgi_cookie_flags {
    CSGI_COOKIE_SECURE = 1u << 0,
    CSGI_COOKIE_HTTP_ONLY = 1u << 1,
    /** Send Max-Age=max_age. */
    CSGI_COOKIE_MAX_AGE = 1u << 2,
    /** Send Expires=<HTTP-date of expires>. */
    CSGI_COOKIE_EXPIRES = 1u << 3
};

/** A cookie to set. Zero-initialise it; unset strings are left out. */
struct csgi_cookie {
    /** A token (RFC 9110 5.6.2), not empty. */
    struct csgi_str name;
    /** cookie-octets (RFC 6265 4.1.1): printable ASCII but SP " , ; \. May be empty. */
    struct csgi_str value;
    /** Domain attribute, or {NULL, 0}. No CTL, SP or ';'. */
    struct csgi_str domain;
    /** Path attribute, or {NULL, 0}. No CTL or ';'. */
    struct csgi_str path;
    /** Seconds, with CSGI_COOKIE_MAX_AGE; 0 or less expires the cookie now. */
    int64_t max_age;
    /** Seconds since the Unix epoch, with CSGI_COOKIE_EXPIRES. */
    int64_t expires;
    /** enum csgi_cookie_flags. */
    unsigned flags;
    /** enum csgi_same_site. */
    int same_site;
};

/**
 * Build a Set-Cookie header value ("sid=abc; Path=/; Secure; HttpOnly") into
 * @p dst, NUL-terminated. Every field is checked first, so that nothing from
 * an attacker-influenced value can add attributes or break the header.
 * @param len out: the length without the terminator. May be NULL.
 * @return 0; CSGI_EHEADER for an invalid name, value, domain or path, for
 *         SameSite=None without Secure, an unknown same_site or flag, or an
 *         expires outside csgi_http_date_format()'s range; CSGI_ETOOBIG when
 *         the result and its terminator do not fit @p cap; CSGI_EINVAL for a
 *         NULL @p cookie or @p dst.
 */
int csgi_set_cookie_format(const struct csgi_cookie *cookie, char *dst, size_t cap, size_t *len);

/**
 * As csgi_set_cookie_format(), into a complete "Set-Cookie" header in request
 * memory, ready for start_response().
 * @param out out: the header. Valid until the request is finished.
 * @return as csgi_set_cookie_format(), or CSGI_ENOMEM.
 */
int csgi_set_cookie_header(const struct csgi_host_api *api, const struct csgi_environ *env,
                           const struct csgi_cookie *cookie, struct csgi_header *out);

/* ------------------------------------------------------------------ */
/* HTTP dates                                                          */
/* ------------------------------------------------------------------ */

/** Length of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), without the terminator. */
#define CSGI_HTTP_DATE_LEN 29

/** Earliest and latest times csgi_http_date_format() accepts (0001-01-01 to 9999-12-31). */
#define CSGI_HTTP_DATE_MIN (-62135596800LL)
#define CSGI_HTTP_DATE_MAX 253402300799LL

/**
 * Format @p t (seconds since the Unix epoch, UTC) as an IMF-fixdate
 * (RFC 9110 5.6.7), NUL-terminated. Does not depend on the locale or TZ.
 * @param dst CSGI_HTTP_DATE_LEN + 1 bytes.
 * @return 0, or CSGI_EINVAL when @p t is outside CSGI_HTTP_DATE_MIN..MAX or
 *         @p dst is NULL.
 */
int csgi_http_date_format(int64_t t, char dst[CSGI_HTTP_DATE_LEN + 1]);

/**
 * Parse an HTTP-date in any of the three formats of RFC 9110 5.6.7:
 * IMF-fixdate, the obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT"; a
 * two-digit year more than 50 years in the future means the previous century)
 * and asctime ("Sun Nov  6 08:49:37 1994"). The whole of @p s must match; the
 * day name must be right for its format but is not checked against the date;
 * a leap second (:60) is accepted and counts as the next second.
 * @param t out: seconds since the Unix epoch; unchanged on failure.
 * @return 0, or CSGI_EINVAL when @p s is not such a date (including
 *         impossible dates such as 31 Apr).
 */
int csgi_http_date_parse(struct csgi_str s, int64_t *t);

/* ------------------------------------------------------------------ */
/* Range requests                                                      */
/* ------------------------------------------------------------------ */

/** Most range-specs csgi_range_parse() reads; a longer list is ignored (200). */
#define CSGI_RANGE_MAX_SPECS 16

/** A byte range, both ends inclusive: 0 <= first <= last < length. */
struct csgi_range {
    int64_t first;
    int64_t last;
};

/**
 * Decide how to answer a Range header (RFC 9110 14.2) for a representation
 * of @p length bytes, and return the status to send:
 * - 206: @p out is the one range to send (Content-Range: bytes first-last/length).
 *   Several ranges are merged when they overlap or touch.
 * - 416: no range is satisfiable (send Content-Range: bytes star/length).
 * - 200: ignore the header and send the whole representation: it is not
 *   "bytes=" (the unit is case-insensitive) or is malformed, it holds more
 *   than CSGI_RANGE_MAX_SPECS specs, or its satisfiable ranges are disjoint
 *   (multipart/byteranges is not supported).
 * Numbers too large for int64 saturate: a huge last-pos means "to the end".
 * @param header the Range field value; {NULL, 0} gives 200.
 * @param out    out: the range, set only for 206.
 * @return 206, 416 or 200; CSGI_EINVAL for a negative @p length or NULL @p out.
 */
int csgi_range_parse(struct csgi_str header, int64_t length, struct csgi_range *out);

/* ------------------------------------------------------------------ */
/* multipart/form-data                                                 */
/* ------------------------------------------------------------------ */

/** Longest boundary RFC 2046 5.1.1 allows. */
#define CSGI_MULTIPART_BOUNDARY_MAX 70

/**
 * Find the boundary of a multipart/form-data Content-Type ("multipart/form-data;
 * boundary=xyz", the type case-insensitive, the value a token or a
 * quoted-string without backslashes). The boundary must be 1 to 70 bchars
 * (RFC 2046 5.1.1: digits, letters and '()+_,-./:=? and space, not last).
 * @param boundary out: the boundary, pointing into @p content_type (borrowed).
 * @return 0; CSGI_ENOTSUP when the type is not multipart/form-data;
 *         CSGI_EINVAL for a missing, repeated or invalid boundary, a malformed
 *         parameter or a NULL @p boundary.
 */
int csgi_multipart_boundary(struct csgi_str content_type, struct csgi_str *boundary);

/**
 * Limits of a multipart parser. A field left 0 takes the default in brackets.
 * Every byte read from the input counts against max_total_bytes.
 */
struct csgi_multipart_limits {
    /** Most parts accepted [128]. */
    size_t max_parts;
    /** Largest header block of one part, its final empty line included [8 KiB]. */
    size_t max_header_bytes;
    /** Most body bytes read from the input, preamble and padding included [16 MiB]. */
    uint64_t max_total_bytes;
    /** Largest field part (one without a filename), held in request memory [64 KiB]. */
    size_t max_field_bytes;
    /** Largest file part (one with a filename) held in request memory [64 KiB]. */
    size_t max_file_memory;
    /**
     * Directory for file parts larger than max_file_memory, which then go to
     * an unlinked temporary file there (O_TMPFILE, else mkstemp() and
     * unlink()). NULL: such a part fails with CSGI_ETOOBIG. Borrowed; read
     * during csgi_multipart_next().
     */
    const char *tmp_dir;
};

/** One part of a multipart/form-data body. */
struct csgi_multipart_part {
    /** The name parameter of Content-Disposition, unquoted; never NULL. */
    struct csgi_str name;
    /** The filename parameter, unquoted; {NULL, 0} when absent (a field part). */
    struct csgi_str filename;
    /** The part's Content-Type, trimmed; {NULL, 0} when absent (text/plain). */
    struct csgi_str content_type;
    /** The content when held in memory, NUL-terminated; {NULL, 0} when in @c fd. */
    struct csgi_str data;
    /**
     * -1, or an unlinked temporary file holding the content, positioned at
     * byte 0. Owned by the request: it is closed when the request finishes
     * (an on_finished() callback); read it, dup() it or hand it to
     * body_from_fd() without CSGI_FD_CLOSE, but never close it.
     */
    int fd;
    /** Content length in bytes, in memory or in the file. */
    uint64_t size;
};

/** A multipart/form-data parser over a request's input; opaque. */
struct csgi_multipart;

/**
 * Start parsing the request's body as multipart/form-data (RFC 7578 over
 * RFC 2046 5.1), with the boundary of env->content_type. The parser reads
 * env->input as csgi_multipart_next() asks for parts; it never reads more
 * than max_total_bytes + 1 bytes and never rewinds.
 * @param limits NULL for the defaults; copied.
 * @param out    out: the parser, in request memory. Valid until the request is finished.
 * @return 0; as csgi_multipart_boundary() for the Content-Type (CSGI_ENOTSUP
 *         when it is absent); CSGI_ETOOBIG when the Content-Length exceeds
 *         max_total_bytes; CSGI_ENOMEM; CSGI_EINVAL for a NULL argument.
 */
int csgi_multipart_open(const struct csgi_host_api *api, const struct csgi_environ *env,
                        const struct csgi_multipart_limits *limits, struct csgi_multipart **out);

/**
 * Read the next part: its headers, then its whole content, into request
 * memory or a temporary file (see struct csgi_multipart_limits). The
 * preamble before the first boundary is skipped; the epilogue after the
 * final one is not read. A part's header block holds CRLF-terminated
 * "name: value" lines and must carry a Content-Disposition of form-data with
 * a name; other fields are ignored. Part strings are NUL-terminated copies in
 * request memory, valid until the request is finished.
 * @param part out: the part; set only when 1 is returned.
 * @return 1 with a part; 0 after the final boundary (and on every later
 *         call); CSGI_EINVAL for a malformed body (no boundary, a bad
 *         boundary line, a bad header or Content-Disposition, a body that
 *         ends before the final boundary); CSGI_ETOOBIG when a limit is
 *         exceeded; CSGI_ENOMEM; CSGI_EIO when a temporary file cannot be
 *         made or written; the input stream's negative code. After a
 *         failure every later call returns the same code.
 */
int csgi_multipart_next(struct csgi_multipart *mp, struct csgi_multipart_part *part);

/* ------------------------------------------------------------------ */
/* JSON responses (cJSON)                                              */
/* ------------------------------------------------------------------ */

/* cJSON's node (<cjson/cJSON.h>); these two functions need libcjson. */
struct cJSON;

/**
 * Print @p root compactly (cJSON_PrintUnformatted()) into request memory as a
 * one-chunk body with an exact total_length, so that the server sends it
 * with a Content-Length (SPEC.md 4.5 rule 2). The body needs no close().
 * @param root borrowed; only read during the call.
 * @param out  out: the body; unchanged on failure. Valid until the request is finished.
 * @return 0; CSGI_ENOMEM when printing or api->alloc() fails; CSGI_EINVAL for
 *         a NULL argument.
 */
int csgi_json_body(const struct csgi_host_api *api, const struct csgi_environ *env,
                   const struct cJSON *root, struct csgi_body *out);

/**
 * Answer with @p root as JSON: csgi_json_body(), then start_response() with
 * @p status, "Content-Type: application/json" and @p headers after it (say
 * Cache-Control or Set-Cookie; borrowed, must not hold a Content-Type).
 * Return the body from call(). Nothing is started when printing fails.
 * @param out out: the body; set only on success.
 * @return 0; as csgi_json_body(); start_response()'s code (CSGI_ESTATUS,
 *         CSGI_EHEADER, CSGI_ESTATE); CSGI_EINVAL for a NULL argument or
 *         NULL @p headers with @p n_headers > 0.
 */
int csgi_json_respond(const struct csgi_host_api *api, const struct csgi_environ *env,
                      const struct csgi_responder *resp, int status,
                      const struct csgi_header *headers, size_t n_headers, const struct cJSON *root,
                      struct csgi_body *out);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_UTIL_H */
