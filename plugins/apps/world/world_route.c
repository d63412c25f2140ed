/*
 * world_route: the World app on csgi-route (function routes, Bottle style).
 * Same HTTP behaviour as world_raw and world_resource, byte for byte
 * (plugins/apps/world/README.md). Default mount: /route.
 *
 * This file builds on its own against an installed csgi-route:
 *   cc -shared -fPIC -fvisibility=hidden world_route.c world_db.c -o world_route.so \
 *      $(pkg-config --cflags --libs csgi-route sqlite3)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <csgi/route.h>

#include "world_db.h"

static const char hello[] = "Hello, World!";

static struct world_db *
db_of(struct csgi_route_req *req)
{
    return csgi_route_app_context(req);
}

/* A problem document (the same shape csgi-resource renders). */
static const struct csgi_route_body *
problem(struct csgi_route_req *req, int status, const char *title, const char *detail,
        const struct world_field_error *errs, size_t n_errs)
{
    cJSON *doc = cJSON_CreateObject(), *list;

    if (!doc)
        return NULL;
    cJSON_AddItemToObjectCS(doc, "status", cJSON_CreateNumber(status));
    cJSON_AddItemToObjectCS(doc, "title", cJSON_CreateString(title));
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
    if (csgi_route_set_header(req, "Content-Type", "application/problem+json") < 0) {
        cJSON_Delete(doc);
        return NULL;
    }
    return csgi_route_status(req, status, csgi_route_json(req, doc));
}

/* Every abort() and every 404/405 the router answers becomes a problem document. */
static const struct csgi_route_body *
on_error(struct csgi_route_req *req, const struct csgi_route_error *err, void *user)
{
    (void)user;
    return problem(req, err->status, err->title, err->detail, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* TechEmpower endpoints                                               */
/* ------------------------------------------------------------------ */

static const struct csgi_route_body *
plaintext(struct csgi_route_req *req, void *user)
{
    (void)user;
    return csgi_route_bytes(req, "text/plain", hello, sizeof(hello) - 1);
}

static const struct csgi_route_body *
json(struct csgi_route_req *req, void *user)
{
    cJSON *o = cJSON_CreateObject();

    (void)user;
    if (o)
        cJSON_AddItemToObjectCS(o, "message", cJSON_CreateString(hello));
    return csgi_route_json(req, o);
}

static cJSON *
row_json(const struct world_row *row)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    cJSON_AddItemToObjectCS(o, "id", cJSON_CreateNumber(row->id));
    cJSON_AddItemToObjectCS(o, "randomNumber", cJSON_CreateNumber(row->random_number));
    return o;
}

static const struct csgi_route_body *
db(struct csgi_route_req *req, void *user)
{
    struct world_row row;

    (void)user;
    if (world_db_random_rows(db_of(req), &row, 1) < 0)
        return csgi_route_abort(req, 500, NULL);
    return csgi_route_json(req, row_json(&row));
}

/* /queries (user NULL) and /updates (user non-NULL). */
static const struct csgi_route_body *
rows(struct csgi_route_req *req, void *user)
{
    struct world_row *r;
    int64_t q;
    size_t n;
    cJSON *a;
    int rc;

    if (csgi_route_query_int(req, "queries", &q) < 0 || q < 1)
        q = 1;
    n = q > WORLD_MAX_QUERIES ? WORLD_MAX_QUERIES : (size_t)q;
    r = csgi_route_alloc(req, n * sizeof(*r));
    if (!r)
        return NULL;
    if (user)
        rc = world_db_update_rows(db_of(req), r, n);
    else
        rc = world_db_random_rows(db_of(req), r, n);
    if (rc < 0)
        return csgi_route_abort(req, 500, NULL);
    a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, row_json(&r[i]));
    return csgi_route_json(req, a);
}

static const char fortunes_head[] = "<!DOCTYPE html><html><head><title>Fortunes</title></head>"
                                    "<body><table><tr><th>id</th><th>message</th></tr>";
static const char fortunes_tail[] = "</table></body></html>";

static int
fortune_cmp(const void *a, const void *b)
{
    const struct world_fortune *x = a, *y = b;

    return strcmp(x->message, y->message);
}

