/*
 * CSGI 1.2: the application interface between a server and a plugin.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * csgi_plugin_entry(), returning a static descriptor (struct csgi_plugin).
 * Everything the server offers reaches the plugin through tables handed to it:
 * the process-wide struct csgi_host_api at init_worker() (and, since environ
 * version 2, as env->host), and per request the environ (with its input and
 * errors streams) and the responder (the C form of WSGI's start_response and
 * write). A plugin therefore never links against the server. gateway/SPEC.md
 * is the normative text; this header is its C form.
 *
 * Ownership phrases used below: "Borrowed" (the callee neither frees nor
 * keeps it), "Valid until <event>", "Caller owns; release with X()", and
 * "Takes ownership".
 */
#ifndef CSGI_PLUGIN_H
#define CSGI_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#include "version.h"
#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Export and entry point                                              */
/* ------------------------------------------------------------------ */

#if defined(__GNUC__) || defined(__clang__)
#define CSGI_EXPORT            __attribute__((visibility("default")))
#define CSGI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CSGI_EXPORT
#define CSGI_PRINTF(fmt, args)
#endif

/** The one symbol a plugin exports. Hosts look it up with dlsym(). */
#define CSGI_PLUGIN_ENTRY_SYMBOL "csgi_plugin_entry"

/** First field of every descriptor: "CSGI" in ASCII, detects non-plugins. */
#define CSGI_PLUGIN_MAGIC 0x43534749u

/* ------------------------------------------------------------------ */
/* Forward declarations                                                */
/* ------------------------------------------------------------------ */

/** A request, owned by the server. Opaque; reach it only through the API. */
struct csgi_request;
struct csgi_host_api;

/* ------------------------------------------------------------------ */
/* Enums and flags                                                     */
/* ------------------------------------------------------------------ */

/** Log levels (SPA/syslog order: lower is more severe). */
enum csgi_log_level {
    CSGI_LOG_ERROR = 1,
    CSGI_LOG_WARN = 2,
    CSGI_LOG_INFO = 3,
    CSGI_LOG_DEBUG = 4,
    CSGI_LOG_TRACE = 5
};

/** struct csgi_environ.flags: facts about the worker and the request. */
enum csgi_environ_flags {
    /** The worker runs more than one request thread (see SPEC.md 4.13). */
    CSGI_ENV_MULTITHREAD = 1u << 0,
    /** Other processes run the same application (pre-fork workers). */
    CSGI_ENV_MULTIPROCESS = 1u << 1,
    /** This process will serve one request only (a hint, like CGI). */
    CSGI_ENV_RUN_ONCE = 1u << 2,
    /** The input stream returns EOF at the end of the body. Always set in 1.0. */
    CSGI_ENV_INPUT_TERMINATED = 1u << 3,
    /** The whole body was received before call(); input->rewind works. */
    CSGI_ENV_INPUT_BUFFERED = 1u << 4,
    /** The connection is TLS (url_scheme is "https"). */
    CSGI_ENV_TLS = 1u << 5
};

/** Every flag defined by struct csgi_environ version 1 (version 2 adds none). */
#define CSGI_ENV_FLAGS_V1 0x3fu

/** struct csgi_plugin.flags. */
enum csgi_plugin_flags {
    /** call() and body callbacks may run concurrently on several threads. */
    CSGI_PLUGIN_THREADSAFE = 1u << 0,
    /**
     * Since 1.2: call() or next() may return CSGI_PENDING (SPEC 4.14). A
     * server prepares its connections for waiting only when a loaded plugin
     * declares it (that costs every request), and fails the response of a
     * plugin that returns CSGI_PENDING without it.
     */
    CSGI_PLUGIN_WAITS = 1u << 1,
    /**
     * Since 1.2 (host API version 4): the plugin may take over connections
     * with csgi_host_api.upgrade() (SPEC 4.15). A server allows upgrades
     * only when a loaded plugin declares it (that costs every request), and
     * refuses upgrade() to a plugin that does not.
     */
    CSGI_PLUGIN_UPGRADES = 1u << 2
};

/** struct csgi_body.flags. */
enum csgi_body_flags {
    /** Made by csgi_host_api.body_from_fd(); the server may use sendfile(). */
    CSGI_BODY_FILE = 1u << 0
};

/** body_from_buffer() flags (since host API version 2). */
enum csgi_buffer_flags {
    /**
     * Refer to the bytes in place instead of copying them: the caller
     * guarantees they stay valid and unchanged until the request is finished
     * (static memory, or memory from alloc()).
     */
    CSGI_BUF_BORROW = 1u << 0
};

