/*
 * csgi-resource: a resource-class web framework on CSGI (Falcon's design, in C).
 *
 * An application is a set of resources mounted on URI templates. A resource
 * is an object with one responder per HTTP method (on_get, on_post, ...) and
 * its own state, created once per worker when the application starts. The
 * router is compiled once, at start-up, from templates such as
 * "/items/{id:int}" into a segment tree; a request walks it without
 * allocating. Responders read a request object (path fields, query
 * parameters, headers, JSON media) and fill a response object (status,
 * headers, body or JSON media). Errors are typed: a responder raises an HTTP
 * error, which the framework renders as a JSON problem document
 * (application/problem+json). Middleware sees every request through
 * process_request, process_resource and process_response hooks.
 *
 * The framework is a shared library (libcsgi-resource.so.1). An application
 * plugin links it and exports only csgi_plugin_entry; the plugin's
 * init_worker builds the application with csgi_res_app_new() and
 * csgi_res_app_start(), and the descriptor's call and exit_worker are
 * csgi_res_call() and csgi_res_exit(). The server never knows the framework
 * exists.
 *
 * Versioning: the library follows the header's CSGI_RES_VERSION_* numbers.
 * Releases with the same major number are ABI compatible (same SONAME);
 * minor releases only append functions, and struct fields at the end of the
 * versioned structs below ("Since version N"). The run-time version is
 * csgi_res_version().
 *
 * Memory: everything a request needs comes from the server's request arena
 * (csgi_host_api.alloc) and is released with the request; strings returned
 * by request accessors are valid until the request is finished. JSON media
 * uses cJSON trees (malloc-based, owned as stated per function).
 *
 * Thread safety: after csgi_res_app_start() the application is read-only, so
 * csgi_res_call() may run concurrently for different requests. Resources and
 * middleware that keep mutable state protect it themselves.
 */
#ifndef CSGI_RESOURCE_H
#define CSGI_RESOURCE_H

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

#define CSGI_RES_VERSION_MAJOR 1
#define CSGI_RES_VERSION_MINOR 0
#define CSGI_RES_VERSION_PATCH 0
#define CSGI_RES_VERSION_HEX                                                                       \
    ((CSGI_RES_VERSION_MAJOR << 16) | (CSGI_RES_VERSION_MINOR << 8) | CSGI_RES_VERSION_PATCH)

/** Marks the library's exported functions. */
#if defined(__GNUC__) || defined(__clang__)
#define CSGI_RES_API               __attribute__((visibility("default")))
#define CSGI_RES_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CSGI_RES_API
#define CSGI_RES_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------ */
/* Error codes                                                         */
/* ------------------------------------------------------------------ */

/**
 * Returned by csgi_res_raise() and by functions that raised an HTTP error on
 * the request (csgi_res_req_media()): "an HTTP error is pending". A responder
 * or hook passes it on by returning it. Outside the CSGI_E* range.
 */
#define CSGI_RES_EHTTP (-2000)

/* ------------------------------------------------------------------ */
/* Forward declarations                                                */
/* ------------------------------------------------------------------ */

/** A cJSON value (<cjson/cJSON.h>). */
struct cJSON;
/** The application: routes, middleware, error serializer. Opaque. */
struct csgi_res_app;
/** One request. Opaque; valid until the request is finished. */
struct csgi_res_req;
/** The response being built for a request. Opaque; same lifetime. */
struct csgi_res_resp;

/* ------------------------------------------------------------------ */
/* Enums                                                               */
/* ------------------------------------------------------------------ */

/** The methods a resource can answer, in the order used for Allow headers. */
enum csgi_res_method {
    CSGI_RES_GET = 0,
    CSGI_RES_HEAD = 1,
    CSGI_RES_POST = 2,
    CSGI_RES_PUT = 3,
    CSGI_RES_PATCH = 4,
    CSGI_RES_DELETE = 5,
    CSGI_RES_OPTIONS = 6,
    CSGI_RES_N_METHODS = 7
};

