/*
 * world_raw: the World app written on the raw CSGI interface, no framework.
 * Behaviour (shared byte for byte with world_resource and world_route) is
 * described in plugins/apps/world/README.md. Default mount: /raw.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <csgi/csgi.h>

#include "world_db.h"

/* First try when serializing JSON into the arena; larger output falls back to malloc. */
#define RAW_JSON_GUESS 1024

enum raw_method {
    RAW_GET,
    RAW_HEAD,
    RAW_POST,
    RAW_PUT,
    RAW_PATCH,
    RAW_DELETE,
    RAW_OPTIONS,
    RAW_OTHER
};

struct raw_state {
    const struct csgi_host_api *api;
    struct world_db *db;
};

/* One request: what every handler needs. */
struct raw_req {
    const struct raw_state *st;
    struct csgi_environ *env;
    const struct csgi_responder *resp;
    struct csgi_body *out;
    int method;
};

struct raw_once {
    const char *ptr;
    size_t len;
    int done;
};

static const char raw_allow_get[] = "GET, HEAD, OPTIONS";
static const char raw_allow_items[] = "GET, HEAD, POST, OPTIONS";
static const char raw_allow_item[] = "GET, HEAD, PUT, DELETE, OPTIONS";

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

static int
raw_once_next(void *ctx, struct csgi_chunk *out)
{
    struct raw_once *o = ctx;

    if (o->done)
        return CSGI_DONE;
    o->done = 1;
    out->ptr = o->ptr;
    out->len = o->len;
    return CSGI_OK;
}

static void *
raw_alloc(struct raw_req *r, size_t n)
{
    return r->st->api->alloc(r->env->request, n);
}

/*
 * Send a whole response: status, an optional Content-Type, an optional extra
 * header, and a body that stays valid until the request is finished.
 */
static int
raw_send(struct raw_req *r, int status, const char *ctype, const char *hname, const char *hvalue,
         const char *body, size_t len)
{
    struct csgi_header h[2];
    const struct csgi_str reason = {NULL, 0};
    struct raw_once *once;
    size_t n = 0;
    int rc;

    /* The same order as the frameworks: headers set by the handler, then Content-Type. */
    if (hname) {
        h[n].name.ptr = hname;
        h[n].name.len = strlen(hname);
        h[n].value.ptr = hvalue;
        h[n++].value.len = strlen(hvalue);
    }
    if (ctype) {
        h[n].name = (struct csgi_str)CSGI_STR_INIT("Content-Type");
        h[n].value.ptr = ctype;
        h[n++].value.len = strlen(ctype);
    }
    rc = r->resp->start_response(r->resp->ctx, status, reason, h, n, NULL);
    if (rc < 0)
        return rc;
    r->out->total_length = (int64_t)len;
    if (len == 0)
        return CSGI_OK;
    once = raw_alloc(r, sizeof(*once));
    if (!once)
        return CSGI_ENOMEM;
    once->ptr = body;
    once->len = len;
    once->done = 0;
    r->out->ctx = once;
    r->out->next = raw_once_next;
    return CSGI_OK;
}

/* Serialize @p v (taking ownership) and send it. */
static int
raw_send_json(struct raw_req *r, int status, const char *ctype, const char *hname,
              const char *hvalue, cJSON *v)
{
    char *buf, *heap;
    size_t len;

    if (!v)
        return CSGI_ENOMEM;
    buf = raw_alloc(r, RAW_JSON_GUESS);
    if (buf && cJSON_PrintPreallocated(v, buf, RAW_JSON_GUESS, 0)) {
        len = strlen(buf);
    } else {
        heap = cJSON_PrintUnformatted(v);
        len = heap ? strlen(heap) : 0;
        buf = heap ? raw_alloc(r, len + 1) : NULL;
        if (buf)
            memcpy(buf, heap, len + 1);
        free(heap);
    }
    cJSON_Delete(v);
    if (!buf)
        return CSGI_ENOMEM;
    return raw_send(r, status, ctype, hname, hvalue, buf, len);
}

static const char *
raw_title(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    default:
        return "Internal Server Error";
    }
}

