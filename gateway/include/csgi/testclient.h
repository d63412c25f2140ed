/*
 * CSGI test client: run a plugin's requests in-process, without a server.
 *
 * The C counterpart of Werkzeug's test client or WebTest. A client is a
 * complete fake host: it hands the plugin a struct csgi_host_api (logging is
 * captured, alloc() uses a per-request arena, body_from_fd() makes pread()
 * bodies, on_finished() callbacks run LIFO at the end of each request), builds
 * the environ from a struct csgi_test_request, and drives the response the way
 * a server does: start_response() is checked as the spec requires, headers
 * count as sent at the first write() or non-empty chunk, the body is pulled
 * with next() until CSGI_DONE and closed exactly once in every outcome, and an
 * application Content-Length is enforced. What a client would have received
 * comes back as a struct csgi_test_response.
 *
 * A client runs one callback at a time, from the thread that created it; only
 * the host api's log()/vlog() and resume() may be called from other threads.
 * Several requests may be in progress while their responses wait for
 * resume() (csgi_test_client_start()).
 *
 * Part of libcsgi-util, a static library: this header is not part of the
 * plugin ABI, and its structs may grow between releases (initialise them with
 * designated initialisers so that new fields are zero).
 */
#ifndef CSGI_TESTCLIENT_H
#define CSGI_TESTCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A test client: one loaded plugin (or app) and its fake host. Opaque. */
struct csgi_test_client;

/** Largest response body a client collects; more fails with CSGI_ETOOBIG. */
#define CSGI_TEST_MAX_BODY (64u * 1024u * 1024u)

/** Remote port the client reports in the environ. */
#define CSGI_TEST_REMOTE_PORT 54321u

/**
 * One request to run. Zero-initialise it and set what matters: every field has
 * a default. All pointers are borrowed and only read during the request.
 */
struct csgi_test_request {
    /** Method token; NULL means "GET". */
    const char *method;
    /**
     * The request-target as a client sends it, in origin form ("/app/x?y=1"),
     * including the mount prefix; NULL means "/". The path is percent-decoded
     * into script_name (the mount) and path_info; the query is kept raw.
     */
    const char *target;
    /**
     * Request headers, in order. The environ's content_type and
     * content_length come from Content-Type and Content-Length here.
     */
    const struct csgi_header *headers;
    size_t n_headers;
    /** Request body bytes, read through env->input. May be NULL when 0. */
    const void *body;
    size_t body_len;
    /** "http" (the default when NULL) or "https" (port 443, CSGI_ENV_TLS). */
    const char *url_scheme;
    /** "HTTP/1.1" (the default when NULL) or "HTTP/1.0". */
    const char *protocol;
    /**
     * The peer's address, as a server sees the connection's: NULL means
     * "127.0.0.1"; "" a unix-domain peer (remote_port 0); otherwise an IPv4
     * or IPv6 address in text. With csgi_test_client_trust_proxy(), a
     * trusted peer's Forwarded or X-Forwarded-* headers are honoured.
     */
    const char *remote_addr;
    /**
     * The environ's TLS facts (env->tls, SPEC.md 4.2.1) for an "https"
     * request; NULL gives TLSv1.3, TLS_AES_128_GCM_SHA256, no SNI and no
     * client certificate ("NONE"). Its strings are copied; a NULL string
     * reads as "". Only with url_scheme "https" (CSGI_EINVAL otherwise).
     */
    const struct csgi_tls *tls;
};

/** One captured log line. */
/** How a response body is delimited on the wire (struct csgi_test_response.framing). */
enum csgi_test_framing {
    /** No response was sent (the request failed before the status line). */
    CSGI_TEST_FRAMING_NONE = 0,
    /** Content-Length (one chunk, an exact total_length, a declared length, a file). */
    CSGI_TEST_FRAMING_LENGTH = 1,
    /** Transfer-Encoding: chunked (HTTP/1.1, length unknown). */
    CSGI_TEST_FRAMING_CHUNKED = 2,
    /** Delimited by closing the connection (HTTP/1.0, length unknown). */
    CSGI_TEST_FRAMING_CLOSE = 3
};