/* ------------------------------------------------------------------ */
/* Callback typedefs                                                   */
/* ------------------------------------------------------------------ */

/**
 * A responder: the C form of Falcon's on_get(self, req, resp).
 * @param self the resource's state (from its init(), else the route's arg).
 * @return 0 when @p resp describes the response; CSGI_RES_EHTTP after
 *         csgi_res_raise(); any other negative code fails the request with
 *         500 (logged).
 */
typedef int (*csgi_res_responder_fn)(void *self, struct csgi_res_req *req,
                                     struct csgi_res_resp *resp);

/* ------------------------------------------------------------------ */
/* Structs                                                             */
/* ------------------------------------------------------------------ */

/**
 * A resource class. Define it static const with designated initializers;
 * responders left NULL are "method not allowed" (405 with Allow), except
 * HEAD, which falls back to on_get, and OPTIONS, which the framework answers
 * with 200 and Allow when on_options is NULL.
 */
struct csgi_res_resource {
#define CSGI_RES_RESOURCE_VERSION 1
    /** CSGI_RES_RESOURCE_VERSION. */
    uint32_t version;
    uint32_t reserved;
    /** Name for log lines. May be NULL. */
    const char *name;
    /**
     * Create the resource's state, once per worker in csgi_res_app_start().
     * @param arg  the arg given to csgi_res_app_add_route(); borrowed.
     * @param self out: the state passed to the responders.
     * @return 0, or a negative CSGI_E* code: the application does not start.
     * NULL means self = arg.
     */
    int (*init)(void *arg, void **self);
    /** Release the state, in csgi_res_app_free(). May be NULL. */
    void (*fini)(void *self);
    csgi_res_responder_fn on_get;
    csgi_res_responder_fn on_head;
    csgi_res_responder_fn on_post;
    csgi_res_responder_fn on_put;
    csgi_res_responder_fn on_patch;
    csgi_res_responder_fn on_delete;
    csgi_res_responder_fn on_options;
};

/**
 * Middleware: hooks around every request. Define it static const; hooks left
 * NULL are skipped. process_request hooks run in the order the middleware was
 * added, then routing, then process_resource hooks in order, then the
 * responder, then process_response hooks in reverse order (for each
 * middleware whose process_request ran, even after an error).
 */
struct csgi_res_middleware {
#define CSGI_RES_MIDDLEWARE_VERSION 1
    /** CSGI_RES_MIDDLEWARE_VERSION. */
    uint32_t version;
    uint32_t reserved;
    /** Name for log lines. May be NULL. */
    const char *name;
    /**
     * Before routing. May call csgi_res_resp_complete() to answer without
     * routing (process_response hooks still run).
     * @return 0 to go on, CSGI_RES_EHTTP after csgi_res_raise(), or another
     *         negative code for a 500.
     */
    int (*process_request)(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp);
    /**
     * After routing found a resource, before its responder.
     * @param resource the resource's state. Borrowed.
     * @return as process_request.
     */
    int (*process_resource)(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp,
                            void *resource);
    /**
     * After the responder, or after an error was rendered into @p resp.
     * @param resource the resource's state, NULL when none was routed.
     * @param succeeded 1 when no error was raised.
     */
    void (*process_response)(void *self, struct csgi_res_req *req, struct csgi_res_resp *resp,
                             void *resource, int succeeded);
};

/** One invalid field of a request, for 422 problem documents. */
struct csgi_res_field_error {
    /** The field's name; borrowed, copied by csgi_res_raise_fields(). */
    const char *field;
    /** What is wrong with it; borrowed, copied. */
    const char *message;
};

/**
 * An HTTP error being rendered. Handed to the error serializer; every
 * pointer is valid until the request is finished.
 */
struct csgi_res_error {
#define CSGI_RES_ERROR_VERSION 1
    uint32_t version;
    /** 400..599. */
    int status;
    /** The standard reason phrase for status ("Not Found"). Never NULL. */
    const char *title;
    /** Free text, or NULL. */
    const char *detail;
    /** Invalid fields (may be empty). */
    const struct csgi_res_field_error *fields;
    size_t n_fields;
};