/** body_from_fd() flags. */
enum csgi_fd_flags {
    /** The server owns the descriptor from the call on, on every outcome (SPEC.md 5.6). */
    CSGI_FD_CLOSE = 1u << 0
};

/** watch_fd() events (since host API version 3). */
enum csgi_watch_events {
    /** Wake when the descriptor is readable (or at its end, or on an error). */
    CSGI_WATCH_READ = 1u << 0,
    /** Wake when the descriptor is writable. */
    CSGI_WATCH_WRITE = 1u << 1
};

/** Why a request ended, passed to finished callbacks. */
enum csgi_finish_reason {
    CSGI_FINISH_OK = 0,           /**< the response was sent completely */
    CSGI_FINISH_ERROR = 1,        /**< the server or the application failed */
    CSGI_FINISH_CLIENT_ABORT = 2, /**< the client went away */
    CSGI_FINISH_TIMEOUT = 3,      /**< a connection timeout expired */
    CSGI_FINISH_SHUTDOWN = 4      /**< the worker stopped */
};

/* ------------------------------------------------------------------ */
/* Value structs                                                       */
/* ------------------------------------------------------------------ */

/**
 * A byte string: @c len is authoritative. Strings the server provides are also
 * NUL-terminated (ptr[len] == 0) and contain no NUL; strings a plugin provides
 * need not be terminated. An absent string is {NULL, 0}.
 */
struct csgi_str {
    const char *ptr;
    size_t len;
};

/** Initialiser for a csgi_str from a string literal. */
#define CSGI_STR_INIT(lit)                                                                         \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }

/** A header field: name and value, both byte strings. */
struct csgi_header {
    struct csgi_str name;
    struct csgi_str value;
};

/** A deployer-supplied configuration item ("key" = "value"). */
struct csgi_kv {
    const char *key;
    const char *value;
};

/** One piece of response body. The bytes are the application's. */
struct csgi_chunk {
    /** Borrowed. Valid until the next call to next() or close() of its body. */
    const void *ptr;
    size_t len;
};

/* ------------------------------------------------------------------ */
/* Callback typedefs                                                   */
/* ------------------------------------------------------------------ */

/** Called once when a request ends; see csgi_host_api.on_finished. */
typedef void (*csgi_finished_fn)(void *arg, int reason);

/* ------------------------------------------------------------------ */
/* Upgraded connections (host API version 4, SPEC.md 4.15)             */
/* ------------------------------------------------------------------ */

/**
 * A connection the application took over after a 101 (csgi_host_api.upgrade()).
 * Opaque, owned by the server. Valid from upgrade() until the handler's
 * on_close() returns; using it after that is undefined (the validator reports
 * it).
 */
struct csgi_upgrade;

/**
 * What the server calls for an upgraded connection. Every callback runs on
 * the worker's event loop, one at a time for all the upgraded connections of
 * a worker, so that a callback may write to any of them without a lock. A
 * callback must not block.
 */
struct csgi_upgrade_handler {
#define CSGI_UPGRADE_HANDLER_VERSION 1
    uint32_t version;
    uint32_t reserved;
    /**
     * Bytes from the client, in order; @p data is Borrowed, valid during the
     * call. Required.
     */
    void (*on_data)(void *arg, struct csgi_upgrade *u, const void *data, size_t len);
    /**
     * The write queue has drained after upgrade_write() returned 1 (above its
     * soft bound): write more. May be NULL.
     */
    void (*on_writable)(void *arg, struct csgi_upgrade *u);
    /**
     * The server stops or reloads: say goodbye (WebSocket: close 1001) and
     * call upgrade_close(). Called at most once; the server closes the
     * connection itself when its graceful timeout ends. May be NULL.
     */
    void (*on_stop)(void *arg, struct csgi_upgrade *u);
    /**
     * The last call for @p u, exactly once: @p reason is CSGI_FINISH_OK after
     * upgrade_close() (the queue went out), CSGI_FINISH_CLIENT_ABORT when the
     * client closed or the connection failed, CSGI_FINISH_SHUTDOWN when the
     * server ended it. @p u is invalid once it returns. Required.
     */
    void (*on_close)(void *arg, struct csgi_upgrade *u, int reason);
};

/* ------------------------------------------------------------------ */
/* Streams                                                             */
/* ------------------------------------------------------------------ */

