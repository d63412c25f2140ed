/*
 * csgi-route: a small function-route web framework on CSGI (Bottle's design, in C).
 *
 * An application is a table of routes: csgi_route_add(app, "GET",
 * "/hello/<name>", fn, user). A handler gets the request and returns its
 * body: text, HTML, bytes, a JSON value, or any of those with a status
 * (csgi_route_status()). csgi_route_abort() returns an error that the
 * application's error handlers render. Before hooks run ahead of every
 * routed request (and may answer it themselves), after hooks run after it.
 *
 * Patterns: literal segments and wildcards that fill a whole segment:
 * "<name>" (any non-empty segment), "<name:int>" (a decimal int64, optional
 * '-'), "<name:path>" (the rest of the path, last only). Static routes are
 * looked up first, then wildcard routes in the order they were added. When a
 * path matches but the method does not, the answer is 405 with Allow. HEAD
 * runs the GET handler when there is no HEAD route; OPTIONS is answered with
 * 200 and Allow when there is no OPTIONS route; "ANY" matches every method.
 *
 * The framework is a shared library (libcsgi-route.so.1). The application
 * plugin builds the app in init_worker() with csgi_route_app_new() and
 * csgi_route_app_start(), and uses csgi_route_call() and csgi_route_exit()
 * as its descriptor's call and exit_worker.
 *
 * Versioning: CSGI_ROUTE_VERSION_*; the same major number means the same
 * SONAME and ABI, minor releases only append. csgi_route_version() reports
 * the library's version at run time.
 *
 * Memory: per-request data comes from the server's request arena and is
 * valid until the request is finished. JSON uses cJSON trees.
 *
 * Thread safety: a started app is read-only; csgi_route_call() may run
 * concurrently for different requests.
 */
#ifndef CSGI_ROUTE_H
#define CSGI_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#include <csgi/csgi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

#define CSGI_ROUTE_VERSION_MAJOR 1
#define CSGI_ROUTE_VERSION_MINOR 0
#define CSGI_ROUTE_VERSION_PATCH 0
#define CSGI_ROUTE_VERSION_HEX                                                                     \
    ((CSGI_ROUTE_VERSION_MAJOR << 16) | (CSGI_ROUTE_VERSION_MINOR << 8) | CSGI_ROUTE_VERSION_PATCH)

/** Marks the library's exported functions. */
#if defined(__GNUC__) || defined(__clang__)
#define CSGI_ROUTE_API               __attribute__((visibility("default")))
#define CSGI_ROUTE_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CSGI_ROUTE_API
#define CSGI_ROUTE_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------ */
/* Forward declarations                                                */
/* ------------------------------------------------------------------ */

/** A cJSON value (<cjson/cJSON.h>). */
struct cJSON;
/** The application: the route table, hooks and error handlers. Opaque. */
struct csgi_route_app;
/** One request and the response being built for it. Opaque. */
struct csgi_route_req;
/** What a handler returns. Opaque; lives in the request arena. */
struct csgi_route_body;

/* ------------------------------------------------------------------ */
/* Structs and callback typedefs                                       */
/* ------------------------------------------------------------------ */

/** An error being rendered by an error handler. Valid until the request is finished. */
struct csgi_route_error {
#define CSGI_ROUTE_ERROR_VERSION 1
    uint32_t version;
    /** 400..599. */
    int status;
    /** The standard reason phrase ("Not Found"). Never NULL. */
    const char *title;
    /** The text given to csgi_route_abort(), or NULL. */
    const char *detail;
};

/**
 * A route handler.
 * @param user the pointer given to csgi_route_add(). Borrowed.
 * @return the body (from the csgi_route_* body functions), or NULL for a 500.
 */
typedef const struct csgi_route_body *(*csgi_route_fn)(struct csgi_route_req *req, void *user);

/**
 * A before hook.
 * @return NULL to go on, or a body that answers the request (the handler is
 *         then skipped).
 */
typedef const struct csgi_route_body *(*csgi_route_before_fn)(struct csgi_route_req *req,
                                                              void *user);

/** An after hook: may change the status and headers. @p body is the final body. */
typedef void (*csgi_route_after_fn)(struct csgi_route_req *req, const struct csgi_route_body *body,
                                    void *user);

/**
 * An error handler. Allow is already set for 405.
 * @return the error's body (its status defaults to err->status), or NULL for
 *         the framework's plain-text page.
 */
typedef const struct csgi_route_body *(*csgi_route_error_fn)(struct csgi_route_req *req,
                                                             const struct csgi_route_error *err,
                                                             void *user);

/* ------------------------------------------------------------------ */
/* Library and application                                             */
/* ------------------------------------------------------------------ */

/** CSGI_ROUTE_VERSION_HEX of the library loaded at run time. */
CSGI_ROUTE_API unsigned int csgi_route_version(void);

