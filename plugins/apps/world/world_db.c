/*
 * world_db: schema, seeding, prepared statements and the item model of the
 * World app (see world_db.h).
 *
 * Concurrency: every worker has its own connection. The database runs in WAL
 * mode, so readers never block the writer; writes are single statements or
 * one short BEGIN IMMEDIATE transaction (never a read transaction upgraded
 * to a write, which SQLite answers with SQLITE_BUSY without waiting), and a
 * busy timeout makes writers queue instead of failing.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "world_db.h"

/* How long a statement waits for another worker's write lock. */
#define WORLD_BUSY_MS 10000

enum world_stmt {
    ST_WORLD_GET,
    ST_WORLD_SET,
    ST_FORTUNES,
    ST_ITEM_GET,
    ST_ITEM_LIST,
    ST_ITEM_COUNT,
    ST_ITEM_INSERT,
    ST_ITEM_UPDATE,
    ST_ITEM_DELETE,
    ST_BEGIN_WRITE,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

static const char *const world_sql[ST_COUNT] = {
    [ST_WORLD_GET] = "SELECT id, randomNumber FROM World WHERE id = ?1",
    [ST_WORLD_SET] = "UPDATE World SET randomNumber = ?1 WHERE id = ?2",
    [ST_FORTUNES] = "SELECT id, message FROM Fortune",
    [ST_ITEM_GET] = "SELECT id, name, price, tags FROM items WHERE id = ?1",
    [ST_ITEM_LIST] = "SELECT id, name, price, tags FROM items ORDER BY id LIMIT ?1 OFFSET ?2",
    [ST_ITEM_COUNT] = "SELECT COUNT(*) FROM items",
    [ST_ITEM_INSERT] = "INSERT INTO items (name, price, tags) VALUES (?1, ?2, ?3)",
    [ST_ITEM_UPDATE] = "UPDATE items SET name = ?1, price = ?2, tags = ?3 WHERE id = ?4",
    [ST_ITEM_DELETE] = "DELETE FROM items WHERE id = ?1",
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

static const char world_schema[] = "CREATE TABLE IF NOT EXISTS World ("
                                   "  id INTEGER PRIMARY KEY,"
                                   "  randomNumber INTEGER NOT NULL);"
                                   "CREATE TABLE IF NOT EXISTS Fortune ("
                                   "  id INTEGER PRIMARY KEY,"
                                   "  message TEXT NOT NULL);"
                                   "CREATE TABLE IF NOT EXISTS items ("
                                   "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                   "  name TEXT NOT NULL,"
                                   "  price REAL NOT NULL,"
                                   "  tags TEXT NOT NULL DEFAULT '[]');";

/* The standard fortunes of the TechEmpower benchmark. */
static const char *const world_fortunes[] = {
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. \xE2\x80\x94 Tom Christaensen",
    "Any program that runs never does what you want it to do.",
    "A list is only as strong as its weakest link. \xE2\x80\x94 Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
    "\xE3\x83\x95\xE3\x83\xAC\xE3\x83\xBC\xE3\x83\xA0\xE3\x83\xAF\xE3\x83\xBC\xE3\x82\xAF\xE3\x81"
    "\xAE\xE3\x83\x99\xE3\x83\xB3\xE3\x83\x81\xE3\x83\x9E\xE3\x83\xBC\xE3\x82\xAF",
};

struct world_db {
    const struct csgi_host_api *api;
    sqlite3 *conn;
    sqlite3_stmt *st[ST_COUNT];
    pthread_mutex_t lock;
    uint64_t rng;
    char path[512];
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* splitmix64: a small, fast per-worker generator (not rand(), which is process-global). */
static uint64_t
world_next(struct world_db *db)
{
    uint64_t z = (db->rng += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int32_t
world_random(struct world_db *db)
{
    return (int32_t)(world_next(db) % WORLD_ROWS) + 1;
}

static int
world_fail(struct world_db *db, const char *what)
{
    db->api->log(db->api->ctx, CSGI_LOG_ERROR, "sqlite: %s on \"%s\" failed: %s", what, db->path,
                 sqlite3_errmsg(db->conn));
    return CSGI_EIO;
}

/* Run a statement that returns no rows, then reset it. */
static int
world_step_done(struct world_db *db, enum world_stmt s)
{
    int rc = sqlite3_step(db->st[s]);

    sqlite3_reset(db->st[s]);
    if (rc != SQLITE_DONE)
        return world_fail(db, world_sql[s]);
    return 0;
}

static void
world_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Run SQL text, retrying while another worker holds the lock it needs. */
static int
world_exec(struct world_db *db, const char *sql)
{
    for (int tries = 0;; tries++) {
        int rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= WORLD_BUSY_MS / 10)
            return world_fail(db, sql);
        world_sleep_ms(10);
    }
}

static int64_t
world_count(struct world_db *db, const char *table)
{
    char sql[64];
    sqlite3_stmt *st;
    int64_t n = -1;

    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Create the tables and seed empty ones, inside the caller's transaction. */
static int
world_seed(struct world_db *db)
{
    sqlite3_stmt *st = NULL;
    int64_t n;
    int rc = 0;

    if (world_exec(db, world_schema) < 0)
        return CSGI_EIO;
    n = world_count(db, "World");
    if (n < 0)
        return world_fail(db, "counting World");
    if (n == 0) {
        if (sqlite3_prepare_v2(db->conn, "INSERT INTO World (id, randomNumber) VALUES (?1, ?2)", -1,
                               &st, NULL) != SQLITE_OK)
            return world_fail(db, "preparing the World seed");
        for (int id = 1; id <= WORLD_ROWS && rc == 0; id++) {
            sqlite3_bind_int(st, 1, id);
            sqlite3_bind_int(st, 2, world_random(db));
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = world_fail(db, "seeding World");
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        if (rc < 0)
            return rc;
        db->api->log(db->api->ctx, CSGI_LOG_INFO, "world: seeded %d World rows in \"%s\"",
                     WORLD_ROWS, db->path);
    }
    n = world_count(db, "Fortune");
    if (n < 0)
        return world_fail(db, "counting Fortune");
    if (n == 0) {
        if (sqlite3_prepare_v2(db->conn, "INSERT INTO Fortune (id, message) VALUES (?1, ?2)", -1,
                               &st, NULL) != SQLITE_OK)
            return world_fail(db, "preparing the Fortune seed");
        for (size_t i = 0; i < sizeof(world_fortunes) / sizeof(*world_fortunes) && rc == 0; i++) {
            sqlite3_bind_int(st, 1, (int)i + 1);
            sqlite3_bind_text(st, 2, world_fortunes[i], -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = world_fail(db, "seeding Fortune");
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    return rc;
}

/*
 * The default database directory: "$TMPDIR/csgi-world-<uid>" ("/tmp"
 * without TMPDIR), created mode 0700. A shared /tmp is anyone's: the
 * directory must be a real directory (not a link), ours, and closed to
 * others, or the app refuses to start and asks for the "db" key, so that
 * nobody can plant the database file or a link in its place. Returns 0 with
 * the path in out, or -1 with why set.
 */
static int
world_default_dir(char *out, size_t size, char *why, size_t why_len)
{
    const char *t = getenv("TMPDIR");
    struct stat st;

    if ((size_t)snprintf(out, size, "%s/csgi-world-%u", t && *t ? t : "/tmp",
                         (unsigned)geteuid()) >= size) {
        snprintf(why, why_len, "the default database directory's path is too long");
        return -1;
    }
    if (mkdir(out, 0700) < 0 && errno != EEXIST) {
        snprintf(why, why_len, "cannot create \"%s\": %s", out, strerror(errno));
        return -1;
    }
    if (lstat(out, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        snprintf(why, why_len,
                 "\"%s\" is not a private directory of this user (a link, another owner, or "
                 "open to others)",
                 out);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */
/* ------------------------------------------------------------------ */

/* Open (creating and seeding when new) the database and prepare every statement. */
int
world_db_open(const struct csgi_host_api *api, const char *name, const struct csgi_kv *config,
              size_t n_config, struct world_db **out)
{
    struct world_db *db;
    struct timespec ts;
    const char *path = NULL;
    int rc;

    db = calloc(1, sizeof(*db));
    if (!db)
        return CSGI_ENOMEM;
    db->api = api;
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "db") == 0)
            path = config[i].value;
        else
            api->log(api->ctx, CSGI_LOG_WARN, "config key \"%s\" ignored", config[i].key);
    }
    if (path) {
        snprintf(db->path, sizeof(db->path), "%s", path);
    } else {
        char dir[sizeof(db->path) - 80], why[sizeof(dir) + 120];
        if (world_default_dir(dir, sizeof(dir), why, sizeof(why)) < 0) {
            api->log(api->ctx, CSGI_LOG_ERROR,
                     "no database: %s; set one with --set %s.db=/path/world.db", why, name);
            free(db);
            return CSGI_EIO;
        }
        snprintf(db->path, sizeof(db->path), "%s/csgi-%.60s.db", dir, name);
    }
    if (pthread_mutex_init(&db->lock, NULL) != 0) {
        free(db);
        return CSGI_ENOMEM;
    }
    /* Each worker opens its connection after fork(), so each gets its own sequence. */
    clock_gettime(CLOCK_REALTIME, &ts);
    db->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
              (uint64_t)(uintptr_t)db;

    rc = sqlite3_open_v2(db->path, &db->conn,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        api->log(api->ctx, CSGI_LOG_ERROR, "sqlite: cannot open \"%s\": %s", db->path,
                 db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
        rc = CSGI_EIO;
        goto error_close;
    }
    sqlite3_busy_timeout(db->conn, WORLD_BUSY_MS);
    if (world_exec(db, "PRAGMA journal_mode=WAL") < 0 ||
        world_exec(db, "PRAGMA synchronous=NORMAL") < 0 || world_exec(db, "BEGIN IMMEDIATE") < 0) {
        rc = CSGI_EIO;
        goto error_close;
    }
    if (world_seed(db) < 0) {
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        rc = CSGI_EIO;
        goto error_close;
    }
    if (world_exec(db, "COMMIT") < 0) {
        rc = CSGI_EIO;
        goto error_close;
    }
    for (int s = 0; s < ST_COUNT; s++) {
        if (sqlite3_prepare_v3(db->conn, world_sql[s], -1, SQLITE_PREPARE_PERSISTENT, &db->st[s],
                               NULL) != SQLITE_OK) {
            rc = world_fail(db, world_sql[s]);
            goto error_close;
        }
    }
    *out = db;
    return 0;

error_close:
    world_db_close(db);
    return rc;
}

/* Finalize the statements, close the connection and free the handle. */
void
world_db_close(struct world_db *db)
{
    if (!db)
        return;
    for (int s = 0; s < ST_COUNT; s++)
        sqlite3_finalize(db->st[s]);
    sqlite3_close(db->conn);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

/* ------------------------------------------------------------------ */
/* World and Fortune                                                   */
/* ------------------------------------------------------------------ */

/* Read one World row; called with the lock held. */
static int
world_get_locked(struct world_db *db, int32_t id, struct world_row *row)
{
    sqlite3_stmt *st = db->st[ST_WORLD_GET];
    int rc;

    sqlite3_bind_int(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row->id = sqlite3_column_int(st, 0);
        row->random_number = sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return world_fail(db, "reading World");
    return 0;
}

/* Read n random rows with one query each. */
int
world_db_random_rows(struct world_db *db, struct world_row *rows, size_t n)
{
    int rc = 0;

    pthread_mutex_lock(&db->lock);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = world_get_locked(db, world_random(db), &rows[i]);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/* Read n random rows, renumber them and write them back in one transaction. */
int
world_db_update_rows(struct world_db *db, struct world_row *rows, size_t n)
{
    sqlite3_stmt *st = db->st[ST_WORLD_SET];
    int rc = 0;

    pthread_mutex_lock(&db->lock);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = world_get_locked(db, world_random(db), &rows[i]);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        rows[i].random_number = world_random(db);
    rc = world_step_done(db, ST_BEGIN_WRITE);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_bind_int(st, 1, rows[i].random_number);
        sqlite3_bind_int(st, 2, rows[i].id);
        rc = world_step_done(db, ST_WORLD_SET);
    }
    if (rc == 0)
        rc = world_step_done(db, ST_COMMIT);
    if (rc < 0)
        world_step_done(db, ST_ROLLBACK);
out:
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/* Copy the Fortune table into the request arena. */
int
world_db_fortunes(struct world_db *db, struct csgi_request *req, size_t extra,
                  struct world_fortune **out, size_t *n)
{
    sqlite3_stmt *st = db->st[ST_FORTUNES];
    struct world_fortune *v;
    size_t cap = 16 + extra, len = 0;
    int rc = 0, step;

    v = db->api->alloc(req, cap * sizeof(*v));
    if (!v)
        return CSGI_ENOMEM;
    pthread_mutex_lock(&db->lock);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(st, 1);
        size_t tlen = (size_t)sqlite3_column_bytes(st, 1);
        char *copy;
        if (len + extra == cap) {
            struct world_fortune *nv = db->api->alloc(req, cap * 2 * sizeof(*nv));
            if (!nv) {
                rc = CSGI_ENOMEM;
                break;
            }
            memcpy(nv, v, len * sizeof(*v));
            v = nv;
            cap *= 2;
        }
        copy = db->api->alloc(req, tlen + 1);
        if (!copy) {
            rc = CSGI_ENOMEM;
            break;
        }
        memcpy(copy, text ? (const char *)text : "", tlen);
        copy[tlen] = '\0';
        v[len].id = sqlite3_column_int(st, 0);
        v[len].message = copy;
        v[len].len = tlen;
        len++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = world_fail(db, "reading Fortune");
    sqlite3_reset(st);
    pthread_mutex_unlock(&db->lock);
    *out = v;
    *n = len;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Items                                                               */
/* ------------------------------------------------------------------ */

static char *
world_arena_text(struct world_db *db, struct csgi_request *req, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    char *p = db->api->alloc(req, len + 1);

    if (p) {
        memcpy(p, t ? (const char *)t : "", len);
        p[len] = '\0';
    }
    return p;
}

/* Fill an item from the current row of a "id, name, price, tags" query. */
static int
world_item_row(struct world_db *db, struct csgi_request *req, sqlite3_stmt *st,
               struct world_item *it)
{
    it->id = sqlite3_column_int64(st, 0);
    it->name = world_arena_text(db, req, st, 1);
    it->price = sqlite3_column_double(st, 2);
    it->tags = world_arena_text(db, req, st, 3);
    return it->name && it->tags ? 0 : CSGI_ENOMEM;
}

/* Read one item into the request arena; CSGI_ENOENT when there is none. */
int
world_db_item_get(struct world_db *db, struct csgi_request *req, int64_t id, struct world_item *out)
{
    sqlite3_stmt *st = db->st[ST_ITEM_GET];
    int rc, step;

    pthread_mutex_lock(&db->lock);
    sqlite3_bind_int64(st, 1, id);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = world_item_row(db, req, st, out);
    else if (step == SQLITE_DONE)
        rc = CSGI_ENOENT;
    else
        rc = world_fail(db, "reading an item");
    sqlite3_reset(st);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/*
 * Read a page of items (by id) and the total count in one read transaction,
 * so both see the same snapshot. Strings are copied into the request arena.
 */
int
world_db_item_list(struct world_db *db, struct csgi_request *req, int64_t limit, int64_t offset,
                   struct world_item **out, size_t *n, int64_t *total)
{
    sqlite3_stmt *count = db->st[ST_ITEM_COUNT], *list = db->st[ST_ITEM_LIST];
    struct world_item *v;
    size_t len = 0;
    int rc, step;

    v = db->api->alloc(req, (size_t)(limit > 0 ? limit : 1) * sizeof(*v));
    if (!v)
        return CSGI_ENOMEM;
    pthread_mutex_lock(&db->lock);
    /* A read transaction: the count and the page see the same snapshot. */
    rc = world_step_done(db, ST_BEGIN_READ);
    if (rc < 0)
        goto out;
    step = sqlite3_step(count);
    *total = step == SQLITE_ROW ? sqlite3_column_int64(count, 0) : 0;
    sqlite3_reset(count);
    if (step != SQLITE_ROW) {
        rc = world_fail(db, "counting items");
        goto rollback;
    }
    sqlite3_bind_int64(list, 1, limit);
    sqlite3_bind_int64(list, 2, offset);
    while ((step = sqlite3_step(list)) == SQLITE_ROW && (int64_t)len < limit) {
        rc = world_item_row(db, req, list, &v[len]);
        if (rc < 0)
            break;
        len++;
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = world_fail(db, "listing items");
    sqlite3_reset(list);
    if (rc == 0) {
        rc = world_step_done(db, ST_COMMIT);
        if (rc == 0)
            goto out;
    }
rollback:
    world_step_done(db, ST_ROLLBACK);
out:
    pthread_mutex_unlock(&db->lock);
    *out = v;
    *n = len;
    return rc;
}

static void
world_bind_item(sqlite3_stmt *st, const struct world_item *it)
{
    sqlite3_bind_text(st, 1, it->name, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, it->price);
    sqlite3_bind_text(st, 3, it->tags, -1, SQLITE_STATIC);
}

/* Insert an item (one autocommit statement) and store its new id. */
int
world_db_item_create(struct world_db *db, struct world_item *item)
{
    int rc;

    pthread_mutex_lock(&db->lock);
    world_bind_item(db->st[ST_ITEM_INSERT], item);
    rc = world_step_done(db, ST_ITEM_INSERT);
    sqlite3_clear_bindings(db->st[ST_ITEM_INSERT]);
    if (rc == 0)
        item->id = sqlite3_last_insert_rowid(db->conn);
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/* Overwrite the item with item->id; CSGI_ENOENT when no row changed. */
int
world_db_item_replace(struct world_db *db, const struct world_item *item)
{
    sqlite3_stmt *st = db->st[ST_ITEM_UPDATE];
    int rc;

    pthread_mutex_lock(&db->lock);
    world_bind_item(st, item);
    sqlite3_bind_int64(st, 4, item->id);
    rc = world_step_done(db, ST_ITEM_UPDATE);
    sqlite3_clear_bindings(st);
    if (rc == 0 && sqlite3_changes(db->conn) == 0)
        rc = CSGI_ENOENT;
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/* Delete an item; CSGI_ENOENT when no row was deleted. */
int
world_db_item_delete(struct world_db *db, int64_t id)
{
    int rc;

    pthread_mutex_lock(&db->lock);
    sqlite3_bind_int64(db->st[ST_ITEM_DELETE], 1, id);
    rc = world_step_done(db, ST_ITEM_DELETE);
    if (rc == 0 && sqlite3_changes(db->conn) == 0)
        rc = CSGI_ENOENT;
    pthread_mutex_unlock(&db->lock);
    return rc;
}

/* Characters in UTF-8 text: bytes that do not continue a sequence. */
static size_t
world_utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Validate an item body; see world_db.h for the rules. */
int
world_item_validate(struct world_db *db, struct csgi_request *req, const struct cJSON *body,
                    struct world_item *out, struct world_field_error *errs)
{
    const cJSON *name, *price, *tags, *t;
    int n = 0;
    char *text, *copy;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(body)) {
        errs[n].field = "body";
        errs[n++].message = "must be a JSON object";
        return n;
    }
    name = cJSON_GetObjectItemCaseSensitive(body, "name");
    price = cJSON_GetObjectItemCaseSensitive(body, "price");
    tags = cJSON_GetObjectItemCaseSensitive(body, "tags");
    if (!name || cJSON_IsNull(name)) {
        errs[n].field = "name";
        errs[n++].message = "is required";
    } else if (!cJSON_IsString(name)) {
        errs[n].field = "name";
        errs[n++].message = "must be a string";
    } else {
        size_t chars = world_utf8_chars(name->valuestring);
        if (chars < 1 || chars > 100) {
            errs[n].field = "name";
            errs[n++].message = "must be 1 to 100 characters";
        }
    }
    if (!price || cJSON_IsNull(price)) {
        errs[n].field = "price";
        errs[n++].message = "is required";
    } else if (!cJSON_IsNumber(price)) {
        errs[n].field = "price";
        errs[n++].message = "must be a number";
    } else if (!isfinite(price->valuedouble) || price->valuedouble < 0) {
        errs[n].field = "price";
        errs[n++].message = "must be greater than or equal to 0";
    }
    if (tags && !cJSON_IsNull(tags)) {
        int ok = cJSON_IsArray(tags), count = 0;
        cJSON_ArrayForEach(t, tags)
        {
            count++;
            if (!cJSON_IsString(t))
                ok = 0;
        }
        if (!ok) {
            errs[n].field = "tags";
            errs[n++].message = "must be an array of strings";
        } else if (count > 20) {
            errs[n].field = "tags";
            errs[n++].message = "must have at most 20 entries";
        }
    }
    if (n)
        return n;
    /* Copies in the arena: the parsed body may be freed before the response is built. */
    copy = db->api->alloc(req, strlen(name->valuestring) + 1);
    if (!copy)
        return CSGI_ENOMEM;
    memcpy(copy, name->valuestring, strlen(name->valuestring) + 1);
    out->name = copy;
    out->price = price->valuedouble == 0 ? 0 : price->valuedouble; /* no -0 */
    if (!tags || cJSON_IsNull(tags)) {
        out->tags = "[]";
        return 0;
    }
    text = cJSON_PrintUnformatted(tags);
    if (!text)
        return CSGI_ENOMEM;
    copy = db->api->alloc(req, strlen(text) + 1);
    if (copy)
        memcpy(copy, text, strlen(text) + 1);
    free(text);
    if (!copy)
        return CSGI_ENOMEM;
    out->tags = copy;
    return 0;
}

/* The item's JSON shape, keys in a fixed order. */
struct cJSON *
world_item_json(const struct world_item *item)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *id = cJSON_CreateNumber((double)item->id);
    cJSON *name = cJSON_CreateString(item->name);
    cJSON *price = cJSON_CreateNumber(item->price);
    cJSON *tags = cJSON_Parse(item->tags);

    if (!cJSON_IsArray(tags)) {
        cJSON_Delete(tags);
        tags = cJSON_CreateArray();
    }
    if (!o || !id || !name || !price || !tags) {
        cJSON_Delete(o);
        cJSON_Delete(id);
        cJSON_Delete(name);
        cJSON_Delete(price);
        cJSON_Delete(tags);
        return NULL;
    }
    /* Adding a non-NULL item to an object only links it: it cannot fail. */
    cJSON_AddItemToObjectCS(o, "id", id);
    cJSON_AddItemToObjectCS(o, "name", name);
    cJSON_AddItemToObjectCS(o, "price", price);
    cJSON_AddItemToObjectCS(o, "tags", tags);
    return o;
}
