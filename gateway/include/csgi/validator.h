/*
 * CSGI validator middleware: the C port of Python's wsgiref.validate, with the
 * extra checks of Rack::Lint and the CSGI-specific rules.
 *
 * A validator wraps any application (csgi_app_fn + state) and is itself an
 * application (csgi_validator_call). Put it between a server and an app, or
 * on both sides of a middleware ("lint before and after"), and it checks both sides:
 * what the server hands in (environ, input and errors streams, responder, how
 * the body is pulled and closed) and what the application does (status and
 * headers, start_response()/write() protocol, exc_info, body chunks, lengths).
 * Every violation is reported with a stable rule id ("env.script_name_slash",
 * "app.start_response_twice") through a callback; the default callback logs
 * "csgi validator: <rule id>: <details>" at CSGI_LOG_ERROR on the server's
 * errors stream (or through csgi_host_api.log when there is none).
 *
 * Two modes. Report-only (the default) is transparent: after reporting, every
 * call is passed on unchanged, so the request behaves as it would without the
 * validator, except that the validator never calls into a body after it was
 * closed or finished. Fail-fast (CSGI_VALIDATOR_FAIL_FAST) fails the request at
 * the first violation: the wrapper that saw it returns CSGI_EAPP to its caller
 * (without passing the offending call on), and from then on call(), next(),
 * start_response(), write() and the input functions return CSGI_EAPP; a body
 * the application had already returned is closed by the validator. The errors
 * stream keeps working, so that the application can still log.
 *
 * Stacked validators (one wrapping another, directly or with middleware in
 * between) report each violation once: a validator that finds another one
 * outside it (the responder, errors or input stream it is handed is that
 * validator's) does not repeat a rule the other has reported during the same
 * server callback (call(), next() or close() of the outermost validator, or
 * the finished callbacks), and vice versa. What the server hands in is thus
 * reported by the outermost validator, what the application does by the
 * innermost. A middleware that replaces the responder and both streams hides
 * the outer validator, and both then report.
 *
 * Per-request state comes from csgi_host_api.alloc(), and the validator
 * registers an on_finished() callback on every request (to check that the
 * body was closed), so it needs the host api of the server it runs under.
 *
 * Rule ids and the wsgiref.validate checks (CPython 3.11, numbered 1-39 as in
 * gateway-spec-research.md section 2) they port. "strict" rules run only with
 * the named option; "-" marks checks that have no wsgiref counterpart (PEP 3333
 * requirements wsgiref leaves unchecked, Rack::Lint, or the CSGI C ABI).
 *
 * | wsgiref | check                                   | rule id(s)                              |
 * |---------|-----------------------------------------|-----------------------------------------|
 * |  1      | environ is exactly a dict               | env.version                             |
 * |  2      | required keys present                   | env.request_method, env.server_name,    |
 * |         |                                         | env.server_port, env.input, env.errors, |
 * |         |                                         | env.flags, env.version                  |
 * |  3      | no HTTP_CONTENT_TYPE/_LENGTH            | env.content_type_header,                |
 * |         |                                         | env.content_length_header (C keeps the  |
 * |         |                                         | headers; the typed fields must agree)   |
 * |  4      | QUERY_STRING present (warning)          | env.query_string                        |
 * |  5      | CGI values are str                      | env.string, env.header                  |
 * |  6      | wsgi.version is a tuple                 | env.version                             |
 * |  7      | url_scheme is http or https             | env.url_scheme                          |
 * |  8      | input has read/readline/...             | env.input                               |
 * |  9      | errors has flush/write/...              | env.errors                              |
 * | 10      | known REQUEST_METHOD (warning)          | env.method_unknown (strict: METHOD)     |
 * | 11      | SCRIPT_NAME "" or starts with '/'       | env.script_name                         |
 * | 12      | PATH_INFO "" or starts with '/'         | env.path_info                           |
 * | 13      | CONTENT_LENGTH >= 0                     | env.content_length                      |
 * | 14      | PATH_INFO present if SCRIPT_NAME empty  | env.path_empty                          |
 * | 15      | SCRIPT_NAME != "/"                      | env.script_name_slash                   |
 * | 16      | app called with 2 positional args       | srv.call_args                           |
 * | 17      | input returns bytes                     | srv.input_result, srv.input_eof,        |
 * |         |                                         | srv.input_length                        |
 * | 18      | start_response's writer is callable     | srv.responder                           |
 * | 19      | no iteration before start_response      | app.chunk_before_start,                 |
 * |         |                                         | app.no_start_response                   |
 * | 20      | iterator closed before collection       | srv.body_not_closed, srv.close_twice    |
 * | 21      | start_response gets 2-3 positional args | not applicable: the C prototype fixes   |
 * |         |                                         | the arity and the compiler the types    |
 * | 22      | status "NNN ...", code >= 100           | app.status                              |
 * | 23      | status has a space at [3] (warning)     | app.reason (status is an int; only the  |
 * |         |                                         | separate reason phrase can be wrong)    |
 * | 24      | headers is a list of (str, str) tuples  | app.headers_array                       |
 * | 25      | no Status header                        | app.header_status                       |
 * | 26      | header name regex, no trailing - or _   | app.header_name (RFC 9110 token),       |
 * |         |                                         | app.header_name_strict (strict: HEADERS)|
 * | 27      | no control chars in values              | app.header_value, app.header_value_tab  |
 * |         |                                         | (TAB; strict: HEADERS)                  |
 * | 28      | Content-Type iff not 204/304            | app.content_type_missing,               |
 * |         |                                         | app.content_type_forbidden              |
 * |         |                                         | (strict: CONTENT_TYPE)                  |
 * | 29      | exc_info is None or a tuple             | app.exc_info (version 0, code >= 0)     |
 * | 30      | app result is not None/False            | app.call_result                         |
 * | 31      | result is not a str/bytes               | not applicable: a body is a typed       |
 * |         |                                         | struct; there is no string-as-iterable  |
 * | 32      | yielded items are bytes                 | app.chunk_null, app.next_result         |
 * | 33      | no next() after close()                 | srv.next_after_close (+ .next_after_done)|
 * | 34      | write() gets bytes                      | app.write_args                          |
 * | 35      | input.read gets one argument            | app.input_args (arity itself is fixed)  |
 * | 36      | readline/readlines arity                | app.input_args (readlines and iteration |
 * |         |                                         | are not part of the C input stream)     |
 * | 37      | input is never closed                   | not applicable: csgi_input has no close |
 * | 38      | errors.write gets str                   | app.errors_args                         |
 * | 39      | errors is never closed                  | not applicable: csgi_errors has no close|
 *
 * Rules beyond wsgiref (PEP 3333 requirements, Rack::Lint, the CSGI ABI):
 * env.request, env.raw_target, env.server_protocol, env.config, env.v2 (the
 * fields of environ version 2, SPEC 4.2 invariants 12 and 16), env.v3 (the TLS
 * facts of environ version 3, SPEC 4.2.1), srv.body_init,
 * srv.input_rewind, srv.state_not_enforced, srv.next_after_done,
 * app.declined_late, app.start_response_twice, app.hop_by_hop,
 * app.content_length_header, app.headers_sent_ignored, app.write_before_start,
 * app.write_in_next, app.responder_late, app.total_length,
 * app.total_length_mismatch, app.content_length_mismatch, app.head_body
 * (strict: HEAD), app.body_forbidden, app.input_late, app.file_range (a
 * body_from_fd() range past the end of its file: checked against the file when
 * call() returns if the host is the test client, else when the body is read).
 * csgi_validator_rules() lists every rule with a one-line summary.
 *
 * Part of libcsgi-util, a static library: not part of the plugin ABI.
 */
