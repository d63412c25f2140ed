/*
 * csgi-route: route tables, hooks, error handlers and handler bodies
 * (see <csgi/route.h>).
 *
 * A request costs one arena allocation for the framework's own state; static
 * routes are found by binary search, wildcard routes by a linear scan in the
 * order they were added.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "csgi/route.h"

#include "../common/fw_common.h"

#define RT_MAX_PARAMS     16
#define RT_INLINE_HEADERS 8
#define RT_MEDIA_GUESS    1024
#define RT_STD_METHODS    7
#define RT_MAX_CUSTOM     16

enum rt_kind { RT_LIT = 0, RT_INT = 1, RT_STR = 2, RT_PATH = 3 };

struct rt_seg {
    enum rt_kind kind;
    char *text; /* literal or wildcard name */
    size_t len;
};

struct rt_handler {
    char *method;
    size_t mlen;
    csgi_route_fn fn;
    void *user;
};

struct rt_rule {
    char *pattern;
    size_t pattern_len;
    int is_static;
    struct rt_seg *segs;
    size_t n_segs;
    struct rt_handler *handlers;
    size_t n_handlers;
};

struct rt_hook {
    void (*fn)(void);
    void *user;
    int status;
};

struct csgi_route_app {
    const struct csgi_host_api *api;
    struct rt_rule **rules;
    size_t n_rules;
    struct rt_rule **statics; /* sorted by (length, bytes) */
    size_t n_statics;
    struct rt_rule **dynamics; /* in the order added */
    size_t n_dynamics;
    struct rt_hook *before, *after, *errors;
    size_t n_before, n_after, n_errors;
    void *ctx;
    void (*release)(void *ctx);
    int error;
    int started;
};

struct csgi_route_body {
    int status; /* 0: the request's status */
    const char *content_type;
    const void *data;
    size_t len;
    cJSON *json;
    int error; /* an abort(): status is the error's */
    const char *detail;
    struct csgi_route_body *next_json;
};

struct rt_param {
    const char *name;
    struct csgi_str value;
    int64_t ival;
    int is_int;
};

struct rt_chunk {
    const void *ptr;
    size_t len;
    int done;
};

struct csgi_route_req {
    const struct csgi_route_app *app;
    struct csgi_environ *env;
    struct csgi_str path;
    int status;
    struct csgi_header *headers;
    size_t n_headers, cap_headers;
    struct rt_param params[RT_MAX_PARAMS];
    size_t n_params;
    struct csgi_str body;
    int body_read;
    cJSON *json_in;
    struct csgi_route_body *jsons; /* bodies owning a cJSON value */
    struct rt_chunk chunk;
    struct csgi_header inline_headers[RT_INLINE_HEADERS];
};

static const char *const rt_std_methods[RT_STD_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static const char *
rt_title(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Server Error" : "Client Error";
    }
}