struct csgi_test_log {
    /** enum csgi_log_level as given by the caller. */
    int level;
    /** The message, NUL-terminated, without a trailing newline. */
    const char *text;
};

/**
 * What a client would have received, and how the request ended.
 * Caller owns; release with csgi_test_response_free(). Every pointer below is
 * valid until then; strings are NUL-terminated.
 */
struct csgi_test_response {
    /**
     * The outcome: CSGI_OK when the response was complete; otherwise the
     * application's error from call() or next(), CSGI_EDECLINED, CSGI_ELENGTH
     * when the body did not match the declared Content-Length or total_length,
     * CSGI_ESTATE when no start_response() came before the body, CSGI_EINVAL
     * for a chunk with a NULL pointer, CSGI_EAPP for a result code outside the
     * spec, CSGI_ETOOBIG past CSGI_TEST_MAX_BODY.
     */
    int rc;
    /**
     * The status line a client would see: the application's status; 500 when
     * the request failed before the headers were sent; 404 when the
     * application declined and no other mount exists.
     */
    int status;
    /** The reason phrase (the standard one when the application gave none). */
    const char *reason;
    /** The headers that were sent (none when the request failed before). */
    const struct csgi_header *headers;
    size_t n_headers;
    /** Body bytes received (empty for HEAD), NUL-terminated for convenience. */
    const char *body;
    size_t body_len;
    /** Body bytes the application produced, including those HEAD discarded. */
    uint64_t body_produced;
    /** 1 once the headers counted as sent (first write or non-empty chunk, or end). */
    int headers_sent;
    /** The enum csgi_finish_reason passed to on_finished callbacks. */
    int finish_reason;
    /** Lines logged while the request ran (host log, errors stream, client). */
    const struct csgi_test_log *logs;
    size_t n_logs;
    /**
     * How csgi-server frames this body on the wire: enum csgi_test_framing.
     * HEAD responses report the framing the GET response would have.
     */
    int framing;
    /**
     * 1 when the connection is aborted after the headers were sent: the body
     * holds what was sent before the failure, and a client sees a truncated
     * response (csgi-server closes the connection without a chunked end).
     */
    int aborted;
    /**
     * The environ's request_id the application was given (32 hex digits,
     * as csgi-server makes them, unique per client and request); "" when the
     * request never reached the application. Valid until the response is freed.
     */
    const char *request_id;
};

/**
 * Create a client around a plugin descriptor: check the descriptor as a server
 * would (magic, ABI, version, size, name, call) and run init_worker().
 * @param plugin   the descriptor; borrowed, must stay valid until the client is freed.
 * @param mount    the script_name prefix ("" or "/x"; "/" means ""); NULL takes
 *                 plugin->mount, else "/<name>". Copied.
 * @param config   key/values for init_worker() and env->config; copied (valid
 *                 for the plugin until exit_worker() returns). May be NULL when
 *                 @p n_config is 0.
 * @param err      out: why creation failed, one line. May be NULL.
 * @return the client, or NULL (see @p err). Caller owns; release with
 *         csgi_test_client_free().
 */
struct csgi_test_client *csgi_test_client_new(const struct csgi_plugin *plugin, const char *mount,
                                              const struct csgi_kv *config, size_t n_config,
                                              char *err, size_t err_len);

/**
 * Create a client around a plugin shared object, loaded as the server loads
 * it: dlopen(RTLD_NOW | RTLD_LOCAL), dlsym(CSGI_PLUGIN_ENTRY_SYMBOL), the entry
 * called with CSGI_ABI_VERSION, then the checks of csgi_test_client_new().
 * On failure @p err names the reason, e.g. "plugin ABI 2, host ABI 1". Setting
 * the environment variable CSGI_NO_DLCLOSE keeps the object mapped after
 * csgi_test_client_free(), so that leak reports can name its frames.
 * @param path the .so path; borrowed. Other parameters as csgi_test_client_new().
 * @return the client, or NULL. Caller owns; release with csgi_test_client_free().
 */