#ifndef CSGI_VALIDATOR_H
#define CSGI_VALIDATOR_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A validator instance wrapping one application. Opaque. */
struct csgi_validator;

/** struct csgi_validator_options.flags. */
enum csgi_validator_flags {
    /** Fail the request with CSGI_EAPP at the first violation. */
    CSGI_VALIDATOR_FAIL_FAST = 1u << 0,
    /** wsgiref 28: Content-Type required unless 204/304, and forbidden for them. */
    CSGI_VALIDATOR_STRICT_CONTENT_TYPE = 1u << 1,
    /** wsgiref 26/27: header names match ^[a-zA-Z][a-zA-Z0-9_-]*$ not ending in
     *  '-' or '_'; values contain no TAB. */
    CSGI_VALIDATOR_STRICT_HEADERS = 1u << 2,
    /** Rack::Lint: a HEAD response body must be empty at the application boundary. */
    CSGI_VALIDATOR_STRICT_HEAD = 1u << 3,
    /** wsgiref 10: the method is one of GET HEAD POST OPTIONS PATCH PUT DELETE TRACE. */
    CSGI_VALIDATOR_STRICT_METHOD = 1u << 4,
    /** Every strict rule. */
    CSGI_VALIDATOR_STRICT = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4)
};

/**
 * Receives one violation.
 * @param arg     csgi_validator_options.report_arg.
 * @param env     the environ the server passed in, NULL when it passed none.
 *                Borrowed: valid during the call.
 * @param rule    the stable rule id ("app.status"). Borrowed, static.
 * @param message "<rule id>: <what happened>", one line. Borrowed: valid during
 *                the call.
 */
