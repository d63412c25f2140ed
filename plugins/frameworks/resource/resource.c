/*
 * csgi-resource: resources, a compiled segment router, request/response
 * objects, typed HTTP errors and middleware (see <csgi/resource.h>).
 *
 * Per request the framework makes one arena allocation (the request and its
 * response) and walks the router without allocating; query values and the
 * body are copied into the arena only when asked for.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "csgi/resource.h"

#include "../common/fw_common.h"

/* Most fields in one template, and most headers kept inline in a response. */
#define RES_MAX_FIELDS     16
#define RES_INLINE_HEADERS 8
/* First try for serializing media into the arena; larger output falls back to malloc. */
#define RES_MEDIA_GUESS 1024

enum res_seg {
    RES_SEG_LIT = 0, /* literal text: tried first */
    RES_SEG_INT = 1, /* {name:int} */
    RES_SEG_STR = 2, /* {name} */
    RES_SEG_PATH = 3 /* {name:path}: the rest of the path, tried last */
};

struct res_node;

struct res_child {
    enum res_seg kind;
    char *text; /* literal text, or the field name */
    size_t len;
    struct res_node *node;
};

struct res_route {
    char *tmpl;
    const struct csgi_res_resource *cls;
    void *arg;
    void *self;
    int inited;
    char allow[64];
};

struct res_node {
    struct res_child *children;
    size_t n_children;
    struct res_route *route;
};

struct res_mw {
    const struct csgi_res_middleware *mw;
    void *self;
};

struct csgi_res_app {
    const struct csgi_host_api *api;
    struct res_node root;
    struct res_route **routes;
    size_t n_routes;
    struct res_mw *mws;
    size_t n_mws;
    csgi_res_error_serializer_fn serializer;
    void *serializer_arg;
    void *ctx;
    void (*release)(void *ctx);
    int error; /* first configuration error, reported by start() */
    int started;
};

struct res_param {
    const char *name;
    struct csgi_str value;
    int64_t ival;
    int is_int;
};

struct res_chunk {
    const void *ptr;
    size_t len;
    int done;
};

struct csgi_res_resp {
    struct csgi_res_req *req;
    int status;
    struct csgi_header *headers;
    size_t n_headers;
    size_t cap_headers;
    const void *body;
    size_t body_len;
    cJSON *media;
    int complete;
    struct csgi_header inline_headers[RES_INLINE_HEADERS];
};

struct csgi_res_req {
    const struct csgi_res_app *app;
    struct csgi_environ *env;
    struct csgi_str path;
    int method; /* enum csgi_res_method, or -1 */
    void *ctx;
    const struct res_route *route;
    struct res_param params[RES_MAX_FIELDS];
    size_t n_params;
    struct csgi_str body;
    int body_read;
    cJSON *media;
    /* The pending HTTP error (err_status 0: none). */
    int err_status;
    const char *err_detail;
    struct csgi_res_field_error *err_fields;
    size_t n_err_fields;
    struct csgi_res_resp resp;
    struct res_chunk chunk;
};

static const char *const res_method_names[CSGI_RES_N_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* Standard reason phrases used as problem titles. */
static const char *
res_title(int status)
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
    case 406:
        return "Not Acceptable";
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
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status >= 500 ? "Server Error" : "Client Error";
    }
}