/**
 * The request body (wsgi.input). Valid until call() returns, or, when the body
 * reads input lazily, until the body is closed. The application never closes
 * it and never keeps it past the request.
 */
struct csgi_input {
#define CSGI_INPUT_VERSION 1
    uint32_t version;
    uint32_t reserved;
    /** Stream state; pass it back to the functions below. Borrowed. */
    void *ctx;
    /**
     * Read up to @p n bytes into @p buf. @p n may be 0: the call then returns
     * 0 and consumes nothing (@p buf may be NULL), so ask for at least one
     * byte to test for the end of the body.
     * @return bytes read (> 0), 0 at end of body (or when @p n is 0), or a
     *         negative CSGI_E* code (CSGI_ECONNRESET when the client went away,
     *         CSGI_EIO, CSGI_EINVAL when @p buf is NULL and @p n is not 0).
     */
    int64_t (*read)(void *ctx, void *buf, size_t n);
    /**
     * Read one line: stop after '\n' (kept), at @p n bytes or at end of body.
     * @p n may be 0, as for read().
     * @return as read().
     */
    int64_t (*readline)(void *ctx, void *buf, size_t n);
    /**
     * Restart reading at byte 0. Works when CSGI_ENV_INPUT_BUFFERED is set.
     * @return 0, or CSGI_ENOTSUP.
     */
    int (*rewind)(void *ctx);
};

/**
 * The error stream (wsgi.errors) with levels. Lines go to the server's error
 * log, tagged with the plugin and the request id. Valid until the request is
 * finished; never closed by the application. Thread-safe.
 */
struct csgi_errors {
#define CSGI_ERRORS_VERSION 1
    uint32_t version;
    uint32_t reserved;
    void *ctx;
    /**
     * Log one message at @p level. @p msg need not be terminated; a trailing
     * newline is dropped. Borrowed: copied before return.
     * @return 0, or CSGI_EINVAL for a bad level.
     */
    int (*log)(void *ctx, int level, const char *msg, size_t len);
    /**
     * Text-stream write (WSGI write): complete lines are logged at
     * CSGI_LOG_ERROR; a partial line waits for its '\n' or for flush().
     * @return 0, or CSGI_ENOMEM.
     */
    int (*write)(void *ctx, const char *text, size_t len);
    /** Flush a partial line. @return 0. */
    int (*flush)(void *ctx);
};

/* ------------------------------------------------------------------ */
/* The environ                                                         */
/* ------------------------------------------------------------------ */

/**
 * The TLS facts of a request's connection (environ version 3, @c tls): the
 * C form of the CGI/WSGI servers' HTTPS and SSL_* variables (SPEC.md 4.2.1).
 * Every string is valid until the request is finished, never NULL ("" when
 * the fact is absent).
 */
struct csgi_tls {
#define CSGI_TLS_VERSION 1
    uint32_t version;
    uint32_t reserved;
    /** "TLSv1.2" or "TLSv1.3" (SSL_PROTOCOL). */
    struct csgi_str protocol;
    /** The cipher suite's IANA name, "TLS_AES_128_GCM_SHA256" (SSL_CIPHER). */
    struct csgi_str cipher;
    /** The server name the client asked for (SNI), "" when it sent none (SSL_TLS_SNI). */
    struct csgi_str sni;
    /**
     * The client certificate: "NONE" (none presented, or none asked for),
     * "SUCCESS" (verified against the server's client CAs) or "FAILED:"
     * followed by the reason (SSL_CLIENT_VERIFY).
     */
    struct csgi_str client_verify;
    /** The client certificate's subject DN (RFC 4514), "" without one (SSL_CLIENT_S_DN). */
    struct csgi_str client_s_dn;
    /** The client certificate's issuer DN (RFC 4514), "" without one (SSL_CLIENT_I_DN). */
    struct csgi_str client_i_dn;
};

/**
 * Everything the server knows about one request: the C form of the WSGI
 * environ. The server fills it; the application may change any field (new
 * strings must then come from csgi_host_api.alloc()); middleware passes a
 * modified copy to the application it wraps. Every string is valid until the
 * request is finished.
 */
struct csgi_environ {
#define CSGI_ENVIRON_VERSION 3
    uint32_t version;
    /** enum csgi_environ_flags. */
    uint32_t flags;
    /** The server's request handle, for csgi_host_api calls. Borrowed. */
    struct csgi_request *request;