struct csgi_test_client *csgi_test_client_open(const char *path, const char *mount,
                                               const struct csgi_kv *config, size_t n_config,
                                               char *err, size_t err_len);

/**
 * Create a client around a bare application (csgi_app_fn and its state), e.g.
 * the validator middleware wrapping an app. No init_worker/exit_worker. The
 * app counts as a plugin with CSGI_PLUGIN_THREADSAFE and CSGI_PLUGIN_WAITS.
 * @param state borrowed; passed to @p app.
 * @param mount as csgi_test_client_new(); NULL means "".
 * @return the client, or NULL. Caller owns; release with csgi_test_client_free().
 */
struct csgi_test_client *csgi_test_client_new_app(csgi_app_fn app, void *state, const char *mount,
                                                  char *err, size_t err_len);

/**
 * Put middleware plugin @p mw (a descriptor with wrap(), SPEC.md 6.1) in
 * front of the client's application, as csgi-server --wrap does: check the
 * descriptor, run its init_worker() with @p config, then wrap(). Each call
 * wraps what the client serves so far, so the last call is the outermost
 * middleware: --wrap NAME=A,B is wrap(B) then wrap(A). csgi_test_client_free()
 * runs every unwrap(), outermost first, before any exit_worker().
 * @param mw     the descriptor; borrowed, must stay valid until the client is freed.
 * @param config as csgi_test_client_new(), for the middleware; copied.
 * @param err    out: why it failed, one line, naming the middleware. May be NULL.
 * @return 0; CSGI_EINVAL for a NULL argument or a plugin without wrap();
 *         CSGI_EABI for a descriptor a server refuses; CSGI_ENOMEM; or the
 *         code init_worker() or wrap() failed with (the client then serves
 *         what it served before).
 */
int csgi_test_client_wrap(struct csgi_test_client *client, const struct csgi_plugin *mw,
                          const struct csgi_kv *config, size_t n_config, char *err, size_t err_len);

/**
 * As csgi_test_client_wrap(), with the middleware loaded from its shared
 * object as csgi_test_client_open() loads a plugin.
 * @return as csgi_test_client_wrap(); CSGI_ENOENT when dlopen() fails.
 */
int csgi_test_client_wrap_open(struct csgi_test_client *client, const char *path,
                               const struct csgi_kv *config, size_t n_config, char *err,
                               size_t err_len);

/**
 * Run exit_worker() (when init_worker() succeeded), unload the plugin and
 * free the client and its captured log. Any response obtained from it stays
 * valid. NULL is a no-op.
 */
void csgi_test_client_free(struct csgi_test_client *client);

/**
 * The fake host's services, for apps and middleware built by hand (for
 * instance csgi_validator_new()).
 * @return the table. Valid until csgi_test_client_free().
 */
const struct csgi_host_api *csgi_test_client_host_api(const struct csgi_test_client *client);

/**
 * The application the client calls: the plugin's call and its init_worker()
 * state, or the pair given to csgi_test_client_new_app(). Lets a test put
 * middleware in front of a loaded plugin (see csgi_test_client_request_app()).
 * @param app   out: the function. May be NULL.
 * @param state out: its state. Borrowed: valid until csgi_test_client_free().
 */
void csgi_test_client_app(const struct csgi_test_client *client, csgi_app_fn *app, void **state);

/**
 * Trust a proxy, as csgi-server's --trusted-proxy does: requests whose
 * remote_addr is in @p cidr have their Forwarded or X-Forwarded-For,
 * -Proto and -Host headers honoured (the environ's remote_addr,
 * remote_port, url_scheme, server_name and server_port), by the same rule
 * as the server's. May be called several times; each adds a network.
 * @param cidr "10.0.0.0/8", "2001:db8::/32", an address alone, or "unix";
 *             borrowed, parsed at once.
 * @return 0, CSGI_EINVAL for a bad @p cidr, CSGI_ENOMEM.
 */
