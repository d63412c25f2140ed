/*
 * probe: a fixture plugin for the integration tests. Each path under its
 * mount exercises one part of the CSGI contract over real HTTP.
 *
 * PROBE_VERSION (compile-time) is reported by /version, so that reload tests
 * can tell two builds apart. PROBE_NAME/PROBE_MOUNT let one source build
 * several differently named plugins.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <csgi/csgi.h>

#ifndef PROBE_VERSION
#define PROBE_VERSION "1"
#endif
#ifndef PROBE_NAME
#define PROBE_NAME "probe"
#endif
#ifndef PROBE_MOUNT
#define PROBE_MOUNT "/probe"
#endif

struct probe {
    const struct csgi_host_api *api;
    const char *tag;
    char file_path[256];
    atomic_long opened;
    atomic_long closed;
    atomic_long finished;
};

static struct probe probe_state;

static const struct csgi_str no_reason = {NULL, 0};

/* ---- small body helpers ---- */

struct buf_body {
    const char *p;
    size_t len;
    int done;
};

static int
buf_next(void *ctx, struct csgi_chunk *out)
{
    struct buf_body *b = ctx;

    if (b->done)
        return CSGI_DONE;
    b->done = 1;
    out->ptr = b->p;
    out->len = b->len;
    return CSGI_OK;
}

/* Respond with status, text/plain and a body of one chunk of known length. */
static int
reply(const struct probe *st, struct csgi_environ *env, const struct csgi_responder *resp,
      struct csgi_body *out, int status, const char *text, size_t len)
{
    const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
    };
    struct buf_body *b;
    int rc;

    rc = resp->start_response(resp->ctx, status, no_reason, h, 1, NULL);
    if (rc < 0)
        return rc;
    b = st->api->alloc(env->request, sizeof(*b));
    if (!b)
        return CSGI_ENOMEM;
    b->p = text;
    b->len = len;
    b->done = 0;
    out->total_length = (int64_t)len;
    out->ctx = b;
    out->next = buf_next;
    return CSGI_OK;
}

/* printf into the arena. */
static char *aprintf(const struct probe *st, struct csgi_environ *env, size_t *len, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

static char *
aprintf(const struct probe *st, struct csgi_environ *env, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = st->api->alloc(env->request, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len = (size_t)n;
    return p;
}

static long
query_long(const struct csgi_environ *env, const char *key, long dflt)
{
    size_t kl = strlen(key);
    const char *q = env->query_string.ptr, *end = q + env->query_string.len;

    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > kl && memcmp(q, key, kl) == 0 && q[kl] == '=')
            return strtol(q + kl + 1, NULL, 10);
        q = stop + 1;
    }
    return dflt;
}

static int
path_is(const struct csgi_environ *env, const char *p)
{
    return env->path_info.len == strlen(p) &&
           memcmp(env->path_info.ptr, p, env->path_info.len) == 0;
}

/* ---- /env ---- */

static int
do_env(struct probe *st, struct csgi_environ *env, const struct csgi_responder *resp,
       struct csgi_body *out)
{
    size_t cap = 4096, n = 0, len;
    char *p;
    struct csgi_str host;

