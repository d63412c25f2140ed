/*
 * world_db: the data layer of the World app (TechEmpower test types plus an
 * items CRUD API), compiled into each of its three implementations. It owns
 * the SQLite schema, the first-start seeding, the per-worker connection with
 * its prepared statements, the random numbers, and the item model (its
 * validation and its JSON shape). The HTTP side lives in world_raw.c,
 * world_resource.c and world_route.c.
 *
 * One struct world_db per worker: open it in init_worker(), close it in
 * exit_worker(). Its functions take an internal lock, so a plugin may be
 * CSGI_PLUGIN_THREADSAFE. Strings it returns live in the request arena.
 */
#ifndef WORLD_DB_H
#define WORLD_DB_H

#include <stddef.h>
#include <stdint.h>

#include <csgi/csgi.h>

struct cJSON;
struct world_db;

/** Rows in the World table; ids are 1..WORLD_ROWS. */
#define WORLD_ROWS 10000
/** The clamp of ?queries=. */
#define WORLD_MAX_QUERIES 500
/** The fortune each /fortunes request adds (id 0). */
#define WORLD_EXTRA_FORTUNE "Additional fortune added at request time."
/** Items per page: default and clamp of ?limit=. */
#define WORLD_DEFAULT_LIMIT 20
#define WORLD_MAX_LIMIT     100
/** Most field errors one item can have. */
#define WORLD_MAX_FIELD_ERRORS 4

struct world_row {
    int32_t id;
    int32_t random_number;
};

struct world_fortune {
    int32_t id;
    const char *message;
    size_t len;
};

/** An item. Strings are NUL-terminated; tags is a JSON array as text. */
struct world_item {
    int64_t id;
    const char *name;
    double price;
    const char *tags;
};

/** One invalid field (static strings). */
struct world_field_error {
    const char *field;
    const char *message;
};

/**
 * Open the database of plugin @p name: the path is config key "db", else
 * "$TMPDIR/csgi-world-<uid>/csgi-<name>.db" ("/tmp" without TMPDIR), in a
 * directory created mode 0700 and refused (CSGI_EIO, logged) unless it is
 * a real directory of this user closed to others. Creates the schema and
 * seeds it (10,000 World rows, the 12 standard fortunes) when the file is
 * new, in one IMMEDIATE transaction, so that workers starting together seed
 * it once. Unknown config keys are logged and ignored.
 * @param out out: the handle. Caller owns; release with world_db_close().
 * @return 0, CSGI_ENOMEM, or CSGI_EIO (logged through @p api).
 */
int world_db_open(const struct csgi_host_api *api, const char *name, const struct csgi_kv *config,
                  size_t n_config, struct world_db **out);

/** Finalize the statements and close the connection. NULL is a no-op. */
void world_db_close(struct world_db *db);

/**
 * Read @p n random World rows, one query each.
 * @return 0, CSGI_EIO.
 */
int world_db_random_rows(struct world_db *db, struct world_row *rows, size_t n);

/**
 * Read @p n random World rows one by one, give each a new random number and
 * write them back in one short IMMEDIATE transaction.
 * @return 0, CSGI_EIO.
 */
int world_db_update_rows(struct world_db *db, struct world_row *rows, size_t n);

/**
 * Every row of the Fortune table, in table order, copied into the arena of
 * @p req, in an array with room for @p extra more entries.
 * @return 0, CSGI_ENOMEM, CSGI_EIO.
 */
int world_db_fortunes(struct world_db *db, struct csgi_request *req, size_t extra,
                      struct world_fortune **out, size_t *n);

/** One item. @return 0, CSGI_ENOENT, CSGI_ENOMEM, CSGI_EIO. */
int world_db_item_get(struct world_db *db, struct csgi_request *req, int64_t id,
                      struct world_item *out);

/**
 * A page of items by id, with the total count (one read transaction).
 * @return 0, CSGI_ENOMEM, CSGI_EIO.
 */
int world_db_item_list(struct world_db *db, struct csgi_request *req, int64_t limit, int64_t offset,
                       struct world_item **out, size_t *n, int64_t *total);

/** Insert @p item (its id is ignored) and store the new id in it. @return 0, CSGI_EIO. */
int world_db_item_create(struct world_db *db, struct world_item *item);

/** Replace the item with @p item's id. @return 0, CSGI_ENOENT, CSGI_EIO. */
int world_db_item_replace(struct world_db *db, const struct world_item *item);

/** Delete an item. @return 0, CSGI_ENOENT, CSGI_EIO. */
int world_db_item_delete(struct world_db *db, int64_t id);

/**
 * Check a request body against the item model: an object with "name" (a
 * string of 1 to 100 characters), "price" (a number >= 0) and optional
 * "tags" (an array of at most 20 strings). Fields are checked in that order.
 * @param out  filled when valid (strings copied into the arena of @p req).
 * @param errs room for WORLD_MAX_FIELD_ERRORS errors.
 * @return the number of errors (0: valid), or CSGI_ENOMEM.
 */
int world_item_validate(struct world_db *db, struct csgi_request *req, const struct cJSON *body,
                        struct world_item *out, struct world_field_error *errs);

/**
 * The item's JSON: {"id":1,"name":"...","price":1.5,"tags":[...]}.
 * @return a new value (caller owns; release with cJSON_Delete()), or NULL.
 */
struct cJSON *world_item_json(const struct world_item *item);

#endif /* WORLD_DB_H */
