/*
 * libcsgi-util: multipart/form-data (RFC 7578 over RFC 2046 5.1), parsed
 * incrementally from the request's input stream (see csgi/util.h).
 *
 * The parser keeps one read buffer in request memory. The stream is read as
 * if it started with CRLF, so that the first boundary, which may open the
 * body, is found by the same delimiter search ("\r\n--" boundary) as the
 * others. While it scans a part's content it holds back the last
 * delimiter-length - 1 bytes, which could be the start of a delimiter.
 */
#define _GNU_SOURCE /* O_TMPFILE, mkostemp() */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csgi/util.h"

#define MP_DEFAULT_PARTS        128u
#define MP_DEFAULT_HEADER_BYTES 8192u
#define MP_DEFAULT_TOTAL_BYTES  (16ull << 20)
#define MP_DEFAULT_FIELD_BYTES  65536u
#define MP_DEFAULT_FILE_MEMORY  65536u
/* Smallest read buffer; it is also at least max_header_bytes. */
#define MP_BUF_MIN 8192u
/* First capacity of a part's content buffer in request memory. */
#define MP_DATA_FIRST 256u
/* "\r\n--" boundary */
#define MP_DELIM_MAX (4 + CSGI_MULTIPART_BOUNDARY_MAX)

enum mp_state { MP_PREAMBLE, MP_BOUNDARY, MP_DONE, MP_FAILED };

struct csgi_multipart {
    const struct csgi_host_api *api;
    const struct csgi_environ *env;
    struct csgi_multipart_limits lim;
    enum mp_state state;
    int error;
    char delim[MP_DELIM_MAX];
    size_t delim_len;
    char *buf;
    size_t cap, pos, end;
    uint64_t consumed; /* bytes read from the input */
    size_t parts;
};

/* Where a part's content goes: request memory, then (files only) a temporary file. */
struct mp_sink {
    char *data;
    size_t len, cap, mem_limit;
    int is_file;
    int fd;
    uint64_t size;
};

/* ------------------------------------------------------------------ */
/* Lexical helpers                                                     */
/* ------------------------------------------------------------------ */

static int
is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2046 5.1.1 bchars. */
static int
is_bchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("'()+_,-./:=? ", c) != NULL);
}

static const char *
skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *
skip_token(const char *p, const char *end)
{
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    return p;
}

/* First occurrence of needle (nlen > 0) in hay, or NULL. */
static const char *
find(const char *hay, size_t len, const char *needle, size_t nlen)
{
    const char *p = hay, *end = hay + len;

    while ((size_t)(end - p) >= nlen) {
        p = memchr(p, needle[0], (size_t)(end - p) - nlen + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, nlen) == 0)
            return p;
        p++;
    }
    return NULL;
}

/*
 * A parameter value at *pp: a token or a quoted-string. Sets *value to the
 * bytes between the quotes (still escaped) and *escaped when they hold a
 * backslash. Returns 0 or CSGI_EINVAL.
 */
static int
param_value(const char **pp, const char *end, struct csgi_str *value, int *escaped)
{
    const char *p = *pp, *start;

    *escaped = 0;
    if (p < end && *p == '"') {
        start = ++p;
        while (p < end && *p != '"') {
            if (*p == '\r' || *p == '\n' || *p == '\0')
                return CSGI_EINVAL;
            if (*p == '\\') {
                *escaped = 1;
                if (++p == end)
                    return CSGI_EINVAL;
            }
            p++;
        }
        if (p == end)
            return CSGI_EINVAL;
        *value = (struct csgi_str){start, (size_t)(p - start)};
        *pp = p + 1;
        return 0;
    }
    start = p;
    p = skip_token(p, end);
    if (p == start)
        return CSGI_EINVAL;
    *value = (struct csgi_str){start, (size_t)(p - start)};
    *pp = p;
    return 0;
}

/*
 * The next ";name=value" parameter after a media type or disposition type.
 * Returns 1 with a parameter, 0 at the end (a trailing ';' is allowed) or
 * CSGI_EINVAL.
 */
