/*
 * The validator middleware: wraps an application and checks both sides of the
 * CSGI interface, reporting each violation with a stable rule id. See
 * <csgi/validator.h> for the rules and the wsgiref.validate mapping.
 */
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <csgi/middleware.h>
#include <csgi/validator.h>

#include "core.h"
#include "csgi_internal.h"

/* Rule indexes; the table below is in the same order. */
enum val_rule {
    R_ENV_VERSION,
    R_ENV_REQUEST,
    R_ENV_STRING,
    R_ENV_REQUEST_METHOD,
    R_ENV_METHOD_UNKNOWN,
    R_ENV_SCRIPT_NAME,
    R_ENV_SCRIPT_NAME_SLASH,
    R_ENV_PATH_INFO,
    R_ENV_PATH_EMPTY,
    R_ENV_QUERY_STRING,
    R_ENV_RAW_TARGET,
    R_ENV_CONTENT_LENGTH,
    R_ENV_CONTENT_TYPE_HEADER,
    R_ENV_CONTENT_LENGTH_HEADER,
    R_ENV_SERVER_NAME,
    R_ENV_SERVER_PORT,
    R_ENV_SERVER_PROTOCOL,
    R_ENV_URL_SCHEME,
    R_ENV_HEADER,
    R_ENV_INPUT,
    R_ENV_ERRORS,
    R_ENV_FLAGS,
    R_ENV_CONFIG,
    R_ENV_V2,
    R_ENV_V3,
    R_SRV_CALL_ARGS,
    R_SRV_RESPONDER,
    R_SRV_BODY_INIT,
    R_SRV_INPUT_RESULT,
    R_SRV_INPUT_EOF,
    R_SRV_INPUT_LENGTH,
    R_SRV_INPUT_REWIND,
    R_SRV_STATE_NOT_ENFORCED,
    R_SRV_NEXT_AFTER_DONE,
    R_SRV_NEXT_AFTER_CLOSE,
    R_SRV_CLOSE_TWICE,
    R_SRV_BODY_NOT_CLOSED,
    R_APP_CALL_RESULT,
    R_APP_DECLINED_LATE,
    R_APP_START_RESPONSE_TWICE,
    R_APP_STATUS,
    R_APP_REASON,
    R_APP_HEADERS_ARRAY,
    R_APP_HEADER_STATUS,
    R_APP_HEADER_NAME,
    R_APP_HEADER_NAME_STRICT,
    R_APP_HEADER_VALUE,
    R_APP_HEADER_VALUE_TAB,
    R_APP_HOP_BY_HOP,
    R_APP_CONTENT_LENGTH_HEADER,
    R_APP_CONTENT_TYPE_MISSING,
    R_APP_CONTENT_TYPE_FORBIDDEN,
    R_APP_EXC_INFO,
    R_APP_HEADERS_SENT_IGNORED,
    R_APP_WRITE_BEFORE_START,
    R_APP_WRITE_IN_NEXT,
    R_APP_WRITE_ARGS,
    R_APP_RESPONDER_LATE,
    R_APP_CHUNK_BEFORE_START,
    R_APP_NO_START_RESPONSE,
    R_APP_CHUNK_NULL,
    R_APP_NEXT_RESULT,
    R_APP_TOTAL_LENGTH,
    R_APP_TOTAL_LENGTH_MISMATCH,
    R_APP_CONTENT_LENGTH_MISMATCH,
    R_APP_HEAD_BODY,
    R_APP_BODY_FORBIDDEN,
    R_APP_INPUT_ARGS,
    R_APP_INPUT_LATE,
    R_APP_ERRORS_ARGS,
    R_APP_FILE_RANGE,
    R_SRV_NEXT_REENTERED,
    R_APP_PENDING_UNSUPPORTED,
    R_APP_UPGRADE_NOT_ASKED,
    R_APP_UPGRADE_BODY,
    R_APP_UPGRADE_AFTER_CLOSE,
    R__COUNT
};