    for (size_t i = 0; i < env->n_headers; i++)
        cap += env->headers[i].name.len + env->headers[i].value.len + 16;
    for (size_t i = 0; i < env->n_config; i++)
        cap += strlen(env->config[i].key) + strlen(env->config[i].value) + 16;
    if (CSGI_HAS(env, 3) && env->tls)
        cap += 128 + env->tls->protocol.len + env->tls->cipher.len + env->tls->sni.len +
               env->tls->client_verify.len + env->tls->client_s_dn.len + env->tls->client_i_dn.len;
    p = st->api->alloc(env->request, cap);
    if (!p)
        return CSGI_ENOMEM;
#define S(name, f)                                                                                 \
    n += (size_t)snprintf(p + n, cap - n, name "=%.*s\n", (int)env->f.len,                         \
                          env->f.ptr ? env->f.ptr : "")
    S("method", request_method);
    S("script_name", script_name);
    S("path_info", path_info);
    S("query_string", query_string);
    S("raw_target", raw_target);
    S("content_type", content_type);
    S("server_name", server_name);
    S("server_port", server_port);
    S("server_protocol", server_protocol);
    S("url_scheme", url_scheme);
    S("remote_addr", remote_addr);
#undef S
    n += (size_t)snprintf(p + n, cap - n, "content_length=%lld\nremote_port=%u\nflags=%u\n",
                          (long long)env->content_length, env->remote_port, env->flags);
    n += (size_t)snprintf(p + n, cap - n, "query_string_null=%d\n", env->query_string.ptr == NULL);
    if (st->api->header_get(env, "host", 0, &host) == 0)
        n += (size_t)snprintf(p + n, cap - n, "host_lookup=%.*s\n", (int)host.len, host.ptr);
    if (CSGI_HAS(env, 3) && env->tls) {
#define T(name, f)                                                                                 \
    n += (size_t)snprintf(p + n, cap - n, name "=%.*s\n", (int)env->tls->f.len, env->tls->f.ptr)
        T("ssl_protocol", protocol);
        T("ssl_cipher", cipher);
        T("ssl_tls_sni", sni);
        T("ssl_client_verify", client_verify);
        T("ssl_client_s_dn", client_s_dn);
        T("ssl_client_i_dn", client_i_dn);
#undef T
    }
    for (size_t i = 0; i < env->n_headers; i++)
        n += (size_t)snprintf(p + n, cap - n, "header=%.*s: %.*s\n", (int)env->headers[i].name.len,
                              env->headers[i].name.ptr, (int)env->headers[i].value.len,
                              env->headers[i].value.ptr);
    for (size_t i = 0; i < env->n_config; i++)
        n += (size_t)snprintf(p + n, cap - n, "config=%s=%s\n", env->config[i].key,
                              env->config[i].value);
    len = n < cap ? n : cap - 1;
    return reply(st, env, resp, out, 200, p, len);
}

/* ---- /echo: the request body back, read in odd-sized pieces ---- */

static int
do_echo(struct probe *st, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    size_t cap = 65536, n = 0;
    char *p = malloc(cap);
    char *copy;

    if (!p)
        return CSGI_ENOMEM;
    for (;;) {
        int64_t got;
        if (cap - n < 7919) {
            char *np = realloc(p, cap * 2);
            if (!np) {
                free(p);
                return CSGI_ENOMEM;
            }
            p = np;
            cap *= 2;
        }
        got = env->input->read(env->input->ctx, p + n, 7919);
        if (got < 0) {
            free(p);
            return (int)got;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    copy = st->api->alloc(env->request, n ? n : 1);
    if (!copy) {
        free(p);
        return CSGI_ENOMEM;
    }
    memcpy(copy, p, n);
    free(p);
    return reply(st, env, resp, out, 200, copy, n);
}

/* ---- /lines: count lines with readline, then rewind and count bytes ---- */

static int
do_lines(struct probe *st, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    char line[64];
    long lines = 0, bytes = 0;
    int64_t got;
    size_t len;
    char *text;

    while ((got = env->input->readline(env->input->ctx, line, sizeof(line))) > 0) {
        if (line[got - 1] == '\n')
            lines++;
    }
    if (env->input->rewind(env->input->ctx) == 0) {
        while ((got = env->input->read(env->input->ctx, line, sizeof(line))) > 0)
            bytes += got;
    }
    text = aprintf(st, env, &len, "lines=%ld bytes=%ld eof=%lld\n", lines, bytes,
                   (long long)env->input->read(env->input->ctx, line, sizeof(line)));
    if (!text)
        return CSGI_ENOMEM;
    return reply(st, env, resp, out, 200, text, len);
}

/* ---- /stream: n chunks of size bytes, unknown length, counted closes ---- */

struct stream_it {
    struct probe *st;
    long left;
    long size;
    long fail_at; /* chunk index that fails, -1 none */
    long index;
    char *chunk;
};

static int
stream_next(void *ctx, struct csgi_chunk *out)
{
    struct stream_it *it = ctx;

    if (it->index == it->fail_at)
        return CSGI_EIO;
    if (it->left == 0)
        return CSGI_DONE;
    it->left--;
    it->index++;
    out->ptr = it->chunk;
    out->len = (size_t)it->size;
    return CSGI_OK;
}

static void
stream_close(void *ctx)
{
    struct stream_it *it = ctx;

    atomic_fetch_add(&it->st->closed, 1);
    free(it->chunk);
}

static int
do_stream(struct probe *st, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out, long fail_at, int64_t declared)
{
    const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("application/octet-stream")},
    };
    struct stream_it *it = st->api->alloc(env->request, sizeof(*it));
    int rc;

    if (!it)
        return CSGI_ENOMEM;
    it->st = st;
    it->left = query_long(env, "n", 5);
    it->size = query_long(env, "size", 10);
    if (it->size < 1 || it->size > 1 << 20 || it->left < 0)
        return CSGI_EINVAL;
    it->fail_at = fail_at;
    it->index = 0;
    it->chunk = malloc((size_t)it->size);
    if (!it->chunk)
        return CSGI_ENOMEM;
    for (long i = 0; i < it->size; i++)
        it->chunk[i] = (char)('a' + i % 26);
    rc = resp->start_response(resp->ctx, 200, no_reason, h, 1, NULL);
    if (rc < 0) {
        free(it->chunk);
        return rc;
    }
    atomic_fetch_add(&st->opened, 1);
    out->total_length = declared;
    out->ctx = it;
    out->next = stream_next;
    out->close = stream_close;
    return CSGI_OK;
}