static int
param_next(const char **pp, const char *end, struct csgi_str *name, struct csgi_str *value,
           int *escaped)
{
    const char *p = skip_ows(*pp, end);

    if (p == end)
        return 0;
    if (*p != ';')
        return CSGI_EINVAL;
    p = skip_ows(p + 1, end);
    if (p == end) {
        *pp = p;
        return 0;
    }
    name->ptr = p;
    p = skip_token(p, end);
    name->len = (size_t)(p - name->ptr);
    if (name->len == 0 || p == end || *p != '=')
        return CSGI_EINVAL;
    p++;
    if (param_value(&p, end, value, escaped) < 0)
        return CSGI_EINVAL;
    *pp = p;
    return 1;
}

int
csgi_multipart_boundary(struct csgi_str content_type, struct csgi_str *boundary)
{
    const char *p, *end, *type;
    struct csgi_str name, value, found = {NULL, 0};
    int rc, escaped;

    if (!boundary || (!content_type.ptr && content_type.len > 0))
        return CSGI_EINVAL;
    p = content_type.ptr;
    end = p + content_type.len;
    type = p = skip_ows(p, end);
    while (p < end && *p != ';' && *p != ' ' && *p != '\t')
        p++;
    if (!csgi_str_ieq_c((struct csgi_str){type, (size_t)(p - type)}, "multipart/form-data"))
        return CSGI_ENOTSUP;
    for (;;) {
        rc = param_next(&p, end, &name, &value, &escaped);
        if (rc <= 0)
            break;
        if (!csgi_str_ieq_c(name, "boundary"))
            continue;
        /* bchars need no escaping; a backslash is a mistake or a trick. */
        if (found.ptr || escaped)
            return CSGI_EINVAL;
        found = value;
    }
    if (rc < 0 || !found.ptr || found.len < 1 || found.len > CSGI_MULTIPART_BOUNDARY_MAX ||
        found.ptr[found.len - 1] == ' ')
        return CSGI_EINVAL;
    for (size_t i = 0; i < found.len; i++)
        if (!is_bchar((unsigned char)found.ptr[i]))
            return CSGI_EINVAL;
    *boundary = found;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/*
 * Move the unread bytes to the front and read more after them, never past
 * max_total_bytes + 1. Returns the bytes read (> 0), 0 at the end of the
 * body, CSGI_ETOOBIG past the limit, or the stream's negative code.
 */
static int64_t
mp_fill(struct csgi_multipart *mp)
{
    const struct csgi_input *in = mp->env->input;
    size_t want;
    int64_t n;

    if (mp->pos > 0) {
        memmove(mp->buf, mp->buf + mp->pos, mp->end - mp->pos);
        mp->end -= mp->pos;
        mp->pos = 0;
    }
    assert(mp->end < mp->cap);
    want = mp->cap - mp->end;
    if (mp->consumed >= mp->lim.max_total_bytes)
        want = 1; /* a probe: any byte is one too many */
    else if (want > mp->lim.max_total_bytes - mp->consumed)
        want = (size_t)(mp->lim.max_total_bytes - mp->consumed);
    n = in->read(in->ctx, mp->buf + mp->end, want);
    if (n <= 0)
        return n;
    if ((uint64_t)n > want)
        return CSGI_EIO; /* a stream that claims more than it was asked for */
    mp->consumed += (uint64_t)n;
    if (mp->consumed > mp->lim.max_total_bytes)
        return CSGI_ETOOBIG;
    mp->end += (size_t)n;
    return n;
}

/* Make at least n unread bytes available. Returns 0, CSGI_EINVAL at a premature end, or an error.
 */
static int
mp_need(struct csgi_multipart *mp, size_t n)
{
    while (mp->end - mp->pos < n) {
        int64_t rc = mp_fill(mp);
        if (rc < 0)
            return (int)rc;
        if (rc == 0)
            return CSGI_EINVAL;
    }
    return 0;
}

/* Close a part's temporary file when the request finishes. */
static void
mp_close_fd(void *arg, int reason)
{
    (void)reason;
    close(*(int *)arg);
}

/*
 * Open an unlinked temporary file in the configured directory and have it
 * closed when the request finishes. Returns the descriptor or a negative code.
 */
static int
mp_tmpfile(struct csgi_multipart *mp)
{
    const char *dir = mp->lim.tmp_dir;
    int fd = -1, rc;
    int *slot;

    if (!mp->api->on_finished)
        return CSGI_ENOSYS;
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (fd < 0) {
        /* No O_TMPFILE here or in this file system: a named file, unlinked at once. */
        size_t n = strlen(dir) + sizeof("/csgi-multipart-XXXXXX");
        char *path = malloc(n);
        if (!path)
            return CSGI_ENOMEM;
        snprintf(path, n, "%s/csgi-multipart-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
        free(path);
        if (fd < 0)
            return CSGI_EIO;
    }
    slot = mp->api->alloc(mp->env->request, sizeof(*slot));
    if (!slot) {
        rc = CSGI_ENOMEM;
        goto error_close;
    }
    *slot = fd;
    rc = mp->api->on_finished(mp->env->request, mp_close_fd, slot);
    if (rc < 0)
        goto error_close;
    return fd;

error_close:
    close(fd);
    return rc;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return CSGI_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Append content bytes to a part: memory while it fits, else a file part's temporary file. */
static int
sink_put(struct csgi_multipart *mp, struct mp_sink *sink, const char *p, size_t n)
{
    if (!sink || n == 0)
        return 0; /* the preamble */
    if (sink->fd < 0 && n > sink->mem_limit - sink->len) {
        int rc;
        if (!sink->is_file || !mp->lim.tmp_dir)
            return CSGI_ETOOBIG;
        sink->fd = mp_tmpfile(mp);
        if (sink->fd < 0)
            return sink->fd;
        rc = write_all(sink->fd, sink->data, sink->len);
        if (rc < 0)
            return rc;
    }
    sink->size += n;
    if (sink->fd >= 0)
        return write_all(sink->fd, p, n);
    if (sink->len + n > sink->cap) {
        size_t ncap = sink->cap < MP_DATA_FIRST ? MP_DATA_FIRST : sink->cap;
        char *nd;
        while (ncap < sink->len + n)
            ncap = ncap <= sink->mem_limit / 2 ? ncap * 2 : sink->mem_limit;
        /* +1 for the terminator. */
        nd = mp->api->alloc(mp->env->request, ncap + 1);
        if (!nd)
            return CSGI_ENOMEM;
        if (sink->len > 0)
            memcpy(nd, sink->data, sink->len);
        sink->data = nd;
        sink->cap = ncap;
    }
    memcpy(sink->data + sink->len, p, n);
    sink->len += n;
    return 0;
}

/*
 * Pass bytes to the sink up to the next delimiter and consume the delimiter.
 * Returns 0, CSGI_EINVAL when the body ends first, or an error.
 */
static int
mp_scan(struct csgi_multipart *mp, struct mp_sink *sink)
{
    for (;;) {
        size_t avail = mp->end - mp->pos;
        const char *at = mp->buf + mp->pos;
        const char *hit = find(at, avail, mp->delim, mp->delim_len);
        int64_t rc;

        if (hit) {
            size_t n = (size_t)(hit - at);
            mp->pos += n + mp->delim_len;
            return sink_put(mp, sink, at, n);
        }
        if (avail >= mp->delim_len) {
            /* Everything but a possible start of the delimiter is content. */
            size_t n = avail - (mp->delim_len - 1);
            int err = sink_put(mp, sink, at, n);
            if (err < 0)
                return err;
            mp->pos += n;
        }
        rc = mp_fill(mp);
        if (rc < 0)
            return (int)rc;
        if (rc == 0)
            return CSGI_EINVAL;
    }
}

/*
 * The rest of a boundary line after its delimiter: "--" for the final one,
 * else transport padding (SP, HTAB) and CRLF. Returns 1 after the final
 * boundary, 0 before a part, or an error.
 */
static int
mp_boundary_line(struct csgi_multipart *mp)
{
    int rc = mp_need(mp, 2);

    if (rc < 0)
        return rc;
    if (mp->buf[mp->pos] == '-' && mp->buf[mp->pos + 1] == '-') {
        mp->pos += 2;
        return 1;
    }
    for (;;) {
        char c = mp->buf[mp->pos];
        if (c == ' ' || c == '\t') {
            mp->pos++;
            rc = mp_need(mp, 2);
            if (rc < 0)
                return rc;
            continue;
        }
        if (c != '\r' || mp->buf[mp->pos + 1] != '\n')
            return CSGI_EINVAL;
        mp->pos += 2;
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* Part headers                                                        */
/* ------------------------------------------------------------------ */

/* A NUL-terminated copy in request memory; with unescape, "\x" becomes "x". */
static int
mp_copy(struct csgi_multipart *mp, struct csgi_str s, int unescape, struct csgi_str *out)
{
    char *d = mp->api->alloc(mp->env->request, s.len + 1);
    size_t o = 0;

    if (!d)
        return CSGI_ENOMEM;
    for (size_t i = 0; i < s.len; i++) {
        /* Only \" and \\ are unescaped, so that "C:\dir\f.txt" from old browsers survives. */
        if (unescape && s.ptr[i] == '\\' && i + 1 < s.len &&
            (s.ptr[i + 1] == '"' || s.ptr[i + 1] == '\\'))
            i++;
        d[o++] = s.ptr[i];
    }
    d[o] = '\0';
    *out = (struct csgi_str){d, o};
    return 0;
}

/* Content-Disposition: form-data; name="..."[; filename="..."] (RFC 7578 4.2). */
static int
mp_disposition(struct csgi_multipart *mp, struct csgi_str v, struct csgi_multipart_part *part)
{
    const char *p = v.ptr, *end = v.ptr + v.len, *type = p;
    struct csgi_str name, value;
    int rc, escaped;

    p = skip_token(p, end);
    if (!csgi_str_ieq_c((struct csgi_str){type, (size_t)(p - type)}, "form-data"))
        return CSGI_EINVAL;
    for (;;) {
        struct csgi_str *dst = NULL;
        rc = param_next(&p, end, &name, &value, &escaped);
        if (rc <= 0)
            break;
        if (csgi_str_ieq_c(name, "name"))
            dst = &part->name;
        else if (csgi_str_ieq_c(name, "filename"))
            dst = &part->filename;
        else
            continue; /* filename* included: RFC 7578 4.2 says not to use it */
        if (dst->ptr)
            return CSGI_EINVAL;
        rc = mp_copy(mp, value, escaped, dst);
        if (rc < 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    return part->name.ptr ? 0 : CSGI_EINVAL;
}

/* One "name: value" line (without its CRLF). */
static int
mp_header_line(struct csgi_multipart *mp, const char *s, const char *e,
               struct csgi_multipart_part *part, int *seen_disposition)
{
    const char *colon = skip_token(s, e);
    struct csgi_str name = {s, (size_t)(colon - s)}, value;

    if (name.len == 0 || colon == e || *colon != ':')
        return CSGI_EINVAL; /* also an obsolete folded line, which starts with white space */
    for (const char *p = colon + 1; p < e; p++)
        if (*p == '\r' || *p == '\n' || *p == '\0')
            return CSGI_EINVAL;
    value = csgi_str_trim((struct csgi_str){colon + 1, (size_t)(e - colon - 1)});
    if (csgi_str_ieq_c(name, "Content-Disposition")) {
        if ((*seen_disposition)++)
            return CSGI_EINVAL;
        return mp_disposition(mp, value, part);
    }
    if (csgi_str_ieq_c(name, "Content-Type")) {
        if (part->content_type.ptr)
            return CSGI_EINVAL;
        return mp_copy(mp, value, 0, &part->content_type);
    }
    return 0;
}

/* Read a part's header block (up to its empty line) and parse it into @p part. */
static int
mp_headers(struct csgi_multipart *mp, struct csgi_multipart_part *part)
{
    size_t len, block;
    const char *s, *e;
    int rc, seen = 0;

    for (;;) {
        size_t avail = mp->end - mp->pos;
        const char *at = mp->buf + mp->pos, *hit;
        int64_t n;

        if (avail >= 2 && at[0] == '\r' && at[1] == '\n') {
            len = 0; /* no header lines */
            block = 2;
            break;
        }
        hit = find(at, avail, "\r\n\r\n", 4);
        if (hit) {
            len = (size_t)(hit - at) + 2;
            block = len + 2;
            break;
        }
        if (avail >= mp->lim.max_header_bytes)
            return CSGI_ETOOBIG;
        n = mp_fill(mp);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return CSGI_EINVAL;
    }
    if (block > mp->lim.max_header_bytes)
        return CSGI_ETOOBIG;
    s = mp->buf + mp->pos;
    mp->pos += block;
    for (const char *end = s + len; s < end; s = e + 2) {
        e = find(s, (size_t)(end - s), "\r\n", 2);
        rc = mp_header_line(mp, s, e, part, &seen);
        if (rc < 0)
            return rc;
    }
    return seen ? 0 : CSGI_EINVAL;
}

/* ------------------------------------------------------------------ */
/* The parser                                                          */
/* ------------------------------------------------------------------ */

int
csgi_multipart_open(const struct csgi_host_api *api, const struct csgi_environ *env,
                    const struct csgi_multipart_limits *limits, struct csgi_multipart **out)
{
    struct csgi_multipart *mp;
    struct csgi_str boundary;
    int rc;

    if (!api || !api->alloc || !env || !env->input || !env->input->read || !out)
        return CSGI_EINVAL;
    if (!env->content_type.ptr)
        return CSGI_ENOTSUP;
    rc = csgi_multipart_boundary(env->content_type, &boundary);
    if (rc < 0)
        return rc;
    mp = api->alloc(env->request, sizeof(*mp));
    if (!mp)
        return CSGI_ENOMEM;
    memset(mp, 0, sizeof(*mp));
    if (limits)
        mp->lim = *limits;
    if (!mp->lim.max_parts)
        mp->lim.max_parts = MP_DEFAULT_PARTS;
    if (!mp->lim.max_header_bytes)
        mp->lim.max_header_bytes = MP_DEFAULT_HEADER_BYTES;
    if (!mp->lim.max_total_bytes)
        mp->lim.max_total_bytes = MP_DEFAULT_TOTAL_BYTES;
    if (!mp->lim.max_field_bytes)
        mp->lim.max_field_bytes = MP_DEFAULT_FIELD_BYTES;
    if (!mp->lim.max_file_memory)
        mp->lim.max_file_memory = MP_DEFAULT_FILE_MEMORY;
    if (env->content_length >= 0 && (uint64_t)env->content_length > mp->lim.max_total_bytes)
        return CSGI_ETOOBIG;
    mp->cap = mp->lim.max_header_bytes > MP_BUF_MIN ? mp->lim.max_header_bytes : MP_BUF_MIN;
    if (mp->cap == SIZE_MAX)
        return CSGI_ENOMEM;
    mp->buf = api->alloc(env->request, mp->cap + 1);
    if (!mp->buf)
        return CSGI_ENOMEM;
    mp->api = api;
    mp->env = env;
    mp->delim_len = 4 + boundary.len;
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary.ptr, boundary.len);
    /* The body reads as if it began with CRLF: a first boundary at byte 0 is a delimiter too. */
    memcpy(mp->buf, "\r\n", 2);
    mp->end = 2;
    mp->state = MP_PREAMBLE;
    *out = mp;
    return 0;
}

/* One step of csgi_multipart_next(): returns 1 with a part, 0 at the end, or an error. */
static int
mp_step(struct csgi_multipart *mp, struct csgi_multipart_part *part)
{
    struct mp_sink sink = {.fd = -1};
    int rc;

    if (mp->state == MP_PREAMBLE) {
        rc = mp_scan(mp, NULL);
        if (rc < 0)
            return rc;
        mp->state = MP_BOUNDARY;
    }
    rc = mp_boundary_line(mp);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        mp->state = MP_DONE;
        return 0;
    }
    if (mp->parts >= mp->lim.max_parts)
        return CSGI_ETOOBIG;
    mp->parts++;
    memset(part, 0, sizeof(*part));
    rc = mp_headers(mp, part);
    if (rc < 0)
        return rc;
    sink.is_file = part->filename.ptr != NULL;
    sink.mem_limit = sink.is_file ? mp->lim.max_file_memory : mp->lim.max_field_bytes;
    rc = mp_scan(mp, &sink);
    if (rc < 0)
        return rc;
    part->size = sink.size;
    part->fd = sink.fd;
    if (sink.fd >= 0) {
        if (lseek(sink.fd, 0, SEEK_SET) != 0)
            return CSGI_EIO;
    } else {
        part->data = (struct csgi_str){sink.data ? sink.data : "", sink.len};
        if (sink.data)
            sink.data[sink.len] = '\0';
    }
    return 1;
}

int
csgi_multipart_next(struct csgi_multipart *mp, struct csgi_multipart_part *part)
{
    int rc;

    if (!mp || !part)
        return CSGI_EINVAL;
    if (mp->state == MP_FAILED)
        return mp->error;
    if (mp->state == MP_DONE)
        return 0;
    rc = mp_step(mp, part);
    if (rc < 0) {
        mp->state = MP_FAILED;
        mp->error = rc;
    }
    return rc;
}
