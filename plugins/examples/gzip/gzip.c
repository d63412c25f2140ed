/*
 * gzip: a middleware plugin that compresses responses for clients that accept
 * it, put in front of any plugin at deploy time (--wrap NAME=gzip), on the
 * middleware kit (<csgi/middleware.h>) and zlib. Skips Range requests,
 * 204/206/304, bodies already encoded and bodies known to be shorter than
 * min_length (--set gzip.min_length=N, default 256; gzip.level=1..9, default
 * 6). HEAD is treated as GET, so that it announces the same coding (and the
 * length csgi-server gives a HEAD response is the compressed one). Adds Vary:
 * Accept-Encoding; streams: every inner chunk is compressed and flushed as it
 * comes, nothing waits for the whole body.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <csgi/middleware.h>
#include <csgi/util.h>

struct gz_conf {
    const struct csgi_host_api *api;
    long min_length;
    int level;
};

struct gz_app { /* one per wrapped mount */
    const struct gz_conf *conf;
    csgi_app_fn inner;
    void *inner_state;
};

struct gz_req { /* one per request, in the arena */
    int accepted, zinit;
    z_stream z;
    unsigned char *buf;
    size_t cap;
};

/* True when the q-value of one Accept-Encoding element ("gzip;q=0.5") is above 0. */
static int
q_positive(struct csgi_str params)
{
    const char *q = memchr(params.ptr, '=', params.len);

    if (!q)
        return 1;
    for (q++; q < params.ptr + params.len; q++) {
        if (*q >= '1' && *q <= '9')
            return 1;
    }
    return 0;
}

/* Does Accept-Encoding allow gzip? An explicit gzip entry wins over "*". */
static int
accepts_gzip(const struct csgi_environ *env)
{
    struct csgi_str v;
    int gzip = -1, star = -1;

    for (size_t i = 0; csgi_header_get(env, "Accept-Encoding", i, &v) == 0; i++) {
        while (v.len) {
            const char *comma = memchr(v.ptr, ',', v.len);
            size_t n = comma ? (size_t)(comma - v.ptr) : v.len;
            const char *semi = memchr(v.ptr, ';', n);
            struct csgi_str coding =
                csgi_str_trim((struct csgi_str){v.ptr, semi ? (size_t)(semi - v.ptr) : n});
            struct csgi_str params = {semi ? semi : v.ptr, semi ? n - (size_t)(semi - v.ptr) : 0};

            if (csgi_str_ieq_c(coding, "gzip") || csgi_str_ieq_c(coding, "x-gzip"))
                gzip = q_positive(params);
            else if (csgi_str_eq_c(coding, "*"))
                star = q_positive(params);
            v.ptr += n + (comma != NULL);
            v.len -= n + (comma != NULL);
        }
    }
    return gzip >= 0 ? gzip : star > 0;
}

/* Add "Accept-Encoding" to Vary (a new header, or appended to the application's). */
static int
add_vary(struct csgi_mw *m, struct csgi_mw_response *r)
{
    struct csgi_str v;
    char *joined;

    if (csgi_headers_find(r->headers, r->n_headers, csgi_str_c("Vary"), 0, &v) != 0)
        return csgi_mw_header_set(m, r, "Vary", csgi_str_c("Accept-Encoding"));
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] == '*' || csgi_str_has_iprefix((struct csgi_str){v.ptr + i, v.len - i},
                                                    csgi_str_c("accept-encoding")))
            return CSGI_OK;
    }
    joined = csgi_mw_api(m)->alloc(csgi_mw_outer_environ(m)->request, v.len + 18);
    if (!joined)
        return CSGI_ENOMEM;
    memcpy(joined, v.ptr, v.len);
    memcpy(joined + v.len, ", Accept-Encoding", 17);
    return csgi_mw_header_set(m, r, "Vary", (struct csgi_str){joined, v.len + 17});
}

