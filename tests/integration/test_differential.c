/*
 * The differential suite: every request runs twice, through the in-process
 * test client (csgi_test_client_open() on the built .so) and through a real
 * csgi-server over HTTP (a raw socket, wire.c), and the two answers must be
 * the same: status and reason, the application's headers (Date, Connection,
 * Content-Length and Transfer-Encoding are compared as framing instead), the
 * framing (test client's `framing` against what the wire showed), the body
 * bytes, `aborted` against a truncated wire response, and the plugin's log
 * lines for the request ("cases[TAG] ...", which include "finished
 * reason=N"). A failure before anything was sent must also leave an
 * error-log line naming the plugin.
 *
 * Cases: every endpoint of the cases fixture and of cases_validated (GET and
 * HEAD on HTTP/1.1, GET on HTTP/1.0), a POST upload, targets the head checks
 * refuse (the test client's EINVAL must meet the server's 400), and a handful of
 * endpoints of the example plugins (hello, stream), a stream that waits for
 * host timers (the waits fixture), and of the three World
 * apps. Each case is one Check test; a failing test lists every field that
 * disagrees with both values, and the same lines go to stdout ("DIFF ...").
 *
 * What the wire cannot show is not compared: `aborted` for a close-delimited
 * body (a truncated one looks complete), and for HEAD on HTTP/1.0.
 */
#define _GNU_SOURCE
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csgi/testclient.h>
#include <csgi/util.h>

#include "harness.h"
#include "wire.h"

/* How long the server gets to log a request's "finished" line. */
#define FINISH_WAIT_MS 5000
/* How long a HEAD response's connection is watched for an abort. */
#define HEAD_CLOSE_WAIT_MS 150
/* Longest value quoted in a disagreement. */
#define QUOTE_MAX 240

static struct hserver srv;

/* ------------------------------------------------------------------ */
/* Cases                                                               */
/* ------------------------------------------------------------------ */

struct dplugin {
    /* File name of the .so. */
    const char *so;
    /* The plugin's name (error-log lines name it). */
    const char *name;
    /* Its mount. */
    const char *mount;
    /* Environment variable naming the directory it was built in. */
    const char *dir_env;
    /* Configuration key for its private path ("tmpdir", "db"), or NULL. */
    const char *config_key;
    /* It logs "cases[TAG] ..." lines for every request. */
    int logs;
};

static const struct dplugin plugins[] = {
    {"cases.so", "cases", "/cases", "CSGI_FIXTURES", "tmpdir", 1},
    {"cases_validated.so", "cases_validated", "/vcases", "CSGI_FIXTURES", "tmpdir", 1},
    {"hello.so", "hello", "/hello", "CSGI_EXAMPLES", NULL, 0},
    {"stream.so", "stream", "/stream", "CSGI_EXAMPLES", NULL, 0},
    {"world_raw.so", "world_raw", "/raw", "CSGI_WORLD", "db", 0},
    {"world_resource.so", "world_resource", "/resource", "CSGI_WORLD", "db", 0},
    {"world_route.so", "world_route", "/route", "CSGI_WORLD", "db", 0},
    {"hostsvc.so", "hostsvc", "/hostsvc", "CSGI_FIXTURES", NULL, 0},
    {"waits.so", "waits", "/waits", "CSGI_FIXTURES", NULL, 0},
    {"old_v1.so", "old_v1", "/old", "CSGI_FIXTURES", NULL, 0},
    {"examples/echo.so", "echo", "/echo", "CSGI_EXAMPLES", NULL, 0},
    {"examples/upload.so", "upload", "/upload", "CSGI_EXAMPLES", NULL, 0},
    {"examples/session.so", "session", "/session", "CSGI_EXAMPLES", "key", 0},
};
#define N_PLUGINS (sizeof(plugins) / sizeof(*plugins))

/* Endpoints of the cases fixture (relative to its mount). */
static const char *const case_paths[] = {
    "/one",
    "/chunks?n=3&size=10",
    "/chunks?n=1",
    "/chunks?n=0",
    "/write?n=3",
    "/write?n=1",
    "/write?n=0",
    "/write-then-error",
    "/lookahead-fail",
    "/fail-first",
    "/call-fail",
    "/pending-call",
    "/pending-next",
    "/overrun-write",
    "/overrun-chunk",
    "/underrun",
    "/total-length",
    "/file",
    "/file?offset=100&count=50",
    "/file?offset=990&count=100",
    "/head-skip",
    "/empty",
    "/headers?v=0",
    "/headers?v=1&odd=1",
    "/headers?n=9&v=2",
    "/headers?n=3&v=3&len=150",
    "/decline",
    "/exc-before",
    "/exc-after",
    "/environ-in-next",
    "/echo",
    "/big?bytes=200000",
    "/fd-badflags",
    "/nope",
};

/* Targets the host core's head checks refuse: raw bytes >= 0x80, a bad escape. */
static const char *const refused_paths[] = {"/one\xc3\xa9", "/one\x80", "/one%zz"};