    /** Method token, never empty ("GET"). */
    struct csgi_str request_method;
    /** Mount prefix that selected this application: "" or "/x", never "/". */
    struct csgi_str script_name;
    /** Rest of the path, percent-decoded: "" or starting with '/'. */
    struct csgi_str path_info;
    /** Text after the first '?', undecoded; "" when absent, never NULL. */
    struct csgi_str query_string;
    /** The request-target exactly as received (origin form, undecoded). */
    struct csgi_str raw_target;
    /** Content-Type of the request, or {NULL, 0} when absent. */
    struct csgi_str content_type;
    /** Body length in bytes; -1 when absent or unknown (chunked). */
    int64_t content_length;
    /** Host part of the Host header, else the address the server listens on. */
    struct csgi_str server_name;
    /** Decimal port, never empty. */
    struct csgi_str server_port;
    /** "HTTP/1.0" or "HTTP/1.1". */
    struct csgi_str server_protocol;
    /** "http" or "https". */
    struct csgi_str url_scheme;
    /** Peer address in text form ("127.0.0.1", "::1"); "" for unix sockets. */
    struct csgi_str remote_addr;
    /** Peer port; 0 for unix sockets. */
    uint32_t remote_port;
    uint32_t reserved;

    /**
     * Request headers, in arrival order, names as received. Hop-by-hop
     * headers, Content-Type and Content-Length are included (the typed
     * fields above agree with them). Look up with csgi_host_api.header_get().
     */
    const struct csgi_header *headers;
    size_t n_headers;

    /** The request body. Borrowed. */
    const struct csgi_input *input;
    /** The error stream. Borrowed. */
    const struct csgi_errors *errors;

    /** Deployer configuration for this plugin (same items as init_worker). */
    const struct csgi_kv *config;
    size_t n_config;

    /* Since version 2: read only when CSGI_HAS(env, 2). */

    /**
     * The host services, the table init_worker() received (or one with the
     * same functions): a plugin without init_worker() reaches alloc() and the
     * rest through it, with @c request above. Borrowed.
     */
    const struct csgi_host_api *host;
    /**
     * This request's id: unique across the server's workers and generations,
     * printable ASCII ([0-9a-f] in csgi-server: 32 characters), the value the
     * access log records. Valid until the request is finished.
     */
    struct csgi_str request_id;
    /**
     * How many bytes @c input yields when the server knows it, else -1. Equal
     * to content_length when that is not -1; for a chunked upload the server
     * received completely before call() (CSGI_ENV_INPUT_BUFFERED), the
     * length it received, while content_length stays -1 (SPEC.md 4.2).
     */
    int64_t input_length;

    /* Since version 3: read only when CSGI_HAS(env, 3). */

    /**
     * The connection's TLS facts when it is TLS (CSGI_ENV_TLS), else NULL.
     * Borrowed; valid until the request is finished (SPEC.md 4.2.1).
     */
    const struct csgi_tls *tls;
};

/* ------------------------------------------------------------------ */
/* The response side                                                   */
/* ------------------------------------------------------------------ */

/**
 * Error information for start_response() (WSGI exc_info): passing one says
 * "I am replacing the response because of this error".
 */
struct csgi_exc_info {
#define CSGI_EXC_INFO_VERSION 1
    uint32_t version;
    /** A CSGI_E* code (or any negative value) describing the failure. */
    int code;
    /** A short description for the log; borrowed, copied by the server. */
    struct csgi_str message;
};

/**
 * The response side of a request: start_response() and write(). Handed to
 * call(); valid until the request is finished. Middleware passes its own
 * responder inward and calls the outer one.
 */