static const struct csgi_validator_rule val_rules[R__COUNT] = {
    [R_SRV_NEXT_REENTERED] = {"srv.next_reentered", "-", 0,
                              "the server called next() or close() while next() of the same body "
                              "ran (a resume() must not re-enter it, SPEC 4.14)"},
    [R_APP_PENDING_UNSUPPORTED] = {"app.pending_unsupported", "-", 0,
                                   "CSGI_PENDING from call() or next() on a host without resume() "
                                   "(host API below version 3)"},
    [R_APP_UPGRADE_NOT_ASKED] = {"app.upgrade_not_asked", "-", 0,
                                 "status 101 or upgrade() for a request that did not ask for an "
                                 "upgrade (SPEC 4.15)"},
    [R_APP_UPGRADE_BODY] = {"app.upgrade_body", "-", 0,
                            "a response with status 101 has body bytes"},
    [R_APP_UPGRADE_AFTER_CLOSE] = {"app.upgrade_after_close", "-", 0,
                                   "an upgraded connection used after its on_close() (SPEC 4.15)"},
    [R_ENV_VERSION] = {"env.version", "1, 2, 6", 0,
                       "the environ's version is 0 (the server did not fill it)"},
    [R_ENV_REQUEST] = {"env.request", "-", 0, "env->request is NULL"},
    [R_ENV_STRING] = {"env.string", "5", 0,
                      "an environ string has a NULL pointer with a length, or a NUL byte"},
    [R_ENV_REQUEST_METHOD] = {"env.request_method", "2", 0,
                              "request_method is empty or not an RFC 9110 token"},
    [R_ENV_METHOD_UNKNOWN] = {"env.method_unknown", "10", CSGI_VALIDATOR_STRICT_METHOD,
                              "request_method is not GET, HEAD, POST, OPTIONS, PATCH, PUT, "
                              "DELETE or TRACE"},
    [R_ENV_SCRIPT_NAME] = {"env.script_name", "11", 0,
                           "script_name is neither empty nor starting with '/'"},
    [R_ENV_SCRIPT_NAME_SLASH] = {"env.script_name_slash", "15", 0,
                                 "script_name is \"/\" (a root mount is \"\")"},
    [R_ENV_PATH_INFO] = {"env.path_info", "12", 0,
                         "path_info is neither empty nor starting with '/'"},
    [R_ENV_PATH_EMPTY] = {"env.path_empty", "14", 0,
                          "script_name and path_info are both empty (path_info must be \"/\")"},
    [R_ENV_QUERY_STRING] = {"env.query_string", "4", 0,
                            "query_string is NULL (it is \"\" when there is no query)"},
    [R_ENV_RAW_TARGET] = {"env.raw_target", "-", 0,
                          "raw_target is not in origin form (or \"*\" for OPTIONS)"},
    [R_ENV_CONTENT_LENGTH] = {"env.content_length", "13", 0, "content_length is below -1"},
    [R_ENV_CONTENT_TYPE_HEADER] = {"env.content_type_header", "3", 0,
                                   "content_type disagrees with the Content-Type header"},
    [R_ENV_CONTENT_LENGTH_HEADER] = {"env.content_length_header", "3", 0,
                                     "content_length disagrees with the Content-Length header"},
    [R_ENV_SERVER_NAME] = {"env.server_name", "2", 0, "server_name is empty"},
    [R_ENV_SERVER_PORT] = {"env.server_port", "2", 0, "server_port is empty or not decimal digits"},
    [R_ENV_SERVER_PROTOCOL] = {"env.server_protocol", "-", 0,
                               "server_protocol does not match HTTP/<d>[.<d>]"},
    [R_ENV_URL_SCHEME] = {"env.url_scheme", "7", 0, "url_scheme is not \"http\" or \"https\""},
    [R_ENV_HEADER] = {"env.header", "5", 0,
                      "a request header has an invalid name or value, or the array is NULL"},
    [R_ENV_INPUT] = {"env.input", "2, 8", 0,
                     "input is NULL, unversioned, or lacks read, readline or rewind"},
    [R_ENV_ERRORS] = {"env.errors", "2, 9", 0,
                      "errors is NULL, unversioned, or lacks log, write or flush"},
    [R_ENV_FLAGS] = {"env.flags", "2", 0,
                     "INPUT_TERMINATED is not set, TLS disagrees with url_scheme, or unknown "
                     "flag bits are set"},
    [R_ENV_CONFIG] = {"env.config", "-", 0,
                      "config is NULL with items, or an item has a NULL key or value"},
    [R_ENV_V2] = {"env.v2", "-", 0,
                  "environ version 2: host is NULL or older than version 2, request_id is "
                  "empty or not printable, or input_length is below -1 or differs from "
                  "content_length"},
    [R_ENV_V3] = {"env.v3", "-", 0,
                  "environ version 3: tls is NULL with url_scheme https or set without it, or "
                  "one of its strings is missing (SPEC 4.2.1)"},
    [R_SRV_CALL_ARGS] = {"srv.call_args", "16", 0,
                         "call() or next() got a NULL environ, responder, body or chunk"},
    [R_SRV_RESPONDER] = {"srv.responder", "18", 0,
                         "the responder is unversioned or lacks start_response or write"},
    [R_SRV_BODY_INIT] = {"srv.body_init", "-", 0,
                         "the body handed to call() is not fresh (version 0, or ctx, next or "
                         "close set)"},
    [R_SRV_INPUT_RESULT] = {"srv.input_result", "17", 0,
                            "input read() or readline() returned more than asked, or readline() "
                            "went past a newline"},
    [R_SRV_INPUT_EOF] = {"srv.input_eof", "17", 0,
                         "input returned data after it had reported the end of the body"},
    [R_SRV_INPUT_LENGTH] = {"srv.input_length", "17", 0,
                            "input returned more or fewer bytes than content_length (or, when "
                            "that is -1, input_length)"},
    [R_SRV_INPUT_REWIND] = {"srv.input_rewind", "-", 0,
                            "rewind() failed although INPUT_BUFFERED is set, or returned a code "
                            "other than 0 or CSGI_ENOTSUP"},
    [R_SRV_STATE_NOT_ENFORCED] = {"srv.state_not_enforced", "-", 0,
                                  "the server accepted a call it must refuse (second "
                                  "start_response, late exc_info, invalid head, write out of "
                                  "order or past Content-Length)"},
    [R_SRV_NEXT_AFTER_DONE] = {"srv.next_after_done", "33", 0,
                               "the server called next() after CSGI_DONE"},
    [R_SRV_NEXT_AFTER_CLOSE] = {"srv.next_after_close", "33", 0,
                                "the server called next() after close()"},
    [R_SRV_CLOSE_TWICE] = {"srv.close_twice", "20", 0, "the server called close() twice"},
    [R_SRV_BODY_NOT_CLOSED] = {"srv.body_not_closed", "20", 0,
                               "the request finished without close() of the body"},
    [R_APP_CALL_RESULT] = {"app.call_result", "30", 0,
                           "call() returned a positive value (want CSGI_OK or an error)"},
    [R_APP_DECLINED_LATE] = {"app.declined_late", "-", 0,
                             "CSGI_EDECLINED after start_response() or from next()"},
    [R_APP_START_RESPONSE_TWICE] = {"app.start_response_twice", "-", 0,
                                    "start_response() called again without exc_info"},
    [R_APP_STATUS] = {"app.status", "22", 0, "status is outside 200..599"},
    [R_APP_REASON] = {"app.reason", "23", 0,
                      "the reason phrase has a control character or a NULL pointer"},
    [R_APP_HEADERS_ARRAY] = {"app.headers_array", "24", 0,
                             "the header array, or a name or value pointer, is NULL with a "
                             "length"},
    [R_APP_HEADER_STATUS] = {"app.header_status", "25", 0, "a Status header was given"},
    [R_APP_HEADER_NAME] = {"app.header_name", "26", 0, "a header name is not an RFC 9110 token"},
    [R_APP_HEADER_NAME_STRICT] = {"app.header_name_strict", "26", CSGI_VALIDATOR_STRICT_HEADERS,
                                  "a header name does not match ^[a-zA-Z][a-zA-Z0-9_-]*$ or "
                                  "ends in '-' or '_'"},
    [R_APP_HEADER_VALUE] = {"app.header_value", "27", 0,
                            "a header value has a control character (CR, LF, NUL, ...)"},
    [R_APP_HEADER_VALUE_TAB] = {"app.header_value_tab", "27", CSGI_VALIDATOR_STRICT_HEADERS,
                                "a header value has a TAB"},
    [R_APP_HOP_BY_HOP] = {"app.hop_by_hop", "-", 0, "a hop-by-hop header was given"},
    [R_APP_CONTENT_LENGTH_HEADER] = {"app.content_length_header", "-", 0,
                                     "Content-Length is invalid, repeated, or given with "
                                     "204/304"},
    [R_APP_CONTENT_TYPE_MISSING] = {"app.content_type_missing", "28",
                                    CSGI_VALIDATOR_STRICT_CONTENT_TYPE,
                                    "no Content-Type header (required unless 204/304)"},
    [R_APP_CONTENT_TYPE_FORBIDDEN] = {"app.content_type_forbidden", "28",
                                      CSGI_VALIDATOR_STRICT_CONTENT_TYPE,
                                      "a Content-Type header with status 204 or 304"},
    [R_APP_EXC_INFO] = {"app.exc_info", "29", 0,
                        "exc_info has version 0 (the server must refuse it) or a code that is "
                        "not negative"},
    [R_APP_HEADERS_SENT_IGNORED] = {"app.headers_sent_ignored", "-", 0,
                                    "start_response() returned CSGI_EHEADERS_SENT but the "
                                    "application went on instead of returning that code"},
    [R_APP_WRITE_BEFORE_START] = {"app.write_before_start", "-", 0,
                                  "write() before a successful start_response()"},
    [R_APP_WRITE_IN_NEXT] = {"app.write_in_next", "-", 0, "write() from inside next()"},
    [R_APP_WRITE_ARGS] = {"app.write_args", "34", 0, "write() got a NULL pointer with a length"},
    [R_APP_RESPONDER_LATE] = {"app.responder_late", "-", 0,
                              "start_response() or write() after the body was closed"},
    [R_APP_CHUNK_BEFORE_START] = {"app.chunk_before_start", "19", 0,
                                  "a non-empty chunk before start_response()"},
    [R_APP_NO_START_RESPONSE] = {"app.no_start_response", "19", 0,
                                 "the body ended without a successful start_response()"},
    [R_APP_CHUNK_NULL] = {"app.chunk_null", "32", 0, "a chunk has a NULL pointer with a length"},
    [R_APP_NEXT_RESULT] = {"app.next_result", "32", 0,
                           "next() returned a positive value other than CSGI_DONE"},
    [R_APP_TOTAL_LENGTH] = {"app.total_length", "-", 0, "body total_length is below -1"},
    [R_APP_TOTAL_LENGTH_MISMATCH] = {"app.total_length_mismatch", "-", 0,
                                     "the body's chunks do not add up to its total_length"},
    [R_APP_CONTENT_LENGTH_MISMATCH] = {"app.content_length_mismatch", "-", 0,
                                       "the bytes written and yielded differ from "
                                       "Content-Length"},
    [R_APP_HEAD_BODY] = {"app.head_body", "-", CSGI_VALIDATOR_STRICT_HEAD,
                         "a response to HEAD has body bytes"},
    [R_APP_BODY_FORBIDDEN] = {"app.body_forbidden", "-", 0,
                              "a response with status 204 or 304 has body bytes"},
    [R_APP_INPUT_ARGS] = {"app.input_args", "35, 36", 0,
                          "input read() or readline() got a NULL buffer with a length"},
    [R_APP_INPUT_LATE] = {"app.input_late", "-", 0,
                          "input used after the body was closed or call() failed"},
    [R_APP_ERRORS_ARGS] = {"app.errors_args", "38", 0,
                           "errors log() got a bad level, or log()/write() a NULL pointer with "
                           "a length"},
    [R_APP_FILE_RANGE] = {"app.file_range", "-", 0,
                          "a body_from_fd() body asks for more bytes than its file has (offset + "
                          "count past the end of a regular file)"},
};

/*
 * An upgraded connection as the application sees it through a validator
 * (SPEC 4.15): the host's, and whether on_close() ran. Kept after the close
 * (the last VAL_UP_KEEP closed ones), so that a later use is recognised.
 */
struct val_up {
    uint32_t magic;
    int closed;
    struct csgi_validator *v;
    struct csgi_upgrade *host_u;
    const struct csgi_upgrade_handler *app;
    void *arg;
    struct val_up *next_closed;
};

#define VAL_UP_MAGIC 0x56555047u
#define VAL_UP_KEEP  256

struct csgi_validator {
    const struct csgi_host_api *api;
    /* The host table the application sees: upgrade() and its functions wrapped (version 4). */
    struct csgi_host_api host;
    pthread_mutex_t up_lock;
    struct val_up *closed_head, *closed_tail;
    size_t n_closed;
    csgi_app_fn app;
    void *app_state;
    uint32_t flags;
    csgi_validator_report_fn report;
    void *report_arg;
    atomic_uint_least64_t violations;
};

struct val_req;

/*
 * What a stack of validators has reported during one server callback (a
 * call(), next() or close() of the outermost validator, and the finished
 * callbacks). A validator that finds another one outside it (through the
 * responder, errors or input stream it was handed: see val_outer_of()) shares
 * that one's ledger, so that a violation seen by both is reported once: by
 * the first to see it, which is the outer one for what the server hands in
 * and the inner one for what the application does.
 */
struct val_ledger {
    /* The validator that reported each rule first in this callback, or NULL. */
    const struct val_req *first[R__COUNT];
};

/* Per-request state, from the request arena. */
struct val_req {
    struct csgi_validator *v;
    /* The stack's ledger: &own for the outermost validator, else the outer one's. */
    struct val_ledger *ledger;
    struct val_ledger own;
    const struct csgi_environ *outer_env;
    const struct csgi_responder *outer_resp;
    const struct csgi_input *outer_input;
    const struct csgi_errors *outer_errors;
    int64_t content_length;
    uint32_t env_flags;

    /* What the application sees. */
    struct csgi_environ env;
    struct csgi_input input;
    struct csgi_errors errors;
    struct csgi_responder resp;
    struct csgi_body inner;

    int is_head;
    int failed;
    int in_next;
    int call_failed;
    int body_installed;
    int file_body;
    int file_reported;
    int closed_at_finish;
    int started;
    int headers_sent;
    int pending_sent;
    int status;
    int upgrade_body_reported;
    int64_t declared_length;
    int done;
    int closed;
    int length_reported;
    int total_reported;
    int head_reported;
    int forbidden_reported;
    uint64_t written;
    uint64_t chunk_bytes;