static int
gz_start(struct csgi_mw *m, struct csgi_mw_response *r)
{
    struct gz_req *g = csgi_mw_data(m);
    const struct gz_conf *conf = ((const struct gz_app *)csgi_mw_user(m))->conf;
    struct csgi_str v;
    int64_t cl = -1;
    int wbits = 15;

    if (csgi_headers_find(r->headers, r->n_headers, csgi_str_c("Content-Length"), 0, &v) == 0)
        csgi_str_to_i64(v, &cl);
    if (add_vary(m, r) < 0)
        return CSGI_ENOMEM;
    if (!g->accepted || !r->can_transform || r->status == 204 || r->status == 206 ||
        r->status == 304 ||
        csgi_headers_find(r->headers, r->n_headers, csgi_str_c("Content-Encoding"), 0, &v) == 0 ||
        (r->body_length >= 0 && r->body_length < conf->min_length) ||
        (cl >= 0 && cl < conf->min_length))
        return 0;
    /* A window no larger than a body of known length: zlib's state (320 KiB at the
     * defaults, zeroed per stream) then costs less than the compression itself. */
    while (r->body_length >= 0 && wbits > 9 && (1 << (wbits - 1)) >= r->body_length + 262)
        wbits--;
    if ((g->zinit ? deflateReset(&g->z)
                  : deflateInit2(&g->z, conf->level, Z_DEFLATED, wbits + 16, wbits - 7,
                                 Z_DEFAULT_STRATEGY)) != Z_OK)
        return CSGI_ENOMEM;
    g->zinit = 1;
    if (csgi_mw_header_set(m, r, "Content-Encoding", csgi_str_c("gzip")) < 0)
        return CSGI_ENOMEM;
    return CSGI_MW_TRANSFORM;
}

/* Compress one piece (flushed, so that a streamed body streams), or finish the stream. */
static int
gz_filter(struct csgi_mw *m, const void *in, size_t len, int end, struct csgi_chunk *out)
{
    struct gz_req *g = csgi_mw_data(m);
    int rc;

    g->z.next_in = (unsigned char *)(uintptr_t)in;
    g->z.avail_in = (uInt)len;
    g->z.total_out = 0;
    do {
        if (g->z.total_out == g->cap) {
            unsigned char *b = realloc(g->buf, g->cap ? 2 * g->cap : 16384);
            if (!b)
                return CSGI_ENOMEM;
            g->buf = b;
            g->cap = g->cap ? 2 * g->cap : 16384;
        }
        g->z.next_out = g->buf + g->z.total_out;
        g->z.avail_out = (uInt)(g->cap - g->z.total_out);
        rc = deflate(&g->z, end ? Z_FINISH : Z_SYNC_FLUSH);
    } while (rc == Z_OK && g->z.avail_out == 0);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return CSGI_EIO;
    *out = (struct csgi_chunk){g->buf, g->z.total_out};
    return CSGI_OK;
}

static void
gz_finish(struct csgi_mw *m, int reason)
{
    struct gz_req *g = csgi_mw_data(m);

    (void)reason;
    if (g->zinit)
        deflateEnd(&g->z);
    free(g->buf);
}

static const struct csgi_mw_ops gz_ops = {
    .version = CSGI_MW_OPS_VERSION, .start = gz_start, .filter = gz_filter, .finish = gz_finish};

static int
gz_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    struct gz_app *a = state;
    struct csgi_mw *m;
    struct gz_req *g;
    struct csgi_str range;
    int rc = csgi_mw_begin(a->conf->api, &gz_ops, a, sizeof(*g), env, resp, out, &m);

    if (rc < 0)
        return rc;
    g = csgi_mw_data(m);
    g->accepted = accepts_gzip(env) && csgi_header_get(env, "Range", 0, &range) != 0;
    return csgi_mw_run(m, a->inner, a->inner_state);
}

static int
gz_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n, void **state)
{
    struct gz_conf *c = calloc(1, sizeof(*c));
    int64_t v;

    if (!c)
        return CSGI_ENOMEM;
    *c = (struct gz_conf){api, 256, 6};
    for (size_t i = 0; i < n; i++) {
        int ok = csgi_str_to_i64(csgi_str_c(config[i].value), &v) == 0;
        if (ok && strcmp(config[i].key, "min_length") == 0 && v >= 0)
            c->min_length = (long)v;
        else if (ok && strcmp(config[i].key, "level") == 0 && v >= 1 && v <= 9)
            c->level = (int)v;
        else {
            api->log(api->ctx, CSGI_LOG_ERROR, "gzip: bad setting \"%s\"", config[i].key);
            free(c);
            return CSGI_EINVAL;
        }
    }
    *state = c;
    return CSGI_OK;
}

static int
gz_wrap(void *state, csgi_app_fn inner, void *inner_state, const char *inner_name, csgi_app_fn *app,
        void **app_state)
{
    struct gz_app *a = malloc(sizeof(*a));

    (void)inner_name;
    if (!a)
        return CSGI_ENOMEM;
    *a = (struct gz_app){state, inner, inner_state};
    *app = gz_call;
    *app_state = a;
    return CSGI_OK;
}

static void
gz_unwrap(void *state, void *app_state)
{
    (void)state;
    free(app_state);
}

static const struct csgi_plugin gzip_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "gzip",
    .plugin_version = "1.0.0",
    .description = "gzip content coding for any plugin (--wrap NAME=gzip)",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = gz_init,
    .exit_worker = free,
    .wrap = gz_wrap,
    .unwrap = gz_unwrap,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &gzip_plugin;
}