/**
 * Create an application. Call from init_worker().
 * @param api host services; borrowed, valid until the app is freed.
 * @return the app, or NULL. Caller owns; release with csgi_route_app_free()
 *         (once started: csgi_route_exit()).
 */
CSGI_ROUTE_API struct csgi_route_app *csgi_route_app_new(const struct csgi_host_api *api);

/**
 * Add a route.
 * @param method  "GET", "POST", ... or "ANY"; copied.
 * @param pattern "/items/<id:int>" and the like; copied.
 * @param fn      the handler.
 * @param user    passed to @p fn. Borrowed.
 * @return 0; CSGI_EINVAL for a bad pattern or a method already routed on the
 *         same pattern (logged; also returned by start); CSGI_ESTATE after
 *         start; CSGI_ENOMEM.
 */
CSGI_ROUTE_API int csgi_route_add(struct csgi_route_app *app, const char *method,
                                  const char *pattern, csgi_route_fn fn, void *user);

/** Add a before hook (run in the order added). @return 0, CSGI_EINVAL, CSGI_ESTATE, CSGI_ENOMEM. */
CSGI_ROUTE_API int csgi_route_before(struct csgi_route_app *app, csgi_route_before_fn fn,
                                     void *user);

/** Add an after hook (run in the order added). @return as csgi_route_before(). */
CSGI_ROUTE_API int csgi_route_after(struct csgi_route_app *app, csgi_route_after_fn fn, void *user);

/**
 * Set the error handler for @p status (0: every status without its own).
 * @return 0, CSGI_EINVAL, CSGI_ESTATE, CSGI_ENOMEM.
 */
CSGI_ROUTE_API int csgi_route_on_error(struct csgi_route_app *app, int status,
                                       csgi_route_error_fn fn, void *user);

/**
 * Attach application-wide state, for handlers and hooks through
 * csgi_route_app_context().
 * @param ctx Takes ownership: @p release (if not NULL) runs on it when the app
 *            is freed, also when csgi_route_app_start() fails.
 * @return 0, CSGI_EINVAL, CSGI_ESTATE after start.
 */
CSGI_ROUTE_API int csgi_route_app_set_context(struct csgi_route_app *app, void *ctx,
                                              void (*release)(void *ctx));

/**
 * Compile the route table. After this the app is read-only.
 * @param state out: the value for init_worker()'s *state.
 * @return 0, or the first configuration error; on failure the app is freed.
 */
CSGI_ROUTE_API int csgi_route_app_start(struct csgi_route_app *app, void **state);

/** Free an application. NULL is a no-op. */
CSGI_ROUTE_API void csgi_route_app_free(struct csgi_route_app *app);

/** The CSGI application: the plugin descriptor's call. */
CSGI_ROUTE_API int csgi_route_call(void *state, struct csgi_environ *env,
                                   const struct csgi_responder *resp, struct csgi_body *out);

/** The plugin descriptor's exit_worker: frees the started app. */
CSGI_ROUTE_API void csgi_route_exit(void *state);

/* ------------------------------------------------------------------ */
/* The request                                                         */
/* ------------------------------------------------------------------ */

/** The environ. Borrowed; valid until the request is finished. */
CSGI_ROUTE_API struct csgi_environ *csgi_route_environ(const struct csgi_route_req *req);

/** The application context set with csgi_route_app_set_context(). Borrowed. */
CSGI_ROUTE_API void *csgi_route_app_context(const struct csgi_route_req *req);

/** The method token. Valid until the request is finished. */
CSGI_ROUTE_API struct csgi_str csgi_route_method(const struct csgi_route_req *req);

/** The routed path (path_info, "/" when empty). */
CSGI_ROUTE_API struct csgi_str csgi_route_path(const struct csgi_route_req *req);

/** The mount prefix (script_name). */
CSGI_ROUTE_API struct csgi_str csgi_route_prefix(const struct csgi_route_req *req);

/**
 * A wildcard of the matched route.
 * @return its value, decoded and NUL-terminated (valid until the request is
 *         finished); {NULL, 0} when absent.
 */
CSGI_ROUTE_API struct csgi_str csgi_route_param(const struct csgi_route_req *req, const char *name);

/**
 * An int wildcard, already converted.
 * @return 0, CSGI_ENOENT when absent, CSGI_EINVAL when not an int wildcard.
 */
CSGI_ROUTE_API int csgi_route_param_int(const struct csgi_route_req *req, const char *name,
                                        int64_t *value);

/**
 * The first query parameter called @p name, percent-decoded ('+' is a space).
 * @param value out: valid until the request is finished.
 * @return 0, CSGI_ENOENT, CSGI_ENOMEM.
 */
CSGI_ROUTE_API int csgi_route_query(struct csgi_route_req *req, const char *name,
                                    struct csgi_str *value);