typedef void (*csgi_validator_report_fn)(void *arg, const struct csgi_environ *env,
                                         const char *rule, const char *message);

/** Options; zero-initialise (all zero: report-only, default reporter, no strict rules). */
struct csgi_validator_options {
    /** enum csgi_validator_flags. */
    uint32_t flags;
    /** Violation callback, or NULL for the default (log through env->errors). */
    csgi_validator_report_fn report;
    /** Passed to @c report. Borrowed. */
    void *report_arg;
};

/** One entry of the rule table. */
struct csgi_validator_rule {
    /** Stable id: "env.*" (server's environ), "srv.*" (server behaviour), "app.*". */
    const char *id;
    /** The wsgiref.validate check numbers it ports ("15", "26"), or "-". */
    const char *wsgiref;
    /** The enum csgi_validator_flags bit that enables it, 0 when always on. */
    uint32_t strict_flag;
    /** One-line description of the rule. */
    const char *summary;
};

/**
 * Create a validator around an application.
 * @param api       the host services of the server it runs under (needs
 *                  alloc() and on_finished()). Borrowed: must stay valid as
 *                  long as the validator is used.
 * @param app       the wrapped application; @p app_state is passed to it. Borrowed.
 * @param opts      options, copied; NULL means all defaults.
 * @return the validator, or NULL when an argument is NULL, @p api lacks alloc()
 *         or on_finished(), or memory is short. Caller owns; release with
 *         csgi_validator_free() after the last request that used it finished.
 */
struct csgi_validator *csgi_validator_new(const struct csgi_host_api *api, csgi_app_fn app,
                                          void *app_state,
                                          const struct csgi_validator_options *opts);

/** Free a validator. NULL is a no-op. */
void csgi_validator_free(struct csgi_validator *validator);

/**
 * The validator as an application: a csgi_app_fn whose state is the struct
 * csgi_validator. Thread-safe when the wrapped application is.
 * @return what the wrapped application returned (report-only), CSGI_EAPP
 *         after a violation in fail-fast mode, CSGI_EINVAL when env, resp or
 *         out is NULL or env->request is NULL (the app is then not called),
 *         CSGI_ENOMEM.
 */
int csgi_validator_call(void *validator, struct csgi_environ *env,
                        const struct csgi_responder *resp, struct csgi_body *out);

/** Number of violations reported by this validator so far (all requests). */
uint64_t csgi_validator_violations(const struct csgi_validator *validator);

/**
 * The rule table.
 * @param n out: number of entries.
 * @return the table. Borrowed, static.
 */
const struct csgi_validator_rule *csgi_validator_rules(size_t *n);

/**
 * Look a rule up by id.
 * @return the entry (borrowed, static), or NULL for an unknown id.
 */
const struct csgi_validator_rule *csgi_validator_rule_find(const char *id);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_VALIDATOR_H */