/**
 * Renders an error into @p resp (status is already set, as is Allow for 405).
 * The default writes a problem document (application/problem+json):
 * {"status":404,"title":"Not Found","detail":"...","errors":[{"field":"f",
 * "message":"m"}]}, omitting detail and errors when absent.
 * @return 0, or a negative code (the framework then sends a bare 500).
 */
typedef int (*csgi_res_error_serializer_fn)(void *arg, struct csgi_res_req *req,
                                            struct csgi_res_resp *resp,
                                            const struct csgi_res_error *err);

/* ------------------------------------------------------------------ */
/* Library                                                             */
/* ------------------------------------------------------------------ */

/** CSGI_RES_VERSION_HEX of the library loaded at run time. */
CSGI_RES_API unsigned int csgi_res_version(void);

/* ------------------------------------------------------------------ */
/* The application                                                     */
/* ------------------------------------------------------------------ */

/**
 * Create an application. Call from init_worker().
 * @param api the host services; borrowed, must stay valid until
 *            csgi_res_app_free() (the one init_worker() receives does).
 * @return the application, or NULL when out of memory. Caller owns; release
 *         with csgi_res_app_free() (or, once started, let csgi_res_exit() do it).
 */
CSGI_RES_API struct csgi_res_app *csgi_res_app_new(const struct csgi_host_api *api);

/**
 * Mount a resource on a URI template. Templates start with '/' and consist of
 * segments that are either literal text or one whole field: "{name}" (any
 * non-empty segment), "{name:int}" (a decimal int64, optional '-') or
 * "{name:path}" (the rest of the path, last segment only). At each segment
 * literal text wins over fields, typed fields over plain ones.
 * @param tmpl     the template; copied.
 * @param resource the class; borrowed, static: valid until the app is freed.
 * @param arg      passed to resource->init (or used as self). Borrowed.
 * @return 0; CSGI_EINVAL for a malformed template, a duplicate route or a
 *         field that conflicts with another at the same position (the error
 *         is logged and also returned by csgi_res_app_start()); CSGI_ESTATE
 *         after start; CSGI_ENOMEM.
 */
CSGI_RES_API int csgi_res_app_add_route(struct csgi_res_app *app, const char *tmpl,
                                        const struct csgi_res_resource *resource, void *arg);

/**
 * Add middleware; hooks run in the order middleware is added.
 * @param mw   borrowed, static.
 * @param self passed to the hooks. Borrowed.
 * @return 0, CSGI_EINVAL, CSGI_ESTATE after start, CSGI_ENOMEM.
 */
CSGI_RES_API int csgi_res_app_add_middleware(struct csgi_res_app *app,
                                             const struct csgi_res_middleware *mw, void *self);

/**
 * Replace the error serializer (NULL restores the default).
 * @return 0, CSGI_ESTATE after start.
 */
CSGI_RES_API int csgi_res_app_set_error_serializer(struct csgi_res_app *app,
                                                   csgi_res_error_serializer_fn fn, void *arg);

/**
 * Attach application-wide state (a database handle, settings), for responders
 * through csgi_res_req_app_context().
 * @param ctx     Takes ownership: @p release (if not NULL) runs on it when the
 *                app is freed, after every resource's fini(), also when
 *                csgi_res_app_start() fails.
 * @return 0, CSGI_EINVAL, CSGI_ESTATE after start.
 */
CSGI_RES_API int csgi_res_app_set_context(struct csgi_res_app *app, void *ctx,
                                          void (*release)(void *ctx));

/**
 * Compile the router and initialise every resource. After this the
 * application is read-only.
 * @param state out: the value to store in init_worker()'s *state (the app).
 * @return 0; the first error of add_route()/add_middleware(), or of a
 *         resource's init(). On failure the application is freed.
 */
CSGI_RES_API int csgi_res_app_start(struct csgi_res_app *app, void **state);

