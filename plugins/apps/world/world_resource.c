/*
 * world_resource: the World app on csgi-resource (resource classes, Falcon
 * style). Same HTTP behaviour as world_raw and world_route, byte for byte
 * (plugins/apps/world/README.md). Default mount: /resource.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <csgi/resource.h>

#include "world_db.h"

/* The per-worker application state: the database connection. */
struct world {
    struct world_db *db;
};

static const char hello[] = "Hello, World!";

static struct world_db *
db_of(struct csgi_res_req *req)
{
    const struct world *w = csgi_res_req_app_context(req);

    return w->db;
}

/* ------------------------------------------------------------------ */
/* /plaintext and /json                                                */
/* ------------------------------------------------------------------ */

static int
plaintext_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    (void)self;
    (void)req;
    csgi_res_resp_set_content_type(resp, "text/plain");
    csgi_res_resp_set_body(resp, hello, sizeof(hello) - 1);
    return 0;
}

static const struct csgi_res_resource plaintext_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "plaintext",
    .on_get = plaintext_on_get,
};

static int
json_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    cJSON *o = cJSON_CreateObject();

    (void)self;
    (void)req;
    if (!o || !cJSON_AddItemToObjectCS(o, "message", cJSON_CreateString(hello))) {
        cJSON_Delete(o);
        return CSGI_ENOMEM;
    }
    return csgi_res_resp_set_media(resp, o);
}

static const struct csgi_res_resource json_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "json",
    .on_get = json_on_get,
};

/* ------------------------------------------------------------------ */
/* /db, /queries, /updates                                             */
/* ------------------------------------------------------------------ */

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

static int
db_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct world_row row;

    (void)self;
    if (world_db_random_rows(db_of(req), &row, 1) < 0)
        return csgi_res_raise(req, 500, NULL);
    return csgi_res_resp_set_media(resp, row_json(&row));
}

static const struct csgi_res_resource db_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "db",
    .on_get = db_on_get,
};

/*
 * /queries and /updates are one resource class with two instances; each
 * instance's state (created once per worker) says whether it writes.
 */
struct rows_resource {
    int update;
};

static int
rows_init(void *arg, void **self)
{
    struct rows_resource *r = malloc(sizeof(*r));

    if (!r)
        return CSGI_ENOMEM;
    r->update = arg != NULL;
    *self = r;
    return 0;
}

static void
rows_fini(void *self)
{
    free(self);
}

static int
rows_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    const struct rows_resource *r = self;
    struct world_row *rows;
    int64_t q;
    size_t n;
    cJSON *a;
    int rc;

    /* Not an integer (or absent) counts as 1; the result is clamped to 1..500. */
    if (csgi_res_req_query_int(req, "queries", &q) < 0 || q < 1)
        q = 1;
    n = q > WORLD_MAX_QUERIES ? WORLD_MAX_QUERIES : (size_t)q;
    rows = csgi_res_req_alloc(req, n * sizeof(*rows));
    if (!rows)
        return CSGI_ENOMEM;
    if (r->update)
        rc = world_db_update_rows(db_of(req), rows, n);
    else
        rc = world_db_random_rows(db_of(req), rows, n);
    if (rc < 0)
        return csgi_res_raise(req, 500, NULL);
    a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, row_json(&rows[i]));
    if (!a)
        return CSGI_ENOMEM;
    return csgi_res_resp_set_media(resp, a);
}

static const struct csgi_res_resource rows_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "rows",
    .init = rows_init,
    .fini = rows_fini,
    .on_get = rows_on_get,
};

/* ------------------------------------------------------------------ */
/* /fortunes                                                           */
/* ------------------------------------------------------------------ */

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

