/*
 * Conformance suite of the World app: one csgi-server process tree runs the
 * three implementations (world_raw at /raw, world_resource at /resource,
 * world_route at /route). Every request goes to all three; status, headers
 * (except Date, with the mount prefix removed from Location), content type
 * and body bytes must be identical, and are also checked against the
 * expected values. Random endpoints are checked for shape.
 *
 * The TechEmpower and routing cases run a second time with the gzip
 * middleware plugin put in front of each implementation at deploy time
 * (--wrap NAME=gzip) and curl asking for gzip: the decoded bodies must be the
 * same bytes, and every response must carry Vary: Accept-Encoding and be
 * gzip-encoded exactly when its body has at least gzip's default 256 bytes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <sqlite3.h>

#include "harness.h"

#define N_IMPL 3

static const char *const impl_prefix[N_IMPL] = {"/raw", "/resource", "/route"};
static const char *const impl_name[N_IMPL] = {"world_raw", "world_resource", "world_route"};

static struct hserver srv;
static char db_path[N_IMPL][400];
/* The apps are served through the gzip middleware plugin (set by the gzip fixture). */
static int gzip_mode;
/* gzip's default min_length: shorter bodies are sent as they are. */
#define GZIP_MIN_LENGTH 256

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/* Start a server with the three apps; shared_db puts them on one database file. */
static void
start_world(struct hserver *s, int workers, int shared_db)
{
    char nworkers[16], sets[N_IMPL][sizeof(db_path) + 64], wraps[N_IMPL][64];
    const char *extra[24];
    int n = 0;

    h_init(s);
    if (gzip_mode) {
        h_add_plugin(s, "gzip.so", NULL);
        s->accept_encoding = "gzip";
        for (int i = 0; i < N_IMPL; i++) {
            snprintf(wraps[i], sizeof(wraps[i]), "%s=gzip", impl_name[i]);
            extra[n++] = "--wrap";
            extra[n++] = wraps[i];
        }
    }
    for (int i = 0; i < N_IMPL; i++) {
        char file[64];
        snprintf(file, sizeof(file), "%s.so", impl_name[i]);
        h_add_plugin(s, file, NULL);
        snprintf(db_path[i], sizeof(db_path[i]), "%s/%s.db", s->dir,
                 shared_db ? "shared" : impl_name[i]);
        snprintf(sets[i], sizeof(sets[i]), "%s.db=%s", impl_name[i], db_path[i]);
    }
    snprintf(nworkers, sizeof(nworkers), "%d", workers);
    extra[n++] = "--workers";
    extra[n++] = nworkers;
    for (int i = 0; i < N_IMPL; i++) {
        extra[n++] = "--set";
        extra[n++] = sets[i];
    }
    extra[n] = NULL;
    h_start(s, workers, extra);
}

static void
stop_world(struct hserver *s)
{
    int status = h_stop(s, SIGTERM, 15000);

    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "server did not exit 0 on SIGTERM (status %d)", status);
    ck_assert_msg(h_log_count(s, "sqlite") == 0, "sqlite errors in %s", s->log);
    h_cleanup(s);
}

static void
world_setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_world(&srv, 2, 0);
}

static void
world_teardown(void)
{
    stop_world(&srv);
}

static void
world_gzip_setup(void)
{
    gzip_mode = 1;
    world_setup();
}

static void
world_gzip_teardown(void)
{
    world_teardown();
    gzip_mode = 0;
}

/* ------------------------------------------------------------------ */
/* Three-way requests                                                  */
/* ------------------------------------------------------------------ */

struct tri {
    struct hresp r[N_IMPL];
    char ctype[N_IMPL][128];
    char allow[N_IMPL][128];
    char location[N_IMPL][256];
    /* Header lines without Date, Location stripped of the mount prefix. */
    char heads[N_IMPL][1024];
};

/* Value of the last header called name in a raw header block ("" when absent). */
static void
header_value(const char *block, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = block;

    out[0] = '\0';
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(len - (size_t)(v - p)), v);
        }
        p = eol ? eol + 2 : NULL;
    }
}

/* The header lines of the final response, minus Date; Location made prefix-free. */
static void
header_lines(const char *block, const char *prefix, char *out, size_t cap)
{
    const char *p = block, *last = block;
    size_t o = 0;

    /* Skip interim (100 Continue) blocks: keep the last "HTTP/" block. */
    for (const char *q = block; (q = strstr(q, "HTTP/")) != NULL; q++)
        last = q;
    p = strstr(last, "\r\n");
    p = p ? p + 2 : "";
    out[0] = '\0';
    while (*p && strncmp(p, "\r\n", 2) != 0) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (strncasecmp(p, "Date:", 5) != 0) {
            char line[512];
            snprintf(line, sizeof(line), "%.*s", (int)len, p);
            if (strncasecmp(line, "Location: ", 10) == 0 &&
                strncmp(line + 10, prefix, strlen(prefix)) == 0)
                memmove(line + 10, line + 10 + strlen(prefix),
                        strlen(line + 10 + strlen(prefix)) + 1);
            o += (size_t)snprintf(out + o, cap - o, "%s\n", line);
            if (o >= cap)
                break;
        }
        if (!eol)
            break;
        p = eol + 2;
    }
}

/*
 * Through gzip: Vary always; Content-Encoding exactly when the body (decoded
 * by curl) has at least GZIP_MIN_LENGTH bytes; then no Content-Length.
 */