/**
 * Run every resource's fini() (when started) and free the application.
 * NULL is a no-op.
 */
CSGI_RES_API void csgi_res_app_free(struct csgi_res_app *app);

/** The CSGI application: use it as the plugin descriptor's call. */
CSGI_RES_API int csgi_res_call(void *state, struct csgi_environ *env,
                               const struct csgi_responder *resp, struct csgi_body *out);

/** Free a started application: use it as the plugin descriptor's exit_worker. */
CSGI_RES_API void csgi_res_exit(void *state);

/* ------------------------------------------------------------------ */
/* The request                                                         */
/* ------------------------------------------------------------------ */

/** The environ. Borrowed; valid until the request is finished. */
CSGI_RES_API struct csgi_environ *csgi_res_req_environ(const struct csgi_res_req *req);

/** The host services given to csgi_res_app_new(). Borrowed. */
CSGI_RES_API const struct csgi_host_api *csgi_res_req_api(const struct csgi_res_req *req);

/** The method token ("GET"). Valid until the request is finished. */
CSGI_RES_API struct csgi_str csgi_res_req_method(const struct csgi_res_req *req);

/** The routed path: path_info, "/" when empty. Valid until the request is finished. */
CSGI_RES_API struct csgi_str csgi_res_req_path(const struct csgi_res_req *req);

/** The mount prefix (script_name, "" at the root). Valid until the request is finished. */
CSGI_RES_API struct csgi_str csgi_res_req_prefix(const struct csgi_res_req *req);

/**
 * A field of the matched template ("id" of "/items/{id:int}").
 * @param value out: the decoded segment, NUL-terminated. Valid until the
 *              request is finished.
 * @return 0, CSGI_ENOENT when there is no such field.
 */
CSGI_RES_API int csgi_res_req_param(const struct csgi_res_req *req, const char *name,
                                    struct csgi_str *value);

/**
 * An int field of the matched template, already converted.
 * @return 0, CSGI_ENOENT when there is no such field, CSGI_EINVAL when it is
 *         not an int field.
 */
CSGI_RES_API int csgi_res_req_param_int(const struct csgi_res_req *req, const char *name,
                                        int64_t *value);

/**
 * The first query parameter called @p name, percent-decoded ('+' is a
 * space). A parameter without '=' has an empty value.
 * @param value out: valid until the request is finished.
 * @return 0, CSGI_ENOENT when absent, CSGI_ENOMEM.
 */
CSGI_RES_API int csgi_res_req_query(struct csgi_res_req *req, const char *name,
                                    struct csgi_str *value);

/**
 * The first query parameter called @p name as a decimal int64 (optional '-',
 * digits only, no spaces, in range).
 * @return 0, CSGI_ENOENT when absent, CSGI_EINVAL when not such an integer,
 *         CSGI_ENOMEM.
 */
CSGI_RES_API int csgi_res_req_query_int(struct csgi_res_req *req, const char *name, int64_t *value);

/**
 * The first request header called @p name (case-insensitive).
 * @param value out: valid until the request is finished.
 * @return 0, CSGI_ENOENT.
 */
CSGI_RES_API int csgi_res_req_header(const struct csgi_res_req *req, const char *name,
                                     struct csgi_str *value);

/**
 * The whole request body, read once and kept in the request arena.
 * @param body out: the bytes (NUL-terminated, not counted). Valid until the
 *             request is finished.
 * @return 0, CSGI_ENOMEM, or the input stream's error.
 */
CSGI_RES_API int csgi_res_req_body(struct csgi_res_req *req, struct csgi_str *body);

/**
 * The body as JSON media. Raises (and returns CSGI_RES_EHTTP) 415 when the
 * Content-Type is not application/json (parameters and case ignored) and
 * 400 when the body is not one well-formed JSON value.
 * @param media out: the parsed value. Borrowed: owned by the request and
 *              freed when its response has been built; do not free it.
 * @return 0, CSGI_RES_EHTTP, CSGI_ENOMEM.
 */