struct csgi_responder {
#define CSGI_RESPONDER_VERSION 1
    uint32_t version;
    uint32_t reserved;
    void *ctx;
    /**
     * Set the status and headers. Nothing is sent yet: the server sends them
     * with the first non-empty body chunk, the first write(), or at the end of
     * an empty body.
     * @param status  200..599 (1xx is refused: interim responses are the server's).
     * @param reason  reason phrase, or {NULL, 0} for the standard one.
     * @param headers header pairs; duplicates allowed (Set-Cookie). Borrowed:
     *                copied before return.
     * @param exc     NULL normally; non-NULL only when replacing a response
     *                because of an error.
     * @return 0; CSGI_ESTATUS or CSGI_EHEADER for an invalid status or header
     *         (nothing was stored, the call may be repeated); CSGI_ESTATE for
     *         a second call without @p exc; CSGI_EINVAL for an @p exc of
     *         version 0; CSGI_EHEADERS_SENT when @p exc is given but the
     *         headers already count as sent (from the first write() or the
     *         first non-empty chunk, SPEC.md 4.4): the response fails, and
     *         the application must return that code from call() or next() at
     *         once.
     */
    int (*start_response)(void *ctx, int status, struct csgi_str reason,
                          const struct csgi_header *headers, size_t n_headers,
                          const struct csgi_exc_info *exc);
    /**
     * Imperative body output (WSGI write). Allowed within call(), after
     * start_response(), not from inside a body's next(). The bytes are copied
     * (or sent) before return; they go before any chunk of the returned body.
     * The first call makes the headers count as sent. A server may hold the
     * output until call() returns, up to a bound it documents (csgi-server:
     * 16 MiB); body chunks are the streaming path (SPEC.md 4.8).
     * @return 0; CSGI_ESTATE if called too early or too late; CSGI_EINVAL for
     *         NULL @p data with a length; CSGI_ELENGTH when it would exceed the
     *         declared Content-Length, and CSGI_ETOOBIG past the server's bound
     *         (nothing of this call is stored and the response fails);
     *         CSGI_ECONNRESET when the client went away; once the response
     *         failed, the error it failed with.
     */
    int (*write)(void *ctx, const void *data, size_t len);
};

/**
 * A response body: a pull iterator (WSGI's iterable). The application fills
 * it in call(); the server pulls chunks with next() and calls close() exactly
 * once in every outcome (done, error, client disconnect, timeout).
 */
struct csgi_body {
#define CSGI_BODY_VERSION 1
    uint32_t version;
    /** enum csgi_body_flags; applications set 0. */
    uint32_t flags;
    /** Exact total length in bytes, or -1 when unknown. */
    int64_t total_length;
    /** Iterator state. Owned by the application until close(). */
    void *ctx;
    /**
     * Produce the next chunk in @p out (its length may be 0).
     * NULL means an empty body.
     * @return 0 with a chunk, CSGI_DONE at the end (out is ignored), or a
     *         negative CSGI_E* code (the response fails, SPEC.md 4.10).
     *         Since host API version 3 also CSGI_PENDING: no chunk yet (out
     *         is ignored); the server calls next() again after
     *         csgi_host_api.resume() (SPEC.md 4.14).
     */
    int (*next)(void *ctx, struct csgi_chunk *out);
    /** Release the iterator. May be NULL. Called exactly once. */
    void (*close)(void *ctx);
};

/* ------------------------------------------------------------------ */
/* Host services                                                       */
/* ------------------------------------------------------------------ */

/**
 * Services of the server, handed to init_worker(). Valid until exit_worker()
 * returns. Append-only: check CSGI_HAS(api, N) before a field marked
 * "Since version N".
 */
struct csgi_host_api {
#define CSGI_HOST_API_VERSION 4
    uint32_t version;
    /** sizeof(struct csgi_host_api) as the server was built. */
    uint32_t size;
    /** The server's CSGI_ABI_VERSION. */
    uint32_t abi_version;
    /** The spec version the server implements (CSGI_VERSION_HEX). */
    uint32_t spec_version;
    /** "csgi-server/0.1.0" or similar. Borrowed, static. */
    const char *server_software;
    /** Host state; pass it to log()/vlog(). */
    void *ctx;

    /**
     * Log outside a request (at init, from plugin threads). Thread-safe.
     * Messages are lower-case, without a trailing newline.
     */
    void (*log)(void *ctx, int level, const char *fmt, ...) CSGI_PRINTF(3, 4);
    /** log() with a va_list. */
    void (*vlog)(void *ctx, int level, const char *fmt, va_list ap) CSGI_PRINTF(3, 0);

    /**
     * Allocate @p n bytes from the request's arena, aligned for any type.
     * Valid until the request is finished; never free it.
     * @return the memory, or NULL when out of memory.
     */
    void *(*alloc)(struct csgi_request *req, size_t n);

    /**
     * Look up the @p index-th request header called @p name (ASCII
     * case-insensitive). @p value is valid until the request is finished.
     * @return 0, CSGI_ENOENT if there is no such header, CSGI_EINVAL if an
     *         argument is NULL.
     */
    int (*header_get)(const struct csgi_environ *env, const char *name, size_t index,
                      struct csgi_str *value);