/**
 * The first query parameter called @p name as a decimal int64 (optional '-',
 * digits only, in range).
 * @return 0, CSGI_ENOENT, CSGI_EINVAL when it is not such an integer, CSGI_ENOMEM.
 */
CSGI_ROUTE_API int csgi_route_query_int(struct csgi_route_req *req, const char *name,
                                        int64_t *value);

/** The first request header called @p name. @return 0, CSGI_ENOENT. */
CSGI_ROUTE_API int csgi_route_header(const struct csgi_route_req *req, const char *name,
                                     struct csgi_str *value);

/**
 * The whole request body (NUL-terminated, not counted).
 * @param body out: valid until the request is finished.
 * @return 0, CSGI_ENOMEM, or the input stream's error.
 */
CSGI_ROUTE_API int csgi_route_body(struct csgi_route_req *req, struct csgi_str *body);

/**
 * The body parsed as JSON (Bottle's request.json).
 * @param value out: the value. Borrowed: freed when the request's response is built.
 * @return 0; CSGI_ENOTSUP when the Content-Type is not application/json
 *         (parameters and case ignored); CSGI_EINVAL when the body is not
 *         one well-formed JSON value; CSGI_ENOMEM.
 */
CSGI_ROUTE_API int csgi_route_json_body(struct csgi_route_req *req, struct cJSON **value);

/** Allocate from the request arena. @return valid until the request is finished, or NULL. */
CSGI_ROUTE_API void *csgi_route_alloc(struct csgi_route_req *req, size_t n);

/** printf into the request arena. @return valid until the request is finished, or NULL. */
CSGI_ROUTE_API char *csgi_route_sprintf(struct csgi_route_req *req, const char *fmt, ...)
    CSGI_ROUTE_PRINTF(2, 3);

/* ------------------------------------------------------------------ */
/* The response                                                        */
/* ------------------------------------------------------------------ */

/** Set the response status (200 by default; a body's own status wins). */
CSGI_ROUTE_API void csgi_route_set_status(struct csgi_route_req *req, int status);

/** The response status as it stands (after a handler: the final one). */
CSGI_ROUTE_API int csgi_route_get_status(const struct csgi_route_req *req);

/**
 * Set a response header, replacing others of that name.
 * @param name, value copied.
 * @return 0, CSGI_EINVAL, CSGI_ENOMEM.
 */
CSGI_ROUTE_API int csgi_route_set_header(struct csgi_route_req *req, const char *name,
                                         const char *value);

/** Add a response header, keeping others of that name. As set_header(). */
CSGI_ROUTE_API int csgi_route_add_header(struct csgi_route_req *req, const char *name,
                                         const char *value);

/* ------------------------------------------------------------------ */
/* Bodies: what handlers return                                        */
/* ------------------------------------------------------------------ */

/**
 * Bytes with a content type.
 * @param content_type NULL for none; borrowed, static or arena.
 * @param data borrowed: valid until the request is finished (a literal or
 *             arena memory).
 * @return the body, or NULL when out of memory.
 */
CSGI_ROUTE_API const struct csgi_route_body *csgi_route_bytes(struct csgi_route_req *req,
                                                              const char *content_type,
                                                              const void *data, size_t len);

/** Text as text/plain; charset=utf-8 (see csgi_route_bytes() for @p text). */
CSGI_ROUTE_API const struct csgi_route_body *csgi_route_text(struct csgi_route_req *req,
                                                             const char *text, size_t len);

/** HTML as text/html; charset=utf-8. */
CSGI_ROUTE_API const struct csgi_route_body *csgi_route_html(struct csgi_route_req *req,
                                                             const char *html, size_t len);

/**
 * A JSON value as application/json, serialized when the response is sent.
 * @param value Takes ownership; NULL (a failed cJSON call) gives NULL.
 * @return the body, or NULL.
 */
CSGI_ROUTE_API const struct csgi_route_body *csgi_route_json(struct csgi_route_req *req,
                                                             struct cJSON *value);

/** An empty body. */
CSGI_ROUTE_API const struct csgi_route_body *csgi_route_empty(struct csgi_route_req *req);

/**
 * @p body with status @p status (Bottle's HTTPResponse(body, status)).
 * @return @p body, or NULL when @p body is NULL.
 */
CSGI_ROUTE_API const struct csgi_route_body *
csgi_route_status(struct csgi_route_req *req, int status, const struct csgi_route_body *body);

/**
 * An error, rendered by the error handler for @p status (Bottle's abort()).
 * @param detail copied; may be NULL.
 * @return the error body, or NULL when out of memory.
 */
CSGI_ROUTE_API const struct csgi_route_body *csgi_route_abort(struct csgi_route_req *req,
                                                              int status, const char *detail);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_ROUTE_H */