static void
gzip_check(const struct tri *t, int i, const char *method, const char *what)
{
    char enc[64], vary[64], len[32];
    size_t body_len = t->r[i].len;
    int want;

    header_value(t->r[i].headers, "Content-Encoding", enc, sizeof(enc));
    header_value(t->r[i].headers, "Vary", vary, sizeof(vary));
    header_value(t->r[i].headers, "Content-Length", len, sizeof(len));
    ck_assert_msg(strcmp(vary, "Accept-Encoding") == 0, "%s %s: Vary \"%s\"", method, what, vary);
    if (strcmp(method, "HEAD") == 0) /* no body: world_head compares it with GET */
        return;
    want = body_len >= GZIP_MIN_LENGTH && t->r[i].status != 204 && t->r[i].status != 304;
    ck_assert_msg(strcmp(enc, want ? "gzip" : "") == 0,
                  "%s %s: %zu body bytes, Content-Encoding \"%s\"", method, what, body_len, enc);
    ck_assert_msg(!want || !*len, "%s %s: gzip with Content-Length %s", method, what, len);
}

/*
 * Send the same request to the three implementations. ctype NULL with a
 * body sends no Content-Type at all.
 */
static void
tri_req(struct tri *t, const char *method, const char *path, const char *body, const char *ctype)
{
    char ct[256];
    const char *hdrs[2] = {NULL, NULL};

    memset(t, 0, sizeof(*t));
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        hdrs[0] = ct;
    } else if (body) {
        hdrs[0] = "Content-Type:";
    }
    for (int i = 0; i < N_IMPL; i++) {
        char full[1024];
        snprintf(full, sizeof(full), "%s%s", impl_prefix[i], path);
        t->r[i] = h_request(&srv, method, full, body, body ? strlen(body) : 0, hdrs);
        ck_assert_msg(t->r[i].curl_code == 0, "%s %s: curl error %d", method, full,
                      t->r[i].curl_code);
        header_value(t->r[i].headers, "Content-Type", t->ctype[i], sizeof(t->ctype[i]));
        header_value(t->r[i].headers, "Allow", t->allow[i], sizeof(t->allow[i]));
        header_value(t->r[i].headers, "Location", t->location[i], sizeof(t->location[i]));
        header_lines(t->r[i].headers, impl_prefix[i], t->heads[i], sizeof(t->heads[i]));
        if (gzip_mode)
            gzip_check(t, i, method, full);
    }
}

static void
tri_free(struct tri *t)
{
    for (int i = 0; i < N_IMPL; i++)
        h_resp_free(&t->r[i]);
}

/* The three responses agree on status, headers, content type and body bytes. */
static void
tri_same(const struct tri *t, const char *what)
{
    for (int i = 1; i < N_IMPL; i++) {
        ck_assert_msg(t->r[i].status == t->r[0].status, "%s: status %s %ld, %s %ld", what,
                      impl_name[0], t->r[0].status, impl_name[i], t->r[i].status);
        ck_assert_msg(strcmp(t->ctype[i], t->ctype[0]) == 0,
                      "%s: content type %s \"%s\", %s \"%s\"", what, impl_name[0], t->ctype[0],
                      impl_name[i], t->ctype[i]);
        ck_assert_msg(t->r[i].len == t->r[0].len &&
                          memcmp(t->r[i].body, t->r[0].body, t->r[0].len) == 0,
                      "%s: body\n%s: %s\n%s: %s", what, impl_name[0], t->r[0].body, impl_name[i],
                      t->r[i].body);
        ck_assert_msg(strcmp(t->heads[i], t->heads[0]) == 0, "%s: headers\n%s:\n%s%s:\n%s", what,
                      impl_name[0], t->heads[0], impl_name[i], t->heads[i]);
    }
}

/* Same everywhere, and equal to the expected status, content type and body. */
static void
tri_expect(const char *method, const char *path, const char *body, const char *ctype, long status,
           const char *want_ctype, const char *want_body)
{
    struct tri t;
    char what[600];

    snprintf(what, sizeof(what), "%s %s", method, path);
    tri_req(&t, method, path, body, ctype);
    tri_same(&t, what);
    ck_assert_msg(t.r[0].status == status, "%s: status %ld, want %ld (body %s)", what,
                  t.r[0].status, status, t.r[0].body);
    ck_assert_msg(strcmp(t.ctype[0], want_ctype) == 0, "%s: content type \"%s\", want \"%s\"", what,
                  t.ctype[0], want_ctype);
    if (want_body)
        ck_assert_msg(strcmp(t.r[0].body, want_body) == 0, "%s: body\n%s\nwant\n%s", what,
                      t.r[0].body, want_body);
    tri_free(&t);
}

#define PROBLEM     "application/problem+json"
#define JSON        "application/json"
#define NOT_FOUND   "{\"status\":404,\"title\":\"Not Found\"}"
#define NOT_ALLOWED "{\"status\":405,\"title\":\"Method Not Allowed\"}"

/* ------------------------------------------------------------------ */
/* TechEmpower test types                                              */
/* ------------------------------------------------------------------ */

START_TEST(world_plaintext)
{
    struct tri t;

    tri_expect("GET", "/plaintext", NULL, NULL, 200, "text/plain", "Hello, World!");
    tri_req(&t, "HEAD", "/plaintext", NULL, NULL);
    tri_same(&t, "HEAD /plaintext");
    ck_assert_int_eq(t.r[0].status, 200);
    ck_assert_uint_eq(t.r[0].len, 0);
    ck_assert_msg(strstr(t.heads[0], "Content-Length: 13\n"), "%s", t.heads[0]);
    tri_free(&t);
}
END_TEST