    /**
     * Make a body that sends @p count bytes of @p fd from @p offset (the
     * C form of wsgi.file_wrapper). The server uses sendfile() when the body
     * reaches it unwrapped; the body's next()/close() work like any other
     * body when middleware iterates it. @p count -1 means "to end of file".
     * A file shorter than the range makes the body fail with CSGI_ELENGTH
     * when it is sent or read.
     * With CSGI_FD_CLOSE the server takes ownership of @p fd from this call
     * on, on every outcome: it closes it when the body is closed, at the end
     * of the request if the body is never used (call() failed or declined,
     * another body was returned), and before returning when this call fails
     * (CSGI_EINVAL, CSGI_ENOMEM). Without it the caller keeps @p fd and must
     * keep it open, the range unchanged, until the request is finished
     * (closing it in an on_finished() callback is safe).
     * @return 0; CSGI_EBADF when @p fd is not open; CSGI_EINVAL for a negative
     *         @p offset, @p count below -1, unknown @p flags bits or a NULL
     *         @p out; CSGI_ENOMEM. On failure @p out is unchanged.
     */
    int (*body_from_fd)(struct csgi_request *req, int fd, int64_t offset, int64_t count,
                        uint32_t flags, struct csgi_body *out);

    /**
     * Register @p fn to run once when the request ends (after the body is
     * closed), in reverse order of registration.
     * @return 0, CSGI_ENOMEM, CSGI_EINVAL.
     */
    int (*on_finished)(struct csgi_request *req, csgi_finished_fn fn, void *arg);

    /**
     * Rebuild the request URL (PEP 3333 "URL Reconstruction") into @p out.
     * @p out is valid until the request is finished.
     * @return 0, CSGI_ENOMEM, CSGI_EINVAL.
     */
    int (*request_url)(const struct csgi_environ *env, struct csgi_str *out);

    /**
     * Find a server extension by name and minimum version. Thread-safe.
     * @param ctx         this table's ctx.
     * @param name        "vendor.name": two or more '.'-separated components of
     *                    [a-z0-9_], led by a prefix its definer controls
     *                    ("acme.metrics", "org.example.trace"); the "csgi."
     *                    prefix is reserved for extensions the CSGI project
     *                    defines (SPEC.md 5.2). Borrowed.
     * @param min_version the lowest version the caller accepts; 0 means any.
     * @return the extension's table (its first field is a uint32_t version),
     *         Borrowed and valid until exit_worker() returns; or NULL when the
     *         server does not offer it at that version, for an unknown or
     *         malformed name, and for a NULL @p name.
     */
    const void *(*get_extension)(void *ctx, const char *name, uint32_t min_version);

    /* Since version 2: call only when CSGI_HAS(api, 2). */

    /**
     * Make a body of exactly one chunk, the @p len bytes at @p data, with
     * total_length @p len (so the response carries Content-Length). The
     * bytes are copied into the request's arena, unless @p flags has
     * CSGI_BUF_BORROW: then they are used in place and must stay valid and
     * unchanged until the request is finished. @p data may be NULL when
     * @p len is 0. The body needs no close() from the application; the
     * server or middleware iterating it calls close() as for any body.
     * @return 0; CSGI_EINVAL for a NULL @p req or @p out, NULL @p data with a
     *         length, or unknown @p flags bits; CSGI_ENOMEM. On failure @p out
     *         is unchanged.
     */
    int (*body_from_buffer)(struct csgi_request *req, const void *data, size_t len, uint32_t flags,
                            struct csgi_body *out);

    /* Since version 3: call only when CSGI_HAS(api, 3). */

    /**
     * Wake a request that waits: its call() returned CSGI_PENDING, or its
     * body's next() did (SPEC.md 4.14). The server then calls next() again
     * (after a pending call(), next() for the first time; start_response()
     * may come from there) on the request's own thread. Thread-safe: call it
     * from any thread, also from a callback of another request. A resume()
     * that comes while next() runs is not lost: next() is called again at
     * once. Waking a request that does not wait is harmless.
     * @param req the request; Borrowed. It MUST still exist: stop calling
     *            resume() for it in the body's close() (or an on_finished()
     *            callback), under the lock that guards your list of waiters.
     * @return 0; CSGI_ESTATE once the body is closed (the request ends, the
     *         call has no effect); CSGI_EINVAL for a NULL @p req.
     */
    int (*resume)(struct csgi_request *req);

    /**
     * Wake @p req (as resume() does) once @p ms milliseconds have passed:
     * a one-shot host timer, so that a waiting response needs no thread of
     * its own for a time-out or a periodic event (re-arm it from next()).
     * Cancelled when the request finishes. Call it from a callback of @p req.
     * @return 0; CSGI_EINVAL for a NULL @p req; CSGI_ESTATE once the body is
     *         closed; CSGI_ENOMEM.
     */
    int (*timer)(struct csgi_request *req, uint64_t ms);