/* HTML-escape @p s into @p dst (NULL: only count). Returns the escaped length. */
static size_t
html_escape(char *dst, const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        const char *rep;
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

static const struct csgi_route_body *
fortunes(struct csgi_route_req *req, void *user)
{
    struct world_fortune *f;
    size_t n, len, o;
    char *html;

    (void)user;
    if (world_db_fortunes(db_of(req), csgi_route_environ(req)->request, 1, &f, &n) < 0)
        return csgi_route_abort(req, 500, NULL);
    f[n].id = 0;
    f[n].message = WORLD_EXTRA_FORTUNE;
    f[n].len = strlen(WORLD_EXTRA_FORTUNE);
    n++;
    qsort(f, n, sizeof(*f), fortune_cmp);
    len = sizeof(fortunes_head) + sizeof(fortunes_tail);
    for (size_t i = 0; i < n; i++)
        len += 40 + html_escape(NULL, f[i].message, f[i].len);
    html = csgi_route_alloc(req, len);
    if (!html)
        return NULL;
    o = sizeof(fortunes_head) - 1;
    memcpy(html, fortunes_head, o);
    for (size_t i = 0; i < n; i++) {
        o += (size_t)sprintf(html + o, "<tr><td>%d</td><td>", (int)f[i].id);
        o += html_escape(html + o, f[i].message, f[i].len);
        memcpy(html + o, "</td></tr>", 10);
        o += 10;
    }
    memcpy(html + o, fortunes_tail, sizeof(fortunes_tail) - 1);
    o += sizeof(fortunes_tail) - 1;
    return csgi_route_html(req, html, o);
}

/* ------------------------------------------------------------------ */
/* Items                                                               */
/* ------------------------------------------------------------------ */

/* A valid item from the JSON body; otherwise *err is the 415/400/422 answer. */
static int
item_input(struct csgi_route_req *req, struct world_item *item, const struct csgi_route_body **err)
{
    struct world_field_error errs[WORLD_MAX_FIELD_ERRORS];
    struct cJSON *value;
    int rc = csgi_route_json_body(req, &value);

    if (rc == CSGI_ENOTSUP) {
        *err = csgi_route_abort(req, 415, "Content-Type must be application/json");
        return -1;
    }
    if (rc == CSGI_EINVAL) {
        *err = csgi_route_abort(req, 400, "malformed JSON body");
        return -1;
    }
    if (rc < 0) {
        *err = NULL;
        return -1;
    }
    rc = world_item_validate(db_of(req), csgi_route_environ(req)->request, value, item, errs);
    if (rc != 0) {
        *err = rc > 0 ? problem(req, 422, "Unprocessable Content", "invalid item", errs, (size_t)rc)
                      : NULL;
        return -1;
    }
    return 0;
}

static const struct csgi_route_body *
items_list(struct csgi_route_req *req, void *user)
{
    struct world_field_error errs[2];
    struct world_item *items;
    int64_t limit = WORLD_DEFAULT_LIMIT, offset = 0, total;
    size_t n_errs = 0, n;
    cJSON *doc, *list;
    int rc;

    (void)user;
    rc = csgi_route_query_int(req, "limit", &limit);
    if (rc == CSGI_EINVAL)
        errs[n_errs++] = (struct world_field_error){"limit", "must be an integer"};
    else if (rc < 0 && rc != CSGI_ENOENT)
        return NULL;
    rc = csgi_route_query_int(req, "offset", &offset);
    if (rc == CSGI_EINVAL || (rc == 0 && offset < 0))
        errs[n_errs++] = (struct world_field_error){"offset", "must be a non-negative integer"};
    else if (rc < 0 && rc != CSGI_ENOENT)
        return NULL;
    if (n_errs)
        return problem(req, 422, "Unprocessable Content", "invalid query parameters", errs, n_errs);
    limit = limit < 1 ? 1 : limit > WORLD_MAX_LIMIT ? WORLD_MAX_LIMIT : limit;
    if (world_db_item_list(db_of(req), csgi_route_environ(req)->request, limit, offset, &items, &n,
                           &total) < 0)
        return csgi_route_abort(req, 500, NULL);
    doc = cJSON_CreateObject();
    list = cJSON_CreateArray();
    if (!doc || !list) {
        cJSON_Delete(doc);
        cJSON_Delete(list);
        return NULL;
    }
    cJSON_AddItemToObjectCS(doc, "items", list);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(list, world_item_json(&items[i]));
    cJSON_AddItemToObjectCS(doc, "limit", cJSON_CreateNumber((double)limit));
    cJSON_AddItemToObjectCS(doc, "offset", cJSON_CreateNumber((double)offset));
    cJSON_AddItemToObjectCS(doc, "total", cJSON_CreateNumber((double)total));
    return csgi_route_json(req, doc);
}

static const struct csgi_route_body *
items_create(struct csgi_route_req *req, void *user)
{
    struct world_item item;
    struct csgi_str prefix = csgi_route_prefix(req);
    const struct csgi_route_body *err;
    char *location;

    (void)user;
    if (item_input(req, &item, &err) < 0)
        return err;
    if (world_db_item_create(db_of(req), &item) < 0)
        return csgi_route_abort(req, 500, NULL);
    location =
        csgi_route_sprintf(req, "%.*s/items/%lld", (int)prefix.len, prefix.ptr, (long long)item.id);
    if (!location || csgi_route_set_header(req, "Location", location) < 0)
        return NULL;
    return csgi_route_status(req, 201, csgi_route_json(req, world_item_json(&item)));
}

static const struct csgi_route_body *
item_missing(struct csgi_route_req *req, int64_t id)
{
    return csgi_route_abort(req, 404,
                            csgi_route_sprintf(req, "item %lld not found", (long long)id));
}

static const struct csgi_route_body *
item_get(struct csgi_route_req *req, void *user)
{
    struct world_item item;
    int64_t id = 0;
    int rc;

    (void)user;
    csgi_route_param_int(req, "id", &id);
    rc = world_db_item_get(db_of(req), csgi_route_environ(req)->request, id, &item);
    if (rc == CSGI_ENOENT)
        return item_missing(req, id);
    if (rc < 0)
        return csgi_route_abort(req, 500, NULL);
    return csgi_route_json(req, world_item_json(&item));
}

static const struct csgi_route_body *
item_put(struct csgi_route_req *req, void *user)
{
    struct world_item item;
    int64_t id = 0;
    const struct csgi_route_body *err;
    int rc;

    (void)user;
    csgi_route_param_int(req, "id", &id);
    if (item_input(req, &item, &err) < 0)
        return err;
    item.id = id;
    rc = world_db_item_replace(db_of(req), &item);
    if (rc == CSGI_ENOENT)
        return item_missing(req, id);
    if (rc < 0)
        return csgi_route_abort(req, 500, NULL);
    return csgi_route_json(req, world_item_json(&item));
}

static const struct csgi_route_body *
item_delete(struct csgi_route_req *req, void *user)
{
    int64_t id = 0;
    int rc;

    (void)user;
    csgi_route_param_int(req, "id", &id);
    rc = world_db_item_delete(db_of(req), id);
    if (rc == CSGI_ENOENT)
        return item_missing(req, id);
    if (rc < 0)
        return csgi_route_abort(req, 500, NULL);
    return csgi_route_status(req, 204, csgi_route_empty(req));
}

/* ------------------------------------------------------------------ */
/* Plugin                                                              */
/* ------------------------------------------------------------------ */

static void
world_release(void *ctx)
{
    world_db_close(ctx);
}

static int
world_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
           void **state)
{
    struct csgi_route_app *app;
    struct world_db *wdb;
    int rc = world_db_open(api, "world_route", config, n_config, &wdb);

    if (rc < 0)
        return rc;
    app = csgi_route_app_new(api);
    if (!app) {
        world_db_close(wdb);
        return CSGI_ENOMEM;
    }
    csgi_route_app_set_context(app, wdb, world_release);
    csgi_route_add(app, "GET", "/plaintext", plaintext, NULL);
    csgi_route_add(app, "GET", "/json", json, NULL);
    csgi_route_add(app, "GET", "/db", db, NULL);
    csgi_route_add(app, "GET", "/queries", rows, NULL);
    csgi_route_add(app, "GET", "/updates", rows, (void *)1);
    csgi_route_add(app, "GET", "/fortunes", fortunes, NULL);
    csgi_route_add(app, "GET", "/items", items_list, NULL);
    csgi_route_add(app, "POST", "/items", items_create, NULL);
    csgi_route_add(app, "GET", "/items/<id:int>", item_get, NULL);
    csgi_route_add(app, "PUT", "/items/<id:int>", item_put, NULL);
    csgi_route_add(app, "DELETE", "/items/<id:int>", item_delete, NULL);
    csgi_route_on_error(app, 0, on_error, NULL);
    return csgi_route_app_start(app, state);
}

static const struct csgi_plugin world_route_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "world_route",
    .plugin_version = "1.0.0",
    .description = "the World benchmark app on csgi-route",
    .mount = "/route",
    .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = world_init,
    .call = csgi_route_call,
    .exit_worker = csgi_route_exit,
};

CSGI_EXPORT const struct csgi_plugin *csgi_plugin_entry(uint32_t host_abi_version);

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &world_route_plugin;
}