/* A problem document: {"status":..,"title":..,"detail":..,"errors":[..]}. */
static int
raw_problem(struct raw_req *r, int status, const char *detail, const struct world_field_error *errs,
            size_t n_errs, const char *allow)
{
    cJSON *doc = cJSON_CreateObject(), *list;

    if (!doc)
        return CSGI_ENOMEM;
    cJSON_AddItemToObjectCS(doc, "status", cJSON_CreateNumber(status));
    cJSON_AddItemToObjectCS(doc, "title", cJSON_CreateString(raw_title(status)));
    if (detail)
        cJSON_AddItemToObjectCS(doc, "detail", cJSON_CreateString(detail));
    if (n_errs) {
        list = cJSON_CreateArray();
        cJSON_AddItemToObjectCS(doc, "errors", list);
        for (size_t i = 0; list && i < n_errs; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(list, e);
            if (!e)
                break;
            cJSON_AddItemToObjectCS(e, "field", cJSON_CreateString(errs[i].field));
            cJSON_AddItemToObjectCS(e, "message", cJSON_CreateString(errs[i].message));
        }
    }
    return raw_send_json(r, status, "application/problem+json", allow ? "Allow" : NULL, allow, doc);
}

/* ------------------------------------------------------------------ */
/* Request parsing                                                     */
/* ------------------------------------------------------------------ */

static int
raw_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode one query component in place into @p dst ('+' is a space). */
static size_t
raw_decode(char *dst, const char *src, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (src[i] == '+') {
            dst[o++] = ' ';
        } else if (src[i] == '%' && i + 2 < len && (hi = raw_hex((unsigned char)src[i + 1])) >= 0 &&
                   (lo = raw_hex((unsigned char)src[i + 2])) >= 0) {
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    return o;
}

/* A decimal int64: optional '-', digits only, in range. 0 or -1. */
static int
raw_parse_i64(const char *s, size_t len, int64_t *out)
{
    uint64_t v = 0, limit = (uint64_t)INT64_MAX;
    size_t i = 0;
    int neg = 0;

    if (len > 0 && s[0] == '-') {
        neg = 1;
        limit += 1;
        i = 1;
    }
    if (i == len)
        return -1;
    for (; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

/*
 * The first query parameter called @p name, decoded, as an int64.
 * Returns 0, CSGI_ENOENT when absent, CSGI_EINVAL when not an integer.
 */
static int
raw_query_int(struct raw_req *r, const char *name, int64_t *value)
{
    const char *p = r->env->query_string.ptr, *end = p + r->env->query_string.len;
    size_t nlen = strlen(name);
    /* One scratch buffer, reused for every key (a decoded part is never longer). */
    char *key = p < end ? raw_alloc(r, (size_t)(end - p)) : NULL;

    if (p < end && !key)
        return CSGI_ENOMEM;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        size_t klen, vlen;

        klen = raw_decode(key, p, (size_t)(ke - p));
        if (klen == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : pe;
            vlen = raw_decode(key, v, (size_t)(pe - v));
            return raw_parse_i64(key, vlen, value) == 0 ? 0 : CSGI_EINVAL;
        }
        p = pe + 1;
    }
    return CSGI_ENOENT;
}

/* ?queries=N clamped to 1..500; anything that is not an integer counts as 1. */
static size_t
raw_queries(struct raw_req *r)
{
    int64_t n;

    if (raw_query_int(r, "queries", &n) < 0 || n < 1)
        return 1;
    return n > WORLD_MAX_QUERIES ? WORLD_MAX_QUERIES : (size_t)n;
}

/* Content-Type is application/json, ignoring parameters and case. */
static int
raw_is_json(struct csgi_str ct)
{
    size_t len;
    const char *want = "application/json";

    if (!ct.ptr)
        return 0;
    len = ct.len;
    for (size_t i = 0; i < ct.len; i++) {
        if (ct.ptr[i] == ';') {
            len = i;
            break;
        }
    }
    while (len > 0 && (ct.ptr[len - 1] == ' ' || ct.ptr[len - 1] == '\t'))
        len--;
    if (len != 16)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)ct.ptr[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != want[i])
            return 0;
    }
    return 1;
}

/*
 * Read and parse the JSON body. Returns 0 with *value (caller owns), or
 * answers 415/400 itself and returns 1, or a negative error.
 */