int csgi_test_client_trust_proxy(struct csgi_test_client *client, const char *cidr);

/**
 * Run one request against the client's application.
 * @param rq  the request; borrowed. NULL means "GET /".
 * @param out out: the response, set whenever the application was called.
 *            Caller owns; release with csgi_test_response_free().
 * @return 0 when the application was called: its outcome is (*out)->rc.
 *         Otherwise *out is NULL and the request was refused before the
 *         application ran, as a server answers 400: CSGI_EINVAL for a bad
 *         method, target (not origin form, a control character, "%00" in the
 *         path), header, scheme, protocol, or a Content-Length header that
 *         does not match the body; CSGI_ENOENT when the path is outside the
 *         mount; CSGI_ESTATE when called from inside a request; CSGI_ENOMEM.
 */
int csgi_test_client_request(struct csgi_test_client *client, const struct csgi_test_request *rq,
                             struct csgi_test_response **out);

/**
 * As csgi_test_client_request(), but call @p app with @p state instead of the
 * client's own application, on the same fake host (used to put middleware in
 * front of the plugin). @p state is borrowed.
 */
int csgi_test_client_request_app(struct csgi_test_client *client, csgi_app_fn app, void *state,
                                 const struct csgi_test_request *rq,
                                 struct csgi_test_response **out);

/** Number of lines captured since the client was created (init_worker included). */
size_t csgi_test_client_log_count(const struct csgi_test_client *client);

/**
 * The @p index-th captured line. Do not call while another thread logs.
 * @return the line, valid until csgi_test_client_free(); or NULL when
 *         @p index is out of range.
 */
const struct csgi_test_log *csgi_test_client_log_at(const struct csgi_test_client *client,
                                                    size_t index);

/**
 * First captured client line containing @p needle.
 * @return its text (valid until csgi_test_client_free()), or NULL.
 */
const char *csgi_test_client_find_log(const struct csgi_test_client *client, const char *needle);

/**
 * Value of the first response header called @p name (ASCII case-insensitive).
 * @return the value, NUL-terminated, valid until csgi_test_response_free(); or NULL.
 */
const char *csgi_test_response_header(const struct csgi_test_response *resp, const char *name);

/** Number of response headers called @p name (ASCII case-insensitive). */
size_t csgi_test_response_header_count(const struct csgi_test_response *resp, const char *name);

/**
 * First line logged during the request that contains @p needle.
 * @return its text, valid until csgi_test_response_free(); or NULL.
 */
const char *csgi_test_response_find_log(const struct csgi_test_response *resp, const char *needle);

/** Free a response. NULL is a no-op. */
void csgi_test_response_free(struct csgi_test_response *resp);

/* ------------------------------------------------------------------ */
/* Requests that wait (CSGI_PENDING and resume(), SPEC.md 4.14)        */
/* ------------------------------------------------------------------ */

/**
 * How long csgi_test_client_request() waits for each wake (a resume() from
 * another thread, or the request's host timers and descriptor watches) when
 * the response waits; then the client gives up: the response ends with rc
 * CSGI_ETIMEDOUT and finish_reason CSGI_FINISH_TIMEOUT.
 */
#define CSGI_TEST_WAIT_MS 10000

/**
 * A request in progress: started, perhaps waiting for resume(). Other
 * requests of the same client may run while it waits (a publisher while a
 * subscriber waits, say). Opaque; end it with csgi_test_call_end().
 */
struct csgi_test_call;

/**
 * Start a request: call the application and drive its response as far as it
 * goes without a resume(). Parameters as csgi_test_client_request().
 * @param call out: the request in progress. Caller owns; release with
 *             csgi_test_call_end().
 * @return 0, or the refusals of csgi_test_client_request() (*call is then NULL);
 *         CSGI_ESTATE when called from inside a callback of the client.
 */