START_TEST(world_json)
{
    tri_expect("GET", "/json", NULL, NULL, 200, JSON, "{\"message\":\"Hello, World!\"}");
}
END_TEST

/* A {"id":1..10000,"randomNumber":1..10000} object with nothing else. */
static int
world_row_ok(const cJSON *o)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(o, "randomNumber");

    return cJSON_IsObject(o) && cJSON_GetArraySize(o) == 2 && cJSON_IsNumber(id) &&
           cJSON_IsNumber(rn) && id->valuedouble == (double)id->valueint && id->valueint >= 1 &&
           id->valueint <= 10000 && rn->valuedouble == (double)rn->valueint && rn->valueint >= 1 &&
           rn->valueint <= 10000 && o->child == id;
}

START_TEST(world_db)
{
    for (int round = 0; round < 20; round++) {
        struct tri t;
        tri_req(&t, "GET", "/db", NULL, NULL);
        for (int i = 0; i < N_IMPL; i++) {
            cJSON *o = cJSON_Parse(t.r[i].body);
            ck_assert_int_eq(t.r[i].status, 200);
            ck_assert_str_eq(t.ctype[i], JSON);
            ck_assert_msg(world_row_ok(o), "%s: %s", impl_name[i], t.r[i].body);
            cJSON_Delete(o);
        }
        tri_free(&t);
    }
}
END_TEST

/* Check an array of n rows from every implementation; returns them parsed (caller frees). */
static void
check_rows(const char *path, int n, cJSON *out[N_IMPL])
{
    struct tri t;

    tri_req(&t, "GET", path, NULL, NULL);
    for (int i = 0; i < N_IMPL; i++) {
        cJSON *a = cJSON_Parse(t.r[i].body), *o;
        ck_assert_msg(t.r[i].status == 200, "%s %s: %ld", impl_name[i], path, t.r[i].status);
        ck_assert_str_eq(t.ctype[i], JSON);
        ck_assert_msg(cJSON_IsArray(a), "%s %s: %s", impl_name[i], path, t.r[i].body);
        ck_assert_msg(cJSON_GetArraySize(a) == n, "%s %s: %d rows, want %d", impl_name[i], path,
                      cJSON_GetArraySize(a), n);
        cJSON_ArrayForEach(o, a)
        {
            ck_assert_msg(world_row_ok(o), "%s %s: %s", impl_name[i], path, t.r[i].body);
        }
        if (out)
            out[i] = a;
        else
            cJSON_Delete(a);
    }
    tri_free(&t);
}

static const struct {
    const char *query;
    int rows;
} queries_cases[] = {
    {"", 1},
    {"?queries=", 1},
    {"?queries", 1},
    {"?queries=abc", 1},
    {"?queries=0", 1},
    {"?queries=-3", 1},
    {"?queries=1", 1},
    {"?queries=7", 7},
    {"?queries=20", 20},
    {"?queries=500", 500},
    {"?queries=501", 500},
    {"?queries=100000", 500},
    {"?queries=99999999999999999999", 1},
    {"?queries=5x", 1},
    {"?queries=1.5", 1},
    {"?queries=%37", 7},
    {"?%71ueries=4", 4},
    {"?queries=+5", 1},
    {"?foo=1&queries=3", 3},
    {"?queries=2&queries=9", 2},
};

START_TEST(world_queries)
{
    for (size_t k = 0; k < sizeof(queries_cases) / sizeof(*queries_cases); k++) {
        char path[128];
        snprintf(path, sizeof(path), "/queries%s", queries_cases[k].query);
        check_rows(path, queries_cases[k].rows, NULL);
    }
}
END_TEST