static char *
res_strdup_arena(struct csgi_res_req *req, const char *s, size_t len)
{
    char *p = csgi_res_req_alloc(req, len + 1);

    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static void CSGI_RES_PRINTF(3, 4)
    res_req_log(const struct csgi_res_req *req, int level, const char *fmt, ...)
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

/* ------------------------------------------------------------------ */
/* Library                                                             */
/* ------------------------------------------------------------------ */

/* The library's version, CSGI_RES_VERSION_HEX as built. */
CSGI_RES_API unsigned int
csgi_res_version(void)
{
    return CSGI_RES_VERSION_HEX;
}

/* ------------------------------------------------------------------ */
/* Router construction                                                 */
/* ------------------------------------------------------------------ */

static int CSGI_RES_PRINTF(2, 3) res_config_error(struct csgi_res_app *app, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    app->api->vlog(app->api->ctx, CSGI_LOG_ERROR, fmt, ap);
    va_end(ap);
    if (!app->error)
        app->error = CSGI_EINVAL;
    return CSGI_EINVAL;
}

static void
res_node_free(struct res_node *n)
{
    for (size_t i = 0; i < n->n_children; i++) {
        res_node_free(n->children[i].node);
        free(n->children[i].node);
        free(n->children[i].text);
    }
    free(n->children);
}

/* The child of @p n for one template segment, created when missing. */
static struct res_node *
res_node_child(struct csgi_res_app *app, struct res_node *n, enum res_seg kind, const char *text,
               size_t len, const char *tmpl)
{
    struct res_child *c, *nc;

    for (size_t i = 0; i < n->n_children; i++) {
        c = &n->children[i];
        if (c->kind != kind)
            continue;
        if (c->len == len && memcmp(c->text, text, len) == 0)
            return c->node;
        if (kind != RES_SEG_LIT) {
            res_config_error(app,
                             "route \"%s\": field \"%.*s\" conflicts with field \"%s\" at the same "
                             "position",
                             tmpl, (int)len, text, c->text);
            return NULL;
        }
    }
    nc = realloc(n->children, (n->n_children + 1) * sizeof(*nc));
    if (!nc)
        return NULL;
    n->children = nc;
    c = &nc[n->n_children];
    c->kind = kind;
    c->len = len;
    c->text = malloc(len + 1);
    c->node = calloc(1, sizeof(*c->node));
    if (!c->text || !c->node) {
        free(c->text);
        free(c->node);
        return NULL;
    }
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    n->n_children++;
    return c->node;
}

static int
res_field_name_ok(const char *s, size_t len)
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

/* Parse one template segment into its kind and text (literal, or field name). */
static int
res_parse_segment(struct csgi_res_app *app, const char *tmpl, const char *seg, size_t len,
                  enum res_seg *kind, size_t *name_len)
{
    const char *colon;

    if (len == 0)
        return res_config_error(app, "route \"%s\": empty segment", tmpl);
    if (seg[0] != '{') {
        if (memchr(seg, '{', len) || memchr(seg, '}', len))
            return res_config_error(app, "route \"%s\": a field must be a whole segment", tmpl);
        *kind = RES_SEG_LIT;
        *name_len = len;
        return 0;
    }
    if (seg[len - 1] != '}')
        return res_config_error(app, "route \"%s\": a field must be a whole segment", tmpl);
    colon = memchr(seg, ':', len);
    *name_len = (colon ? (size_t)(colon - seg) : len - 1) - 1;
    if (!res_field_name_ok(seg + 1, *name_len))
        return res_config_error(app, "route \"%s\": bad field name", tmpl);
    if (!colon) {
        *kind = RES_SEG_STR;
        return 0;
    }
    if ((size_t)(seg + len - 1 - colon - 1) == 3 && memcmp(colon + 1, "int", 3) == 0)
        *kind = RES_SEG_INT;
    else if ((size_t)(seg + len - 1 - colon - 1) == 4 && memcmp(colon + 1, "path", 4) == 0)
        *kind = RES_SEG_PATH;
    else
        return res_config_error(app, "route \"%s\": unknown field type", tmpl);
    return 0;
}

/* Create an application bound to the host services @p api. */
CSGI_RES_API struct csgi_res_app *
csgi_res_app_new(const struct csgi_host_api *api)
{
    struct csgi_res_app *app;

    if (!api)
        return NULL;
    app = calloc(1, sizeof(*app));
    if (!app)
        return NULL;
    app->api = api;
    return app;
}

/* Add a route: walk/extend the segment tree and attach the resource at its end. */
CSGI_RES_API int
csgi_res_app_add_route(struct csgi_res_app *app, const char *tmpl,
                       const struct csgi_res_resource *resource, void *arg)
{
    struct res_node *node;
    struct res_route *route, **nr;
    const char *p, *end;
    size_t n_fields = 0;

    if (!app)
        return CSGI_EINVAL;
    if (app->started)
        return CSGI_ESTATE;
    if (!tmpl || tmpl[0] != '/' || !resource || resource->version < 1)
        return res_config_error(app, "route \"%s\": invalid template or resource",
                                tmpl ? tmpl : "(null)");
    node = &app->root;
    p = tmpl + 1;
    end = tmpl + strlen(tmpl);
    /* "/" is the root itself; any other template has no trailing '/'. */
    while (p < end || (p == end && p[-1] == '/' && p - 1 != tmpl)) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t len = slash ? (size_t)(slash - p) : (size_t)(end - p), name_len = 0;
        enum res_seg kind = RES_SEG_LIT;

        if (res_parse_segment(app, tmpl, p, len, &kind, &name_len) < 0)
            return CSGI_EINVAL;
        if (kind == RES_SEG_PATH && slash)
            return res_config_error(app, "route \"%s\": a path field must come last", tmpl);
        if (kind != RES_SEG_LIT && ++n_fields > RES_MAX_FIELDS)
            return res_config_error(app, "route \"%s\": more than %d fields", tmpl, RES_MAX_FIELDS);
        node = res_node_child(app, node, kind, kind == RES_SEG_LIT ? p : p + 1, name_len, tmpl);
        if (!node) {
            if (!app->error)
                app->error = CSGI_ENOMEM;
            return app->error;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    if (node->route)
        return res_config_error(app, "route \"%s\": duplicates route \"%s\"", tmpl,
                                node->route->tmpl);
    route = calloc(1, sizeof(*route));
    nr = realloc(app->routes, (app->n_routes + 1) * sizeof(*nr));
    if (nr)
        app->routes = nr;
    if (!route || !nr || !(route->tmpl = strdup(tmpl))) {
        free(route);
        if (!app->error)
            app->error = CSGI_ENOMEM;
        return CSGI_ENOMEM;
    }
    route->cls = resource;
    route->arg = arg;
    app->routes[app->n_routes++] = route;
    node->route = route;
    return 0;
}

/* Add middleware @p mw with hook state @p self. */
CSGI_RES_API int
csgi_res_app_add_middleware(struct csgi_res_app *app, const struct csgi_res_middleware *mw,
                            void *self)
{
    struct res_mw *n;

    if (!app)
        return CSGI_EINVAL;
    if (app->started)
        return CSGI_ESTATE;
    if (!mw || mw->version < 1)
        return res_config_error(app, "invalid middleware");
    n = realloc(app->mws, (app->n_mws + 1) * sizeof(*n));
    if (!n) {
        if (!app->error)
            app->error = CSGI_ENOMEM;
        return CSGI_ENOMEM;
    }
    app->mws = n;
    n[app->n_mws].mw = mw;
    n[app->n_mws].self = self;
    app->n_mws++;
    return 0;
}

/* Install an error serializer (NULL: the default problem document). */
CSGI_RES_API int
csgi_res_app_set_error_serializer(struct csgi_res_app *app, csgi_res_error_serializer_fn fn,
                                  void *arg)
{
    if (!app)
        return CSGI_EINVAL;
    if (app->started)
        return CSGI_ESTATE;
    app->serializer = fn;
    app->serializer_arg = arg;
    return 0;
}

/* Attach app-wide state, released when the app is freed. */
CSGI_RES_API int
csgi_res_app_set_context(struct csgi_res_app *app, void *ctx, void (*release)(void *ctx))
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
res_child_cmp(const void *a, const void *b)
{
    const struct res_child *x = a, *y = b;

    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    return strcmp(x->text, y->text);
}

/* Freeze a subtree: children in match order (literals, int, plain, path). */
static void
res_node_compile(struct res_node *n)
{
    if (n->n_children > 1)
        qsort(n->children, n->n_children, sizeof(*n->children), res_child_cmp);
    for (size_t i = 0; i < n->n_children; i++)
        res_node_compile(n->children[i].node);
}

static csgi_res_responder_fn res_responder(const struct csgi_res_resource *c, int method);

/* The Allow header value of a route, in enum csgi_res_method order. */
static void
res_route_allow(struct res_route *r)
{
    size_t len = 0;

    /* OPTIONS is last in method order and always allowed. */
    for (int m = 0; m < CSGI_RES_OPTIONS; m++) {
        if (res_responder(r->cls, m))
            len += (size_t)snprintf(r->allow + len, sizeof(r->allow) - len, "%s, ",
                                    res_method_names[m]);
    }
    snprintf(r->allow + len, sizeof(r->allow) - len, "OPTIONS");
}

/* Compile the router and run every resource's init(); frees @p app on failure. */
CSGI_RES_API int
csgi_res_app_start(struct csgi_res_app *app, void **state)
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
    res_node_compile(&app->root);
    for (size_t i = 0; i < app->n_routes; i++) {
        struct res_route *r = app->routes[i];
        res_route_allow(r);
        if (r->cls->init) {
            rc = r->cls->init(r->arg, &r->self);
            if (rc < 0) {
                app->api->log(app->api->ctx, CSGI_LOG_ERROR,
                              "resource \"%s\" at \"%s\" failed to initialise: %s",
                              r->cls->name ? r->cls->name : "?", r->tmpl, csgi_strerror(rc));
                goto error_free;
            }
        } else {
            r->self = r->arg;
        }
        r->inited = 1;
    }
    app->started = 1;
    *state = app;
    return 0;

error_free:
    app->started = 1;
    csgi_res_app_free(app);
    return rc;
}

/* Finalise the resources (in reverse order) and free everything. */
CSGI_RES_API void
csgi_res_app_free(struct csgi_res_app *app)
{
    if (!app)
        return;
    for (size_t i = app->n_routes; i-- > 0;) {
        struct res_route *r = app->routes[i];
        if (r->inited && r->cls->fini)
            r->cls->fini(r->self);
        free(r->tmpl);
        free(r);
    }
    free(app->routes);
    res_node_free(&app->root);
    free(app->mws);
    if (app->release)
        app->release(app->ctx);
    free(app);
}

/* exit_worker for a started application. */
CSGI_RES_API void
csgi_res_exit(void *state)
{
    csgi_res_app_free(state);
}

/* ------------------------------------------------------------------ */
/* Matching                                                            */
/* ------------------------------------------------------------------ */

/*
 * Match the segments from @p seg (NULL: none left) against @p n's subtree,
 * depth first, in match order. Fields are recorded in req->params.
 */
static const struct res_route *
res_match(const struct res_node *n, const char *seg, const char *end, struct csgi_res_req *req)
{
    const char *slash, *next;
    size_t len;

    if (!seg)
        return n->route;
    slash = memchr(seg, '/', (size_t)(end - seg));
    len = slash ? (size_t)(slash - seg) : (size_t)(end - seg);
    next = slash ? slash + 1 : NULL;
    for (size_t i = 0; i < n->n_children; i++) {
        const struct res_child *c = &n->children[i];
        struct res_param *p = &req->params[req->n_params];
        const struct res_route *r;

        switch (c->kind) {
        case RES_SEG_LIT:
            if (c->len != len || memcmp(c->text, seg, len) != 0)
                continue;
            r = res_match(c->node, next, end, req);
            if (r)
                return r;
            continue;
        case RES_SEG_INT:
            if (csgi__fw_parse_i64(seg, len, &p->ival) < 0)
                continue;
            p->is_int = 1;
            break;
        case RES_SEG_STR:
            if (len == 0)
                continue;
            p->is_int = 0;
            break;
        case RES_SEG_PATH:
            if (seg == end || !c->node->route)
                continue;
            p->name = c->text;
            p->value.ptr = seg;
            p->value.len = (size_t)(end - seg);
            p->is_int = 0;
            req->n_params++;
            return c->node->route;
        }
        p->name = c->text;
        p->value.ptr = seg;
        p->value.len = len;
        req->n_params++;
        r = res_match(c->node, next, end, req);
        if (r)
            return r;
        req->n_params--;
    }
    return NULL;
}

static csgi_res_responder_fn
res_responder(const struct csgi_res_resource *c, int method)
{
    switch (method) {
    case CSGI_RES_GET:
        return c->on_get;
    case CSGI_RES_HEAD:
        return c->on_head ? c->on_head : c->on_get;
    case CSGI_RES_POST:
        return c->on_post;
    case CSGI_RES_PUT:
        return c->on_put;
    case CSGI_RES_PATCH:
        return c->on_patch;
    case CSGI_RES_DELETE:
        return c->on_delete;
    case CSGI_RES_OPTIONS:
        return c->on_options;
    default:
        return NULL;
    }
}

static int
res_method_id(struct csgi_str m)
{
    for (int i = 0; i < CSGI_RES_N_METHODS; i++) {
        if (strlen(res_method_names[i]) == m.len && memcmp(res_method_names[i], m.ptr, m.len) == 0)
            return i;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Request accessors                                                   */
/* ------------------------------------------------------------------ */

/*
 * The accessors below are documented in <csgi/resource.h>. They check their arguments
 * and fail softly (NULL, an empty string or CSGI_EINVAL), never abort.
 */

CSGI_RES_API struct csgi_environ *
csgi_res_req_environ(const struct csgi_res_req *req)
{
    return req ? req->env : NULL;
}

CSGI_RES_API const struct csgi_host_api *
csgi_res_req_api(const struct csgi_res_req *req)
{
    return req ? req->app->api : NULL;
}

CSGI_RES_API struct csgi_str
csgi_res_req_method(const struct csgi_res_req *req)
{
    struct csgi_str none = {NULL, 0};

    return req ? req->env->request_method : none;
}

CSGI_RES_API struct csgi_str
csgi_res_req_path(const struct csgi_res_req *req)
{
    struct csgi_str none = {NULL, 0};

    return req ? req->path : none;
}

CSGI_RES_API struct csgi_str
csgi_res_req_prefix(const struct csgi_res_req *req)
{
    struct csgi_str none = {NULL, 0};

    return req ? req->env->script_name : none;
}

static const struct res_param *
res_find_param(const struct csgi_res_req *req, const char *name)
{
    if (!req || !name)
        return NULL;
    for (size_t i = 0; i < req->n_params; i++) {
        if (strcmp(req->params[i].name, name) == 0)
            return &req->params[i];
    }
    return NULL;
}

CSGI_RES_API int
csgi_res_req_param(const struct csgi_res_req *req, const char *name, struct csgi_str *value)
{
    const struct res_param *p = res_find_param(req, name);

    if (!p || !value)
        return CSGI_ENOENT;
    *value = p->value;
    return 0;
}

CSGI_RES_API int
csgi_res_req_param_int(const struct csgi_res_req *req, const char *name, int64_t *value)
{
    const struct res_param *p = res_find_param(req, name);

    if (!p || !value)
        return CSGI_ENOENT;
    if (!p->is_int)
        return CSGI_EINVAL;
    *value = p->ival;
    return 0;
}

CSGI_RES_API int
csgi_res_req_query(struct csgi_res_req *req, const char *name, struct csgi_str *value)
{
    if (!req)
        return CSGI_EINVAL;
    return csgi__fw_query(req->app->api, req->env, name, value);
}

CSGI_RES_API int
csgi_res_req_query_int(struct csgi_res_req *req, const char *name, int64_t *value)
{
    struct csgi_str s;
    int rc = csgi_res_req_query(req, name, &s);

    if (rc < 0)
        return rc;
    if (!value || csgi__fw_parse_i64(s.ptr, s.len, value) < 0)
        return CSGI_EINVAL;
    return 0;
}

CSGI_RES_API int
csgi_res_req_header(const struct csgi_res_req *req, const char *name, struct csgi_str *value)
{
    if (!req || !name || !value)
        return CSGI_EINVAL;
    return req->app->api->header_get(req->env, name, 0, value);
}

CSGI_RES_API int
csgi_res_req_body(struct csgi_res_req *req, struct csgi_str *body)
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

CSGI_RES_API int
csgi_res_req_media(struct csgi_res_req *req, struct cJSON **media)
{
    struct csgi_str body;
    int rc;

    if (!req || !media)
        return CSGI_EINVAL;
    if (req->media) {
        *media = req->media;
        return 0;
    }
    if (!csgi__fw_is_json(req->env->content_type))
        return csgi_res_raise(req, 415, "Content-Type must be application/json");
    rc = csgi_res_req_body(req, &body);
    if (rc < 0)
        return rc;
    req->media = csgi__fw_parse_json(body);
    if (!req->media)
        return csgi_res_raise(req, 400, "malformed JSON body");
    *media = req->media;
    return 0;
}

CSGI_RES_API void *
csgi_res_req_alloc(struct csgi_res_req *req, size_t n)
{
    if (!req)
        return NULL;
    return req->app->api->alloc(req->env->request, n);
}

CSGI_RES_API char *
csgi_res_req_sprintf(struct csgi_res_req *req, const char *fmt, ...)
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
    buf = csgi_res_req_alloc(req, (size_t)n + 1);
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

CSGI_RES_API void *
csgi_res_req_app_context(const struct csgi_res_req *req)
{
    return req ? req->app->ctx : NULL;
}

CSGI_RES_API void *
csgi_res_req_context(const struct csgi_res_req *req)
{
    return req ? req->ctx : NULL;
}

CSGI_RES_API void
csgi_res_req_set_context(struct csgi_res_req *req, void *ctx)
{
    if (req)
        req->ctx = ctx;
}

CSGI_RES_API int
csgi_res_raise_fields(struct csgi_res_req *req, int status, const char *detail,
                      const struct csgi_res_field_error *fields, size_t n_fields)
{
    if (!req)
        return CSGI_RES_EHTTP;
    if (status < 400 || status > 599)
        status = 500;
    req->err_status = status;
    req->err_detail = detail ? res_strdup_arena(req, detail, strlen(detail)) : NULL;
    req->err_fields = NULL;
    req->n_err_fields = 0;
    if (fields && n_fields) {
        req->err_fields = csgi_res_req_alloc(req, n_fields * sizeof(*req->err_fields));
        if (!req->err_fields)
            return CSGI_RES_EHTTP;
        for (size_t i = 0; i < n_fields; i++) {
            const char *f = fields[i].field ? fields[i].field : "";
            const char *m = fields[i].message ? fields[i].message : "";
            req->err_fields[i].field = res_strdup_arena(req, f, strlen(f));
            req->err_fields[i].message = res_strdup_arena(req, m, strlen(m));
            if (!req->err_fields[i].field || !req->err_fields[i].message)
                return CSGI_RES_EHTTP;
        }
        req->n_err_fields = n_fields;
    }
    return CSGI_RES_EHTTP;
}

CSGI_RES_API int
csgi_res_raise(struct csgi_res_req *req, int status, const char *detail)
{
    return csgi_res_raise_fields(req, status, detail, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Response                                                            */
/* ------------------------------------------------------------------ */

CSGI_RES_API void
csgi_res_resp_set_status(struct csgi_res_resp *resp, int status)
{
    if (resp)
        resp->status = status;
}

CSGI_RES_API int
csgi_res_resp_status(const struct csgi_res_resp *resp)
{
    return resp ? resp->status : 0;
}

/* Append a header without copying: @p name and @p value must outlive the request. */
static int
res_push_header(struct csgi_res_resp *resp, const char *name, size_t nlen, const char *value,
                size_t vlen)
{
    struct csgi_header *h;

    if (resp->n_headers == resp->cap_headers) {
        struct csgi_header *nh = csgi_res_req_alloc(resp->req, resp->cap_headers * 2 * sizeof(*nh));
        if (!nh)
            return CSGI_ENOMEM;
        memcpy(nh, resp->headers, resp->n_headers * sizeof(*nh));
        resp->headers = nh;
        resp->cap_headers *= 2;
    }
    h = &resp->headers[resp->n_headers++];
    h->name.ptr = name;
    h->name.len = nlen;
    h->value.ptr = value;
    h->value.len = vlen;
    return 0;
}

static int
res_add_header(struct csgi_res_resp *resp, const char *name, const char *value, int replace)
{
    size_t nlen, vlen;

    if (!resp || !name || !value || !*name)
        return CSGI_EINVAL;
    nlen = strlen(name);
    vlen = strlen(value);
    if (replace) {
        size_t o = 0;
        for (size_t i = 0; i < resp->n_headers; i++) {
            const struct csgi_header *x = &resp->headers[i];
            if (x->name.len == nlen && csgi__fw_casecmp_n(x->name.ptr, name, nlen) == 0)
                continue;
            resp->headers[o++] = *x;
        }
        resp->n_headers = o;
    }
    name = res_strdup_arena(resp->req, name, nlen);
    value = res_strdup_arena(resp->req, value, vlen);
    if (!name || !value)
        return CSGI_ENOMEM;
    return res_push_header(resp, name, nlen, value, vlen);
}

CSGI_RES_API int
csgi_res_resp_set_header(struct csgi_res_resp *resp, const char *name, const char *value)
{
    return res_add_header(resp, name, value, 1);
}

CSGI_RES_API int
csgi_res_resp_append_header(struct csgi_res_resp *resp, const char *name, const char *value)
{
    return res_add_header(resp, name, value, 0);
}

CSGI_RES_API int
csgi_res_resp_set_content_type(struct csgi_res_resp *resp, const char *type)
{
    return res_add_header(resp, "Content-Type", type, 1);
}

static int
res_has_header(const struct csgi_res_resp *resp, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < resp->n_headers; i++) {
        if (resp->headers[i].name.len == len &&
            csgi__fw_casecmp_n(resp->headers[i].name.ptr, name, len) == 0)
            return 1;
    }
    return 0;
}

CSGI_RES_API void
csgi_res_resp_set_body(struct csgi_res_resp *resp, const void *data, size_t len)
{
    if (!resp)
        return;
    cJSON_Delete(resp->media);
    resp->media = NULL;
    resp->body = data ? data : "";
    resp->body_len = data ? len : 0;
}

CSGI_RES_API int
csgi_res_resp_set_media(struct csgi_res_resp *resp, struct cJSON *media)
{
    if (!resp) {
        cJSON_Delete(media);
        return CSGI_EINVAL;
    }
    if (resp->media != media)
        cJSON_Delete(resp->media);
    resp->media = media;
    resp->body = NULL;
    resp->body_len = 0;
    return 0;
}

CSGI_RES_API struct cJSON *
csgi_res_resp_media(const struct csgi_res_resp *resp)
{
    return resp ? resp->media : NULL;
}

CSGI_RES_API void
csgi_res_resp_complete(struct csgi_res_resp *resp)
{
    if (resp)
        resp->complete = 1;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* The default serializer: an RFC 9457 style problem document. */
static int
res_default_serializer(void *arg, struct csgi_res_req *req, struct csgi_res_resp *resp,
                       const struct csgi_res_error *err)
{
    cJSON *doc = cJSON_CreateObject(), *errors;
    int rc;

    (void)arg;
    (void)req;
    if (!doc)
        return CSGI_ENOMEM;
    cJSON_AddItemToObjectCS(doc, "status", cJSON_CreateNumber(err->status));
    cJSON_AddItemToObjectCS(doc, "title", cJSON_CreateString(err->title));
    if (err->detail)
        cJSON_AddItemToObjectCS(doc, "detail", cJSON_CreateString(err->detail));
    if (err->n_fields) {
        errors = cJSON_CreateArray();
        cJSON_AddItemToObjectCS(doc, "errors", errors);
        for (size_t i = 0; errors && i < err->n_fields; i++) {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddItemToArray(errors, f);
            if (!f)
                break;
            cJSON_AddItemToObjectCS(f, "field", cJSON_CreateString(err->fields[i].field));
            cJSON_AddItemToObjectCS(f, "message", cJSON_CreateString(err->fields[i].message));
        }
    }
    csgi_res_resp_set_media(resp, doc);
    rc = csgi_res_resp_set_content_type(resp, "application/problem+json");
    return rc;
}

/* Replace the response with the pending error, rendered by the serializer. */
static int
res_render_error(struct csgi_res_req *req)
{
    const struct csgi_res_app *app = req->app;
    struct csgi_res_resp *resp = &req->resp;
    struct csgi_res_error err = {
        .version = CSGI_RES_ERROR_VERSION,
        .status = req->err_status,
        .title = res_title(req->err_status),
        .detail = req->err_detail,
        .fields = req->err_fields,
        .n_fields = req->n_err_fields,
    };
    int rc;

    csgi_res_resp_set_media(resp, NULL);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = err.status;
    if (err.status == 405 && req->route) {
        rc = csgi_res_resp_set_header(resp, "Allow", req->route->allow);
        if (rc < 0)
            return rc;
    }
    if (app->serializer)
        rc = app->serializer(app->serializer_arg, req, resp, &err);
    else
        rc = res_default_serializer(NULL, req, resp, &err);
    return rc;
}

/* Map a hook/responder result: an HTTP error stays pending, any other failure is a 500. */
static int
res_check(struct csgi_res_req *req, int rc, const char *what, const char *name)
{
    if (rc >= 0)
        return 0;
    if (!req->err_status) {
        res_req_log(req, CSGI_LOG_ERROR, "%s \"%s\" failed: %s", what, name ? name : "?",
                    csgi_strerror(rc));
        req->err_status = 500;
        req->err_detail = NULL;
        req->n_err_fields = 0;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* The CSGI application                                                */
/* ------------------------------------------------------------------ */

static int
res_chunk_next(void *ctx, struct csgi_chunk *out)
{
    struct res_chunk *c = ctx;

    if (c->done)
        return CSGI_DONE;
    c->done = 1;
    out->ptr = c->ptr;
    out->len = c->len;
    return CSGI_OK;
}

/* Serialize media into the arena (cJSON_PrintPreallocated needs 5 spare bytes). */
static int
res_serialize_media(struct csgi_res_req *req, cJSON *media, struct csgi_str *out)
{
    char *buf = csgi_res_req_alloc(req, RES_MEDIA_GUESS);
    char *heap;
    size_t len;

    if (buf && cJSON_PrintPreallocated(media, buf, RES_MEDIA_GUESS, 0)) {
        out->ptr = buf;
        out->len = strlen(buf);
        return 0;
    }
    heap = cJSON_PrintUnformatted(media);
    if (!heap)
        return CSGI_ENOMEM;
    len = strlen(heap);
    buf = csgi_res_req_alloc(req, len + 1);
    if (buf)
        memcpy(buf, heap, len + 1);
    free(heap);
    if (!buf)
        return CSGI_ENOMEM;
    out->ptr = buf;
    out->len = len;
    return 0;
}

/* Run the route's responder (or the framework's OPTIONS/405/404 answers). */
static int
res_dispatch(struct csgi_res_req *req, const struct csgi_res_app *app, void **resource)
{
    const char *p = req->path.ptr, *end = p + req->path.len;
    csgi_res_responder_fn fn;
    int rc;

    /* path is "/..." : the segments start after the first '/'. */
    req->route = res_match(&app->root, p + 1 < end ? p + 1 : NULL, end, req);
    if (!req->route)
        return csgi_res_raise(req, 404, NULL);
    /* Field values become NUL-terminated copies (they point into path_info). */
    for (size_t i = 0; i < req->n_params; i++) {
        struct res_param *prm = &req->params[i];
        prm->value.ptr = res_strdup_arena(req, prm->value.ptr, prm->value.len);
        if (!prm->value.ptr)
            return CSGI_ENOMEM;
    }
    *resource = req->route->self;
    for (size_t i = 0; i < app->n_mws; i++) {
        const struct csgi_res_middleware *mw = app->mws[i].mw;
        if (!mw->process_resource)
            continue;
        rc = mw->process_resource(app->mws[i].self, req, &req->resp, *resource);
        if (res_check(req, rc, "middleware", mw->name) < 0 || req->resp.complete)
            return rc < 0 ? rc : 0;
    }
    fn = res_responder(req->route->cls, req->method);
    if (!fn) {
        if (req->method == CSGI_RES_OPTIONS) {
            req->resp.status = 200;
            csgi_res_resp_set_body(&req->resp, "", 0);
            return csgi_res_resp_set_header(&req->resp, "Allow", req->route->allow);
        }
        return csgi_res_raise(req, 405, NULL);
    }
    rc = fn(*resource, req, &req->resp);
    res_check(req, rc, "resource", req->route->cls->name);
    return rc;
}

/* The CSGI entry of every request: middleware, routing, responder, rendering. */
CSGI_RES_API int
csgi_res_call(void *state, struct csgi_environ *env, const struct csgi_responder *responder,
              struct csgi_body *out)
{
    const struct csgi_res_app *app = state;
    struct csgi_res_req *req;
    struct csgi_res_resp *resp;
    struct csgi_str body = {"", 0};
    const struct csgi_str reason = {NULL, 0};
    void *resource = NULL;
    size_t ran = 0;
    int rc = 0, failed = 0;

    if (!app || !env || !responder || !out)
        return CSGI_EINVAL;
    req = app->api->alloc(env->request, sizeof(*req));
    if (!req)
        return CSGI_ENOMEM;
    memset(req, 0, offsetof(struct csgi_res_req, params));
    req->n_params = 0;
    req->body_read = 0;
    req->media = NULL;
    req->err_status = 0;
    req->err_detail = NULL;
    req->err_fields = NULL;
    req->n_err_fields = 0;
    req->app = app;
    req->env = env;
    req->path = env->path_info;
    if (req->path.len == 0) {
        req->path.ptr = "/";
        req->path.len = 1;
    }
    req->method = res_method_id(env->request_method);
    resp = &req->resp;
    memset(resp, 0, offsetof(struct csgi_res_resp, inline_headers));
    resp->req = req;
    resp->status = 200;
    resp->headers = resp->inline_headers;
    resp->cap_headers = RES_INLINE_HEADERS;

    for (; ran < app->n_mws; ran++) {
        const struct csgi_res_middleware *mw = app->mws[ran].mw;
        if (!mw->process_request)
            continue;
        rc = mw->process_request(app->mws[ran].self, req, resp);
        if (res_check(req, rc, "middleware", mw->name) < 0 || resp->complete) {
            ran++;
            break;
        }
    }
    if (!req->err_status && !resp->complete)
        res_dispatch(req, app, &resource);
    if (req->err_status) {
        failed = 1;
        rc = res_render_error(req);
        if (rc < 0)
            goto error_media;
    }
    for (size_t i = ran; i-- > 0;) {
        const struct csgi_res_middleware *mw = app->mws[i].mw;
        if (mw->process_response)
            mw->process_response(app->mws[i].self, req, resp, resource, !failed);
    }
    if (resp->media) {
        rc = res_serialize_media(req, resp->media, &body);
        if (rc < 0)
            goto error_media;
        if (!res_has_header(resp, "Content-Type")) {
            /* Literals: no copy, and nothing to replace. */
            rc = res_push_header(resp, "Content-Type", 12, "application/json", 16);
            if (rc < 0)
                goto error_media;
        }
    } else if (resp->body) {
        body.ptr = resp->body;
        body.len = resp->body_len;
    }
    if (resp->status == 204 || resp->status == 304)
        body.len = 0;
    cJSON_Delete(resp->media);
    resp->media = NULL;
    cJSON_Delete(req->media);
    req->media = NULL;

    rc = responder->start_response(responder->ctx, resp->status, reason, resp->headers,
                                   resp->n_headers, NULL);
    if (rc < 0) {
        res_req_log(req, CSGI_LOG_ERROR, "start_response refused the response: %s",
                    csgi_strerror(rc));
        return rc;
    }
    out->total_length = (int64_t)body.len;
    if (body.len) {
        req->chunk.ptr = body.ptr;
        req->chunk.len = body.len;
        req->chunk.done = 0;
        out->ctx = &req->chunk;
        out->next = res_chunk_next;
    }
    return CSGI_OK;

error_media:
    cJSON_Delete(resp->media);
    resp->media = NULL;
    cJSON_Delete(req->media);
    req->media = NULL;
    return rc;
}