/* ---- /cl: an app Content-Length that does not match the body ---- */

static int
do_cl(struct probe *st, struct csgi_environ *env, const struct csgi_responder *resp,
      struct csgi_body *out)
{
    char clv[32];
    long declared = query_long(env, "declared", 10);
    struct csgi_header h[2] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
        {CSGI_STR_INIT("Content-Length"), {NULL, 0}},
    };
    struct stream_it *it = st->api->alloc(env->request, sizeof(*it));
    int rc;

    if (!it)
        return CSGI_ENOMEM;
    h[1].value.len = (size_t)snprintf(clv, sizeof(clv), "%ld", declared);
    h[1].value.ptr = clv;
    rc = resp->start_response(resp->ctx, 200, no_reason, h, 2, NULL);
    if (rc < 0)
        return rc;
    it->st = st;
    it->left = query_long(env, "n", 1);
    it->size = query_long(env, "size", 5);
    it->fail_at = -1;
    it->index = 0;
    it->chunk = malloc((size_t)it->size);
    if (!it->chunk)
        return CSGI_ENOMEM;
    memset(it->chunk, 'x', (size_t)it->size);
    atomic_fetch_add(&st->opened, 1);
    out->ctx = it;
    out->next = stream_next;
    out->close = stream_close;
    return CSGI_OK;
}

static void
on_finished(void *arg, int reason)
{
    struct probe *st = arg;

    (void)reason;
    atomic_fetch_add(&st->finished, 1);
}

static int
probe_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
           void **state)
{
    struct probe *st = &probe_state;
    int fd;
    static const char content[] = "file body via sendfile\n";

    memset(st, 0, sizeof(*st));
    st->api = api;
    st->tag = "";
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "tag") == 0)
            st->tag = config[i].value;
    }
    snprintf(st->file_path, sizeof(st->file_path), "%s/csgi-probe-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    fd = mkstemp(st->file_path);
    if (fd < 0)
        return CSGI_EIO;
    if (write(fd, content, sizeof(content) - 1) != (ssize_t)(sizeof(content) - 1)) {
        close(fd);
        return CSGI_EIO;
    }
    close(fd);
    api->log(api->ctx, CSGI_LOG_INFO, "probe %s ready (tag \"%s\")", PROBE_VERSION, st->tag);
    *state = st;
    return CSGI_OK;
}

static void
probe_exit(void *state)
{
    struct probe *st = state;

    unlink(st->file_path);
}