static const char *const hello_paths[] = {"", "/bob", "/a/b"};
static const char *const stream_paths[] = {"", "?n=2", "/write", "?n=0"};
/* Host services of environ/host API version 2; ids differ per transport, so /shape. */
/*
 * A stream that waits between its chunks for a host timer: on HTTP/1.1 the
 * server's loop writes each woken chunk itself (http_mhd.c direct_run()),
 * the test client reads it through the core; on HTTP/1.0 both go through
 * the core's reader.
 */
static const char *const waits_paths[] = {"/tick?ms=20&n=3", "/tick?ms=0&n=5"};
static const char *const hostsvc_paths[] = {"/static", "/shape", "/length", "/nope"};
/* A plugin built against the CSGI 1.0 headers (environ and host API version 1). */
static const char *const old_paths[] = {"/env", "/env/x?q=1"};
/* The echo example (its request_id differs per transport and is compared masked). */
static const char *const echo_paths[] = {"", "/x%20y?a=1&b=two+words&a=%C3%A9&flag"};
static const char *const echo_get_expect[] = {
    "\"method\":\"GET\"",
    "\"script_name\":\"/echo\"",
    "\"path_info\":\"/x y\"",
    "\"query\":[[\"a\",\"1\"],[\"b\",\"two words\"],[\"a\",\"\xc3\xa9\"],[\"flag\",\"\"]]",
    "[\"X-Case-Tag\",\"d",
    "\"body\":\"\",\"body_length\":0",
    NULL};
static const char *const echo_post_expect[] = {
    "\"method\":\"POST\"", "\"query\":[[\"k\",\"v w\"]]", "[\"Content-Type\",\"text/plain\"]",
    "\"body\":\"an uploaded body\\n\",\"body_length\":17", NULL};
static const char *const echo_405_expect[] = {"{\"error\":\"method not allowed\"}", NULL};
static const char *const echo_400_expect[] = {"{\"error\":\"bad query string\"}", NULL};
/* The upload example: a multipart form with a file, an urlencoded form, refusals. */
#define UPLOAD_MULTIPART "multipart/form-data; boundary=XyZ"
static const char upload_multipart[] =
    "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nMy file\r\n"
    "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
    "Content-Type: text/plain\r\n\r\nhello upload\r\n--XyZ--\r\n";
static const char *const upload_multipart_expect[] = {
    "\"fields\":[[\"title\",\"My file\"]]",
    "\"files\":[{\"field\":\"file\",\"filename\":\"a.txt\",\"content_type\":\"text/plain\","
    "\"size\":12,\"fnv1a\":1044493016}]",
    NULL};
static const char *const upload_form_expect[] = {
    "{\"fields\":[[\"title\",\"a b\"],[\"x\",\"\xc3\xa9\"]],\"files\":[]}", NULL};
static const char *const upload_400_expect[] = {"{\"error\":\"invalid argument\"}", NULL};
static const char *const upload_415_expect[] = {"{\"error\":\"operation not supported\"}", NULL};
static const char *const upload_405_expect[] = {"{\"error\":\"method not allowed\"}", NULL};
/* The session example, keyed 000102...0f: its cookies are the same on both transports. */
#define SESSION_KEY    "000102030405060708090a0b0c0d0e0f"
#define SESSION_COOKIE "session=4.ada.257f573f5f976aae"
static const char *const session_new_expect[] = {"{\"visits\":1,\"name\":\"\"}", NULL};
static const char *const session_next_expect[] = {"{\"visits\":5,\"name\":\"ada\"}", NULL};
static const char *const empty_expect[] = {NULL};
static const char *const world_paths[] = {"/plaintext", "/json",     "/fortunes",
                                          "/items",     "/items/42", "/nope"};

/* The request variants each path is sent as. */
static const struct {
    const char *method;
    const char *protocol;
} variants[] = {
    {"GET", "HTTP/1.1"},
    {"HEAD", "HTTP/1.1"},
    {"GET", "HTTP/1.0"},
};

struct dcase {
    const struct dplugin *plugin;
    const char *method;
    const char *protocol;
    /* The request-target, mount included. */
    char target[160];
    /* Request body, or NULL. */
    const char *body;
    /* Its Content-Type; NULL means text/plain. */
    const char *ctype;
    /* A Cookie header's value, or NULL. */
    const char *cookie;
    /* X-Case-Tag, unique per case. */
    char tag[32];
    /* When set: the status and the substrings both bodies must hold. */
    int expect_status;
    const char *const *expect;
    /* Header lines both transports send too (a proxy's), or NULL. */
    const struct csgi_header *extra;
    size_t n_extra;
};

static struct dcase *dcases;
static size_t n_dcases;

static void
add_case(const struct dplugin *p, const char *method, const char *protocol, const char *path,
         const char *body)
{
    struct dcase *dc;

    dcases = realloc(dcases, (n_dcases + 1) * sizeof(*dcases));
    if (!dcases)
        abort();
    dc = &dcases[n_dcases];
    memset(dc, 0, sizeof(*dc));
    dc->plugin = p;
    dc->method = method;
    dc->protocol = protocol;
    snprintf(dc->target, sizeof(dc->target), "%s%s", p->mount, path);
    dc->body = body;
    snprintf(dc->tag, sizeof(dc->tag), "d%zu", n_dcases);
    n_dcases++;
}

