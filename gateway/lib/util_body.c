/*
 * libcsgi-util: reading the whole request body (see csgi/util.h).
 */
#include <string.h>

#include "csgi/util.h"

/* First buffer for a body of unknown length (chunked). */
#define UTIL_BODY_CHUNK 4096u

int
csgi_input_read_all(const struct csgi_input *in, char *buf, size_t cap, size_t *len)
{
    size_t got = 0;
    char probe;

    if (!in || !in->read || (!buf && cap > 0))
        return CSGI_EINVAL;
    if (len)
        *len = 0;
    while (got < cap) {
        int64_t n = in->read(in->ctx, buf + got, cap - got);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        if ((uint64_t)n > cap - got)
            return CSGI_EIO; /* a stream that claims more than it was asked for */
        got += (size_t)n;
        if (len)
            *len = got;
    }
    /* The buffer is full: the body fits only if the stream is at its end. */
    {
        int64_t n = in->read(in->ctx, &probe, 1);
        if (n < 0)
            return (int)n;
        return n == 0 ? 0 : CSGI_ETOOBIG;
    }
}

/* Grow *buf (holding len bytes, capacity *cap) to twice, at least 4 KiB, at most limit. */
static int
body_grow(const struct csgi_host_api *api, const struct csgi_environ *env, size_t limit, char **buf,
          size_t len, size_t *cap)
{
    size_t ncap = *cap < UTIL_BODY_CHUNK ? UTIL_BODY_CHUNK : *cap <= limit / 2 ? *cap * 2 : limit;
    char *nb;

    if (ncap > limit)
        ncap = limit;
    if (ncap < len)
        return CSGI_ETOOBIG;
    /* +1 for the probe byte past the limit and the terminator. */
    nb = api->alloc(env->request, ncap + 1);
    if (!nb)
        return CSGI_ENOMEM;
    if (len > 0)
        memcpy(nb, *buf, len);
    *buf = nb;
    *cap = ncap;
    return 0;
}

int
csgi_read_body(const struct csgi_host_api *api, const struct csgi_environ *env, size_t limit,
               struct csgi_str *body)
{
    const struct csgi_input *in;
    size_t cap, len = 0;
    char *buf;

    if (!api || !api->alloc || !env || !env->input || !env->input->read || !body)
        return CSGI_EINVAL;
    in = env->input;
    if (env->content_length >= 0 && (uint64_t)env->content_length > limit)
        return CSGI_ETOOBIG;
    if (limit == SIZE_MAX)
        limit--; /* room for the terminator */
    cap = env->content_length >= 0 ? (size_t)env->content_length
                                   : (limit < UTIL_BODY_CHUNK ? limit : UTIL_BODY_CHUNK);
    buf = api->alloc(env->request, cap + 1);
    if (!buf)
        return CSGI_ENOMEM;
    for (;;) {
        int64_t n;
        if (len == cap) {
            /* Probe one byte (into the terminator slot) before growing. */
            n = in->read(in->ctx, buf + len, 1);
            if (n < 0)
                return (int)n;
            if (n == 0)
                break;
            if (cap >= limit)
                return CSGI_ETOOBIG;
            len++;
            if (len > cap) {
                int rc = body_grow(api, env, limit, &buf, len, &cap);
                if (rc < 0)
                    return rc;
            }
            continue;
        }
        n = in->read(in->ctx, buf + len, cap - len);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        if ((uint64_t)n > cap - len)
            return CSGI_EIO;
        len += (size_t)n;
    }
    buf[len] = '\0';
    body->ptr = buf;
    body->len = len;
    return 0;
}