static int
fortunes_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct world_fortune *f;
    size_t n, len, o;
    char *html;

    (void)self;
    if (world_db_fortunes(db_of(req), csgi_res_req_environ(req)->request, 1, &f, &n) < 0)
        return csgi_res_raise(req, 500, NULL);
    f[n].id = 0;
    f[n].message = WORLD_EXTRA_FORTUNE;
    f[n].len = strlen(WORLD_EXTRA_FORTUNE);
    n++;
    qsort(f, n, sizeof(*f), fortune_cmp);
    len = sizeof(fortunes_head) + sizeof(fortunes_tail);
    for (size_t i = 0; i < n; i++)
        len += 40 + html_escape(NULL, f[i].message, f[i].len);
    html = csgi_res_req_alloc(req, len);
    if (!html)
        return CSGI_ENOMEM;
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
    csgi_res_resp_set_content_type(resp, "text/html; charset=utf-8");
    csgi_res_resp_set_body(resp, html, o);
    return 0;
}

static const struct csgi_res_resource fortunes_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "fortunes",
    .on_get = fortunes_on_get,
};

/* ------------------------------------------------------------------ */
/* /items and /items/{id:int}                                          */
/* ------------------------------------------------------------------ */

/* The JSON body as a valid item, or a raised 415/400/422. */
static int
item_input(struct csgi_res_req *req, struct world_item *item)
{
    struct world_field_error errs[WORLD_MAX_FIELD_ERRORS];
    struct csgi_res_field_error fields[WORLD_MAX_FIELD_ERRORS];
    struct cJSON *body;
    int rc = csgi_res_req_media(req, &body);

    if (rc < 0)
        return rc;
    rc = world_item_validate(db_of(req), csgi_res_req_environ(req)->request, body, item, errs);
    if (rc <= 0)
        return rc;
    for (int i = 0; i < rc; i++) {
        fields[i].field = errs[i].field;
        fields[i].message = errs[i].message;
    }
    return csgi_res_raise_fields(req, 422, "invalid item", fields, (size_t)rc);
}

static int
items_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct csgi_res_field_error errs[2];
    struct world_item *items;
    int64_t limit = WORLD_DEFAULT_LIMIT, offset = 0, total;
    size_t n_errs = 0, n;
    cJSON *doc, *list;
    int rc;

    (void)self;
    rc = csgi_res_req_query_int(req, "limit", &limit);
    if (rc == CSGI_EINVAL)
        errs[n_errs++] = (struct csgi_res_field_error){"limit", "must be an integer"};
    else if (rc < 0 && rc != CSGI_ENOENT)
        return rc;
    rc = csgi_res_req_query_int(req, "offset", &offset);
    if (rc == CSGI_EINVAL || (rc == 0 && offset < 0))
        errs[n_errs++] = (struct csgi_res_field_error){"offset", "must be a non-negative integer"};
    else if (rc < 0 && rc != CSGI_ENOENT)
        return rc;
    if (n_errs)
        return csgi_res_raise_fields(req, 422, "invalid query parameters", errs, n_errs);
    limit = limit < 1 ? 1 : limit > WORLD_MAX_LIMIT ? WORLD_MAX_LIMIT : limit;
    if (world_db_item_list(db_of(req), csgi_res_req_environ(req)->request, limit, offset, &items,
                           &n, &total) < 0)
        return csgi_res_raise(req, 500, NULL);
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
    return csgi_res_resp_set_media(resp, doc);
}

static int
items_on_post(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct world_item item;
    struct csgi_str prefix = csgi_res_req_prefix(req);
    const char *location;
    int rc = item_input(req, &item);

    (void)self;
    if (rc < 0)
        return rc;
    if (world_db_item_create(db_of(req), &item) < 0)
        return csgi_res_raise(req, 500, NULL);
    location = csgi_res_req_sprintf(req, "%.*s/items/%lld", (int)prefix.len, prefix.ptr,
                                    (long long)item.id);
    if (!location)
        return CSGI_ENOMEM;
    csgi_res_resp_set_status(resp, 201);
    csgi_res_resp_set_header(resp, "Location", location);
    return csgi_res_resp_set_media(resp, world_item_json(&item));
}

static const struct csgi_res_resource items_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "items",
    .on_get = items_on_get,
    .on_post = items_on_post,
};