    /**
     * Wake @p req (as resume() does) once @p fd is ready for @p events
     * (enum csgi_watch_events), for example a backend socket: one-shot, on
     * the server's event loop, without a thread of the plugin's. The
     * descriptor stays the caller's; keep it open until the watch fired or
     * the request finished (the watch is then cancelled). Call it from a
     * callback of @p req; one watch per descriptor and request.
     * @return 0; CSGI_EINVAL for a NULL @p req, a negative @p fd or bad
     *         @p events; CSGI_EBADF when @p fd cannot be watched; CSGI_ESTATE
     *         once the body is closed; CSGI_ENOMEM.
     */
    int (*watch_fd)(struct csgi_request *req, int fd, uint32_t events);

    /**
     * 1 when the server is stopping or reloading and will end @p req's
     * waiting response (SPEC.md 4.14): next() may send a last word (an SSE
     * event, say) and end the body. 0 otherwise. Thread-safe.
     */
    int (*stopping)(struct csgi_request *req);

    /* Since version 4: call only when CSGI_HAS(api, 4). */

    /**
     * Take over @p req's connection once its 101 response is sent (SPEC.md
     * 4.15): call it from call(), before or after start_response() with
     * status 101 and the Upgrade and Connection headers of the protocol, and
     * return CSGI_OK with an empty body. From then on the connection is the
     * application's: bytes from the client reach @p handler->on_data(), and
     * upgrade_write() sends. Allowed only for a plugin that declares
     * CSGI_PLUGIN_UPGRADES and a request that asked for an upgrade (HTTP/1.1,
     * an Upgrade header and "upgrade" in Connection).
     * @param handler the callbacks; Borrowed, must stay valid until on_close().
     * @param arg     passed to the callbacks.
     * @param out     out: the connection, for upgrade_write() and
     *                upgrade_close(); writes before the 101 went out wait
     *                for it. Valid until on_close() returns.
     * @return 0; CSGI_ENOTSUP when the plugin did not declare
     *         CSGI_PLUGIN_UPGRADES; CSGI_ESTATE when the request did not ask
     *         for an upgrade, outside call() or called twice; CSGI_EINVAL
     *         for a NULL argument or a handler without on_data or on_close;
     *         CSGI_ENOMEM. On failure the request goes on as before (answer
     *         it some other way: 400, 426).
     */
    int (*upgrade)(struct csgi_request *req, const struct csgi_upgrade_handler *handler, void *arg,
                   struct csgi_upgrade **out);

    /**
     * Queue @p len bytes for the client; never blocks. Call it from a
     * callback of any upgraded connection of the worker, or from the
     * call() that made @p u. The bytes are copied.
     * @return 0; 1 when queued but the queue is above its soft bound
     *         (256 KiB in csgi-server): write no more until on_writable();
     *         CSGI_ETOOBIG when the queue would pass its hard bound (nothing
     *         queued); CSGI_ESTATE after upgrade_close() or once the
     *         connection failed (on_close() follows); CSGI_EINVAL, CSGI_ENOMEM.
     */
    int (*upgrade_write)(struct csgi_upgrade *u, const void *data, size_t len);

    /**
     * Close @p u once the queued bytes went out (a bounded wait); on_close()
     * follows, from the event loop, never from inside this call.
     * @return 0; CSGI_ESTATE when already closing; CSGI_EINVAL for NULL.
     */
    int (*upgrade_close)(struct csgi_upgrade *u);
};

/* ------------------------------------------------------------------ */
/* The plugin descriptor                                               */
/* ------------------------------------------------------------------ */

/**
 * The application entry: the C form of app(environ, start_response).
 * @param state the pointer init_worker() stored.
 * @param env   the environ; the application may modify it. Valid until the
 *              request is finished.
 * @param resp  start_response()/write(). Valid until the request is finished.
 * @param out   the body to fill in, preset by the server to version
 *              CSGI_BODY_VERSION, total_length -1 (unknown), everything else
 *              zero; left untouched it is an empty body.
 * @return CSGI_OK; CSGI_PENDING (host API version 3) when the response
 *         comes later: the body in @p out is the server's as after CSGI_OK,
 *         but next() is first called after csgi_host_api.resume();
 *         CSGI_EDECLINED to let the next mount try (before calling
 *         start_response only); any other negative code fails the request (500
 *         if the headers do not count as sent yet, else what was produced
 *         goes out and the connection is aborted). On failure @p out is
 *         ignored and the application has released it (a file body needs no
 *         release: see body_from_fd).
 */