static void
add_paths(const struct dplugin *p, const char *const *paths, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t v = 0; v < sizeof(variants) / sizeof(*variants); v++)
            add_case(p, variants[v].method, variants[v].protocol, paths[i], NULL);
    }
}

/* A case on HTTP/1.1 whose answer must have @p status and hold every string of @p expect. */
static void
add_expect(const struct dplugin *p, const char *method, const char *body, const char *path,
           int status, const char *const *expect)
{
    add_case(p, method, "HTTP/1.1", path, body && *body ? body : NULL);
    dcases[n_dcases - 1].expect_status = status;
    dcases[n_dcases - 1].expect = expect;
}

#define ADD_PATHS(p, paths) add_paths((p), (paths), sizeof(paths) / sizeof(*(paths)))

/*
 * Through a trusted proxy (the server runs with --trusted-proxy 127.0.0.1,
 * the test client trusts its default peer 127.0.0.1): the client's address,
 * scheme and host the proxy forwarded reach echo's environ on both.
 */
static const struct csgi_header fwd_xff[] = {
    {CSGI_STR_INIT("X-Forwarded-For"), CSGI_STR_INIT("203.0.113.9, 198.51.100.1")},
    {CSGI_STR_INIT("X-Forwarded-Proto"), CSGI_STR_INIT("https")},
    {CSGI_STR_INIT("X-Forwarded-Host"), CSGI_STR_INIT("shop.example")},
};
static const char *const fwd_xff_expect[] = {"\"remote_addr\":\"198.51.100.1\"",
                                             "\"url_scheme\":\"https\"",
                                             "\"server_name\":\"shop.example\"", NULL};
static const struct csgi_header fwd_rfc[] = {
    {CSGI_STR_INIT("Forwarded"),
     CSGI_STR_INIT("for=\"[2001:db8::7]:4711\";proto=https, for=127.0.0.1;proto=http")},
    {CSGI_STR_INIT("X-Forwarded-For"), CSGI_STR_INIT("192.0.2.1")},
};
static const char *const fwd_rfc_expect[] = {"\"remote_addr\":\"2001:db8::7\"",
                                             "\"url_scheme\":\"https\"", NULL};
/* An element that is no address ends the walk: the peer stands, and so does the scheme. */
static const struct csgi_header fwd_bad[] = {
    {CSGI_STR_INIT("X-Forwarded-For"), CSGI_STR_INIT("198.51.100.1, unknown")},
    {CSGI_STR_INIT("X-Forwarded-Proto"), CSGI_STR_INIT("https, https")},
};
static const char *const fwd_bad_expect[] = {"\"remote_addr\":\"127.0.0.1\"",
                                             "\"url_scheme\":\"http\"", NULL};

static void
add_forwarded(const struct dplugin *p, const struct csgi_header *h, size_t n,
              const char *const *expect)
{
    add_expect(p, "GET", NULL, "/fwd", 200, expect);
    dcases[n_dcases - 1].extra = h;
    dcases[n_dcases - 1].n_extra = n;
}

#define ADD_FORWARDED(p, h, expect) add_forwarded((p), (h), sizeof(h) / sizeof(*(h)), (expect))