static int
raw_json_body(struct raw_req *r, cJSON **value)
{
    const struct csgi_input *in = r->env->input;
    size_t cap = r->env->content_length >= 0 ? (size_t)r->env->content_length : 4096, len = 0;
    const char *end = NULL;
    char *buf;
    int rc;

    if (!raw_is_json(r->env->content_type)) {
        rc = raw_problem(r, 415, "Content-Type must be application/json", NULL, 0, NULL);
        return rc < 0 ? rc : 1;
    }
    buf = raw_alloc(r, cap + 1);
    if (!buf)
        return CSGI_ENOMEM;
    for (;;) {
        int64_t got;
        if (len == cap) {
            char *nb;
            if (r->env->content_length >= 0)
                break;
            nb = raw_alloc(r, cap * 2 + 1);
            if (!nb)
                return CSGI_ENOMEM;
            memcpy(nb, buf, len);
            buf = nb;
            cap *= 2;
        }
        got = in->read(in->ctx, buf + len, cap - len);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    *value = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (*value && end) {
        while (end < buf + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end != buf + len) {
            cJSON_Delete(*value);
            *value = NULL;
        }
    }
    if (!*value) {
        rc = raw_problem(r, 400, "malformed JSON body", NULL, 0, NULL);
        return rc < 0 ? rc : 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* TechEmpower endpoints                                               */
/* ------------------------------------------------------------------ */

static const char raw_hello[] = "Hello, World!";

static int
raw_plaintext(struct raw_req *r)
{
    return raw_send(r, 200, "text/plain", NULL, NULL, raw_hello, sizeof(raw_hello) - 1);
}

static int
raw_json(struct raw_req *r)
{
    cJSON *o = cJSON_CreateObject();

    if (o)
        cJSON_AddItemToObjectCS(o, "message", cJSON_CreateString(raw_hello));
    return raw_send_json(r, 200, "application/json", NULL, NULL, o);
}

static cJSON *
raw_row_json(const struct world_row *row)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    cJSON_AddItemToObjectCS(o, "id", cJSON_CreateNumber(row->id));
    cJSON_AddItemToObjectCS(o, "randomNumber", cJSON_CreateNumber(row->random_number));
    return o;
}

static int
raw_db(struct raw_req *r)
{
    struct world_row row;
    int rc = world_db_random_rows(r->st->db, &row, 1);

    if (rc < 0)
        return raw_problem(r, 500, NULL, NULL, 0, NULL);
    return raw_send_json(r, 200, "application/json", NULL, NULL, raw_row_json(&row));
}

/* /queries and /updates: N rows as a JSON array. */
static int
raw_rows(struct raw_req *r, int update)
{
    size_t n = raw_queries(r);
    struct world_row *rows = raw_alloc(r, n * sizeof(*rows));
    cJSON *a;
    int rc;

    if (!rows)
        return CSGI_ENOMEM;
    if (update)
        rc = world_db_update_rows(r->st->db, rows, n);
    else
        rc = world_db_random_rows(r->st->db, rows, n);
    if (rc < 0)
        return raw_problem(r, 500, NULL, NULL, 0, NULL);
    a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, raw_row_json(&rows[i]));
    return raw_send_json(r, 200, "application/json", NULL, NULL, a);
}

static int
raw_fortune_cmp(const void *a, const void *b)
{
    const struct world_fortune *x = a, *y = b;

    return strcmp(x->message, y->message);
}

/* Bytes of @p s once HTML-escaped, or the escaped copy when @p dst is non-NULL. */
static size_t
raw_escape(char *dst, const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            if (dst)
                dst[o] = s[i];
            o++;
            continue;
        }
        if (dst)
            memcpy(dst + o, rep, strlen(rep));
        o += strlen(rep);
    }
    return o;
}

static const char raw_fortunes_head[] = "<!DOCTYPE html><html><head><title>Fortunes</title></head>"
                                        "<body><table><tr><th>id</th><th>message</th></tr>";
static const char raw_fortunes_tail[] = "</table></body></html>";

static int
raw_fortunes(struct raw_req *r)
{
    struct world_fortune *f;
    size_t n, len, o;
    char *html;
    int rc = world_db_fortunes(r->st->db, r->env->request, 1, &f, &n);

    if (rc < 0)
        return raw_problem(r, 500, NULL, NULL, 0, NULL);
    f[n].id = 0;
    f[n].message = WORLD_EXTRA_FORTUNE;
    f[n].len = strlen(WORLD_EXTRA_FORTUNE);
    n++;
    qsort(f, n, sizeof(*f), raw_fortune_cmp);
    len = sizeof(raw_fortunes_head) - 1 + sizeof(raw_fortunes_tail) - 1;
    for (size_t i = 0; i < n; i++)
        len += 40 + raw_escape(NULL, f[i].message, f[i].len);
    html = raw_alloc(r, len + 1);
    if (!html)
        return CSGI_ENOMEM;
    memcpy(html, raw_fortunes_head, sizeof(raw_fortunes_head) - 1);
    o = sizeof(raw_fortunes_head) - 1;
    for (size_t i = 0; i < n; i++) {
        o += (size_t)sprintf(html + o, "<tr><td>%d</td><td>", (int)f[i].id);
        o += raw_escape(html + o, f[i].message, f[i].len);
        memcpy(html + o, "</td></tr>", 10);
        o += 10;
    }
    memcpy(html + o, raw_fortunes_tail, sizeof(raw_fortunes_tail) - 1);
    o += sizeof(raw_fortunes_tail) - 1;
    return raw_send(r, 200, "text/html; charset=utf-8", NULL, NULL, html, o);
}