int csgi_test_client_start(struct csgi_test_client *client, const struct csgi_test_request *rq,
                           struct csgi_test_call **call);

/** As csgi_test_client_start() with another application (see csgi_test_client_request_app()). */
int csgi_test_client_start_app(struct csgi_test_client *client, csgi_app_fn app, void *state,
                               const struct csgi_test_request *rq, struct csgi_test_call **call);

/** 1 while the response waits for resume(), 0 once it ended. */
int csgi_test_call_pending(const struct csgi_test_call *call);

/**
 * Go on with a response that was resumed: next() is called again, and the
 * response is driven until it waits again or ends. For an upgraded
 * connection: wait up to @p timeout_ms for its events (bytes from
 * the client, room to write) and run the application's callbacks; it
 * returns 0 once the connection is over (on_close() ran). When no resume() has come
 * yet, wait for one (from another thread, or from the request's host timers
 * and descriptor watches, which fire here) up to @p timeout_ms (0: do not
 * wait, only fire what is due).
 * @return 1 when it (still or again) waits, 0 when it ended, CSGI_ESTATE from
 *         inside a callback of the client, CSGI_EINVAL for a NULL @p call.
 */
int csgi_test_call_run(struct csgi_test_call *call, int timeout_ms);

/**
 * The body bytes a client has received so far (HEAD: none).
 * @param len out: their number. May be NULL.
 * @return the bytes; Valid until the next csgi_test_call_run() or
 *         csgi_test_call_end() of @p call.
 */
const char *csgi_test_call_body(const struct csgi_test_call *call, size_t *len);

/**
 * End a request and free @p call. One that ended gives its response; one
 * that still waits ends as the client leaving (@p reason
 * CSGI_FINISH_CLIENT_ABORT: rc CSGI_ECONNRESET), giving up
 * (CSGI_FINISH_TIMEOUT: rc CSGI_ETIMEDOUT) or a server stopping
 * (CSGI_FINISH_SHUTDOWN: rc CSGI_ECONNRESET): the body is closed once and
 * on_finished() callbacks get that reason; the response is marked aborted
 * and holds what was sent (no status line when nothing was).
 * @param reason for a request that still waits, as above; otherwise ignored
 *               (pass CSGI_FINISH_OK).
 * @param out    out: the response. Caller owns; release with
 *               csgi_test_response_free().
 * @return 0; CSGI_EINVAL for NULL arguments or another @p reason while the
 *         request waits (@p call is then not freed); CSGI_ESTATE from inside
 *         a callback; CSGI_ENOMEM (@p call is freed).
 */
int csgi_test_call_end(struct csgi_test_call *call, int reason, struct csgi_test_response **out);

/* ------------------------------------------------------------------ */
/* Upgraded connections (csgi_host_api.upgrade(), SPEC.md 4.15)        */
/* ------------------------------------------------------------------ */

/**
 * The client's end of an upgraded connection: once the application answered
 * 101 and took the connection over, the client stands for it with one end of
 * a socketpair; write the client's bytes to it and read the application's
 * (csgi_test_call_run() drives the application's side). The call stays
 * pending until the connection is over. Shut down its writing side to play
 * a client that closes; close it only through csgi_test_call_end().
 * @return the descriptor, Borrowed: valid until csgi_test_call_end(); -1
 *         when @p call has no upgraded connection.
 */
int csgi_test_call_upgraded(const struct csgi_test_call *call);

/**
 * The host stops or reloads: stopping() answers 1 for @p call from now on,
 * and an upgraded connection's on_stop() runs (once).
 * @return 0; CSGI_EINVAL for NULL; CSGI_ESTATE from inside a callback.
 */
int csgi_test_call_stop(struct csgi_test_call *call);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_TESTCLIENT_H */