static void
build_cases(void)
{
    for (size_t i = 0; i < N_PLUGINS; i++) {
        const struct dplugin *p = &plugins[i];

        if (strncmp(p->name, "cases", 5) == 0) {
            ADD_PATHS(p, case_paths);
            add_case(p, "POST", "HTTP/1.1", "/echo", "an uploaded body\n");
            add_case(p, "POST", "HTTP/1.0", "/echo", "an uploaded body\n");
            /* Heads both refuse (test client: EINVAL; server: 400, the app never runs). */
            for (size_t k = 0; k < sizeof(refused_paths) / sizeof(*refused_paths); k++)
                add_case(p, "GET", "HTTP/1.1", refused_paths[k], NULL);
        } else if (strcmp(p->name, "hello") == 0) {
            ADD_PATHS(p, hello_paths);
        } else if (strcmp(p->name, "stream") == 0) {
            ADD_PATHS(p, stream_paths);
        } else if (strcmp(p->name, "waits") == 0) {
            ADD_PATHS(p, waits_paths);
        } else if (strcmp(p->name, "hostsvc") == 0) {
            ADD_PATHS(p, hostsvc_paths);
            add_case(p, "POST", "HTTP/1.1", "/length", "an uploaded body\n");
        } else if (strcmp(p->name, "echo") == 0) {
            ADD_PATHS(p, echo_paths);
            add_expect(p, "GET", "", echo_paths[1], 200, echo_get_expect);
            add_expect(p, "POST", "an uploaded body\n", "/p?k=v+w", 200, echo_post_expect);
            add_expect(p, "POST", "an uploaded body\n", "?k=v%20w", 200, echo_post_expect);
            add_expect(p, "DELETE", NULL, "", 405, echo_405_expect);
            add_expect(p, "GET", NULL, "?a=%00", 400, echo_400_expect);
            ADD_FORWARDED(p, fwd_xff, fwd_xff_expect);
            ADD_FORWARDED(p, fwd_rfc, fwd_rfc_expect);
            ADD_FORWARDED(p, fwd_bad, fwd_bad_expect);
        } else if (strcmp(p->name, "upload") == 0) {
            add_case(p, "GET", "HTTP/1.1", "", NULL);
            add_expect(p, "POST", upload_multipart, "", 200, upload_multipart_expect);
            dcases[n_dcases - 1].ctype = UPLOAD_MULTIPART;
            add_expect(p, "POST", "title=a+b&x=%C3%A9", "", 200, upload_form_expect);
            dcases[n_dcases - 1].ctype = "application/x-www-form-urlencoded";
            /* The final boundary is missing: a malformed body. */
            add_expect(p, "POST", "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
                       "", 400, upload_400_expect);
            dcases[n_dcases - 1].ctype = UPLOAD_MULTIPART;
            add_expect(p, "POST", "plain text", "", 415, upload_415_expect);
            add_expect(p, "DELETE", NULL, "", 405, upload_405_expect);
        } else if (strcmp(p->name, "session") == 0) {
            add_expect(p, "GET", NULL, "", 200, session_new_expect);
            add_expect(p, "GET", NULL, "", 200, session_next_expect);
            dcases[n_dcases - 1].cookie = SESSION_COOKIE;
            /* A changed name breaks the signature: a new session. */
            add_expect(p, "GET", NULL, "", 200, session_new_expect);
            dcases[n_dcases - 1].cookie = "session=4.eve.257f573f5f976aae";
            add_expect(p, "POST", "name=bob", "/name", 303, empty_expect);
            dcases[n_dcases - 1].cookie = SESSION_COOKIE;
            dcases[n_dcases - 1].ctype = "application/x-www-form-urlencoded";
            add_expect(p, "POST", "name=b%21d", "/name", 400, empty_expect);
            dcases[n_dcases - 1].ctype = "application/x-www-form-urlencoded";
            add_expect(p, "POST", NULL, "/clear", 204, empty_expect);
            add_case(p, "HEAD", "HTTP/1.1", "", NULL);
            add_case(p, "GET", "HTTP/1.1", "/nope", NULL);
        } else if (strcmp(p->name, "old_v1") == 0) {
            ADD_PATHS(p, old_paths);
            add_case(p, "POST", "HTTP/1.1", "/env", "an uploaded body\n");
        } else {
            ADD_PATHS(p, world_paths);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/* Path of plugin @p p's .so in its build directory. */
static void
plugin_path(const struct dplugin *p, char *out, size_t cap)
{
    const char *dir = getenv(p->dir_env);

    ck_assert_msg(dir != NULL, "%s is not set", p->dir_env);
    snprintf(out, cap, "%s/%s", dir, p->so);
}

/* Copy a plugin into the server's plugin directory (temporary file, then rename). */
static void
install_plugin(const struct dplugin *p)
{
    char src[600], tmp[620], dst[600], buf[65536];
    int in, out;
    ssize_t n;

    plugin_path(p, src, sizeof(src));
    snprintf(dst, sizeof(dst), "%s/%s", srv.plugins,
             strrchr(p->so, '/') ? strrchr(p->so, '/') + 1 : p->so);
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    in = open(src, O_RDONLY | O_CLOEXEC);
    ck_assert_msg(in >= 0, "cannot open %s: %s", src, strerror(errno));
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    ck_assert_msg(out >= 0, "cannot create %s", tmp);
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    ck_assert_int_eq(rename(tmp, dst), 0);
}

/* The private path a plugin is configured with, for the server or the test client. */
static void
config_value(const struct dplugin *p, const char *who, char *out, size_t cap)
{
    if (strcmp(p->config_key, "db") == 0)
        snprintf(out, cap, "%s/%s-%s.db", srv.dir, who, p->name);
    else if (strcmp(p->config_key, "key") == 0)
        snprintf(out, cap, "%s", SESSION_KEY);
    else
        snprintf(out, cap, "%s", srv.dir);
}

static void
diff_setup(void)
{
    static char sets[N_PLUGINS][700];
    const char *extra[6 + 2 * N_PLUGINS + 1];
    int n = 0;

    h_init(&srv);
    extra[n++] = "--workers";
    extra[n++] = "1";
    extra[n++] = "--trusted-proxy";
    extra[n++] = "127.0.0.1";
    extra[n++] = "--log-level";
    extra[n++] = "info";
    for (size_t i = 0; i < N_PLUGINS; i++) {
        char value[600];

        install_plugin(&plugins[i]);
        if (!plugins[i].config_key)
            continue;
        config_value(&plugins[i], "server", value, sizeof(value));
        snprintf(sets[i], sizeof(sets[i]), "%s.%s=%s", plugins[i].name, plugins[i].config_key,
                 value);
        extra[n++] = "--set";
        extra[n++] = sets[i];
    }
    extra[n] = NULL;
    h_start(&srv, 1, extra);
}

static void
diff_teardown(void)
{
    int status = h_stop(&srv, SIGTERM, 15000);

    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "server did not exit 0 on SIGTERM (status %d, log %s)", status, srv.log);
    h_cleanup(&srv);
}

/* ------------------------------------------------------------------ */
/* Disagreements                                                       */
/* ------------------------------------------------------------------ */

struct diffs {
    const struct dcase *dc;
    char text[16384];
    size_t len;
    int n;
};

/* A printable, bounded copy of @p n bytes of @p p. */
static const char *
quote(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    if (!p)
        return "(null)";
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];

        if (o > QUOTE_MAX) {
            o += (size_t)snprintf(out + o, cap - o, "...(%zu bytes)", n);
            break;
        }
        if (ch == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (ch == '\r')
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (ch == '"' || ch == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    if (o + 1 < cap)
        out[o++] = '"';
    out[o < cap ? o : cap - 1] = '\0';
    return out;
}

static void diff_add(struct diffs *d, const char *field, const char *fmt, ...) CSGI_PRINTF(3, 4);

/* Record that @p field disagrees; fmt describes both values. */
static void
diff_add(struct diffs *d, const char *field, const char *fmt, ...)
{
    char what[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    printf("DIFF %s %s %s [%s]: %s: %s\n", d->dc->method, d->dc->target, d->dc->protocol,
           d->dc->tag, field, what);
    n = snprintf(d->text + d->len, sizeof(d->text) - d->len, "\n  %s: %s", field, what);
    if (n > 0 && d->len + (size_t)n < sizeof(d->text))
        d->len += (size_t)n;
    d->n++;
}

/* ------------------------------------------------------------------ */
/* The two transports                                                  */
/* ------------------------------------------------------------------ */

/* What one transport answered, in comparable form. */
struct answer {
    int status;
    char reason[128];
    /* "name: value\n" per application header, names lower-cased, in order. */
    char headers[4096];
    int framing;
    const char *body;
    size_t body_len;
    /* 1 aborted, 0 complete, -1 not visible on this transport. */
    int aborted;
    /* "cases[TAG] ..." lines, one per line. */
    char logs[8192];
    /* From the "finished reason=N" line (or the test client's field), -1 when absent. */
    int finish_reason;
};

static int
ignored_header(const char *name, size_t len)
{
    static const char *const names[] = {"date", "connection", "content-length",
                                        "transfer-encoding"};

    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            return 1;
    }
    return 0;
}

static void
header_add(struct answer *a, const char *name, size_t nlen, const char *value, size_t vlen)
{
    size_t o = strlen(a->headers);

    if (ignored_header(name, nlen))
        return;
    for (size_t i = 0; i < nlen && o + 1 < sizeof(a->headers); i++)
        a->headers[o++] = (char)tolower((unsigned char)name[i]);
    snprintf(a->headers + o, sizeof(a->headers) - o, ": %.*s\n", (int)vlen, value);
}

/* Append line @p p (up to a newline or NUL) to @p a's logs when it is one of @p tag's. */
static void
log_add(struct answer *a, const char *p, const char *tag)
{
    char needle[64];
    const char *at, *eol;
    size_t o = strlen(a->logs);

    snprintf(needle, sizeof(needle), "cases[%s] ", tag);
    at = strstr(p, needle);
    eol = strchr(p, '\n');
    if (!at || (eol && at > eol))
        return;
    if (!eol)
        eol = at + strlen(at);
    snprintf(a->logs + o, sizeof(a->logs) - o, "%.*s\n", (int)(eol - at), at);
    if (strncmp(at + strlen(needle), "finished reason=", 16) == 0)
        a->finish_reason = atoi(at + strlen(needle) + 16);
}

/* Run @p dc through the test client. @return the response (caller frees), or NULL. */
static struct csgi_test_response *
run_testclient(const struct dcase *dc, struct answer *a, struct diffs *d, int *refused)
{
    const struct dplugin *p = dc->plugin;
    struct csgi_header headers[8] = {
        {CSGI_STR_INIT("Host"), CSGI_STR_INIT("127.0.0.1")},
        {CSGI_STR_INIT("X-Case-Tag"), {dc->tag, strlen(dc->tag)}},
    };
    struct csgi_test_request rq = {.method = dc->method,
                                   .target = dc->target,
                                   .headers = headers,
                                   .n_headers = 2,
                                   .protocol = dc->protocol};
    struct csgi_test_response *resp = NULL;
    struct csgi_test_client *client;
    struct csgi_kv cfg[1] = {{NULL, NULL}};
    char path[600], value[600], err[256], clen[32];
    size_t log_start;
    int rc;

    memset(a, 0, sizeof(*a));
    a->finish_reason = -1;
    a->aborted = -1;
    plugin_path(p, path, sizeof(path));
    if (p->config_key) {
        config_value(p, "testclient", value, sizeof(value));
        cfg[0].key = p->config_key;
        cfg[0].value = value;
    }
    client = csgi_test_client_open(path, NULL, cfg, p->config_key ? 1 : 0, err, sizeof(err));
    ck_assert_msg(client != NULL, "%s: csgi_test_client_open: %s", path, err);
    /* As the server's --trusted-proxy 127.0.0.1 (diff_setup()). */
    ck_assert_int_eq(csgi_test_client_trust_proxy(client, "127.0.0.1"), 0);
    if (dc->body) {
        snprintf(clen, sizeof(clen), "%zu", strlen(dc->body));
        headers[2] = (struct csgi_header){CSGI_STR_INIT("Content-Type"),
                                          csgi_str_c(dc->ctype ? dc->ctype : "text/plain")};
        headers[3] = (struct csgi_header){CSGI_STR_INIT("Content-Length"), {clen, strlen(clen)}};
        rq.n_headers = 4;
        rq.body = dc->body;
        rq.body_len = strlen(dc->body);
    }
    if (dc->cookie)
        headers[rq.n_headers++] =
            (struct csgi_header){CSGI_STR_INIT("Cookie"), csgi_str_c(dc->cookie)};
    ck_assert_uint_le(rq.n_headers + dc->n_extra, sizeof(headers) / sizeof(*headers));
    for (size_t i = 0; i < dc->n_extra; i++)
        headers[rq.n_headers++] = dc->extra[i];
    log_start = csgi_test_client_log_count(client);
    rc = csgi_test_client_request(client, &rq, &resp);
    *refused = rc;
    if (rc != 0 || !resp) {
        /* A refused head agrees only with the server's 400 (checked by the caller). */
        if (rc != CSGI_EINVAL)
            diff_add(d, "request", "the test client refused it: %s (%d)", csgi_err_name(rc), rc);
        csgi_test_client_free(client);
        return NULL;
    }
    /* Every line logged since the request began, on_finished callbacks included. */
    for (size_t i = log_start; i < csgi_test_client_log_count(client); i++)
        log_add(a, csgi_test_client_log_at(client, i)->text, dc->tag);
    csgi_test_client_free(client);

    a->status = resp->status;
    snprintf(a->reason, sizeof(a->reason), "%s", resp->reason ? resp->reason : "");
    for (size_t i = 0; i < resp->n_headers; i++)
        header_add(a, resp->headers[i].name.ptr, resp->headers[i].name.len,
                   resp->headers[i].value.ptr, resp->headers[i].value.len);
    a->framing = resp->framing;
    a->body = resp->body;
    a->body_len = resp->body_len;
    a->aborted = resp->aborted;
    if (p->logs) {
        /* The field and the plugin's own line must agree within the test client too. */
        if (a->finish_reason != resp->finish_reason)
            diff_add(d, "finish_reason (test client)", "field %d, on_finished logged %d",
                     resp->finish_reason, a->finish_reason);
    } else {
        a->finish_reason = resp->finish_reason;
    }
    return resp;
}

static long
file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/*
 * Run @p dc through csgi-server. @p seg receives the error-log lines written
 * meanwhile (caller frees). @return the wire response (caller frees).
 */
static void
run_server(const struct dcase *dc, struct answer *a, struct wire_resp *r, char **seg,
           struct diffs *d)
{
    char req[2048], val[64];
    struct wire_conn c;
    long off = file_size(srv.log);
    int n, http11 = strcmp(dc->protocol, "HTTP/1.1") == 0;
    int no_body = strcmp(dc->method, "HEAD") == 0;

    memset(a, 0, sizeof(*a));
    a->finish_reason = -1;
    a->aborted = -1;
    n = snprintf(req, sizeof(req), "%s %s %s\r\nHost: 127.0.0.1\r\nX-Case-Tag: %s\r\n", dc->method,
                 dc->target, dc->protocol, dc->tag);
    if (dc->body)
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Content-Type: %s\r\nContent-Length: %zu\r\n",
                      dc->ctype ? dc->ctype : "text/plain", strlen(dc->body));
    if (dc->cookie)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Cookie: %s\r\n", dc->cookie);
    for (size_t i = 0; i < dc->n_extra; i++)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "%s: %s\r\n", dc->extra[i].name.ptr,
                      dc->extra[i].value.ptr);
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n%s", dc->body ? dc->body : "");
    ck_assert_int_eq(wire_connect(&c, srv.port, 0), 0);
    ck_assert_int_eq(wire_send(&c, req, (size_t)n), 0);
    wire_read(&c, dc->method, 10000, r);
    if (r->timed_out)
        diff_add(d, "wire", "the server's response timed out (status %d, %zu body bytes)",
                 r->status, r->body_len);

    a->status = r->status;
    a->framing = r->status ? r->framing : WIRE_FRAMING_NONE;
    a->body = r->body;
    a->body_len = r->body_len;
    if (r->head) {
        const char *sp = strchr(r->head, ' ');
        const char *eol = strstr(r->head, "\r\n");

        sp = sp ? strchr(sp + 1, ' ') : NULL;
        if (sp && eol && sp < eol)
            snprintf(a->reason, sizeof(a->reason), "%.*s", (int)(eol - sp - 1), sp + 1);
        for (const char *p = eol; p && p[0] == '\r' && p[2];) {
            const char *line = p + 2, *colon, *v, *end;

            p = strstr(line, "\r\n");
            end = p ? p : line + strlen(line);
            colon = memchr(line, ':', (size_t)(end - line));
            if (!colon)
                continue;
            v = colon + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            header_add(a, line, (size_t)(colon - line), v, (size_t)(end - v));
        }
    }
    /* What the wire shows of an abort. */
    if (r->status && !no_body && r->framing != WIRE_FRAMING_CLOSE && !r->timed_out)
        a->aborted = !r->complete;
    else if (r->status && no_body && http11 && !r->timed_out)
        a->aborted =
            wire_wait_close(&c, HEAD_CLOSE_WAIT_MS) == 1 &&
            !(wire_header(r, "Connection", val, sizeof(val)) && strcasecmp(val, "close") == 0);
    wire_close(&c);

    if (dc->plugin->logs) {
        char needle[64];
        long long end = wire_now_ms() + FINISH_WAIT_MS;

        snprintf(needle, sizeof(needle), "cases[%s] finished reason=", dc->tag);
        for (;;) {
            char *log = h_slurp(srv.log, NULL);
            int found = strstr(log + ((size_t)off <= strlen(log) ? off : 0), needle) != NULL;

            free(log);
            if (found || wire_now_ms() > end)
                break;
            wire_sleep_ms(10);
        }
    }
    {
        size_t len;
        char *log = h_slurp(srv.log, &len);

        *seg = strdup((size_t)off <= len ? log + off : "");
        free(log);
    }
    for (const char *p = *seg; p && *p;) {
        const char *eol = strchr(p, '\n');

        log_add(a, p, dc->tag);
        p = eol ? eol + 1 : NULL;
    }
}

/* ------------------------------------------------------------------ */
/* The test                                                            */
/* ------------------------------------------------------------------ */

static void
compare(struct diffs *d, const struct answer *tc, const struct answer *sv, int tc_rc_failed,
        const char *seg)
{
    char q1[1024], q2[1024];

    if (tc->status != sv->status)
        diff_add(d, "status", "test client %d, server %d", tc->status, sv->status);
    if (strcmp(tc->reason, sv->reason) != 0)
        diff_add(d, "reason", "test client %s, server %s",
                 quote(tc->reason, strlen(tc->reason), q1, sizeof(q1)),
                 quote(sv->reason, strlen(sv->reason), q2, sizeof(q2)));
    if (strcmp(tc->headers, sv->headers) != 0)
        diff_add(d, "headers", "test client %s, server %s",
                 quote(tc->headers, strlen(tc->headers), q1, sizeof(q1)),
                 quote(sv->headers, strlen(sv->headers), q2, sizeof(q2)));
    if (tc->framing != sv->framing)
        diff_add(d, "framing", "test client %s, server %s", wire_framing_name(tc->framing),
                 wire_framing_name(sv->framing));
    if (tc->body_len != sv->body_len || memcmp(tc->body, sv->body, tc->body_len) != 0)
        diff_add(d, "body", "test client %s, server %s",
                 quote(tc->body, tc->body_len, q1, sizeof(q1)),
                 quote(sv->body, sv->body_len, q2, sizeof(q2)));
    if (sv->aborted >= 0 && tc->aborted != sv->aborted)
        diff_add(d, "aborted", "test client %d, server %d (%s)", tc->aborted, sv->aborted,
                 sv->aborted ? "the wire response was cut short"
                             : "the wire response was complete");
    if (strcmp(tc->logs, sv->logs) != 0)
        diff_add(d, "logs", "test client %s, server %s",
                 quote(tc->logs, strlen(tc->logs), q1, sizeof(q1)),
                 quote(sv->logs, strlen(sv->logs), q2, sizeof(q2)));
    if (d->dc->plugin->logs && tc->finish_reason != sv->finish_reason)
        diff_add(d, "finish_reason", "test client %d, server %d", tc->finish_reason,
                 sv->finish_reason);
    if (tc_rc_failed) {
        char needle[96];

        snprintf(needle, sizeof(needle), "plugin \"%s\"", d->dc->plugin->name);
        if (!strstr(seg, needle))
            diff_add(d, "error_log", "the application failed but no server log line names %s",
                     needle);
    }
}

/*
 * For the echo plugin: @p a's body with the value of "request_id" replaced by
 * '*' (each transport makes its own id), in @p copy (caller frees).
 */
static void
mask_request_id(struct answer *a, struct diffs *d, const char *who, char **copy)
{
    static const char key[] = "\"request_id\":\"";
    const char *at = a->body ? memmem(a->body, a->body_len, key, sizeof(key) - 1) : NULL;
    const char *v, *end;

    *copy = NULL;
    if (!at) {
        if (a->body_len)
            diff_add(d, "request_id", "%s: no request_id in the body", who);
        return;
    }
    v = at + sizeof(key) - 1;
    end = memchr(v, '"', a->body_len - (size_t)(v - a->body));
    if (!end || end == v) {
        diff_add(d, "request_id", "%s: an empty or unterminated request_id", who);
        return;
    }
    *copy = malloc(a->body_len);
    ck_assert(*copy != NULL);
    memcpy(*copy, a->body, (size_t)(v - a->body));
    (*copy)[v - a->body] = '*';
    memcpy(*copy + (v - a->body) + 1, end, a->body_len - (size_t)(end - a->body));
    a->body = *copy;
    a->body_len -= (size_t)(end - v) - 1;
}

/* The status and substrings @p dc expects of @p a. */
static void
check_expect(const struct dcase *dc, const struct answer *a, struct diffs *d, const char *who)
{
    char q[1024];

    if (a->status != dc->expect_status)
        diff_add(d, "expect", "%s: status %d, expected %d", who, a->status, dc->expect_status);
    for (const char *const *e = dc->expect; *e; e++) {
        if (!a->body || !memmem(a->body, a->body_len, *e, strlen(*e)))
            diff_add(d, "expect", "%s: body %s lacks %s", who,
                     quote(a->body, a->body_len, q, sizeof(q)), *e);
    }
}

START_TEST(differential)
{
    const struct dcase *dc = &dcases[_i];
    struct diffs *d = calloc(1, sizeof(*d));
    struct answer *tc = calloc(1, sizeof(*tc)), *sv = calloc(1, sizeof(*sv));
    struct csgi_test_response *resp;
    struct wire_resp r;
    char *seg = NULL, *tc_copy = NULL, *sv_copy = NULL;
    int refused = 0, failed;

    ck_assert(d && tc && sv);
    d->dc = dc;
    resp = run_testclient(dc, tc, d, &refused);
    run_server(dc, sv, &r, &seg, d);
    failed = resp && resp->rc < 0 && resp->rc != CSGI_EDECLINED;
    if (resp && strcmp(dc->plugin->name, "echo") == 0 && dc->expect_status != 405 &&
        dc->expect_status != 400) {
        mask_request_id(tc, d, "test client", &tc_copy);
        mask_request_id(sv, d, "server", &sv_copy);
    }
    if (dc->expect) {
        check_expect(dc, tc, d, "test client");
        check_expect(dc, sv, d, "server");
    }
    if (resp)
        compare(d, tc, sv, failed, seg);
    else if (refused == CSGI_EINVAL && (sv->status != 400 || sv->logs[0]))
        diff_add(d, "refused",
                 "the test client refused the head (EINVAL), the server answered "
                 "%d%s",
                 sv->status, sv->logs[0] ? " and ran the application" : "");
    /* Both sides must have run the request to its end: agreeing on nothing proves nothing. */
    if (resp && dc->plugin->logs && (tc->finish_reason < 0 || sv->finish_reason < 0))
        diff_add(d, "finished", "no \"finished reason=\" line: test client %d, server %d",
                 tc->finish_reason, sv->finish_reason);
    /* Both answers in one line, so that agreement can be read too. */
    printf("%s %s %s %s [%s]: test client rc %s status %d %s body %zu aborted %d finish %d | "
           "server status %d %s body %zu aborted %d finish %d\n",
           d->n ? "DIFFERS" : "same", dc->method, dc->target, dc->protocol, dc->tag,
           resp ? csgi_err_name(resp->rc) : "refused", tc->status, wire_framing_name(tc->framing),
           tc->body_len, tc->aborted, tc->finish_reason, sv->status, wire_framing_name(sv->framing),
           sv->body_len, sv->aborted, sv->finish_reason);
    fflush(stdout);
    ck_assert_msg(d->n == 0, "%s %s %s [%s] (test client rc %s): %d disagreement(s):%s", dc->method,
                  dc->target, dc->protocol, dc->tag, resp ? csgi_err_name(resp->rc) : "refused",
                  d->n, d->text);
    csgi_test_response_free(resp);
    wire_resp_free(&r);
    free(seg);
    free(tc_copy);
    free(sv_copy);
    free(tc);
    free(sv);
    free(d);
}
END_TEST

static Suite *
differential_suite(void)
{
    Suite *s = suite_create("differential");
    TCase *tc = tcase_create("cases");

    tcase_add_unchecked_fixture(tc, diff_setup, diff_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, differential, 0, (int)n_dcases);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    build_cases();
    /* One line per case, so that a tag in a failure can be looked up. */
    for (size_t i = 0; i < n_dcases; i++)
        printf("case %s: %s %s %s\n", dcases[i].tag, dcases[i].method, dcases[i].target,
               dcases[i].protocol);
    fflush(stdout);
    sr = srunner_create(differential_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    free(dcases);
    return failed ? 1 : 0;
}