    int input_eof;
    uint64_t input_pos;

    /* While the application's call() runs: the thread it runs on, and the link in val_calls. */
    pthread_t call_thread;
    struct val_req *call_next;
    /* Its upgrade() is being passed on (val_upgrade()): a lookup skips it. */
    int upgrading;
};

/* ------------------------------------------------------------------ */
/* Reporting                                                           */
/* ------------------------------------------------------------------ */

static void
val_default_report(const struct csgi_validator *v, const struct csgi_environ *env,
                   const char *message)
{
    if (env && env->errors && env->errors->version >= 1 && env->errors->log) {
        char line[600];
        int n = snprintf(line, sizeof(line), "csgi validator: %s", message);

        if (n > 0)
            env->errors->log(env->errors->ctx, CSGI_LOG_ERROR, line,
                             (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
        return;
    }
    if (v->api->log)
        v->api->log(v->api->ctx, CSGI_LOG_ERROR, "csgi validator: %s", message);
}

/*
 * True when another validator of the stack already reported @p rule in this
 * callback: the violation is the same one, seen again from outside or inside.
 * Otherwise records @p rq as the one reporting it.
 */
static int
val_reported_by_other(struct val_req *rq, enum val_rule rule)
{
    const struct val_req **first = &rq->ledger->first[rule];

    if (*first && *first != rq)
        return 1;
    *first = rq;
    return 0;
}

static void val_vemit(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env,
                      enum val_rule rule, const char *fmt, va_list ap) CSGI_PRINTF(5, 0);

/* Report @p rule, unless @p rq (NULL before per-request state exists) is stacked and it was. */
static void
val_vemit(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env,
          enum val_rule rule, const char *fmt, va_list ap)
{
    const char *id = val_rules[rule].id;
    char message[512];
    int n;

    if (rq && val_reported_by_other(rq, rule))
        return;
    n = snprintf(message, sizeof(message), "%s: ", id);
    if (n < 0 || (size_t)n >= sizeof(message))
        n = 0;
    vsnprintf(message + n, sizeof(message) - (size_t)n, fmt, ap);
    atomic_fetch_add(&v->violations, 1);
    if (v->report)
        v->report(v->report_arg, env, id, message);
    else
        val_default_report(v, env, message);
}

static void val_emit(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env,
                     enum val_rule rule, const char *fmt, ...) CSGI_PRINTF(5, 6);

/* Report a violation of the server's call(); @p rq is NULL when the request has no state. */
static void
val_emit(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env,
         enum val_rule rule, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    val_vemit(v, rq, env, rule, fmt, ap);
    va_end(ap);
}

static void val_report(struct val_req *rq, enum val_rule rule, const char *fmt, ...)
    CSGI_PRINTF(3, 4);

/* Report a violation during a request; in fail-fast mode the request now fails. */
static void
val_report(struct val_req *rq, enum val_rule rule, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    val_vemit(rq->v, rq, rq->outer_env, rule, fmt, ap);
    va_end(ap);
    /* Also when another validator reported it: the violation still happened. */
    if (rq->v->flags & CSGI_VALIDATOR_FAIL_FAST)
        rq->failed = 1;
}

static int
val_strict(const struct csgi_validator *v, enum val_rule rule)
{
    return (v->flags & val_rules[rule].strict_flag) != 0;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int
val_eq(struct csgi_str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

static int
val_all_digits(struct csgi_str s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return 0;
    }
    return 1;
}

/* HTTP/<d> or HTTP/<d>.<d> (Rack::Lint). */
static int
val_is_protocol(struct csgi_str s)
{
    const char *p = s.ptr;

    if (s.len != 6 && s.len != 8)
        return 0;
    if (memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9')
        return 0;
    return s.len == 6 || (p[6] == '.' && p[7] >= '0' && p[7] <= '9');
}

/* wsgiref's ^[a-zA-Z][a-zA-Z0-9\-_]*$, not ending in '-' or '_'. */
static int
val_is_wsgiref_name(struct csgi_str s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

        if (i == 0 && !alpha)
            return 0;
        if (!alpha && !(c >= '0' && c <= '9') && c != '-' && c != '_')
            return 0;
    }
    return s.ptr[s.len - 1] != '-' && s.ptr[s.len - 1] != '_';
}

static int
val_fmt_len(struct csgi_str s)
{
    return s.ptr ? (s.len > 200 ? 200 : (int)s.len) : 0;
}

static const char *
val_fmt_ptr(struct csgi_str s)
{
    return s.ptr ? s.ptr : "";
}

/* ------------------------------------------------------------------ */
/* Environ checks                                                      */
/* ------------------------------------------------------------------ */

/* Report env.string for a bad field; returns 1 when the field is usable. */
static int
val_env_str(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env,
            const char *field, struct csgi_str s, int *count)
{
    if (s.len && !s.ptr) {
        val_emit(v, rq, env, R_ENV_STRING, "%s has a NULL pointer and length %zu", field, s.len);
        (*count)++;
        return 0;
    }
    if (s.len && memchr(s.ptr, '\0', s.len)) {
        val_emit(v, rq, env, R_ENV_STRING, "%s contains a NUL byte", field);
        (*count)++;
        return 0;
    }
    return 1;
}

#define VAL_ENV(rule, ...)                                                                         \
    do {                                                                                           \
        val_emit(v, rq, env, rule, __VA_ARGS__);                                                   \
        count++;                                                                                   \
    } while (0)

/* Check the request headers; compare them with content_type when @p ctype_ok. */
static void
val_check_env_headers(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env,
                      int ctype_ok, int *countp)
{
    struct csgi_str ctype = {NULL, 0}, clen = {NULL, 0};
    int have_ctype = 0, have_clen = 0, count = 0;

    if (env->n_headers && !env->headers) {
        VAL_ENV(R_ENV_HEADER, "headers is NULL with n_headers %zu", env->n_headers);
        *countp += count;
        return;
    }
    for (size_t i = 0; i < env->n_headers; i++) {
        const struct csgi_header *h = &env->headers[i];

        if (!csgi__is_token(h->name.ptr, h->name.len)) {
            VAL_ENV(R_ENV_HEADER, "request header %zu name \"%.*s\" is not a token", i,
                    val_fmt_len(h->name), val_fmt_ptr(h->name));
            continue;
        }
        if (!csgi__is_field_value(h->value.ptr, h->value.len)) {
            VAL_ENV(R_ENV_HEADER, "request header \"%.*s\" has an invalid value",
                    val_fmt_len(h->name), h->name.ptr);
            continue;
        }
        if (!have_ctype && csgi__str_ieq(h->name.ptr, h->name.len, "content-type")) {
            ctype = h->value;
            have_ctype = 1;
        } else if (!have_clen && csgi__str_ieq(h->name.ptr, h->name.len, "content-length")) {
            clen = h->value;
            have_clen = 1;
        }
    }
    if (!ctype_ok) {
        /* env.string already reported content_type. */
    } else if (have_ctype &&
               (!env->content_type.ptr || env->content_type.len != ctype.len ||
                (ctype.len && memcmp(env->content_type.ptr, ctype.ptr, ctype.len) != 0))) {
        VAL_ENV(R_ENV_CONTENT_TYPE_HEADER, "content_type is \"%.*s\", the header says \"%.*s\"",
                val_fmt_len(env->content_type), val_fmt_ptr(env->content_type), val_fmt_len(ctype),
                val_fmt_ptr(ctype));
    } else if (!have_ctype && env->content_type.ptr) {
        VAL_ENV(R_ENV_CONTENT_TYPE_HEADER,
                "content_type is \"%.*s\" but the request has no Content-Type header",
                val_fmt_len(env->content_type), val_fmt_ptr(env->content_type));
    }
    if (have_clen && csgi__parse_content_length(clen.ptr, clen.len) != env->content_length) {
        VAL_ENV(R_ENV_CONTENT_LENGTH_HEADER, "content_length is %lld, the header says \"%.*s\"",
                (long long)env->content_length, val_fmt_len(clen), val_fmt_ptr(clen));
    } else if (!have_clen && env->content_length >= 0) {
        VAL_ENV(R_ENV_CONTENT_LENGTH_HEADER,
                "content_length is %lld but the request has no Content-Length header",
                (long long)env->content_length);
    }
    *countp += count;
}

/* The request line's fields: method, script_name, path_info, query, target, headers. */
static int
val_check_env_line(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env)
{
    static const char *const methods[] = {"GET",   "HEAD", "POST",   "OPTIONS",
                                          "PATCH", "PUT",  "DELETE", "TRACE"};
    int count = 0;
    int method_ok, script_ok, path_ok, target_ok;

    if (env->version < 1)
        VAL_ENV(R_ENV_VERSION, "version is %u", (unsigned)env->version);
    if (!env->request)
        VAL_ENV(R_ENV_REQUEST, "request is NULL: host api calls cannot work");

    method_ok = val_env_str(v, rq, env, "request_method", env->request_method, &count);
    script_ok = val_env_str(v, rq, env, "script_name", env->script_name, &count);
    path_ok = val_env_str(v, rq, env, "path_info", env->path_info, &count);
    target_ok = val_env_str(v, rq, env, "raw_target", env->raw_target, &count);

    if (method_ok && !csgi__is_token(env->request_method.ptr, env->request_method.len)) {
        VAL_ENV(R_ENV_REQUEST_METHOD, "request_method \"%.*s\" is not a token",
                val_fmt_len(env->request_method), val_fmt_ptr(env->request_method));
        method_ok = 0;
    }
    if (method_ok && val_strict(v, R_ENV_METHOD_UNKNOWN)) {
        int known = 0;

        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
            known |= val_eq(env->request_method, methods[i]);
        if (!known)
            VAL_ENV(R_ENV_METHOD_UNKNOWN, "request_method \"%.*s\" is unusual",
                    val_fmt_len(env->request_method), env->request_method.ptr);
    }
    if (script_ok && env->script_name.len == 1 && env->script_name.ptr[0] == '/') {
        VAL_ENV(R_ENV_SCRIPT_NAME_SLASH, "script_name is \"/\"");
    } else if (script_ok && env->script_name.len && env->script_name.ptr[0] != '/') {
        VAL_ENV(R_ENV_SCRIPT_NAME, "script_name \"%.*s\" does not start with '/'",
                val_fmt_len(env->script_name), env->script_name.ptr);
    }
    if (path_ok && env->path_info.len && env->path_info.ptr[0] != '/')
        VAL_ENV(R_ENV_PATH_INFO, "path_info \"%.*s\" does not start with '/'",
                val_fmt_len(env->path_info), env->path_info.ptr);
    if (script_ok && path_ok && env->script_name.len == 0 && env->path_info.len == 0)
        VAL_ENV(R_ENV_PATH_EMPTY, "script_name and path_info are both empty");

    if (!env->query_string.ptr)
        VAL_ENV(R_ENV_QUERY_STRING, "query_string is NULL");
    else
        val_env_str(v, rq, env, "query_string", env->query_string, &count);

    if (target_ok) {
        struct csgi_str t = env->raw_target;
        int star = val_eq(t, "*") && method_ok && val_eq(env->request_method, "OPTIONS");

        if (t.len == 0 || (t.ptr[0] != '/' && !star) || memchr(t.ptr, '#', t.len))
            VAL_ENV(R_ENV_RAW_TARGET, "raw_target \"%.*s\" is not in origin form", val_fmt_len(t),
                    val_fmt_ptr(t));
    }

    if (env->content_length < -1)
        VAL_ENV(R_ENV_CONTENT_LENGTH, "content_length is %lld", (long long)env->content_length);
    val_check_env_headers(
        v, rq, env, val_env_str(v, rq, env, "content_type", env->content_type, &count), &count);

    return count;
}

/* The server's fields: name, port, protocol, scheme, remote address, flags. */
static int
val_check_env_server(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env)
{
    int count = 0;

    if (val_env_str(v, rq, env, "server_name", env->server_name, &count) && !env->server_name.len)
        VAL_ENV(R_ENV_SERVER_NAME, "server_name is empty");
    if (val_env_str(v, rq, env, "server_port", env->server_port, &count) &&
        !val_all_digits(env->server_port))
        VAL_ENV(R_ENV_SERVER_PORT, "server_port \"%.*s\" is not a decimal number",
                val_fmt_len(env->server_port), val_fmt_ptr(env->server_port));
    if (val_env_str(v, rq, env, "server_protocol", env->server_protocol, &count) &&
        !val_is_protocol(env->server_protocol))
        VAL_ENV(R_ENV_SERVER_PROTOCOL, "server_protocol is \"%.*s\"",
                val_fmt_len(env->server_protocol), val_fmt_ptr(env->server_protocol));
    if (val_env_str(v, rq, env, "url_scheme", env->url_scheme, &count)) {
        int https = val_eq(env->url_scheme, "https");

        if (!https && !val_eq(env->url_scheme, "http"))
            VAL_ENV(R_ENV_URL_SCHEME, "url_scheme is \"%.*s\"", val_fmt_len(env->url_scheme),
                    val_fmt_ptr(env->url_scheme));
        else if (!!(env->flags & CSGI_ENV_TLS) != https)
            VAL_ENV(R_ENV_FLAGS, "CSGI_ENV_TLS is %s but url_scheme is \"%.*s\"",
                    (env->flags & CSGI_ENV_TLS) ? "set" : "clear", val_fmt_len(env->url_scheme),
                    env->url_scheme.ptr);
    }
    val_env_str(v, rq, env, "remote_addr", env->remote_addr, &count);

    if (!(env->flags & CSGI_ENV_INPUT_TERMINATED))
        VAL_ENV(R_ENV_FLAGS, "CSGI_ENV_INPUT_TERMINATED is not set");
    if (env->flags & ~(uint32_t)0x3f)
        VAL_ENV(R_ENV_FLAGS, "unknown flag bits 0x%x", (unsigned)(env->flags & ~(uint32_t)0x3f));

    return count;
}

/* The streams and the configuration. */
static int
val_check_env_streams(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env)
{
    int count = 0;

    if (!env->input)
        VAL_ENV(R_ENV_INPUT, "input is NULL");
    else if (env->input->version < 1 || !env->input->read || !env->input->readline ||
             !env->input->rewind)
        VAL_ENV(R_ENV_INPUT, "input (version %u) lacks a function", (unsigned)env->input->version);
    if (!env->errors)
        VAL_ENV(R_ENV_ERRORS, "errors is NULL");
    else if (env->errors->version < 1 || !env->errors->log || !env->errors->write ||
             !env->errors->flush)
        VAL_ENV(R_ENV_ERRORS, "errors (version %u) lacks a function",
                (unsigned)env->errors->version);

    if (env->n_config && !env->config) {
        VAL_ENV(R_ENV_CONFIG, "config is NULL with n_config %zu", env->n_config);
    } else {
        for (size_t i = 0; i < env->n_config; i++) {
            if (!env->config[i].key || !env->config[i].value)
                VAL_ENV(R_ENV_CONFIG, "config item %zu has a NULL key or value", i);
        }
    }
    return count;
}

/* The fields of environ version 2 (SPEC 4.2 invariants 12 and 16). */
static int
val_check_env_v2(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env)
{
    int count = 0;
    size_t plain = 0;

    if (!CSGI_HAS(env, 2))
        return 0;
    if (!CSGI_HAS(env->host, 2))
        VAL_ENV(R_ENV_V2, "host is %s", env->host ? "older than version 2" : "NULL");
    while (env->request_id.ptr && plain < env->request_id.len &&
           env->request_id.ptr[plain] > 0x20 && env->request_id.ptr[plain] < 0x7f &&
           env->request_id.ptr[plain] != '"' && env->request_id.ptr[plain] != '\\')
        plain++;
    if (!env->request_id.len || plain != env->request_id.len || env->request_id.len > 64)
        VAL_ENV(R_ENV_V2, "request_id (%zu bytes) is empty, too long or not a plain token",
                env->request_id.len);
    if (env->input_length < -1 ||
        (env->content_length >= 0 && env->input_length != env->content_length))
        VAL_ENV(R_ENV_V2, "input_length is %lld, content_length %lld", (long long)env->input_length,
                (long long)env->content_length);
    return count;
}

/* The field of environ version 3 (SPEC 4.2.1): the TLS facts, exactly on TLS. */
static int
val_check_env_v3(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env)
{
    int count = 0;
    const struct csgi_tls *t = env->tls;

    if (!CSGI_HAS(env, 3))
        return 0;
    /* Against url_scheme: a flag that disagrees with it is env.flags's report. */
    if (!t != !val_eq(env->url_scheme, "https")) {
        VAL_ENV(R_ENV_V3, "tls is %s but url_scheme is \"%.*s\"", t ? "set" : "NULL",
                val_fmt_len(env->url_scheme), val_fmt_ptr(env->url_scheme));
        return count;
    }
    if (t && (t->version < 1 || !t->protocol.ptr || !t->cipher.ptr || !t->sni.ptr ||
              !t->client_verify.ptr || !t->client_s_dn.ptr || !t->client_i_dn.ptr))
        VAL_ENV(R_ENV_V3, "tls (version %u) has a missing string", (unsigned)t->version);
    return count;
}

/* Check everything the server put in the environ; returns the number of violations. */
static int
val_check_env(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env)
{
    return val_check_env_line(v, rq, env) + val_check_env_server(v, rq, env) +
           val_check_env_streams(v, rq, env) + val_check_env_v2(v, rq, env) +
           val_check_env_v3(v, rq, env);
}

#undef VAL_ENV

/* ------------------------------------------------------------------ */
/* Input and errors wrappers                                           */
/* ------------------------------------------------------------------ */

static void
val_input_check_late(struct val_req *rq, const char *fn)
{
    if (rq->closed || rq->call_failed)
        val_report(rq, R_APP_INPUT_LATE, "input %s() after %s", fn,
                   rq->closed ? "the body was closed" : "call() failed");
}

static void
val_input_result(struct val_req *rq, const char *fn, int64_t r, const void *buf, size_t n, int line)
{
    if (r > 0) {
        if ((uint64_t)r > n)
            val_report(rq, R_SRV_INPUT_RESULT, "input %s() returned %lld for a %zu-byte buffer", fn,
                       (long long)r, n);
        else if (line && r > 1 && memchr(buf, '\n', (size_t)r - 1))
            val_report(rq, R_SRV_INPUT_RESULT, "input readline() returned bytes past a newline");
        if (rq->input_eof)
            val_report(rq, R_SRV_INPUT_EOF, "input %s() returned %lld bytes after end of body", fn,
                       (long long)r);
        rq->input_pos += (uint64_t)r;
        if (rq->content_length >= 0 && rq->input_pos > (uint64_t)rq->content_length)
            val_report(rq, R_SRV_INPUT_LENGTH, "input gave %llu bytes, content_length is %lld",
                       (unsigned long long)rq->input_pos, (long long)rq->content_length);
    } else if (r == 0 && n > 0) {
        if (!rq->input_eof && rq->content_length >= 0 &&
            rq->input_pos < (uint64_t)rq->content_length)
            val_report(rq, R_SRV_INPUT_LENGTH,
                       "input ended after %llu bytes, content_length is %lld",
                       (unsigned long long)rq->input_pos, (long long)rq->content_length);
        rq->input_eof = 1;
    }
}

static int64_t
val_input_read(void *ctx, void *buf, size_t n)
{
    struct val_req *rq = ctx;
    int64_t r;

    val_input_check_late(rq, "read");
    if (!buf && n)
        val_report(rq, R_APP_INPUT_ARGS, "input read() got a NULL buffer for %zu bytes", n);
    if (rq->failed)
        return CSGI_EAPP;
    if (!rq->outer_input->read)
        return CSGI_ENOSYS;
    r = rq->outer_input->read(rq->outer_input->ctx, buf, n);
    val_input_result(rq, "read", r, buf, n, 0);
    return rq->failed ? CSGI_EAPP : r;
}

static int64_t
val_input_readline(void *ctx, void *buf, size_t n)
{
    struct val_req *rq = ctx;
    int64_t r;

    val_input_check_late(rq, "readline");
    if (!buf && n)
        val_report(rq, R_APP_INPUT_ARGS, "input readline() got a NULL buffer for %zu bytes", n);
    if (rq->failed)
        return CSGI_EAPP;
    if (!rq->outer_input->readline)
        return CSGI_ENOSYS;
    r = rq->outer_input->readline(rq->outer_input->ctx, buf, n);
    val_input_result(rq, "readline", r, buf, n, 1);
    return rq->failed ? CSGI_EAPP : r;
}

static int
val_input_rewind(void *ctx)
{
    struct val_req *rq = ctx;
    int r;

    val_input_check_late(rq, "rewind");
    if (rq->failed)
        return CSGI_EAPP;
    if (!rq->outer_input->rewind)
        return CSGI_ENOSYS;
    r = rq->outer_input->rewind(rq->outer_input->ctx);
    if (r == CSGI_OK) {
        rq->input_pos = 0;
        rq->input_eof = 0;
    } else if ((rq->env_flags & CSGI_ENV_INPUT_BUFFERED) || r != CSGI_ENOTSUP) {
        val_report(rq, R_SRV_INPUT_REWIND, "input rewind() returned %s%s", csgi_err_name(r),
                   (rq->env_flags & CSGI_ENV_INPUT_BUFFERED) ? " with INPUT_BUFFERED set" : "");
    }
    return rq->failed ? CSGI_EAPP : r;
}

static int
val_errors_log(void *ctx, int level, const char *msg, size_t len)
{
    struct val_req *rq = ctx;

    if (level < CSGI_LOG_ERROR || level > CSGI_LOG_TRACE)
        val_report(rq, R_APP_ERRORS_ARGS, "errors log() got level %d", level);
    if (!msg && len)
        val_report(rq, R_APP_ERRORS_ARGS, "errors log() got a NULL message of length %zu", len);
    /* The errors stream stays usable in fail-fast mode: it carries the diagnostics. */
    if (!rq->outer_errors->log)
        return CSGI_ENOSYS;
    return rq->outer_errors->log(rq->outer_errors->ctx, level, msg, len);
}

static int
val_errors_write(void *ctx, const char *text, size_t len)
{
    struct val_req *rq = ctx;

    if (!text && len)
        val_report(rq, R_APP_ERRORS_ARGS, "errors write() got a NULL text of length %zu", len);
    if (!rq->outer_errors->write)
        return CSGI_ENOSYS;
    return rq->outer_errors->write(rq->outer_errors->ctx, text, len);
}

static int
val_errors_flush(void *ctx)
{
    struct val_req *rq = ctx;

    if (!rq->outer_errors->flush)
        return CSGI_ENOSYS;
    return rq->outer_errors->flush(rq->outer_errors->ctx);
}

/* ------------------------------------------------------------------ */
/* Responder wrappers                                                  */
/* ------------------------------------------------------------------ */

/*
 * Report every problem of a response head. Returns 1 when the head is one the
 * server must refuse (csgi__check_response_head fails); stores the declared
 * Content-Length in *length otherwise.
 */
static int
val_check_head(struct val_req *rq, int status, struct csgi_str reason,
               const struct csgi_header *headers, size_t n_headers, int64_t *length)
{
    int have_ctype = 0, have_clen = 0, no_body = status == 204 || status == 304;

    if (status == 101 && !csgi__upgrade_asked(rq->outer_env))
        val_report(rq, R_APP_UPGRADE_NOT_ASKED, "status 101 for a request without an upgrade");
    else if ((status < 200 && status != 101) || status > 599)
        val_report(rq, R_APP_STATUS, "status %d is outside 200..599", status);
    if (reason.len && !reason.ptr)
        val_report(rq, R_APP_REASON, "reason has a NULL pointer and length %zu", reason.len);
    else if (reason.len && !csgi__is_reason(reason.ptr, reason.len))
        val_report(rq, R_APP_REASON, "reason \"%.*s\" has a control character", val_fmt_len(reason),
                   reason.ptr);
    if (n_headers && !headers) {
        val_report(rq, R_APP_HEADERS_ARRAY, "headers is NULL with n_headers %zu", n_headers);
        return 1;
    }
    for (size_t i = 0; i < n_headers; i++) {
        struct csgi_str name = headers[i].name, value = headers[i].value;

        if ((name.len && !name.ptr) || (value.len && !value.ptr)) {
            val_report(rq, R_APP_HEADERS_ARRAY, "header %zu has a NULL pointer with a length", i);
            continue;
        }
        if (!csgi__is_token(name.ptr, name.len)) {
            val_report(rq, R_APP_HEADER_NAME, "header name \"%.*s\" is not a token",
                       val_fmt_len(name), val_fmt_ptr(name));
            continue;
        }
        if (val_strict(rq->v, R_APP_HEADER_NAME_STRICT) && !val_is_wsgiref_name(name))
            val_report(rq, R_APP_HEADER_NAME_STRICT,
                       "header name \"%.*s\" does not match ^[a-zA-Z][a-zA-Z0-9_-]*$ or ends in "
                       "'-' or '_'",
                       val_fmt_len(name), name.ptr);
        if (!csgi__is_field_value(value.ptr, value.len))
            val_report(rq, R_APP_HEADER_VALUE, "value of header \"%.*s\" has a control character",
                       val_fmt_len(name), name.ptr);
        else if (val_strict(rq->v, R_APP_HEADER_VALUE_TAB) && memchr(value.ptr, '\t', value.len))
            val_report(rq, R_APP_HEADER_VALUE_TAB, "value of header \"%.*s\" has a TAB",
                       val_fmt_len(name), name.ptr);
        if (csgi__str_ieq(name.ptr, name.len, "status"))
            val_report(rq, R_APP_HEADER_STATUS, "header \"%.*s\" is not allowed", val_fmt_len(name),
                       name.ptr);
        if (csgi__is_hop_by_hop(name.ptr, name.len) &&
            !(status == 101 && (csgi__str_ieq(name.ptr, name.len, "upgrade") ||
                                csgi__str_ieq(name.ptr, name.len, "connection"))))
            val_report(rq, R_APP_HOP_BY_HOP, "hop-by-hop header \"%.*s\" is not allowed",
                       val_fmt_len(name), name.ptr);
        if (csgi__str_ieq(name.ptr, name.len, "content-type"))
            have_ctype = 1;
        if (csgi__str_ieq(name.ptr, name.len, "content-length")) {
            if (have_clen)
                val_report(rq, R_APP_CONTENT_LENGTH_HEADER, "Content-Length is repeated");
            else if (csgi__parse_content_length(value.ptr, value.len) < 0)
                val_report(rq, R_APP_CONTENT_LENGTH_HEADER, "Content-Length \"%.*s\" is invalid",
                           val_fmt_len(value), val_fmt_ptr(value));
            else if (no_body)
                val_report(rq, R_APP_CONTENT_LENGTH_HEADER,
                           "Content-Length is not allowed with status %d", status);
            have_clen = 1;
        }
    }
    if (val_strict(rq->v, R_APP_CONTENT_TYPE_MISSING) && !no_body && !have_ctype)
        val_report(rq, R_APP_CONTENT_TYPE_MISSING, "status %d has no Content-Type", status);
    if (val_strict(rq->v, R_APP_CONTENT_TYPE_FORBIDDEN) && no_body && have_ctype)
        val_report(rq, R_APP_CONTENT_TYPE_FORBIDDEN, "status %d has a Content-Type", status);

    return csgi__check_response_head(status, reason, headers, n_headers, length, NULL, 0) < 0;
}

static int
val_start_response(void *ctx, int status, struct csgi_str reason, const struct csgi_header *headers,
                   size_t n_headers, const struct csgi_exc_info *exc)
{
    struct val_req *rq = ctx;
    const struct csgi_responder *outer = rq->outer_resp;
    int64_t length = -1;
    int bad_state = 0, bad_head, r;

    if (rq->closed) {
        val_report(rq, R_APP_RESPONDER_LATE, "start_response() after the body was closed");
        bad_state = 1;
    }
    if (rq->pending_sent) {
        val_report(rq, R_APP_HEADERS_SENT_IGNORED,
                   "start_response() called again after CSGI_EHEADERS_SENT");
        rq->pending_sent = 0;
    }
    if (!exc && rq->started) {
        val_report(rq, R_APP_START_RESPONSE_TWICE,
                   "start_response(%d) without exc_info after start_response(%d)", status,
                   rq->status);
        bad_state = 1;
    }
    if (exc && exc->version < 1) {
        /* A version-0 struct defines no field: code and message are not read. */
        val_report(rq, R_APP_EXC_INFO, "exc_info has version 0");
        bad_state = 1;
    } else if (exc && exc->code >= 0) {
        val_report(rq, R_APP_EXC_INFO, "exc_info has code %d (not negative)", exc->code);
    }
    if (exc && rq->headers_sent)
        bad_state = 1;
    bad_head = val_check_head(rq, status, reason, headers, n_headers, &length);
    if (rq->failed)
        return CSGI_EAPP;
    if (!outer->start_response)
        return CSGI_ENOSYS;

    r = outer->start_response(outer->ctx, status, reason, headers, n_headers, exc);
    if (r == CSGI_OK) {
        if (bad_state || bad_head)
            val_report(rq, R_SRV_STATE_NOT_ENFORCED,
                       "start_response(%d) was accepted although it must be refused", status);
        rq->started = 1;
        rq->status = status;
        rq->declared_length = bad_head ? -1 : length;
    } else if (r == CSGI_EHEADERS_SENT) {
        rq->pending_sent = 1;
    }
    return rq->failed ? CSGI_EAPP : r;
}

/* Account for body bytes written or yielded; reports length and HEAD rules. */
static void
val_count_body(struct val_req *rq, size_t len, const char *how)
{
    uint64_t total = rq->written + rq->chunk_bytes + len;

    if (len == 0)
        return;
    if (rq->declared_length >= 0 && total > (uint64_t)rq->declared_length && !rq->length_reported) {
        val_report(rq, R_APP_CONTENT_LENGTH_MISMATCH,
                   "%s takes the body to %llu bytes, Content-Length is %lld", how,
                   (unsigned long long)total, (long long)rq->declared_length);
        rq->length_reported = 1;
    }
    if (rq->is_head && !rq->head_reported && val_strict(rq->v, R_APP_HEAD_BODY)) {
        val_report(rq, R_APP_HEAD_BODY, "%s of %zu bytes in a response to HEAD", how, len);
        rq->head_reported = 1;
    }
    if (rq->status == 101 && !rq->upgrade_body_reported) {
        val_report(rq, R_APP_UPGRADE_BODY, "%s of %zu bytes with status 101", how, len);
        rq->upgrade_body_reported = 1;
    }
    if ((rq->status == 204 || rq->status == 304) && !rq->forbidden_reported) {
        val_report(rq, R_APP_BODY_FORBIDDEN, "%s of %zu bytes with status %d", how, len,
                   rq->status);
        rq->forbidden_reported = 1;
    }
}

static int
val_write(void *ctx, const void *data, size_t len)
{
    struct val_req *rq = ctx;
    const struct csgi_responder *outer = rq->outer_resp;
    uint64_t before = rq->written + rq->chunk_bytes;
    int bad_state = 1, over, r;

    if (rq->closed)
        val_report(rq, R_APP_RESPONDER_LATE, "write() after the body was closed");
    else if (rq->in_next)
        val_report(rq, R_APP_WRITE_IN_NEXT, "write() from inside next()");
    else if (!rq->started)
        val_report(rq, R_APP_WRITE_BEFORE_START, "write() before start_response()");
    else
        bad_state = 0;
    if (rq->pending_sent) {
        val_report(rq, R_APP_HEADERS_SENT_IGNORED, "write() after CSGI_EHEADERS_SENT");
        rq->pending_sent = 0;
    }
    if (!data && len)
        val_report(rq, R_APP_WRITE_ARGS, "write() got a NULL pointer for %zu bytes", len);
    over = rq->declared_length >= 0 && before + len > (uint64_t)rq->declared_length;
    if (!bad_state)
        val_count_body(rq, len, "write()");
    if (rq->failed)
        return CSGI_EAPP;
    if (!outer->write)
        return CSGI_ENOSYS;

    r = outer->write(outer->ctx, data, len);
    if (r == CSGI_OK) {
        if (bad_state || over)
            val_report(rq, R_SRV_STATE_NOT_ENFORCED,
                       "write() of %zu bytes was accepted although it must be refused", len);
        rq->written += len;
        rq->headers_sent = 1;
    }
    return rq->failed ? CSGI_EAPP : r;
}

/* ------------------------------------------------------------------ */
/* Body wrapper                                                        */
/* ------------------------------------------------------------------ */

/*
 * The server calls into the outermost validator of a stack: a new callback
 * begins, and the ledger forgets what was reported in the previous one.
 */
static void
val_callback_begins(struct val_req *rq)
{
    if (rq->ledger == &rq->own)
        memset(&rq->own, 0, sizeof(rq->own));
}

static void
val_close_inner(struct val_req *rq)
{
    rq->closed = 1;
    if (rq->inner.close)
        rq->inner.close(rq->inner.ctx);
}

/*
 * A file body (body_from_fd()) produced fewer bytes than its range when read:
 * its file is shorter than offset + count (or shrank).
 */
static void
val_file_short(struct val_req *rq, const char *how)
{
    if (rq->file_reported)
        return;
    rq->file_reported = 1;
    val_report(rq, R_APP_FILE_RANGE, "%s after %llu of its %lld bytes: the file is shorter", how,
               (unsigned long long)rq->chunk_bytes, (long long)rq->inner.total_length);
}

/*
 * call() returned a file body: check its range against the file when the body
 * is one this library's host core made (the test client; a server built on
 * another copy of the core, or another server, is checked when the body is
 * read instead, by val_file_short()).
 */
static void
val_check_file_body(struct val_req *rq)
{
    const struct csgi__file_body *fb = csgi__file_body_of(&rq->inner);
    struct stat st;

    rq->file_body = 1;
    if (!fb || fb->fd < 0 || fb->remaining < 0 || fstat(fb->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    if (fb->offset + fb->remaining > (int64_t)st.st_size) {
        rq->file_reported = 1;
        val_report(rq, R_APP_FILE_RANGE,
                   "body_from_fd() range of %lld bytes from offset %lld is past the end of its "
                   "%lld-byte file",
                   (long long)fb->remaining, (long long)fb->offset, (long long)st.st_size);
    }
}

static void
val_body_done(struct val_req *rq)
{
    uint64_t produced = rq->written + rq->chunk_bytes;
    /* A HEAD response may leave the body out, Content-Length and all. */
    int head_empty = rq->is_head && produced == 0;

    rq->done = 1;
    if (!rq->started) {
        val_report(rq, R_APP_NO_START_RESPONSE,
                   "the body ended without a successful start_response()");
        return;
    }
    rq->headers_sent = 1;
    if (rq->declared_length >= 0 && !head_empty && !rq->length_reported &&
        produced != (uint64_t)rq->declared_length) {
        val_report(rq, R_APP_CONTENT_LENGTH_MISMATCH,
                   "the body has %llu bytes, Content-Length is %lld", (unsigned long long)produced,
                   (long long)rq->declared_length);
        rq->length_reported = 1;
    }
    if (rq->file_body && rq->inner.total_length >= 0 && !head_empty &&
        rq->chunk_bytes < (uint64_t)rq->inner.total_length) {
        val_file_short(rq, "the file body ended");
        rq->total_reported = 1;
    }
    if (rq->inner.total_length >= 0 && !head_empty && !rq->total_reported &&
        rq->chunk_bytes != (uint64_t)rq->inner.total_length) {
        val_report(rq, R_APP_TOTAL_LENGTH_MISMATCH,
                   "the chunks have %llu bytes, total_length "
                   "is %lld",
                   (unsigned long long)rq->chunk_bytes, (long long)rq->inner.total_length);
        rq->total_reported = 1;
    }
}

/* CSGI_PENDING (SPEC 4.14): passed through, on a host that has resume(). */
static void
val_pending(struct val_req *rq, const char *from)
{
    if (!CSGI_HAS(rq->v->api, 3))
        val_report(rq, R_APP_PENDING_UNSUPPORTED, "%s returned CSGI_PENDING on host API %u", from,
                   (unsigned)rq->v->api->version);
}

static int
val_next(void *ctx, struct csgi_chunk *out)
{
    struct val_req *rq = ctx;
    struct csgi_chunk chunk = {NULL, 0};
    int r;

    val_callback_begins(rq);
    if (rq->in_next) {
        val_report(rq, R_SRV_NEXT_REENTERED, "next() called again while next() runs");
        return rq->failed ? CSGI_EAPP : CSGI_ESTATE;
    }
    if (rq->closed) {
        val_report(rq, R_SRV_NEXT_AFTER_CLOSE, "next() after close()");
        return rq->failed ? CSGI_EAPP : CSGI_ESTATE;
    }
    if (rq->done) {
        val_report(rq, R_SRV_NEXT_AFTER_DONE, "next() after CSGI_DONE");
        return rq->failed ? CSGI_EAPP : CSGI_DONE;
    }
    if (!out) {
        val_report(rq, R_SRV_CALL_ARGS, "next() got a NULL chunk");
        return rq->failed ? CSGI_EAPP : CSGI_EINVAL;
    }
    if (rq->failed)
        return CSGI_EAPP;

    if (rq->inner.next) {
        rq->in_next = 1;
        r = rq->inner.next(rq->inner.ctx, &chunk);
        rq->in_next = 0;
    } else {
        r = CSGI_DONE;
    }
    if (rq->pending_sent && r != CSGI_EHEADERS_SENT) {
        val_report(rq, R_APP_HEADERS_SENT_IGNORED,
                   "next() returned %s after start_response() gave CSGI_EHEADERS_SENT",
                   csgi_err_name(r));
        rq->pending_sent = 0;
    }

    if (r == CSGI_OK) {
        if (chunk.len && !chunk.ptr) {
            val_report(rq, R_APP_CHUNK_NULL, "chunk of %zu bytes has a NULL pointer", chunk.len);
        } else if (chunk.len) {
            if (!rq->started)
                val_report(rq, R_APP_CHUNK_BEFORE_START,
                           "chunk of %zu bytes before start_response()", chunk.len);
            else
                val_count_body(rq, chunk.len, "a chunk");
            rq->chunk_bytes += chunk.len;
            if (rq->inner.total_length >= 0 && !rq->total_reported &&
                rq->chunk_bytes > (uint64_t)rq->inner.total_length) {
                val_report(rq, R_APP_TOTAL_LENGTH_MISMATCH, "the chunks exceed total_length %lld",
                           (long long)rq->inner.total_length);
                rq->total_reported = 1;
            }
            rq->headers_sent = 1;
        }
        *out = chunk;
    } else if (r == CSGI_DONE) {
        val_body_done(rq);
    } else if (r == CSGI_ELENGTH && rq->file_body) {
        val_file_short(rq, "the file body failed with CSGI_ELENGTH");
    } else if (r == CSGI_EDECLINED) {
        val_report(rq, R_APP_DECLINED_LATE, "next() returned CSGI_EDECLINED");
    } else if (r == CSGI_PENDING) {
        val_pending(rq, "next()");
    } else if (r > 0) {
        val_report(rq, R_APP_NEXT_RESULT, "next() returned %d", r);
    }
    return rq->failed ? CSGI_EAPP : r;
}

static void
val_close(void *ctx)
{
    struct val_req *rq = ctx;

    val_callback_begins(rq);
    if (rq->in_next)
        val_report(rq, R_SRV_NEXT_REENTERED, "close() called while next() runs");
    if (rq->closed_at_finish)
        return; /* the late close of a stack's outer layer: body_not_closed said it */
    if (rq->closed) {
        val_report(rq, R_SRV_CLOSE_TWICE, "close() called again");
        return;
    }
    val_close_inner(rq);
}

static void
val_finished(void *arg, int reason)
{
    struct val_req *rq = arg;

    if (rq->body_installed && !rq->closed) {
        val_report(rq, R_SRV_BODY_NOT_CLOSED, "request finished (reason %d) without close()",
                   reason);
        /* Close the application's body ourselves so that it does not leak. */
        val_close_inner(rq);
        rq->closed_at_finish = 1;
    }
}

/* ------------------------------------------------------------------ */
/* The middleware                                                      */
/* ------------------------------------------------------------------ */

/*
 * The validator's state for this request of another validator outside this
 * one, when one is found: what we were handed is that validator's responder,
 * or (a middleware in between wrapping the responder) its errors or input
 * stream. NULL when this validator is the outermost one.
 */
static struct val_req *
val_outer_of(const struct csgi_environ *env, const struct csgi_responder *resp)
{
    if (resp->version >= 1 && resp->start_response == val_start_response)
        return resp->ctx;
    if (env->errors && env->errors->version >= 1 && env->errors->log == val_errors_log)
        return env->errors->ctx;
    if (env->input && env->input->version >= 1 && env->input->read == val_input_read)
        return env->input->ctx;
    return NULL;
}

static int val_called(struct val_req *rq, int rc, struct csgi_body *out);

/* ------------------------------------------------------------------ */
/* Upgraded connections (SPEC 4.15)                                    */
/* ------------------------------------------------------------------ */

/*
 * The requests whose call() runs now, innermost first: upgrade() (allowed
 * only there) is handed the host's request and finds its validator's state
 * here by that request and the calling thread. A list under a lock, not a
 * thread-local variable: a validator is often a dlopen()ed plugin, and
 * thread-local storage in a module that is later dlclose()d crashes
 * LeakSanitizer's exit check (GCC 12; seen in every forked test of the
 * differential suite after the first validated request).
 */
static pthread_mutex_t val_calls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct val_req *val_calls;

static void
val_calls_push(struct val_req *rq)
{
    rq->call_thread = pthread_self();
    rq->upgrading = 0;
    pthread_mutex_lock(&val_calls_lock);
    rq->call_next = val_calls;
    val_calls = rq;
    pthread_mutex_unlock(&val_calls_lock);
}

static void
val_calls_remove(struct val_req *rq)
{
    pthread_mutex_lock(&val_calls_lock);
    for (struct val_req **pp = &val_calls; *pp; pp = &(*pp)->call_next) {
        if (*pp == rq) {
            *pp = rq->call_next;
            break;
        }
    }
    pthread_mutex_unlock(&val_calls_lock);
    rq->call_next = NULL;
}

/* The innermost request in call() on this thread for the host's @p req, or NULL. */
static struct val_req *
val_calls_find(const struct csgi_request *req)
{
    struct val_req *rq;
    pthread_t self = pthread_self();

    pthread_mutex_lock(&val_calls_lock);
    for (rq = val_calls; rq; rq = rq->call_next) {
        if (rq->env.request == req && !rq->upgrading && pthread_equal(rq->call_thread, self))
            break;
    }
    pthread_mutex_unlock(&val_calls_lock);
    return rq;
}

static void
vu_data(void *arg, struct csgi_upgrade *u, const void *data, size_t len)
{
    struct val_up *x = arg;

    (void)u;
    x->app->on_data(x->arg, (struct csgi_upgrade *)x, data, len);
}

static void
vu_writable(void *arg, struct csgi_upgrade *u)
{
    struct val_up *x = arg;

    (void)u;
    if (x->app->on_writable)
        x->app->on_writable(x->arg, (struct csgi_upgrade *)x);
}

static void
vu_stop(void *arg, struct csgi_upgrade *u)
{
    struct val_up *x = arg;

    if (x->app->on_stop)
        x->app->on_stop(x->arg, (struct csgi_upgrade *)x);
    else
        x->v->api->upgrade_close(u); /* what the host does for a handler without on_stop() */
}

/* The last call: the record stays (closed) among the last VAL_UP_KEEP, to catch a later use. */
static void
vu_close(void *arg, struct csgi_upgrade *u, int reason)
{
    struct val_up *x = arg;
    struct csgi_validator *v = x->v;
    struct val_up *old = NULL;

    (void)u;
    x->app->on_close(x->arg, (struct csgi_upgrade *)x, reason);
    x->closed = 1;
    pthread_mutex_lock(&v->up_lock);
    if (v->closed_tail)
        v->closed_tail->next_closed = x;
    else
        v->closed_head = x;
    v->closed_tail = x;
    if (++v->n_closed > VAL_UP_KEEP) {
        old = v->closed_head;
        v->closed_head = old->next_closed;
        v->n_closed--;
    }
    pthread_mutex_unlock(&v->up_lock);
    free(old);
}

static const struct csgi_upgrade_handler val_up_handler = {
    .version = CSGI_UPGRADE_HANDLER_VERSION,
    .on_data = vu_data,
    .on_writable = vu_writable,
    .on_stop = vu_stop,
    .on_close = vu_close,
};

static int
val_upgrade(struct csgi_request *req, const struct csgi_upgrade_handler *handler, void *arg,
            struct csgi_upgrade **out)
{
    struct val_req *rq = val_calls_find(req);
    struct val_up *x;
    int rc;

    if (!rq)
        return CSGI_ESTATE; /* outside call(): the host's answer too */
    if (!handler || !out || !handler->on_data || !handler->on_close) {
        rq->upgrading = 1;
        rc = rq->v->api->upgrade(req, handler, arg, out);
        rq->upgrading = 0;
        return rc;
    }
    if (!csgi__upgrade_asked(rq->outer_env))
        val_report(rq, R_APP_UPGRADE_NOT_ASKED, "upgrade() for a request without an upgrade");
    x = calloc(1, sizeof(*x));
    if (!x)
        return CSGI_ENOMEM;
    x->magic = VAL_UP_MAGIC;
    x->v = rq->v;
    x->app = handler;
    x->arg = arg;
    rq->upgrading = 1;
    rc = rq->v->api->upgrade(req, &val_up_handler, x, &x->host_u);
    rq->upgrading = 0;
    if (rc < 0) {
        free(x);
        return rc;
    }
    *out = (struct csgi_upgrade *)x;
    return rc;
}

/* The host's connection behind @p u, or NULL after on_close() (reported as @p fn). */
static struct csgi_upgrade *
val_up_open(struct csgi_upgrade *u, const char *fn)
{
    struct val_up *x = (struct val_up *)u;

    if (!x || x->magic != VAL_UP_MAGIC)
        return NULL;
    if (x->closed) {
        val_emit(x->v, NULL, NULL, R_APP_UPGRADE_AFTER_CLOSE, "%s() after on_close()", fn);
        return NULL;
    }
    return x->host_u;
}

static int
val_upgrade_write(struct csgi_upgrade *u, const void *data, size_t len)
{
    struct val_up *x = (struct val_up *)u;
    struct csgi_upgrade *hu = val_up_open(u, "upgrade_write");

    if (!hu)
        return x && x->magic == VAL_UP_MAGIC ? CSGI_ESTATE : CSGI_EINVAL;
    return x->v->api->upgrade_write(hu, data, len);
}

static int
val_upgrade_close(struct csgi_upgrade *u)
{
    struct val_up *x = (struct val_up *)u;
    struct csgi_upgrade *hu = val_up_open(u, "upgrade_close");

    if (!hu)
        return x && x->magic == VAL_UP_MAGIC ? CSGI_ESTATE : CSGI_EINVAL;
    return x->v->api->upgrade_close(hu);
}

/* Set up @p rq's environ, streams, responder and inner body around the server's. */
static void
val_wrap(struct csgi_validator *v, struct val_req *rq, const struct csgi_environ *env,
         const struct csgi_responder *resp, const struct csgi_body *out)
{
    rq->v = v;
    rq->outer_env = env;
    rq->outer_resp = resp;
    rq->outer_input = env->input;
    rq->outer_errors = env->errors;
    /* What input must yield: content_length, else a version-2 environ's input_length. */
    rq->content_length = env->content_length;
    if (rq->content_length < 0 && CSGI_HAS(env, 2))
        rq->content_length = env->input_length;
    rq->env_flags = env->flags;
    rq->declared_length = -1;
    rq->is_head = val_eq(env->request_method, "HEAD");

    /* The middleware kit's copy rule (SPEC 3.4); version 0 was reported: its version-1 part. */
    if (csgi_mw_environ_copy_to(&rq->env, env) < 0) {
        memset(&rq->env, 0, sizeof(rq->env));
        memcpy(&rq->env, env, offsetof(struct csgi_environ, host));
    }
    if (env->input) {
        rq->input.version = CSGI_INPUT_VERSION;
        rq->input.ctx = rq;
        rq->input.read = val_input_read;
        rq->input.readline = val_input_readline;
        rq->input.rewind = val_input_rewind;
        rq->env.input = &rq->input;
    }
    if (env->errors) {
        rq->errors.version = CSGI_ERRORS_VERSION;
        rq->errors.ctx = rq;
        rq->errors.log = val_errors_log;
        rq->errors.write = val_errors_write;
        rq->errors.flush = val_errors_flush;
        rq->env.errors = &rq->errors;
    }
    /* Upgrades go through the validator's copy of the host table (SPEC 4.15). */
    if (CSGI_HAS(&rq->env, 2) && CSGI_HAS(rq->env.host, 4) && CSGI_HAS(&v->host, 4))
        rq->env.host = &v->host;
    rq->resp.version = CSGI_RESPONDER_VERSION;
    rq->resp.ctx = rq;
    rq->resp.start_response = val_start_response;
    rq->resp.write = val_write;
    rq->inner.version = out->version ? out->version : CSGI_BODY_VERSION;
    rq->inner.total_length = -1;
}

int
csgi_validator_call(void *validator, struct csgi_environ *env, const struct csgi_responder *resp,
                    struct csgi_body *out)
{
    struct csgi_validator *v = validator;
    const struct csgi_host_api *api;
    struct val_req *rq, *outer;
    int count, rc;

    if (!v)
        return CSGI_EINVAL;
    api = v->api;
    if (!env || !resp || !out) {
        val_emit(v, NULL, env, R_SRV_CALL_ARGS, "call() got env %s, resp %s, out %s",
                 env ? "set" : "NULL", resp ? "set" : "NULL", out ? "set" : "NULL");
        return CSGI_EINVAL;
    }
    rq = NULL;
    if (env->request) {
        /* First, so that a validator inside another one shares its ledger from the start. */
        rq = api->alloc(env->request, sizeof(*rq));
        if (!rq)
            return CSGI_ENOMEM;
        memset(rq, 0, sizeof(*rq));
        outer = val_outer_of(env, resp);
        rq->ledger = outer ? outer->ledger : &rq->own;
    }
    count = val_check_env(v, rq, env);
    if (resp->version < 1 || !resp->start_response || !resp->write) {
        val_emit(v, rq, env, R_SRV_RESPONDER, "responder (version %u) lacks a function",
                 (unsigned)resp->version);
        count++;
    }
    if (out->version < 1 || out->ctx || out->next || out->close) {
        val_emit(v, rq, env, R_SRV_BODY_INIT, "out has version %u%s", (unsigned)out->version,
                 (out->ctx || out->next || out->close) ? " and is already filled" : "");
        count++;
    }
    if (!rq)
        return CSGI_EINVAL;
    if (count && (v->flags & CSGI_VALIDATOR_FAIL_FAST))
        return CSGI_EAPP;

    rc = api->on_finished(env->request, val_finished, rq);
    if (rc < 0)
        return rc;
    val_wrap(v, rq, env, resp, out);
    /* Only a request given the wrapped table can reach val_upgrade(). */
    if (rq->env.host == &v->host)
        val_calls_push(rq);
    rc = v->app(v->app_state, &rq->env, &rq->resp, &rq->inner);
    if (rq->env.host == &v->host)
        val_calls_remove(rq);
    return val_called(rq, rc, out);
}

/* The inner application returned @p rc: check it, and install the wrapping body in @p out. */
static int
val_called(struct val_req *rq, int rc, struct csgi_body *out)
{
    if (rq->pending_sent && rc != CSGI_EHEADERS_SENT) {
        val_report(rq, R_APP_HEADERS_SENT_IGNORED,
                   "call() returned %s after start_response() gave CSGI_EHEADERS_SENT",
                   csgi_err_name(rc));
        rq->pending_sent = 0;
    }
    if (rc == CSGI_EDECLINED && rq->started)
        val_report(rq, R_APP_DECLINED_LATE, "call() declined after start_response()");
    if (rc == CSGI_PENDING)
        val_pending(rq, "call()"); /* then as CSGI_OK: the body is the server's */
    else if (rc > 0)
        val_report(rq, R_APP_CALL_RESULT, "call() returned %d", rc);
    if ((rc == CSGI_OK || rc == CSGI_PENDING) && rq->inner.total_length < -1)
        val_report(rq, R_APP_TOTAL_LENGTH, "total_length is %lld",
                   (long long)rq->inner.total_length);
    if (rc == CSGI_OK && (rq->inner.flags & CSGI_BODY_FILE))
        val_check_file_body(rq);
    if (rc != CSGI_OK && rc != CSGI_PENDING) {
        rq->call_failed = 1;
        return rq->failed ? CSGI_EAPP : rc;
    }
    if (rq->failed) {
        /* The server ignores out when call() fails: release the body here. */
        val_close_inner(rq);
        return CSGI_EAPP;
    }
    out->flags = 0;
    out->total_length = rq->inner.total_length;
    out->ctx = rq;
    out->next = val_next;
    out->close = val_close;
    rq->body_installed = 1;
    return rc;
}

struct csgi_validator *
csgi_validator_new(const struct csgi_host_api *api, csgi_app_fn app, void *app_state,
                   const struct csgi_validator_options *opts)
{
    struct csgi_validator *v;

    if (!api || !app || !CSGI_HAS(api, 1) || !api->alloc || !api->on_finished)
        return NULL;
    v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->api = api;
    v->app = app;
    v->app_state = app_state;
    if (opts) {
        v->flags = opts->flags;
        v->report = opts->report;
        v->report_arg = opts->report_arg;
    }
    atomic_init(&v->violations, 0);
    pthread_mutex_init(&v->up_lock, NULL);
    if (CSGI_HAS(api, 4) && api->size >= sizeof(v->host) && api->upgrade) {
        memcpy(&v->host, api, sizeof(v->host));
        /* The copy is this build's table: a newer host's later functions are not in it. */
        v->host.version = CSGI_HOST_API_VERSION;
        v->host.size = (uint32_t)sizeof(v->host);
        v->host.upgrade = val_upgrade;
        v->host.upgrade_write = val_upgrade_write;
        v->host.upgrade_close = val_upgrade_close;
    }
    return v;
}

void
csgi_validator_free(struct csgi_validator *validator)
{
    if (!validator)
        return;
    while (validator->closed_head) {
        struct val_up *x = validator->closed_head;

        validator->closed_head = x->next_closed;
        free(x);
    }
    pthread_mutex_destroy(&validator->up_lock);
    free(validator);
}

uint64_t
csgi_validator_violations(const struct csgi_validator *validator)
{
    if (!validator)
        return 0;
    return atomic_load(&validator->violations);
}

const struct csgi_validator_rule *
csgi_validator_rules(size_t *n)
{
    if (n)
        *n = R__COUNT;
    return val_rules;
}

const struct csgi_validator_rule *
csgi_validator_rule_find(const char *id)
{
    if (!id)
        return NULL;
    for (size_t i = 0; i < R__COUNT; i++) {
        if (strcmp(val_rules[i].id, id) == 0)
            return &val_rules[i];
    }
    return NULL;
}