static char *
rt_strdup_arena(struct csgi_route_req *req, const char *s, size_t len)
{
    char *p = csgi_route_alloc(req, len + 1);

    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static void CSGI_ROUTE_PRINTF(3, 4)
    rt_req_log(const struct csgi_route_req *req, int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    req->env->errors->log(req->env->errors->ctx, level, buf, (size_t)n);
}

static int CSGI_ROUTE_PRINTF(2, 3) rt_config_error(struct csgi_route_app *app, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    app->api->vlog(app->api->ctx, CSGI_LOG_ERROR, fmt, ap);
    va_end(ap);
    if (!app->error)
        app->error = CSGI_EINVAL;
    return CSGI_EINVAL;
}

static int
rt_nomem(struct csgi_route_app *app)
{
    if (!app->error)
        app->error = CSGI_ENOMEM;
    return CSGI_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Application                                                         */
/* ------------------------------------------------------------------ */

/* The library's version, CSGI_ROUTE_VERSION_HEX as built. */
CSGI_ROUTE_API unsigned int
csgi_route_version(void)
{
    return CSGI_ROUTE_VERSION_HEX;
}

/* Create an application bound to @p api. */
CSGI_ROUTE_API struct csgi_route_app *
csgi_route_app_new(const struct csgi_host_api *api)
{
    struct csgi_route_app *app;

    if (!api)
        return NULL;
    app = calloc(1, sizeof(*app));
    if (!app)
        return NULL;
    app->api = api;
    return app;
}

static void
rt_rule_free(struct rt_rule *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_segs; i++)
        free(r->segs[i].text);
    for (size_t i = 0; i < r->n_handlers; i++)
        free(r->handlers[i].method);
    free(r->segs);
    free(r->handlers);
    free(r->pattern);
    free(r);
}

static int
rt_name_ok(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* Compile a pattern into segments. */
static int
rt_compile(struct csgi_route_app *app, struct rt_rule *r)
{
    const char *p = r->pattern + 1, *end = r->pattern + r->pattern_len;
    size_t n_wild = 0;

    r->is_static = 1;
    if (r->pattern_len == 1)
        return 0;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t len = slash ? (size_t)(slash - p) : (size_t)(end - p);
        struct rt_seg *ns, *s;
        const char *colon;

        if (len == 0)
            return rt_config_error(app, "route \"%s\": empty segment", r->pattern);
        ns = realloc(r->segs, (r->n_segs + 1) * sizeof(*ns));
        if (!ns)
            return rt_nomem(app);
        r->segs = ns;
        s = &ns[r->n_segs];
        memset(s, 0, sizeof(*s));
        if (p[0] != '<') {
            if (memchr(p, '<', len) || memchr(p, '>', len))
                return rt_config_error(app, "route \"%s\": a wildcard must be a whole segment",
                                       r->pattern);
            s->kind = RT_LIT;
            s->len = len;
        } else {
            if (p[len - 1] != '>')
                return rt_config_error(app, "route \"%s\": a wildcard must be a whole segment",
                                       r->pattern);
            r->is_static = 0;
            if (++n_wild > RT_MAX_PARAMS)
                return rt_config_error(app, "route \"%s\": more than %d wildcards", r->pattern,
                                       RT_MAX_PARAMS);
            colon = memchr(p, ':', len);
            s->len = (colon ? (size_t)(colon - p) : len - 1) - 1;
            if (!rt_name_ok(p + 1, s->len))
                return rt_config_error(app, "route \"%s\": bad wildcard name", r->pattern);
            if (!colon)
                s->kind = RT_STR;
            else if ((size_t)(p + len - 1 - colon - 1) == 3 && memcmp(colon + 1, "int", 3) == 0)
                s->kind = RT_INT;
            else if ((size_t)(p + len - 1 - colon - 1) == 4 && memcmp(colon + 1, "path", 4) == 0)
                s->kind = RT_PATH;
            else
                return rt_config_error(app, "route \"%s\": unknown filter", r->pattern);
            if (s->kind == RT_PATH && slash)
                return rt_config_error(app, "route \"%s\": a path wildcard must come last",
                                       r->pattern);
            p++;
        }
        s->text = malloc(s->len + 1);
        if (!s->text)
            return rt_nomem(app);
        memcpy(s->text, p, s->len);
        s->text[s->len] = '\0';
        r->n_segs++;
        if (r->n_segs > RT_MAX_PARAMS * 4)
            return rt_config_error(app, "route \"%s\": too many segments", r->pattern);
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

/* Add (method, pattern) -> fn; rules with the same pattern share one entry. */
CSGI_ROUTE_API int
csgi_route_add(struct csgi_route_app *app, const char *method, const char *pattern,
               csgi_route_fn fn, void *user)
{
    struct rt_rule *r = NULL, **nr;
    struct rt_handler *nh;
    size_t mlen;
    int rc;

    if (!app)
        return CSGI_EINVAL;
    if (app->started)
        return CSGI_ESTATE;
    if (!method || !*method || !pattern || pattern[0] != '/' || !fn)
        return rt_config_error(app, "route \"%s %s\": invalid arguments", method ? method : "?",
                               pattern ? pattern : "?");
    if (pattern[1] && pattern[strlen(pattern) - 1] == '/')
        return rt_config_error(app, "route \"%s\": trailing '/'", pattern);
    mlen = strlen(method);
    for (size_t i = 0; i < app->n_rules; i++) {
        if (strcmp(app->rules[i]->pattern, pattern) == 0) {
            r = app->rules[i];
            break;
        }
    }
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return rt_nomem(app);
        r->pattern = strdup(pattern);
        if (!r->pattern) {
            free(r);
            return rt_nomem(app);
        }
        r->pattern_len = strlen(pattern);
        rc = rt_compile(app, r);
        if (rc < 0) {
            rt_rule_free(r);
            return rc;
        }
        nr = realloc(app->rules, (app->n_rules + 1) * sizeof(*nr));
        if (!nr) {
            rt_rule_free(r);
            return rt_nomem(app);
        }
        app->rules = nr;
        app->rules[app->n_rules++] = r;
    }
    for (size_t i = 0; i < r->n_handlers; i++) {
        if (r->handlers[i].mlen == mlen && memcmp(r->handlers[i].method, method, mlen) == 0)
            return rt_config_error(app, "route \"%s %s\" added twice", method, pattern);
    }
    nh = realloc(r->handlers, (r->n_handlers + 1) * sizeof(*nh));
    if (!nh)
        return rt_nomem(app);
    r->handlers = nh;
    nh[r->n_handlers].method = strdup(method);
    if (!nh[r->n_handlers].method)
        return rt_nomem(app);
    nh[r->n_handlers].mlen = mlen;
    nh[r->n_handlers].fn = fn;
    nh[r->n_handlers].user = user;
    r->n_handlers++;
    return 0;
}

static int
rt_add_hook(struct csgi_route_app *app, struct rt_hook **v, size_t *n, void (*fn)(void), void *user,
            int status)
{
    struct rt_hook *nv;

    if (!app)
        return CSGI_EINVAL;
    if (app->started)
        return CSGI_ESTATE;
    if (!fn)
        return rt_config_error(app, "hook: NULL function");
    nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (!nv)
        return rt_nomem(app);
    *v = nv;
    nv[*n].fn = fn;
    nv[*n].user = user;
    nv[*n].status = status;
    (*n)++;
    return 0;
}

/*
 * Hooks are stored as generic function pointers and cast back to their own
 * type before the call (a round trip through another function pointer type
 * is defined behaviour).
 */
CSGI_ROUTE_API int
csgi_route_before(struct csgi_route_app *app, csgi_route_before_fn fn, void *user)
{
    return rt_add_hook(app, app ? &app->before : NULL, app ? &app->n_before : NULL,
                       (void (*)(void))fn, user, 0);
}

CSGI_ROUTE_API int
csgi_route_after(struct csgi_route_app *app, csgi_route_after_fn fn, void *user)
{
    return rt_add_hook(app, app ? &app->after : NULL, app ? &app->n_after : NULL,
                       (void (*)(void))fn, user, 0);
}

CSGI_ROUTE_API int
csgi_route_on_error(struct csgi_route_app *app, int status, csgi_route_error_fn fn, void *user)
{
    if (app && (status < 0 || (status && (status < 400 || status > 599))))
        return rt_config_error(app, "error handler: bad status %d", status);
    return rt_add_hook(app, app ? &app->errors : NULL, app ? &app->n_errors : NULL,
                       (void (*)(void))fn, user, status);
}

/* Attach app-wide state, released when the app is freed. */
CSGI_ROUTE_API int
csgi_route_app_set_context(struct csgi_route_app *app, void *ctx, void (*release)(void *ctx))
{
    if (!app)
        return CSGI_EINVAL;
    if (app->started)
        return CSGI_ESTATE;
    app->ctx = ctx;
    app->release = release;
    return 0;
}

static int
rt_static_cmp(const void *a, const void *b)
{
    const struct rt_rule *x = *(const struct rt_rule *const *)a;
    const struct rt_rule *y = *(const struct rt_rule *const *)b;

    if (x->pattern_len != y->pattern_len)
        return x->pattern_len < y->pattern_len ? -1 : 1;
    return memcmp(x->pattern, y->pattern, x->pattern_len);
}

/* Split the rules into a sorted static index and the ordered wildcard list. */
CSGI_ROUTE_API int
csgi_route_app_start(struct csgi_route_app *app, void **state)
{
    int rc;

    if (!app)
        return CSGI_ENOMEM;
    if (!state || app->started) {
        rc = CSGI_EINVAL;
        goto error_free;
    }
    if (app->error) {
        rc = app->error;
        goto error_free;
    }
    app->statics = calloc(app->n_rules + 1, sizeof(*app->statics));
    app->dynamics = calloc(app->n_rules + 1, sizeof(*app->dynamics));
    if (!app->statics || !app->dynamics) {
        rc = CSGI_ENOMEM;
        goto error_free;
    }
    for (size_t i = 0; i < app->n_rules; i++) {
        if (app->rules[i]->is_static)
            app->statics[app->n_statics++] = app->rules[i];
        else
            app->dynamics[app->n_dynamics++] = app->rules[i];
    }
    qsort(app->statics, app->n_statics, sizeof(*app->statics), rt_static_cmp);
    app->started = 1;
    *state = app;
    return 0;

error_free:
    csgi_route_app_free(app);
    return rc;
}

CSGI_ROUTE_API void
csgi_route_app_free(struct csgi_route_app *app)
{
    if (!app)
        return;
    for (size_t i = 0; i < app->n_rules; i++)
        rt_rule_free(app->rules[i]);
    free(app->rules);
    free(app->statics);
    free(app->dynamics);
    free(app->before);
    free(app->after);
    free(app->errors);
    if (app->release)
        app->release(app->ctx);
    free(app);
}

CSGI_ROUTE_API void
csgi_route_exit(void *state)
{
    csgi_route_app_free(state);
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */
/* ------------------------------------------------------------------ */

/* Match a wildcard rule against the path; on success the params are recorded. */
static int
rt_match(const struct rt_rule *r, struct csgi_route_req *req)
{
    const char *p = req->path.ptr + 1, *end = req->path.ptr + req->path.len;
    size_t n = 0;

    for (size_t i = 0; i < r->n_segs; i++) {
        const struct rt_seg *s = &r->segs[i];
        struct rt_param *prm = &req->params[n];
        const char *slash, *next;
        size_t len;

        if (!p)
            return 0;
        slash = memchr(p, '/', (size_t)(end - p));
        len = slash ? (size_t)(slash - p) : (size_t)(end - p);
        next = slash ? slash + 1 : NULL;
        switch (s->kind) {
        case RT_LIT:
            if (s->len != len || memcmp(s->text, p, len) != 0)
                return 0;
            p = next;
            continue;
        case RT_INT:
            if (csgi__fw_parse_i64(p, len, &prm->ival) < 0)
                return 0;
            prm->is_int = 1;
            break;
        case RT_STR:
            if (len == 0)
                return 0;
            prm->is_int = 0;
            break;
        case RT_PATH:
            if (p == end)
                return 0;
            len = (size_t)(end - p);
            next = NULL;
            prm->is_int = 0;
            break;
        }
        prm->name = s->text;
        prm->value.ptr = p;
        prm->value.len = len;
        n++;
        p = next;
    }
    if (p)
        return 0;
    /* Values become NUL-terminated copies (they point into path_info). */
    for (size_t i = 0; i < n; i++) {
        const char *v = rt_strdup_arena(req, req->params[i].value.ptr, req->params[i].value.len);
        if (!v)
            return 0;
        req->params[i].value.ptr = v;
    }
    req->n_params = n;
    return 1;
}

static const struct rt_rule *
rt_find_static(const struct csgi_route_app *app, struct csgi_str path)
{
    size_t lo = 0, hi = app->n_statics;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct rt_rule *r = app->statics[mid];
        int c;
        if (r->pattern_len != path.len)
            c = r->pattern_len < path.len ? -1 : 1;
        else
            c = memcmp(r->pattern, path.ptr, path.len);
        if (c == 0)
            return r;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The handler of @p r for @p method: exact, then GET for HEAD, then ANY. */
static const struct rt_handler *
rt_handler_for(const struct rt_rule *r, struct csgi_str method)
{
    const struct rt_handler *get = NULL, *any = NULL;
    int head = method.len == 4 && memcmp(method.ptr, "HEAD", 4) == 0;

    for (size_t i = 0; i < r->n_handlers; i++) {
        const struct rt_handler *h = &r->handlers[i];
        if (h->mlen == method.len && memcmp(h->method, method.ptr, method.len) == 0)
            return h;
        if (h->mlen == 3 && memcmp(h->method, "GET", 3) == 0)
            get = h;
        else if (h->mlen == 3 && memcmp(h->method, "ANY", 3) == 0)
            any = h;
    }
    if (head && get)
        return get;
    return any;
}

/* Methods allowed on the rules that matched the path. */
struct rt_allow {
    unsigned std;
    const char *custom[RT_MAX_CUSTOM];
    size_t n_custom;
};

static void
rt_allow_add(struct rt_allow *a, const struct rt_rule *r)
{
    for (size_t i = 0; i < r->n_handlers; i++) {
        const struct rt_handler *h = &r->handlers[i];
        int k;
        for (k = 0; k < RT_STD_METHODS; k++) {
            if (strcmp(h->method, rt_std_methods[k]) == 0)
                break;
        }
        if (k < RT_STD_METHODS) {
            a->std |= 1u << k;
            if (k == 0)
                a->std |= 1u << 1; /* GET implies HEAD */
            continue;
        }
        for (size_t j = 0; j < a->n_custom; j++) {
            if (strcmp(a->custom[j], h->method) == 0) {
                k = -1;
                break;
            }
        }
        if (k != -1 && a->n_custom < RT_MAX_CUSTOM)
            a->custom[a->n_custom++] = h->method;
    }
    a->std |= 1u << 6; /* OPTIONS is always answered */
}

static char *
rt_allow_str(struct csgi_route_req *req, const struct rt_allow *a)
{
    size_t len = 0;
    char *s, *p;

    for (int k = 0; k < RT_STD_METHODS; k++)
        len += strlen(rt_std_methods[k]) + 2;
    for (size_t j = 0; j < a->n_custom; j++)
        len += strlen(a->custom[j]) + 2;
    s = csgi_route_alloc(req, len + 1);
    if (!s)
        return NULL;
    p = s;
    *p = '\0';
    for (int k = 0; k < RT_STD_METHODS; k++) {
        if (a->std & (1u << k))
            p += sprintf(p, "%s%s", p == s ? "" : ", ", rt_std_methods[k]);
    }
    for (size_t j = 0; j < a->n_custom; j++)
        p += sprintf(p, "%s%s", p == s ? "" : ", ", a->custom[j]);
    return s;
}

/* Find and run the handler; 404, 405 and automatic OPTIONS are answered here. */
static const struct csgi_route_body *
rt_dispatch(struct csgi_route_req *req)
{
    const struct csgi_route_app *app = req->app;
    struct csgi_str method = req->env->request_method;
    const struct rt_rule *r = rt_find_static(app, req->path);
    const struct rt_handler *h;
    struct rt_allow allow;
    int matched = 0;
    char *allow_s;

    memset(&allow, 0, sizeof(allow));
    if (r) {
        matched = 1;
        h = rt_handler_for(r, method);
        if (h)
            return h->fn(req, h->user);
        rt_allow_add(&allow, r);
    }
    for (size_t i = 0; i < app->n_dynamics; i++) {
        r = app->dynamics[i];
        if (!rt_match(r, req))
            continue;
        matched = 1;
        h = rt_handler_for(r, method);
        if (h)
            return h->fn(req, h->user);
        rt_allow_add(&allow, r);
    }
    req->n_params = 0;
    if (!matched)
        return csgi_route_abort(req, 404, NULL);
    allow_s = rt_allow_str(req, &allow);
    if (!allow_s || csgi_route_set_header(req, "Allow", allow_s) < 0)
        return NULL;
    if (method.len == 7 && memcmp(method.ptr, "OPTIONS", 7) == 0)
        return csgi_route_status(req, 200, csgi_route_empty(req));
    return csgi_route_abort(req, 405, NULL);
}

/* ------------------------------------------------------------------ */
/* Request accessors                                                   */
/* ------------------------------------------------------------------ */

/*
 * The accessors below are documented in <csgi/route.h>. They check their arguments
 * and fail softly (NULL, an empty string or CSGI_EINVAL), never abort.
 */

CSGI_ROUTE_API struct csgi_environ *
csgi_route_environ(const struct csgi_route_req *req)
{
    return req ? req->env : NULL;
}

CSGI_ROUTE_API void *
csgi_route_app_context(const struct csgi_route_req *req)
{
    return req ? req->app->ctx : NULL;
}

CSGI_ROUTE_API struct csgi_str
csgi_route_method(const struct csgi_route_req *req)
{
    struct csgi_str none = {NULL, 0};

    return req ? req->env->request_method : none;
}

CSGI_ROUTE_API struct csgi_str
csgi_route_path(const struct csgi_route_req *req)
{
    struct csgi_str none = {NULL, 0};

    return req ? req->path : none;
}

CSGI_ROUTE_API struct csgi_str
csgi_route_prefix(const struct csgi_route_req *req)
{
    struct csgi_str none = {NULL, 0};

    return req ? req->env->script_name : none;
}

static const struct rt_param *
rt_find_param(const struct csgi_route_req *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->n_params; i++) {
        if (strcmp(req->params[i].name, name) == 0)
            return &req->params[i];
    }
    return NULL;
}

CSGI_ROUTE_API struct csgi_str
csgi_route_param(const struct csgi_route_req *req, const char *name)
{
    const struct rt_param *p = rt_find_param(req, name);
    struct csgi_str none = {NULL, 0};

    return p ? p->value : none;
}

CSGI_ROUTE_API int
csgi_route_param_int(const struct csgi_route_req *req, const char *name, int64_t *value)
{
    const struct rt_param *p = rt_find_param(req, name);

    if (!p || !value)
        return CSGI_ENOENT;
    if (!p->is_int)
        return CSGI_EINVAL;
    *value = p->ival;
    return 0;
}

CSGI_ROUTE_API int
csgi_route_query(struct csgi_route_req *req, const char *name, struct csgi_str *value)
{
    if (!req)
        return CSGI_EINVAL;
    return csgi__fw_query(req->app->api, req->env, name, value);
}

CSGI_ROUTE_API int
csgi_route_query_int(struct csgi_route_req *req, const char *name, int64_t *value)
{
    struct csgi_str s;
    int rc = csgi_route_query(req, name, &s);

    if (rc < 0)
        return rc;
    if (!value || csgi__fw_parse_i64(s.ptr, s.len, value) < 0)
        return CSGI_EINVAL;
    return 0;
}

CSGI_ROUTE_API int
csgi_route_header(const struct csgi_route_req *req, const char *name, struct csgi_str *value)
{
    if (!req || !name || !value)
        return CSGI_EINVAL;
    return req->app->api->header_get(req->env, name, 0, value);
}

CSGI_ROUTE_API int
csgi_route_body(struct csgi_route_req *req, struct csgi_str *body)
{
    int rc;

    if (!req || !body)
        return CSGI_EINVAL;
    if (!req->body_read) {
        rc = csgi__fw_read_body(req->app->api, req->env, &req->body);
        if (rc < 0)
            return rc;
        req->body_read = 1;
    }
    *body = req->body;
    return 0;
}

CSGI_ROUTE_API int
csgi_route_json_body(struct csgi_route_req *req, struct cJSON **value)
{
    struct csgi_str body;
    int rc;

    if (!req || !value)
        return CSGI_EINVAL;
    if (req->json_in) {
        *value = req->json_in;
        return 0;
    }
    if (!csgi__fw_is_json(req->env->content_type))
        return CSGI_ENOTSUP;
    rc = csgi_route_body(req, &body);
    if (rc < 0)
        return rc;
    req->json_in = csgi__fw_parse_json(body);
    if (!req->json_in)
        return CSGI_EINVAL;
    *value = req->json_in;
    return 0;
}

CSGI_ROUTE_API void *
csgi_route_alloc(struct csgi_route_req *req, size_t n)
{
    if (!req)
        return NULL;
    return req->app->api->alloc(req->env->request, n);
}

CSGI_ROUTE_API char *
csgi_route_sprintf(struct csgi_route_req *req, const char *fmt, ...)
{
    char small[256], *buf;
    va_list ap;
    int n;

    if (!req || !fmt)
        return NULL;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    buf = csgi_route_alloc(req, (size_t)n + 1);
    if (!buf)
        return NULL;
    if ((size_t)n < sizeof(small)) {
        memcpy(buf, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return buf;
}

/* ------------------------------------------------------------------ */
/* Response                                                            */
/* ------------------------------------------------------------------ */

CSGI_ROUTE_API void
csgi_route_set_status(struct csgi_route_req *req, int status)
{
    if (req)
        req->status = status;
}

CSGI_ROUTE_API int
csgi_route_get_status(const struct csgi_route_req *req)
{
    return req ? req->status : 0;
}

/* Append a header without copying: @p name and @p value must outlive the request. */
static int
rt_push_header(struct csgi_route_req *req, const char *name, size_t nlen, const char *value,
               size_t vlen)
{
    struct csgi_header *h;

    if (req->n_headers == req->cap_headers) {
        struct csgi_header *nh = csgi_route_alloc(req, req->cap_headers * 2 * sizeof(*nh));
        if (!nh)
            return CSGI_ENOMEM;
        memcpy(nh, req->headers, req->n_headers * sizeof(*nh));
        req->headers = nh;
        req->cap_headers *= 2;
    }
    h = &req->headers[req->n_headers++];
    h->name.ptr = name;
    h->name.len = nlen;
    h->value.ptr = value;
    h->value.len = vlen;
    return 0;
}

static int
rt_header(struct csgi_route_req *req, const char *name, const char *value, int replace)
{
    size_t nlen, vlen;

    if (!req || !name || !*name || !value)
        return CSGI_EINVAL;
    nlen = strlen(name);
    vlen = strlen(value);
    if (replace) {
        size_t o = 0;
        for (size_t i = 0; i < req->n_headers; i++) {
            const struct csgi_header *x = &req->headers[i];
            if (x->name.len == nlen && csgi__fw_casecmp_n(x->name.ptr, name, nlen) == 0)
                continue;
            req->headers[o++] = *x;
        }
        req->n_headers = o;
    }
    name = rt_strdup_arena(req, name, nlen);
    value = rt_strdup_arena(req, value, vlen);
    if (!name || !value)
        return CSGI_ENOMEM;
    return rt_push_header(req, name, nlen, value, vlen);
}

CSGI_ROUTE_API int
csgi_route_set_header(struct csgi_route_req *req, const char *name, const char *value)
{
    return rt_header(req, name, value, 1);
}

CSGI_ROUTE_API int
csgi_route_add_header(struct csgi_route_req *req, const char *name, const char *value)
{
    return rt_header(req, name, value, 0);
}

static int
rt_has_header(const struct csgi_route_req *req, const char *name, size_t len)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (req->headers[i].name.len == len &&
            csgi__fw_casecmp_n(req->headers[i].name.ptr, name, len) == 0)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Bodies                                                              */
/* ------------------------------------------------------------------ */

static struct csgi_route_body *
rt_body_new(struct csgi_route_req *req)
{
    struct csgi_route_body *b = csgi_route_alloc(req, sizeof(*b));

    if (b)
        memset(b, 0, sizeof(*b));
    return b;
}

CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_bytes(struct csgi_route_req *req, const char *content_type, const void *data, size_t len)
{
    struct csgi_route_body *b = rt_body_new(req);

    if (!b)
        return NULL;
    b->content_type = content_type;
    b->data = data ? data : "";
    b->len = data ? len : 0;
    return b;
}

CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_text(struct csgi_route_req *req, const char *text, size_t len)
{
    return csgi_route_bytes(req, "text/plain; charset=utf-8", text, len);
}

CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_html(struct csgi_route_req *req, const char *html, size_t len)
{
    return csgi_route_bytes(req, "text/html; charset=utf-8", html, len);
}

CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_json(struct csgi_route_req *req, struct cJSON *value)
{
    struct csgi_route_body *b;

    if (!value)
        return NULL;
    b = rt_body_new(req);
    if (!b) {
        cJSON_Delete(value);
        return NULL;
    }
    b->content_type = "application/json";
    b->json = value;
    b->next_json = req->jsons;
    req->jsons = b;
    return b;
}

CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_empty(struct csgi_route_req *req)
{
    return csgi_route_bytes(req, NULL, "", 0);
}

CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_status(struct csgi_route_req *req, int status, const struct csgi_route_body *body)
{
    struct csgi_route_body *b = (struct csgi_route_body *)body;

    (void)req;
    if (!b)
        return NULL;
    b->status = status;
    return b;
}

CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_abort(struct csgi_route_req *req, int status, const char *detail)
{
    struct csgi_route_body *b = rt_body_new(req);

    if (!b)
        return NULL;
    if (status < 400 || status > 599)
        status = 500;
    b->error = 1;
    b->status = status;
    if (detail) {
        b->detail = rt_strdup_arena(req, detail, strlen(detail));
        if (!b->detail)
            return NULL;
    }
    return b;
}

/* ------------------------------------------------------------------ */
/* The CSGI application                                                */
/* ------------------------------------------------------------------ */

/* The longest abort() detail the default error page shows, in bytes. */
#define RT_DETAIL_MAX 200

/* The abort() detail as the default error page shows it: at most RT_DETAIL_MAX
 * bytes, every control byte (CR, LF, tab, DEL ...) as '?', so that a detail
 * built from request data stays one line of plain text. NULL when there is none. */
static const char *
rt_detail_text(struct csgi_route_req *req, const char *detail)
{
    size_t len;
    char *p;

    if (!detail || !*detail)
        return NULL;
    len = strlen(detail);
    if (len > RT_DETAIL_MAX)
        len = RT_DETAIL_MAX;
    p = rt_strdup_arena(req, detail, len);
    if (!p)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f)
            p[i] = '?';
    }
    return p;
}

/* Render an abort() through the error handlers (one level: no recursion). */
static const struct csgi_route_body *
rt_render_error(struct csgi_route_req *req, const struct csgi_route_body *err_body)
{
    const struct csgi_route_app *app = req->app;
    const struct rt_hook *handler = NULL;
    const struct csgi_route_body *b = NULL;
    struct csgi_route_error err = {
        .version = CSGI_ROUTE_ERROR_VERSION,
        .status = err_body->status,
        .title = rt_title(err_body->status),
        .detail = err_body->detail,
    };
    const char *detail;
    char *text;

    for (size_t i = 0; i < app->n_errors; i++) {
        if (app->errors[i].status == err.status) {
            handler = &app->errors[i];
            break;
        }
        if (app->errors[i].status == 0 && !handler)
            handler = &app->errors[i];
    }
    if (handler)
        b = ((csgi_route_error_fn)handler->fn)(req, &err, handler->user);
    if (b && !b->error)
        return b->status ? b : csgi_route_status(req, err.status, b);
    detail = rt_detail_text(req, err.detail);
    if (detail)
        text = csgi_route_sprintf(req, "Error %d: %s: %s\n", err.status, err.title, detail);
    else
        text = csgi_route_sprintf(req, "Error %d: %s\n", err.status, err.title);
    if (!text)
        return NULL;
    return csgi_route_status(req, err.status, csgi_route_text(req, text, strlen(text)));
}

static int
rt_chunk_next(void *ctx, struct csgi_chunk *out)
{
    struct rt_chunk *c = ctx;

    if (c->done)
        return CSGI_DONE;
    c->done = 1;
    out->ptr = c->ptr;
    out->len = c->len;
    return CSGI_OK;
}

static int
rt_serialize(struct csgi_route_req *req, cJSON *v, struct csgi_str *out)
{
    char *buf = csgi_route_alloc(req, RT_MEDIA_GUESS), *heap;
    size_t len;

    if (buf && cJSON_PrintPreallocated(v, buf, RT_MEDIA_GUESS, 0)) {
        out->ptr = buf;
        out->len = strlen(buf);
        return 0;
    }
    heap = cJSON_PrintUnformatted(v);
    if (!heap)
        return CSGI_ENOMEM;
    len = strlen(heap);
    buf = csgi_route_alloc(req, len + 1);
    if (buf)
        memcpy(buf, heap, len + 1);
    free(heap);
    if (!buf)
        return CSGI_ENOMEM;
    out->ptr = buf;
    out->len = len;
    return 0;
}

static void
rt_release(struct csgi_route_req *req)
{
    for (struct csgi_route_body *b = req->jsons; b; b = b->next_json) {
        cJSON_Delete(b->json);
        b->json = NULL;
    }
    req->jsons = NULL;
    cJSON_Delete(req->json_in);
    req->json_in = NULL;
}

/* The CSGI entry: before hooks, dispatch, error handlers, after hooks, send. */
CSGI_ROUTE_API int
csgi_route_call(void *state, struct csgi_environ *env, const struct csgi_responder *responder,
                struct csgi_body *out)
{
    const struct csgi_route_app *app = state;
    const struct csgi_route_body *body = NULL;
    const struct csgi_str reason = {NULL, 0};
    struct csgi_route_req *req;
    struct csgi_str bytes = {"", 0};
    int status, rc;

    if (!app || !env || !responder || !out)
        return CSGI_EINVAL;
    req = app->api->alloc(env->request, sizeof(*req));
    if (!req)
        return CSGI_ENOMEM;
    memset(req, 0, offsetof(struct csgi_route_req, params));
    req->n_params = 0;
    req->body_read = 0;
    req->json_in = NULL;
    req->jsons = NULL;
    req->app = app;
    req->env = env;
    req->path = env->path_info;
    if (req->path.len == 0) {
        req->path.ptr = "/";
        req->path.len = 1;
    }
    req->status = 200;
    req->headers = req->inline_headers;
    req->cap_headers = RT_INLINE_HEADERS;

    for (size_t i = 0; i < app->n_before && !body; i++)
        body = ((csgi_route_before_fn)app->before[i].fn)(req, app->before[i].user);
    if (!body)
        body = rt_dispatch(req);
    if (!body) {
        rt_req_log(req, CSGI_LOG_ERROR, "handler for \"%.*s %.*s\" returned no body",
                   (int)env->request_method.len, env->request_method.ptr, (int)req->path.len,
                   req->path.ptr);
        body = csgi_route_abort(req, 500, NULL);
    }
    if (body && body->error)
        body = rt_render_error(req, body);
    if (!body) {
        rc = CSGI_ENOMEM;
        goto error_release;
    }
    if (body->status)
        req->status = body->status;
    for (size_t i = 0; i < app->n_after; i++)
        ((csgi_route_after_fn)app->after[i].fn)(req, body, app->after[i].user);
    status = req->status;

    if (body->json) {
        rc = rt_serialize(req, body->json, &bytes);
        if (rc < 0)
            goto error_release;
    } else {
        bytes.ptr = body->data;
        bytes.len = body->len;
    }
    if (body->content_type && !rt_has_header(req, "Content-Type", 12)) {
        /* content_type is borrowed for the request (csgi_route_bytes()): no copy needed. */
        rc =
            rt_push_header(req, "Content-Type", 12, body->content_type, strlen(body->content_type));
        if (rc < 0)
            goto error_release;
    }
    if (status == 204 || status == 304)
        bytes.len = 0;
    rt_release(req);

    rc = responder->start_response(responder->ctx, status, reason, req->headers, req->n_headers,
                                   NULL);
    if (rc < 0) {
        rt_req_log(req, CSGI_LOG_ERROR, "start_response refused the response: %s",
                   csgi_strerror(rc));
        return rc;
    }
    out->total_length = (int64_t)bytes.len;
    if (bytes.len) {
        req->chunk.ptr = bytes.ptr;
        req->chunk.len = bytes.len;
        req->chunk.done = 0;
        out->ctx = &req->chunk;
        out->next = rt_chunk_next;
    }
    return CSGI_OK;

error_release:
    rt_release(req);
    return rc;
}