START_TEST(world_updates)
{
    cJSON *rows[N_IMPL];

    check_rows("/updates", 1, NULL);
    check_rows("/updates?queries=0", 1, NULL);
    check_rows("/updates?queries=foo", 1, NULL);
    check_rows("/updates?queries=501", 500, NULL);
    check_rows("/updates?queries=20", 20, rows);
    /* What the response says was written is what the database holds. */
    for (int i = 0; i < N_IMPL; i++) {
        sqlite3 *db;
        sqlite3_stmt *st;
        const cJSON *o;
        int checked = 0;

        ck_assert_int_eq(sqlite3_open_v2(db_path[i], &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        ck_assert_int_eq(
            sqlite3_prepare_v2(db, "SELECT randomNumber FROM World WHERE id = ?1", -1, &st, NULL),
            SQLITE_OK);
        cJSON_ArrayForEach(o, rows[i])
        {
            int id = cJSON_GetObjectItemCaseSensitive(o, "id")->valueint, dup = 0;
            const cJSON *p;
            /* An id drawn twice holds the later value: only check ids drawn once. */
            cJSON_ArrayForEach(p, rows[i])
            {
                dup += cJSON_GetObjectItemCaseSensitive(p, "id")->valueint == id;
            }
            if (dup != 1)
                continue;
            sqlite3_bind_int(st, 1, id);
            ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
            ck_assert_msg(sqlite3_column_int(st, 0) ==
                              cJSON_GetObjectItemCaseSensitive(o, "randomNumber")->valueint,
                          "%s: row %d not written", impl_name[i], id);
            sqlite3_reset(st);
            checked++;
        }
        ck_assert_int_gt(checked, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        cJSON_Delete(rows[i]);
    }
}
END_TEST

static const char fortunes_html[] =
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "<tr><td>11</td><td>&lt;script&gt;alert(&quot;This should not be displayed in a browser "
    "alert box.&quot;);&lt;/script&gt;</td></tr>"
    "<tr><td>4</td><td>A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, "
    "1</td></tr>"
    "<tr><td>5</td><td>A computer program does what you tell it to do, not what you want it to "
    "do.</td></tr>"
    "<tr><td>2</td><td>A computer scientist is someone who fixes things that aren&#39;t "
    "broken.</td></tr>"
    "<tr><td>8</td><td>A list is only as strong as its weakest link. \xE2\x80\x94 Donald "
    "Knuth</td></tr>"
    "<tr><td>0</td><td>Additional fortune added at request time.</td></tr>"
    "<tr><td>3</td><td>After enough decimal places, nobody gives a damn.</td></tr>"
    "<tr><td>7</td><td>Any program that runs never does what you want it to do.</td></tr>"
    "<tr><td>10</td><td>Computers make very fast, very accurate mistakes.</td></tr>"
    "<tr><td>6</td><td>Emacs is a nice operating system, but I prefer UNIX. \xE2\x80\x94 Tom "
    "Christaensen</td></tr>"
    "<tr><td>9</td><td>Feature: A bug with seniority.</td></tr>"
    "<tr><td>1</td><td>fortune: No such file or directory</td></tr>"
    "<tr><td>12</td><td>\xE3\x83\x95\xE3\x83\xAC\xE3\x83\xBC\xE3\x83\xA0\xE3\x83\xAF\xE3\x83\xBC"
    "\xE3\x82\xAF\xE3\x81\xAE\xE3\x83\x99\xE3\x83\xB3\xE3\x83\x81\xE3\x83\x9E\xE3\x83\xBC\xE3\x82"
    "\xAF</td></tr>"
    "</table></body></html>";

START_TEST(world_fortunes)
{
    struct tri t;

    tri_req(&t, "GET", "/fortunes", NULL, NULL);
    tri_same(&t, "GET /fortunes");
    ck_assert_int_eq(t.r[0].status, 200);
    ck_assert_str_eq(t.ctype[0], "text/html; charset=utf-8");
    ck_assert_msg(strstr(t.r[0].body, "<script>") == NULL, "unescaped script: %s", t.r[0].body);
    ck_assert_msg(strcmp(t.r[0].body, fortunes_html) == 0, "fortunes:\n%s\nwant\n%s", t.r[0].body,
                  fortunes_html);
    tri_free(&t);
}
END_TEST

/* The seed: 10,000 World rows with numbers in range, the 12 fortunes, WAL mode. */
START_TEST(world_seeded)
{
    for (int i = 0; i < N_IMPL; i++) {
        sqlite3 *db;
        sqlite3_stmt *st;

        ck_assert_int_eq(sqlite3_open_v2(db_path[i], &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        ck_assert_int_eq(sqlite3_prepare_v2(db,
                                            "SELECT COUNT(*), MIN(id), MAX(id), MIN(randomNumber), "
                                            "MAX(randomNumber), (SELECT COUNT(*) FROM Fortune) "
                                            "FROM World",
                                            -1, &st, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 10000);
        ck_assert_int_eq(sqlite3_column_int(st, 1), 1);
        ck_assert_int_eq(sqlite3_column_int(st, 2), 10000);
        ck_assert_int_ge(sqlite3_column_int(st, 3), 1);
        ck_assert_int_le(sqlite3_column_int(st, 4), 10000);
        ck_assert_int_eq(sqlite3_column_int(st, 5), 12);
        sqlite3_finalize(st);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Routing: 404, 405, OPTIONS, HEAD                                    */
/* ------------------------------------------------------------------ */

START_TEST(world_not_found)
{
    static const char *const paths[] = {
        "",
        "/",
        "/nope",
        "/items/",
        "/items/abc",
        "/items/1.5",
        "/items/+1",
        "/items//1",
        "/items/1/x",
        "/plaintext/",
        "/plaintext/x",
        "//plaintext",
        "/PLAINTEXT",
        "/json.json",
        "/items/99999999999999999999",
        "/items/%31%32x",
    };

    for (size_t k = 0; k < sizeof(paths) / sizeof(*paths); k++) {
        tri_expect("GET", paths[k], NULL, NULL, 404, PROBLEM, NOT_FOUND);
        tri_expect("DELETE", paths[k], NULL, NULL, 404, PROBLEM, NOT_FOUND);
    }
    tri_expect("GET", "/items/-1", NULL, NULL, 404, PROBLEM,
               "{\"status\":404,\"title\":\"Not Found\",\"detail\":\"item -1 not found\"}");
    tri_expect("GET", "/items/9223372036854775807", NULL, NULL, 404, PROBLEM,
               "{\"status\":404,\"title\":\"Not Found\",\"detail\":\"item 9223372036854775807 not "
               "found\"}");
}
END_TEST

static const struct {
    const char *path;
    const char *allow;
} allow_cases[] = {
    {"/plaintext", "GET, HEAD, OPTIONS"},
    {"/json", "GET, HEAD, OPTIONS"},
    {"/db", "GET, HEAD, OPTIONS"},
    {"/queries?queries=2", "GET, HEAD, OPTIONS"},
    {"/updates", "GET, HEAD, OPTIONS"},
    {"/fortunes", "GET, HEAD, OPTIONS"},
    {"/items", "GET, HEAD, POST, OPTIONS"},
    {"/items/1", "GET, HEAD, PUT, DELETE, OPTIONS"},
    {"/items/%31", "GET, HEAD, PUT, DELETE, OPTIONS"},
};

START_TEST(world_method_not_allowed)
{
    /*
     * csgi-server answers any method but GET, HEAD, POST, PUT, DELETE, OPTIONS,
     * PATCH and TRACE (BREW, lower-case get) with 501 before an app is called.
     */
    static const char *const methods[] = {"POST", "PUT", "PATCH", "DELETE", "TRACE"};

    for (size_t k = 0; k < sizeof(allow_cases) / sizeof(*allow_cases); k++) {
        for (size_t m = 0; m < sizeof(methods) / sizeof(*methods); m++) {
            struct tri t;
            char what[256];
            if (strstr(allow_cases[k].allow, methods[m]))
                continue;
            snprintf(what, sizeof(what), "%s %s", methods[m], allow_cases[k].path);
            tri_req(&t, methods[m], allow_cases[k].path, NULL, NULL);
            tri_same(&t, what);
            ck_assert_msg(t.r[0].status == 405, "%s: %ld", what, t.r[0].status);
            ck_assert_str_eq(t.ctype[0], PROBLEM);
            ck_assert_str_eq(t.r[0].body, NOT_ALLOWED);
            ck_assert_msg(strcmp(t.allow[0], allow_cases[k].allow) == 0, "%s: Allow \"%s\"", what,
                          t.allow[0]);
            tri_free(&t);
        }
    }
}
END_TEST

START_TEST(world_options)
{
    for (size_t k = 0; k < sizeof(allow_cases) / sizeof(*allow_cases); k++) {
        struct tri t;
        tri_req(&t, "OPTIONS", allow_cases[k].path, NULL, NULL);
        tri_same(&t, allow_cases[k].path);
        ck_assert_int_eq(t.r[0].status, 200);
        ck_assert_str_eq(t.ctype[0], "");
        ck_assert_uint_eq(t.r[0].len, 0);
        ck_assert_str_eq(t.allow[0], allow_cases[k].allow);
        tri_free(&t);
    }
}
END_TEST

/* Remove the Content-Length and Transfer-Encoding lines from header lines. */
static void
strip_framing(char *heads)
{
    char *p = heads;

    while (*p) {
        char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (strncasecmp(p, "Content-Length:", 15) == 0 ||
            strncasecmp(p, "Transfer-Encoding:", 18) == 0)
            memmove(p, p + len, strlen(p + len) + 1);
        else
            p += len;
    }
}

START_TEST(world_head)
{
    static const char *const paths[] = {"/json", "/fortunes", "/items", "/nope", "/items/77"};

    for (size_t k = 0; k < sizeof(paths) / sizeof(*paths); k++) {
        struct tri head, get;
        tri_req(&head, "HEAD", paths[k], NULL, NULL);
        tri_req(&get, "GET", paths[k], NULL, NULL);
        tri_same(&head, paths[k]);
        ck_assert_int_eq(head.r[0].status, get.r[0].status);
        ck_assert_str_eq(head.ctype[0], get.ctype[0]);
        ck_assert_uint_eq(head.r[0].len, 0);
        /* The same framing as GET: Content-Length of the GET body. Through gzip a GET
         * body is chunked and a HEAD response has the length of what HEAD produced
         * (csgi-server's rule for bodies of unknown length): the rest is the same. */
        if (gzip_mode) {
            strip_framing(head.heads[0]);
            strip_framing(get.heads[0]);
        }
        ck_assert_str_eq(head.heads[0], get.heads[0]);
        tri_free(&head);
        tri_free(&get);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Items                                                               */
/* ------------------------------------------------------------------ */

/* POST/PUT and check status, Location (prefix removed) and body. */
static void
items_write(const char *method, const char *path, const char *body, long status,
            const char *location, const char *want)
{
    struct tri t;
    char what[512];

    snprintf(what, sizeof(what), "%s %s %s", method, path, body);
    tri_req(&t, method, path, body, JSON);
    tri_same(&t, what);
    ck_assert_msg(t.r[0].status == status, "%s: %ld %s", what, t.r[0].status, t.r[0].body);
    ck_assert_str_eq(t.ctype[0], status < 300 ? JSON : PROBLEM);
    for (int i = 0; i < N_IMPL; i++) {
        char want_loc[256] = "";
        if (location)
            snprintf(want_loc, sizeof(want_loc), "%s%s", impl_prefix[i], location);
        ck_assert_msg(strcmp(t.location[i], want_loc) == 0, "%s: %s Location \"%s\"", what,
                      impl_name[i], t.location[i]);
    }
    if (want)
        ck_assert_msg(strcmp(t.r[0].body, want) == 0, "%s:\n%s\nwant\n%s", what, t.r[0].body, want);
    tri_free(&t);
}

START_TEST(world_items_crud)
{
    struct tri t;

    tri_expect("GET", "/items", NULL, NULL, 200, JSON,
               "{\"items\":[],\"limit\":20,\"offset\":0,\"total\":0}");
    items_write("POST", "/items", "{\"name\":\"Widget\",\"price\":9.99,\"tags\":[\"a\",\"b\"]}",
                201, "/items/1",
                "{\"id\":1,\"name\":\"Widget\",\"price\":9.99,\"tags\":[\"a\",\"b\"]}");
    items_write("POST", "/items", "{\"price\":0,\"name\":\"Gadget\"}", 201, "/items/2",
                "{\"id\":2,\"name\":\"Gadget\",\"price\":0,\"tags\":[]}");
    items_write("POST", "/items",
                "{\"name\":\"<script>x</script> \\u00e9\",\"price\":1e3,\"tags\":null,\"x\":1}",
                201, "/items/3",
                "{\"id\":3,\"name\":\"<script>x</script> \xC3\xA9\",\"price\":1000,\"tags\":[]}");
    tri_expect("GET", "/items/2", NULL, NULL, 200, JSON,
               "{\"id\":2,\"name\":\"Gadget\",\"price\":0,\"tags\":[]}");
    tri_expect("GET", "/items/%32", NULL, NULL, 200, JSON,
               "{\"id\":2,\"name\":\"Gadget\",\"price\":0,\"tags\":[]}");
    tri_expect("GET", "/items/-0", NULL, NULL, 404, PROBLEM,
               "{\"status\":404,\"title\":\"Not Found\",\"detail\":\"item 0 not found\"}");

    /* Pagination. */
    tri_expect("GET", "/items?limit=2", NULL, NULL, 200, JSON,
               "{\"items\":[{\"id\":1,\"name\":\"Widget\",\"price\":9.99,\"tags\":[\"a\",\"b\"]},"
               "{\"id\":2,\"name\":\"Gadget\",\"price\":0,\"tags\":[]}],\"limit\":2,\"offset\":0,"
               "\"total\":3}");
    tri_expect("GET", "/items?offset=1&limit=1", NULL, NULL, 200, JSON,
               "{\"items\":[{\"id\":2,\"name\":\"Gadget\",\"price\":0,\"tags\":[]}],\"limit\":1,"
               "\"offset\":1,\"total\":3}");
    tri_expect("GET", "/items?limit=0&offset=2", NULL, NULL, 200, JSON,
               "{\"items\":[{\"id\":3,\"name\":\"<script>x</script> \xC3\xA9\",\"price\":1000,"
               "\"tags\":[]}],\"limit\":1,\"offset\":2,\"total\":3}");
    tri_expect("GET", "/items?limit=1000&offset=100", NULL, NULL, 200, JSON,
               "{\"items\":[],\"limit\":100,\"offset\":100,\"total\":3}");
    tri_expect("GET", "/items?limit=-5&offset=3", NULL, NULL, 200, JSON,
               "{\"items\":[],\"limit\":1,\"offset\":3,\"total\":3}");
    tri_expect("GET", "/items?limit=abc", NULL, NULL, 422, PROBLEM,
               "{\"status\":422,\"title\":\"Unprocessable Content\",\"detail\":\"invalid query "
               "parameters\",\"errors\":[{\"field\":\"limit\",\"message\":\"must be an "
               "integer\"}]}");
    tri_expect("GET", "/items?offset=-1", NULL, NULL, 422, PROBLEM,
               "{\"status\":422,\"title\":\"Unprocessable Content\",\"detail\":\"invalid query "
               "parameters\",\"errors\":[{\"field\":\"offset\",\"message\":\"must be a "
               "non-negative integer\"}]}");
    tri_expect("GET", "/items?offset=x&limit=", NULL, NULL, 422, PROBLEM,
               "{\"status\":422,\"title\":\"Unprocessable Content\",\"detail\":\"invalid query "
               "parameters\",\"errors\":[{\"field\":\"limit\",\"message\":\"must be an "
               "integer\"},{\"field\":\"offset\",\"message\":\"must be a non-negative "
               "integer\"}]}");
    tri_req(&t, "GET", "/items?limit=99999999999999999999", NULL, NULL);
    tri_same(&t, "limit overflow");
    ck_assert_int_eq(t.r[0].status, 422);
    tri_free(&t);

    /* Replace. */
    items_write("PUT", "/items/2", "{\"name\":\"Gizmo\",\"price\":12.5,\"tags\":[\"new\"]}", 200,
                NULL, "{\"id\":2,\"name\":\"Gizmo\",\"price\":12.5,\"tags\":[\"new\"]}");
    tri_expect("GET", "/items/2", NULL, NULL, 200, JSON,
               "{\"id\":2,\"name\":\"Gizmo\",\"price\":12.5,\"tags\":[\"new\"]}");
    items_write("PUT", "/items/99", "{\"name\":\"Gizmo\",\"price\":1}", 404, NULL,
                "{\"status\":404,\"title\":\"Not Found\",\"detail\":\"item 99 not found\"}");
    items_write("PUT", "/items/2", "{\"name\":\"Gizmo\"}", 422, NULL,
                "{\"status\":422,\"title\":\"Unprocessable Content\",\"detail\":\"invalid item\","
                "\"errors\":[{\"field\":\"price\",\"message\":\"is required\"}]}");

    /* Delete. */
    tri_req(&t, "DELETE", "/items/3", NULL, NULL);
    tri_same(&t, "DELETE /items/3");
    ck_assert_int_eq(t.r[0].status, 204);
    ck_assert_uint_eq(t.r[0].len, 0);
    ck_assert_str_eq(t.ctype[0], "");
    tri_free(&t);
    tri_expect("DELETE", "/items/3", NULL, NULL, 404, PROBLEM,
               "{\"status\":404,\"title\":\"Not Found\",\"detail\":\"item 3 not found\"}");
    tri_expect("GET", "/items/3", NULL, NULL, 404, PROBLEM,
               "{\"status\":404,\"title\":\"Not Found\",\"detail\":\"item 3 not found\"}");
    /* Ids are not reused after a delete. */
    items_write("POST", "/items", "{\"name\":\"Last\",\"price\":3}", 201, "/items/4",
                "{\"id\":4,\"name\":\"Last\",\"price\":3,\"tags\":[]}");
    tri_expect("GET", "/items?limit=1&offset=2", NULL, NULL, 200, JSON,
               "{\"items\":[{\"id\":4,\"name\":\"Last\",\"price\":3,\"tags\":[]}],\"limit\":1,"
               "\"offset\":2,\"total\":3}");
}
END_TEST

#define E422(errors)                                                                               \
    "{\"status\":422,\"title\":\"Unprocessable Content\",\"detail\":\"invalid item\","             \
    "\"errors\":[" errors "]}"
#define BAD_BODY "{\"status\":400,\"title\":\"Bad Request\",\"detail\":\"malformed JSON body\"}"
#define BAD_TYPE                                                                                   \
    "{\"status\":415,\"title\":\"Unsupported Media Type\",\"detail\":\"Content-Type must be "      \
    "application/json\"}"

START_TEST(world_items_validation)
{
    static const char *const bad_json[] = {
        "{", "", " ", "{\"name\":\"a\",}", "{} x", "[1] [2]", "nul", "{\"a\":\"\\q\"}", "'x'"};
    static const char *const bad_types[] = {"text/plain", "application/jsonx", "application/xml",
                                            "json", "application/json-patch+json"};
    char name101[128], name100u[256], tags21[256];
    struct tri t;

    /* Content type comes first: 415 even for a body that is not JSON, or an unknown id. */
    tri_expect("POST", "/items", "{\"name\":\"a\",\"price\":1}", NULL, 415, PROBLEM, BAD_TYPE);
    for (size_t k = 0; k < sizeof(bad_types) / sizeof(*bad_types); k++)
        tri_expect("POST", "/items", "{\"name\":\"a\",\"price\":1}", bad_types[k], 415, PROBLEM,
                   BAD_TYPE);
    tri_expect("PUT", "/items/999", "nonsense", "text/plain", 415, PROBLEM, BAD_TYPE);
    tri_expect("POST", "/items", NULL, NULL, 415, PROBLEM, BAD_TYPE);
    for (size_t k = 0; k < sizeof(bad_json) / sizeof(*bad_json); k++) {
        tri_expect("POST", "/items", bad_json[k], JSON, 400, PROBLEM, BAD_BODY);
        tri_expect("PUT", "/items/999", bad_json[k], "application/json; charset=utf-8", 400,
                   PROBLEM, BAD_BODY);
    }
    /* Not an object. */
    tri_expect("POST", "/items", "[]", JSON, 422, PROBLEM,
               E422("{\"field\":\"body\",\"message\":\"must be a JSON object\"}"));
    tri_expect("POST", "/items", " null ", JSON, 422, PROBLEM,
               E422("{\"field\":\"body\",\"message\":\"must be a JSON object\"}"));
    tri_expect("POST", "/items", "\"x\"", JSON, 422, PROBLEM,
               E422("{\"field\":\"body\",\"message\":\"must be a JSON object\"}"));
    /* Field by field, in order name, price, tags. */
    tri_expect("POST", "/items", "{}", JSON, 422, PROBLEM,
               E422("{\"field\":\"name\",\"message\":\"is required\"},"
                    "{\"field\":\"price\",\"message\":\"is required\"}"));
    tri_expect("POST", "/items", "{\"name\":5,\"price\":\"5\",\"tags\":\"x\"}", JSON, 422, PROBLEM,
               E422("{\"field\":\"name\",\"message\":\"must be a string\"},"
                    "{\"field\":\"price\",\"message\":\"must be a number\"},"
                    "{\"field\":\"tags\",\"message\":\"must be an array of strings\"}"));
    tri_expect("POST", "/items", "{\"name\":\"\",\"price\":-0.5,\"tags\":[\"a\",1]}", JSON, 422,
               PROBLEM,
               E422("{\"field\":\"name\",\"message\":\"must be 1 to 100 characters\"},"
                    "{\"field\":\"price\",\"message\":\"must be greater than or equal to 0\"},"
                    "{\"field\":\"tags\",\"message\":\"must be an array of strings\"}"));
    tri_expect("POST", "/items", "{\"name\":null,\"price\":true}", JSON, 422, PROBLEM,
               E422("{\"field\":\"name\",\"message\":\"is required\"},"
                    "{\"field\":\"price\",\"message\":\"must be a number\"}"));
    tri_expect("POST", "/items", "{\"name\":\"big\",\"price\":1e999}", JSON, 422, PROBLEM,
               E422("{\"field\":\"price\",\"message\":\"must be greater than or equal to 0\"}"));
    memset(name101, 'n', 101);
    name101[101] = '\0';
    {
        char body[512];
        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"price\":1}", name101);
        tri_expect("POST", "/items", body, JSON, 422, PROBLEM,
                   E422("{\"field\":\"name\",\"message\":\"must be 1 to 100 characters\"}"));
    }
    snprintf(tags21, sizeof(tags21), "{\"name\":\"t\",\"price\":1,\"tags\":[");
    for (int i = 0; i < 21; i++)
        strcat(tags21, i ? ",\"t\"" : "\"t\"");
    strcat(tags21, "]}");
    tri_expect("POST", "/items", tags21, JSON, 422, PROBLEM,
               E422("{\"field\":\"tags\",\"message\":\"must have at most 20 entries\"}"));

    /* Accepted: 100 two-byte characters, a parameterised and upper-case content type, -0. */
    name100u[0] = '\0';
    strcat(name100u, "{\"name\":\"");
    for (int i = 0; i < 100; i++)
        strcat(name100u, "\xC3\xA9");
    strcat(name100u, "\",\"price\":-0}");
    tri_req(&t, "POST", "/items", name100u, "Application/JSON; charset=UTF-8");
    tri_same(&t, "100 characters");
    ck_assert_msg(t.r[0].status == 201, "%ld %s", t.r[0].status, t.r[0].body);
    ck_assert_msg(strstr(t.r[0].body, "\"price\":0,"), "%s", t.r[0].body);
    tri_free(&t);
    tri_req(&t, "POST", "/items", "\n{\"name\":\"ws\",\"price\":2.25}\r\n\t ", JSON);
    tri_same(&t, "whitespace around the value");
    ck_assert_int_eq(t.r[0].status, 201);
    tri_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Concurrency: many workers, one database file                        */
/* ------------------------------------------------------------------ */

#define STRESS_THREADS 6
#define STRESS_ROUNDS  25

struct stress {
    const struct hserver *s;
    int id;
    atomic_int *failures;
    atomic_int *posts;
};

static void *
stress_run(void *arg)
{
    struct stress *st = arg;
    static const char *const gets[] = {"/updates?queries=20", "/db", "/queries?queries=10",
                                       "/fortunes", "/items?limit=5"};
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    const char *item = "{\"name\":\"s\",\"price\":1}";

    for (int round = 0; round < STRESS_ROUNDS; round++) {
        const char *prefix = impl_prefix[(st->id + round) % N_IMPL];
        char path[128];
        struct hresp r;

        snprintf(path, sizeof(path), "%s%s", prefix, gets[(st->id + round) % 5]);
        r = h_request(st->s, "GET", path, NULL, 0, NULL);
        if (r.curl_code != 0 || r.status != 200)
            atomic_fetch_add(st->failures, 1);
        h_resp_free(&r);
        snprintf(path, sizeof(path), "%s/items", prefix);
        r = h_request(st->s, "POST", path, item, strlen(item), hdrs);
        if (r.curl_code != 0 || r.status != 201)
            atomic_fetch_add(st->failures, 1);
        else
            atomic_fetch_add(st->posts, 1);
        h_resp_free(&r);
    }
    return NULL;
}

START_TEST(world_concurrent_one_database)
{
    struct hserver s;
    pthread_t th[STRESS_THREADS];
    struct stress st[STRESS_THREADS];
    atomic_int failures = 0, posts = 0;
    sqlite3 *db;
    sqlite3_stmt *q;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Three plugins in three workers create and seed one new file at the same time. */
    start_world(&s, 3, 1);
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i] = (struct stress){&s, i, &failures, &posts};
        ck_assert_int_eq(pthread_create(&th[i], NULL, stress_run, &st[i]), 0);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&failures), 0);
    ck_assert_int_eq(atomic_load(&posts), STRESS_THREADS * STRESS_ROUNDS);

    ck_assert_int_eq(sqlite3_open_v2(db_path[0], &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT COUNT(*) FROM World), (SELECT COUNT(*) "
                                        "FROM Fortune), (SELECT COUNT(*) FROM items)",
                                        -1, &q, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(q, 0), 10000);
    ck_assert_int_eq(sqlite3_column_int(q, 1), 12);
    ck_assert_int_eq(sqlite3_column_int(q, 2), STRESS_THREADS * STRESS_ROUNDS);
    sqlite3_finalize(q);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
    ck_assert_int_eq(h_log_count(&s, "seeded 10000 World rows"), 1);
    stop_world(&s);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *
world_suite(void)
{
    Suite *s = suite_create("world");
    TCase *tc = tcase_create("tfb");
    TCase *routing = tcase_create("routing");
    TCase *items = tcase_create("items");
    TCase *load = tcase_create("concurrency");
    TCase *gzip = tcase_create("gzip");

    tcase_add_unchecked_fixture(tc, world_setup, world_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, world_plaintext);
    tcase_add_test(tc, world_json);
    tcase_add_test(tc, world_db);
    tcase_add_test(tc, world_queries);
    tcase_add_test(tc, world_updates);
    tcase_add_test(tc, world_fortunes);
    tcase_add_test(tc, world_seeded);
    suite_add_tcase(s, tc);

    tcase_add_unchecked_fixture(routing, world_setup, world_teardown);
    tcase_set_timeout(routing, 120);
    tcase_add_test(routing, world_not_found);
    tcase_add_test(routing, world_method_not_allowed);
    tcase_add_test(routing, world_options);
    tcase_add_test(routing, world_head);
    suite_add_tcase(s, routing);

    /* In order, on fresh databases: item ids are part of the expected output. */
    tcase_add_unchecked_fixture(items, world_setup, world_teardown);
    tcase_set_timeout(items, 120);
    tcase_add_test(items, world_items_crud);
    tcase_add_test(items, world_items_validation);
    suite_add_tcase(s, items);

    /* The same cases through the gzip middleware plugin, wrapped at deploy time. */
    tcase_add_unchecked_fixture(gzip, world_gzip_setup, world_gzip_teardown);
    tcase_set_timeout(gzip, 120);
    tcase_add_test(gzip, world_plaintext);
    tcase_add_test(gzip, world_json);
    tcase_add_test(gzip, world_db);
    tcase_add_test(gzip, world_queries);
    tcase_add_test(gzip, world_fortunes);
    tcase_add_test(gzip, world_not_found);
    tcase_add_test(gzip, world_method_not_allowed);
    tcase_add_test(gzip, world_options);
    tcase_add_test(gzip, world_head);
    suite_add_tcase(s, gzip);

    tcase_set_timeout(load, 240);
    tcase_add_test(load, world_concurrent_one_database);
    suite_add_tcase(s, load);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(world_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