typedef int (*csgi_app_fn)(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
                           struct csgi_body *out);

/**
 * What a plugin exports. Define it static const with CSGI_PLUGIN_HEADER and
 * designated initializers; fields left out are NULL/0 ("not implemented").
 */
struct csgi_plugin {
    /** CSGI_PLUGIN_MAGIC. */
    uint32_t magic;
    /** CSGI_ABI_VERSION the plugin was built against. */
    uint32_t abi_version;
#define CSGI_PLUGIN_VERSION 2
    /** This struct's version. */
    uint32_t version;
    /** sizeof(struct csgi_plugin) as the plugin was built. */
    uint32_t size;
    /** Unique name, [a-z0-9_]+, at most 63 bytes. */
    const char *name;
    /** The plugin's own version, free text ("1.2.0"). May be NULL. */
    const char *plugin_version;
    /** One line for humans. May be NULL. */
    const char *description;
    /** Default mount prefix ("/hello"); NULL means "/<name>". */
    const char *mount;
    /** enum csgi_plugin_flags. */
    uint32_t flags;
    uint32_t reserved;

    /**
     * Runs once in each worker process after fork, before any request.
     * @param api    host services; valid until exit_worker() returns.
     * @param config deployer key/values; valid until exit_worker() returns.
     * @param state  out: the plugin's per-worker state, passed to call().
     * @return 0, or a negative CSGI_E* code: the worker skips this plugin
     *         (and logs the code); exit_worker() is then not called.
     */
    int (*init_worker)(const struct csgi_host_api *api, const struct csgi_kv *config,
                       size_t n_config, void **state);
    /** The application. Required, except in a middleware plugin (wrap set, since version 2). */
    csgi_app_fn call;
    /**
     * Runs once when the worker stops, after the last request; frees all
     * that init_worker() acquired. May be NULL.
     */
    void (*exit_worker)(void *state);

    /* Since version 2 (CSGI 1.2): read only when CSGI_HAS(plugin, 2). */

    /**
     * Middleware entry (SPEC.md 6.1): make an application that wraps
     * @p inner, another plugin's application, when a deployer puts this
     * plugin in front of it (csgi-server --wrap NAME=THIS). A plugin that
     * sets wrap is a middleware plugin: hosts mount it nowhere, and its
     * call may be NULL. Runs in the worker process, after init_worker() of
     * this plugin and of the wrapped one, once for each mount it wraps.
     * @param state      what this plugin's init_worker() stored.
     * @param inner      the wrapped application; Borrowed: valid until unwrap().
     * @param inner_state its state, to pass to @p inner. Borrowed, as @p inner.
     * @param inner_name the wrapped plugin's name, for log lines. Borrowed:
     *                   valid during the call.
     * @param app        out: the wrapping application, called instead of
     *                   @p inner from then on.
     * @param app_state  out: its state, passed to @p app and to unwrap().
     * @return 0, or a negative CSGI_E* code: the wrapped mount is then not
     *         served (the host logs both names and the code), unwrap() is
     *         not called.
     */
    int (*wrap)(void *state, csgi_app_fn inner, void *inner_state, const char *inner_name,
                csgi_app_fn *app, void **app_state);
    /**
     * Release what wrap() made, after the last request through it and before
     * exit_worker() of this plugin and of the wrapped one. May be NULL.
     */
    void (*unwrap)(void *state, void *app_state);
};

/** Fills the header fields of a struct csgi_plugin initializer. */
#define CSGI_PLUGIN_HEADER                                                                         \
    .magic = CSGI_PLUGIN_MAGIC, .abi_version = CSGI_ABI_VERSION, .version = CSGI_PLUGIN_VERSION,   \
    .size = sizeof(struct csgi_plugin)

/**
 * The entry point type. The host passes its CSGI_ABI_VERSION; the plugin
 * returns its descriptor (borrowed, static: valid while the .so is loaded).
 * It SHOULD return it even when the numbers differ, so that the host can name
 * both in its refusal; NULL means "cannot work with that host".
 */
typedef const struct csgi_plugin *(*csgi_plugin_entry_fn)(uint32_t host_abi_version);

/**
 * The entry point every plugin defines (with CSGI_EXPORT); declared here so
 * that a definition with the wrong signature does not compile, and so that a
 * C++ plugin gets C linkage.
 */
CSGI_EXPORT const struct csgi_plugin *csgi_plugin_entry(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_PLUGIN_H */