CSGI_RES_API int csgi_res_req_media(struct csgi_res_req *req, struct cJSON **media);

/**
 * Allocate from the request arena, aligned for any type.
 * @return the memory, valid until the request is finished (never free it),
 *         or NULL when out of memory.
 */
CSGI_RES_API void *csgi_res_req_alloc(struct csgi_res_req *req, size_t n);

/**
 * printf into the request arena.
 * @return the string, valid until the request is finished, or NULL.
 */
CSGI_RES_API char *csgi_res_req_sprintf(struct csgi_res_req *req, const char *fmt, ...)
    CSGI_RES_PRINTF(2, 3);

/** The application context set with csgi_res_app_set_context(). Borrowed. */
CSGI_RES_API void *csgi_res_req_app_context(const struct csgi_res_req *req);

/** Per-request context pointer for middleware and responders (NULL at first). */
CSGI_RES_API void *csgi_res_req_context(const struct csgi_res_req *req);
/** Set the context pointer. Borrowed: keep it valid until the request is finished. */
CSGI_RES_API void csgi_res_req_set_context(struct csgi_res_req *req, void *ctx);

/**
 * Raise an HTTP error: the framework renders it through the error serializer
 * instead of the response built so far (headers set before are kept).
 * @param status 400..599 (other values become 500).
 * @param detail free text or NULL; copied.
 * @return CSGI_RES_EHTTP, to be returned by the responder or hook.
 */
CSGI_RES_API int csgi_res_raise(struct csgi_res_req *req, int status, const char *detail);

/**
 * Raise an HTTP error that names invalid fields (usually 422).
 * @param fields copied. May be NULL when @p n_fields is 0.
 * @return CSGI_RES_EHTTP.
 */
CSGI_RES_API int csgi_res_raise_fields(struct csgi_res_req *req, int status, const char *detail,
                                       const struct csgi_res_field_error *fields, size_t n_fields);

/* ------------------------------------------------------------------ */
/* The response                                                        */
/* ------------------------------------------------------------------ */

/** Set the status (200 by default). */
CSGI_RES_API void csgi_res_resp_set_status(struct csgi_res_resp *resp, int status);

/** The status set so far. */
CSGI_RES_API int csgi_res_resp_status(const struct csgi_res_resp *resp);

/**
 * Set a header, replacing any of the same name (case-insensitive).
 * @param name, value copied.
 * @return 0, CSGI_EINVAL, CSGI_ENOMEM.
 */
CSGI_RES_API int csgi_res_resp_set_header(struct csgi_res_resp *resp, const char *name,
                                          const char *value);

/** Add a header, keeping others of the same name (Set-Cookie). As set_header(). */
CSGI_RES_API int csgi_res_resp_append_header(struct csgi_res_resp *resp, const char *name,
                                             const char *value);

/** Set Content-Type. As set_header(). */
CSGI_RES_API int csgi_res_resp_set_content_type(struct csgi_res_resp *resp, const char *type);

/**
 * Set the body bytes (replacing media).
 * @param data borrowed: must stay valid until the request is finished (a
 *             literal, or memory from csgi_res_req_alloc()).
 */
CSGI_RES_API void csgi_res_resp_set_body(struct csgi_res_resp *resp, const void *data, size_t len);

/**
 * Set JSON media (replacing body bytes). It is serialized after the
 * process_response hooks; Content-Type defaults to application/json.
 * @param media Takes ownership; NULL clears.
 * @return 0.
 */
CSGI_RES_API int csgi_res_resp_set_media(struct csgi_res_resp *resp, struct cJSON *media);

/** The media set so far, or NULL. Borrowed: owned by the response. */
CSGI_RES_API struct cJSON *csgi_res_resp_media(const struct csgi_res_resp *resp);

/** Mark the response complete: skip routing and the responder (from process_request). */
CSGI_RES_API void csgi_res_resp_complete(struct csgi_res_resp *resp);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_RESOURCE_H */