/* ------------------------------------------------------------------ */
/* Items                                                               */
/* ------------------------------------------------------------------ */

static int
raw_items_list(struct raw_req *r)
{
    struct world_field_error errs[2];
    struct world_item *items;
    int64_t limit = WORLD_DEFAULT_LIMIT, offset = 0, total;
    size_t n_errs = 0, n;
    cJSON *doc, *list;
    int rc;

    rc = raw_query_int(r, "limit", &limit);
    if (rc == CSGI_EINVAL) {
        errs[n_errs].field = "limit";
        errs[n_errs++].message = "must be an integer";
    } else if (rc < 0 && rc != CSGI_ENOENT) {
        return rc;
    }
    rc = raw_query_int(r, "offset", &offset);
    if (rc == CSGI_EINVAL || (rc == 0 && offset < 0)) {
        errs[n_errs].field = "offset";
        errs[n_errs++].message = "must be a non-negative integer";
    } else if (rc < 0 && rc != CSGI_ENOENT) {
        return rc;
    }
    if (n_errs)
        return raw_problem(r, 422, "invalid query parameters", errs, n_errs, NULL);
    if (limit < 1)
        limit = 1;
    if (limit > WORLD_MAX_LIMIT)
        limit = WORLD_MAX_LIMIT;
    rc = world_db_item_list(r->st->db, r->env->request, limit, offset, &items, &n, &total);
    if (rc < 0)
        return raw_problem(r, 500, NULL, NULL, 0, NULL);
    doc = cJSON_CreateObject();
    list = cJSON_CreateArray();
    if (!doc || !list) {
        cJSON_Delete(doc);
        cJSON_Delete(list);
        return CSGI_ENOMEM;
    }
    cJSON_AddItemToObjectCS(doc, "items", list);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(list, world_item_json(&items[i]));
    cJSON_AddItemToObjectCS(doc, "limit", cJSON_CreateNumber((double)limit));
    cJSON_AddItemToObjectCS(doc, "offset", cJSON_CreateNumber((double)offset));
    cJSON_AddItemToObjectCS(doc, "total", cJSON_CreateNumber((double)total));
    return raw_send_json(r, 200, "application/json", NULL, NULL, doc);
}

/*
 * Parse and validate an item body. Returns 0 with *item filled, 1 when a
 * 415/400/422 answer was sent, or a negative error.
 */
static int
raw_item_input(struct raw_req *r, struct world_item *item)
{
    struct world_field_error errs[WORLD_MAX_FIELD_ERRORS];
    cJSON *body = NULL;
    int rc = raw_json_body(r, &body);

    if (rc != 0)
        return rc;
    rc = world_item_validate(r->st->db, r->env->request, body, item, errs);
    if (rc > 0) {
        cJSON_Delete(body);
        rc = raw_problem(r, 422, "invalid item", errs, (size_t)rc, NULL);
        return rc < 0 ? rc : 1;
    }
    cJSON_Delete(body);
    return rc;
}

static int
raw_items_create(struct raw_req *r)
{
    struct world_item item;
    char *location;
    int rc = raw_item_input(r, &item);

    if (rc != 0)
        return rc < 0 ? rc : CSGI_OK;
    if (world_db_item_create(r->st->db, &item) < 0)
        return raw_problem(r, 500, NULL, NULL, 0, NULL);
    location = raw_alloc(r, r->env->script_name.len + 32);
    if (!location)
        return CSGI_ENOMEM;
    sprintf(location, "%.*s/items/%lld", (int)r->env->script_name.len, r->env->script_name.ptr,
            (long long)item.id);
    return raw_send_json(r, 201, "application/json", "Location", location, world_item_json(&item));
}

static int
raw_item_missing(struct raw_req *r, int64_t id)
{
    char detail[64];

    snprintf(detail, sizeof(detail), "item %lld not found", (long long)id);
    return raw_problem(r, 404, detail, NULL, 0, NULL);
}