static int
probe_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out)
{
    struct probe *st = state;
    size_t len;
    char *text;

    if (path_is(env, "/env"))
        return do_env(st, env, resp, out);
    if (path_is(env, "/echo"))
        return do_echo(st, env, resp, out);
    if (path_is(env, "/lines"))
        return do_lines(st, env, resp, out);
    if (path_is(env, "/stream"))
        return do_stream(st, env, resp, out, -1, query_long(env, "total", -1));
    if (path_is(env, "/error-mid"))
        return do_stream(st, env, resp, out, query_long(env, "fail", 1), -1);
    if (path_is(env, "/cl"))
        return do_cl(st, env, resp, out);
    if (path_is(env, "/version")) {
        text = aprintf(st, env, &len, "version %s\n", PROBE_VERSION);
        return text ? reply(st, env, resp, out, 200, text, len) : CSGI_ENOMEM;
    }
    if (path_is(env, "/counts")) {
        text = aprintf(st, env, &len, "opened=%ld closed=%ld finished=%ld pid=%d\n",
                       atomic_load(&st->opened), atomic_load(&st->closed),
                       atomic_load(&st->finished), (int)getpid());
        return text ? reply(st, env, resp, out, 200, text, len) : CSGI_ENOMEM;
    }
    if (path_is(env, "/pid")) {
        text = aprintf(st, env, &len, "%d\n", (int)getpid());
        return text ? reply(st, env, resp, out, 200, text, len) : CSGI_ENOMEM;
    }
    if (path_is(env, "/slow")) {
        long ms = query_long(env, "ms", 1000);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        text = aprintf(st, env, &len, "slept %ld ms\n", ms);
        return text ? reply(st, env, resp, out, 200, text, len) : CSGI_ENOMEM;
    }
    if (path_is(env, "/crash")) {
        raise(SIGSEGV);
        return CSGI_EIO;
    }
    if (path_is(env, "/error"))
        return CSGI_EIO;
    if (path_is(env, "/declined"))
        return CSGI_EDECLINED;
    if (path_is(env, "/badheader")) {
        const struct csgi_header bad[] = {{CSGI_STR_INIT("Bad Name"), CSGI_STR_INIT("x")}};
        const struct csgi_header hop[] = {{CSGI_STR_INIT("Connection"), CSGI_STR_INIT("close")}};
        const struct csgi_header crlf[] = {
            {CSGI_STR_INIT("X-Inject"), CSGI_STR_INIT("a\r\nSet-Cookie: x=1")}};
        int a = resp->start_response(resp->ctx, 200, no_reason, bad, 1, NULL);
        int b = resp->start_response(resp->ctx, 200, no_reason, hop, 1, NULL);
        int c = resp->start_response(resp->ctx, 200, no_reason, crlf, 1, NULL);
        int d = resp->start_response(resp->ctx, 99, no_reason, NULL, 0, NULL);
        text = aprintf(st, env, &len, "name=%s hop=%s crlf=%s status=%s\n", csgi_err_name(a),
                       csgi_err_name(b), csgi_err_name(c), csgi_err_name(d));
        return text ? reply(st, env, resp, out, 200, text, len) : CSGI_ENOMEM;
    }
    if (path_is(env, "/twice")) {
        int a = resp->start_response(resp->ctx, 200, no_reason, NULL, 0, NULL);
        int b = resp->start_response(resp->ctx, 201, no_reason, NULL, 0, NULL);
        const struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO,
                                          CSGI_STR_INIT("replacing after an error")};
        int c;
        text = aprintf(st, env, &len, "second=%s\n", csgi_err_name(b));
        (void)a;
        c = resp->start_response(resp->ctx, 503, no_reason, NULL, 0, &exc);
        if (c < 0)
            return c;
        {
            struct buf_body *bb = st->api->alloc(env->request, sizeof(*bb));
            if (!bb || !text)
                return CSGI_ENOMEM;
            bb->p = text;
            bb->len = len;
            bb->done = 0;
            out->total_length = (int64_t)len;
            out->ctx = bb;
            out->next = buf_next;
        }
        return CSGI_OK;
    }
    if (path_is(env, "/late-exc")) {
        /* write() sends headers; a later exc_info must get EHEADERS_SENT. */
        const struct csgi_exc_info exc = {CSGI_EXC_INFO_VERSION, CSGI_EIO,
                                          CSGI_STR_INIT("too late")};
        int rc = resp->start_response(resp->ctx, 200, no_reason, NULL, 0, NULL);
        if (rc < 0)
            return rc;
        resp->write(resp->ctx, "partial\n", 8);
        rc = resp->start_response(resp->ctx, 500, no_reason, NULL, 0, &exc);
        return rc == CSGI_EHEADERS_SENT ? rc : CSGI_OK;
    }
    if (path_is(env, "/write")) {
        static const char tail[] = "from the body\n";
        int rc = resp->start_response(resp->ctx, 200, no_reason, NULL, 0, NULL);
        struct buf_body *bb;
        if (rc < 0)
            return rc;
        resp->write(resp->ctx, "one\n", 4);
        resp->write(resp->ctx, "two\n", 4);
        bb = st->api->alloc(env->request, sizeof(*bb));
        if (!bb)
            return CSGI_ENOMEM;
        bb->p = tail;
        bb->len = sizeof(tail) - 1;
        bb->done = 0;
        out->ctx = bb;
        out->next = buf_next;
        return CSGI_OK;
    }
    if (path_is(env, "/file")) {
        const struct csgi_header h[] = {
            {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")}};
        int fd = open(st->file_path, O_RDONLY | O_CLOEXEC);
        int rc;
        if (fd < 0)
            return CSGI_EIO;
        rc = resp->start_response(resp->ctx, 200, no_reason, h, 1, NULL);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        return st->api->body_from_fd(env->request, fd, 0, -1, CSGI_FD_CLOSE, out);
    }
    if (path_is(env, "/log")) {
        env->errors->log(env->errors->ctx, CSGI_LOG_WARN, "probe log line", 14);
        env->errors->write(env->errors->ctx, "probe partial ", 14);
        env->errors->write(env->errors->ctx, "line\n", 5);
        return reply(st, env, resp, out, 200, "logged\n", 7);
    }
    if (path_is(env, "/finished")) {
        st->api->on_finished(env->request, on_finished, st);
        return reply(st, env, resp, out, 200, "ok\n", 3);
    }
    if (path_is(env, "/url")) {
        struct csgi_str url;
        if (st->api->request_url(env, &url) < 0)
            return CSGI_ENOMEM;
        return reply(st, env, resp, out, 200, url.ptr, url.len);
    }
    if (path_is(env, "/status")) {
        long code = query_long(env, "code", 200);
        text = aprintf(st, env, &len, "status %ld\n", code);
        return text ? reply(st, env, resp, out, (int)code, text, len) : CSGI_ENOMEM;
    }
    if (path_is(env, "/vary")) {
        /* The same status and length; a header value from h=, the body's bytes from b=. */
        size_t vlen = 0;
        char *v = aprintf(st, env, &vlen, "v%ld", query_long(env, "h", 0));
        struct buf_body *b = st->api->alloc(env->request, sizeof(*b));
        int rc;

        text = aprintf(st, env, &len, "body %ld\n", query_long(env, "b", 0));
        if (!v || !b || !text)
            return CSGI_ENOMEM;
        const struct csgi_header h[] = {
            {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
            {CSGI_STR_INIT("X-V"), {v, vlen}},
        };
        rc = resp->start_response(resp->ctx, 200, no_reason, h, 2, NULL);
        if (rc < 0)
            return rc;
        *b = (struct buf_body){text, len, 0};
        out->total_length = (int64_t)len;
        out->ctx = b;
        out->next = buf_next;
        return CSGI_OK;
    }
    if (path_is(env, "/empty")) {
        int rc = resp->start_response(resp->ctx, 204, no_reason, NULL, 0, NULL);
        return rc < 0 ? rc : CSGI_OK;
    }
    return reply(st, env, resp, out, 404, "probe: no such path\n", 20);
}

static const struct csgi_plugin probe_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = PROBE_NAME,
    .plugin_version = PROBE_VERSION,
    .description = "integration-test probe",
    .mount = PROBE_MOUNT,
    .init_worker = probe_init,
    .call = probe_call,
    .exit_worker = probe_exit,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &probe_plugin;
}