static int
item_missing(struct csgi_res_req *req, int64_t id)
{
    char detail[64];

    snprintf(detail, sizeof(detail), "item %lld not found", (long long)id);
    return csgi_res_raise(req, 404, detail);
}

static int
item_on_get(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct world_item item;
    int64_t id = 0;
    int rc;

    (void)self;
    csgi_res_req_param_int(req, "id", &id);
    rc = world_db_item_get(db_of(req), csgi_res_req_environ(req)->request, id, &item);
    if (rc == CSGI_ENOENT)
        return item_missing(req, id);
    if (rc < 0)
        return csgi_res_raise(req, 500, NULL);
    return csgi_res_resp_set_media(resp, world_item_json(&item));
}

static int
item_on_put(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    struct world_item item;
    int64_t id = 0;
    int rc;

    (void)self;
    csgi_res_req_param_int(req, "id", &id);
    rc = item_input(req, &item);
    if (rc < 0)
        return rc;
    item.id = id;
    rc = world_db_item_replace(db_of(req), &item);
    if (rc == CSGI_ENOENT)
        return item_missing(req, id);
    if (rc < 0)
        return csgi_res_raise(req, 500, NULL);
    return csgi_res_resp_set_media(resp, world_item_json(&item));
}

static int
item_on_delete(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp)
{
    int64_t id = 0;
    int rc;

    (void)self;
    csgi_res_req_param_int(req, "id", &id);
    rc = world_db_item_delete(db_of(req), id);
    if (rc == CSGI_ENOENT)
        return item_missing(req, id);
    if (rc < 0)
        return csgi_res_raise(req, 500, NULL);
    csgi_res_resp_set_status(resp, 204);
    return 0;
}

static const struct csgi_res_resource item_resource = {
    .version = CSGI_RES_RESOURCE_VERSION,
    .name = "item",
    .on_get = item_on_get,
    .on_put = item_on_put,
    .on_delete = item_on_delete,
};

/* ------------------------------------------------------------------ */
/* Plugin                                                              */
/* ------------------------------------------------------------------ */

static void
world_release(void *ctx)
{
    struct world *w = ctx;

    world_db_close(w->db);
    free(w);
}

static int
world_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
           void **state)
{
    struct csgi_res_app *app;
    struct world *w = calloc(1, sizeof(*w));
    int rc;

    if (!w)
        return CSGI_ENOMEM;
    rc = world_db_open(api, "world_resource", config, n_config, &w->db);
    if (rc < 0) {
        free(w);
        return rc;
    }
    app = csgi_res_app_new(api);
    if (!app) {
        world_release(w);
        return CSGI_ENOMEM;
    }
    csgi_res_app_set_context(app, w, world_release);
    csgi_res_app_add_route(app, "/plaintext", &plaintext_resource, NULL);
    csgi_res_app_add_route(app, "/json", &json_resource, NULL);
    csgi_res_app_add_route(app, "/db", &db_resource, NULL);
    csgi_res_app_add_route(app, "/queries", &rows_resource, NULL);
    csgi_res_app_add_route(app, "/updates", &rows_resource, (void *)1);
    csgi_res_app_add_route(app, "/fortunes", &fortunes_resource, NULL);
    csgi_res_app_add_route(app, "/items", &items_resource, NULL);
    csgi_res_app_add_route(app, "/items/{id:int}", &item_resource, NULL);
    return csgi_res_app_start(app, state);
}

static const struct csgi_plugin world_resource_plugin = {
    CSGI_PLUGIN_HEADER,           .name = "world_resource",
    .plugin_version = "1.0.0",    .description = "the World benchmark app on csgi-resource",
    .mount = "/resource",         .flags = CSGI_PLUGIN_THREADSAFE,
    .init_worker = world_init,    .call = csgi_res_call,
    .exit_worker = csgi_res_exit,
};

CSGI_EXPORT const struct csgi_plugin *csgi_plugin_entry(uint32_t host_abi_version);

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &world_resource_plugin;
}