static int
raw_item(struct raw_req *r, int64_t id)
{
    struct world_item item;
    int rc;

    switch (r->method) {
    case RAW_GET:
    case RAW_HEAD:
        rc = world_db_item_get(r->st->db, r->env->request, id, &item);
        if (rc == CSGI_ENOENT)
            return raw_item_missing(r, id);
        if (rc < 0)
            return raw_problem(r, 500, NULL, NULL, 0, NULL);
        return raw_send_json(r, 200, "application/json", NULL, NULL, world_item_json(&item));
    case RAW_PUT:
        rc = raw_item_input(r, &item);
        if (rc != 0)
            return rc < 0 ? rc : CSGI_OK;
        item.id = id;
        rc = world_db_item_replace(r->st->db, &item);
        if (rc == CSGI_ENOENT)
            return raw_item_missing(r, id);
        if (rc < 0)
            return raw_problem(r, 500, NULL, NULL, 0, NULL);
        return raw_send_json(r, 200, "application/json", NULL, NULL, world_item_json(&item));
    case RAW_DELETE:
        rc = world_db_item_delete(r->st->db, id);
        if (rc == CSGI_ENOENT)
            return raw_item_missing(r, id);
        if (rc < 0)
            return raw_problem(r, 500, NULL, NULL, 0, NULL);
        return raw_send(r, 204, NULL, NULL, NULL, "", 0);
    default:
        return CSGI_EINVAL;
    }
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

static int
raw_method(struct csgi_str m)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

    for (int i = 0; i < RAW_OTHER; i++) {
        if (strlen(names[i]) == m.len && memcmp(names[i], m.ptr, m.len) == 0)
            return i;
    }
    return RAW_OTHER;
}

static int
raw_path_is(struct csgi_str path, const char *lit)
{
    return path.len == strlen(lit) && memcmp(path.ptr, lit, path.len) == 0;
}

/* OPTIONS answers with Allow; any other method not in @p allowed is a 405. */
static int
raw_not_allowed(struct raw_req *r, const char *allow)
{
    if (r->method == RAW_OPTIONS)
        return raw_send(r, 200, NULL, "Allow", allow, "", 0);
    return raw_problem(r, 405, NULL, NULL, 0, allow);
}

static int
raw_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    struct raw_req r = {state, env, resp, out, raw_method(env->request_method)};
    struct csgi_str path = env->path_info;
    int get = r.method == RAW_GET || r.method == RAW_HEAD;
    int64_t id;

    if (path.len == 0)
        path = (struct csgi_str)CSGI_STR_INIT("/");
    if (raw_path_is(path, "/plaintext"))
        return get ? raw_plaintext(&r) : raw_not_allowed(&r, raw_allow_get);
    if (raw_path_is(path, "/json"))
        return get ? raw_json(&r) : raw_not_allowed(&r, raw_allow_get);
    if (raw_path_is(path, "/db"))
        return get ? raw_db(&r) : raw_not_allowed(&r, raw_allow_get);
    if (raw_path_is(path, "/queries"))
        return get ? raw_rows(&r, 0) : raw_not_allowed(&r, raw_allow_get);
    if (raw_path_is(path, "/updates"))
        return get ? raw_rows(&r, 1) : raw_not_allowed(&r, raw_allow_get);
    if (raw_path_is(path, "/fortunes"))
        return get ? raw_fortunes(&r) : raw_not_allowed(&r, raw_allow_get);
    if (raw_path_is(path, "/items")) {
        if (get)
            return raw_items_list(&r);
        if (r.method == RAW_POST)
            return raw_items_create(&r);
        return raw_not_allowed(&r, raw_allow_items);
    }
    if (path.len > 7 && memcmp(path.ptr, "/items/", 7) == 0 &&
        raw_parse_i64(path.ptr + 7, path.len - 7, &id) == 0) {
        if (get || r.method == RAW_PUT || r.method == RAW_DELETE)
            return raw_item(&r, id);
        return raw_not_allowed(&r, raw_allow_item);
    }
    return raw_problem(&r, 404, NULL, NULL, 0, NULL);
}

/* ------------------------------------------------------------------ */
/* Plugin                                                              */
/* ------------------------------------------------------------------ */

static int
raw_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
         void **state)
{
    struct raw_state *st = calloc(1, sizeof(*st));
    int rc;

    if (!st)
        return CSGI_ENOMEM;
    st->api = api;
    rc = world_db_open(api, "world_raw", config, n_config, &st->db);
    if (rc < 0) {
        free(st);
        return rc;
    }
    *state = st;
    return CSGI_OK;
}

static void
raw_exit(void *state)
{
    struct raw_state *st = state;

    world_db_close(st->db);
    free(st);
}

static const struct csgi_plugin world_raw_plugin = {
    CSGI_PLUGIN_HEADER,        .name = "world_raw",
    .plugin_version = "1.0.0", .description = "the World benchmark app on the raw CSGI interface",
    .mount = "/raw",           .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = raw_init,   .call = raw_call,
    .exit_worker = raw_exit,
};

CSGI_EXPORT const struct csgi_plugin *csgi_plugin_entry(uint32_t host_abi_version);

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &world_raw_plugin;
}
