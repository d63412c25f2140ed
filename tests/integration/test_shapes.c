/*
 * The traffic-shape matrix: a real csgi-server with the cases fixture, run
 * with 1, 2 (each with --threads 2) and 4 workers, and the ways clients use a connection:
 * keep-alive, a connection per request, HTTP/1.0 without keep-alive, pipelining (a HEAD of a
 * chunked response in the middle), a body streamed with delays (each chunk must reach the client
 * when the application produces it), large uploads (Content-Length and chunked), a slow reader of a
 * large response, a stream that waits between its chunks (a host timer), and a client that hangs up
 * mid-stream. Framing and timing are read from a raw socket (wire.c). The streaming figures are
 * printed for quoting.
 */
#define _GNU_SOURCE
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "wire.h"

/* Bounds of the streamed-body check (generous for a loaded CI machine). */
#define STREAM_CHUNKS      5
#define STREAM_DELAY_MS    500
#define STREAM_FIRST_MAX   300
#define STREAM_GAP_MIN     300
#define STREAM_LATENCY_MAX 300

/* Chunks /cases/chunks?n=20&delay_ms=100 may produce before a hang-up at 350 ms is noticed. */
#define ABORT_NOTICED_MAX 10

#define UPLOAD_BYTES (3u * 1024u * 1024u)
#define BIG_BYTES    (4u * 1024u * 1024u)

static struct hserver srv;
static int n_workers;

/*
 * Keep-alive connections held open through the "busy" case: more than
 * libmicrohttpd's epoll batch, so that its loop runs the other way (it waits on
 * the daemon's descriptor itself: server/src/mhd_loop.h) under every shape.
 */
#define BUSY_CONNS 130
static struct wire_conn busy[BUSY_CONNS];
static int n_busy;

/* ------------------------------------------------------------------ */
/* Server per worker count                                             */
/* ------------------------------------------------------------------ */

static void
start_cases(int workers, int threads, int idle)
{
    char nworkers[16], nthreads[16], tmpdir[400];
    const char *extra[] = {"--workers",
                           nworkers,
                           "--threads",
                           nthreads,
                           "--set",
                           tmpdir,
                           "--max-connections-per-ip",
                           "0",
                           "--conn-timeout",
                           "300",
                           NULL};
    static const char get[] = "GET /cases/one HTTP/1.1\r\nHost: t\r\n\r\n";

    n_workers = workers;
    h_init(&srv);
    snprintf(nworkers, sizeof(nworkers), "%d", workers);
    snprintf(nthreads, sizeof(nthreads), "%d", threads);
    snprintf(tmpdir, sizeof(tmpdir), "cases.tmpdir=%s", srv.dir);
    h_add_plugin(&srv, "cases.so", NULL);
    h_add_plugin(&srv, "waits.so", NULL);
    /* The limits only where the idle connections need them: the others run as deployed. */
    if (!idle)
        extra[6] = NULL;
    h_start(&srv, workers, extra);
    /* Each answered once, so that the worker holds it before the first case. */
    for (n_busy = 0; n_busy < idle; n_busy++) {
        struct wire_resp r;

        ck_assert_int_eq(wire_connect(&busy[n_busy], srv.port, 0), 0);
        ck_assert_int_eq(wire_send(&busy[n_busy], get, strlen(get)), 0);
        ck_assert_int_eq(wire_read(&busy[n_busy], "GET", 5000, &r), 0);
        ck_assert_int_eq(r.status, 200);
        wire_resp_free(&r);
    }
}

static void
setup_1(void)
{
    start_cases(1, 1, 0);
}

static void
setup_2(void)
{
    /* Two libmicrohttpd threads (two loops) in each worker too. */
    start_cases(2, 2, 0);
}

static void
setup_4(void)
{
    start_cases(4, 1, 0);
}

static void
setup_busy(void)
{
    start_cases(1, 1, BUSY_CONNS);
}

static void
teardown(void)
{
    int status;

    while (n_busy > 0)
        wire_close(&busy[--n_busy]);
    status = h_stop(&srv, SIGTERM, 15000);

    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "server did not exit 0 on SIGTERM (status %d, log %s)", status, srv.log);
    h_cleanup(&srv);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void
conn_open(struct wire_conn *c, int rcvbuf)
{
    ck_assert_msg(wire_connect(c, srv.port, rcvbuf) == 0, "connect to port %d failed", srv.port);
}

/* Format one request (no body) into @p out. @return its length. */
static size_t
format_request(char *out, size_t cap, const char *method, const char *target, const char *proto,
               const char *extra)
{
    int n = snprintf(out, cap, "%s %s %s\r\nHost: 127.0.0.1\r\n%s\r\n", method, target, proto,
                     extra ? extra : "");

    ck_assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void
send_request(struct wire_conn *c, const char *method, const char *target, const char *proto,
             const char *extra)
{
    char req[1024];
    size_t len = format_request(req, sizeof(req), method, target, proto, extra);

    ck_assert_msg(wire_send(c, req, len) == 0, "%s %s: send failed", method, target);
}

/*
 * What a request to the cases fixture must give. framing -1: not checked.
 * The framing follows the rules in README.md ("What happens to a request"):
 * a known length (declared Content-Length, exact total_length, write()
 * output alone, a file, an empty body) goes with Content-Length; any other
 * body, a single chunk of unknown length included, is chunked on HTTP/1.1
 * (each chunk goes out when next() returns it, so nothing waits to see
 * whether a second one follows) and close-delimited on HTTP/1.0. HEAD sends
 * the headers a GET would.
 */
struct expect {
    const char *method;
    const char *target;
    int status;
    const char *body;
    int framing;
};

static const struct expect ex_one = {"GET", "/cases/one", 200, "one chunk\n", WIRE_FRAMING_CHUNKED};
static const struct expect ex_chunks = {"GET", "/cases/chunks?n=3", 200,
                                        "chunk 0\nchunk 1\nchunk 2\n", WIRE_FRAMING_CHUNKED};
/* HEAD pulls the body to announce the length a GET would have (SPEC 4.5). */
static const struct expect ex_head_chunks = {"HEAD", "/cases/chunks?n=3", 200, "",
                                             WIRE_FRAMING_LENGTH};
static const struct expect ex_total = {"GET", "/cases/total-length", 200, "abcdefghijkl",
                                       WIRE_FRAMING_LENGTH};
static const struct expect ex_write = {"GET", "/cases/write?n=3", 200,
                                       "write 0\nwrite 1\nwrite 2\n", WIRE_FRAMING_LENGTH};
static const struct expect ex_empty = {"GET", "/cases/empty", 200, "", WIRE_FRAMING_LENGTH};
static const struct expect ex_file = {"GET", "/cases/file?offset=5&count=10", 200, "fghijklmno",
                                      WIRE_FRAMING_LENGTH};
static const struct expect ex_head_skip = {"HEAD", "/cases/head-skip", 200, "",
                                           WIRE_FRAMING_LENGTH};

/* Read one response on @p c and check it against @p ex; @p how names the shape. */
static void
check_response(struct wire_conn *c, const struct expect *ex, const char *how)
{
    struct wire_resp r;
    int rc = wire_read(c, ex->method, 10000, &r);

    ck_assert_msg(rc == 0, "workers=%d %s %s %s: no complete response (status %d, timed out %d)",
                  n_workers, how, ex->method, ex->target, r.status, r.timed_out);
    ck_assert_msg(r.status == ex->status, "workers=%d %s %s %s: status %d, want %d", n_workers, how,
                  ex->method, ex->target, r.status, ex->status);
    ck_assert_msg(r.body_len == strlen(ex->body) && memcmp(r.body, ex->body, r.body_len) == 0,
                  "workers=%d %s %s %s: body \"%s\", want \"%s\"", n_workers, how, ex->method,
                  ex->target, r.body, ex->body);
    if (ex->status == 200) {
        /* Every case sends Content-Type: text/plain (also a response queued again). */
        char ct[64];

        ck_assert_msg(wire_header(&r, "Content-Type", ct, sizeof(ct)) &&
                          strcmp(ct, "text/plain") == 0 &&
                          wire_header_count(&r, "Content-Type") == 1,
                      "workers=%d %s %s %s: Content-Type wrong in %s", n_workers, how, ex->method,
                      ex->target, r.head);
    }
    if (ex->framing >= 0)
        ck_assert_msg(r.framing == ex->framing, "workers=%d %s %s %s: framing %s, want %s",
                      n_workers, how, ex->method, ex->target, wire_framing_name(r.framing),
                      wire_framing_name(ex->framing));
    wire_resp_free(&r);
}

/* ------------------------------------------------------------------ */
/* Connection shapes                                                   */
/* ------------------------------------------------------------------ */

/* Several requests, one after the other, on one keep-alive connection. */
START_TEST(shapes_keepalive)
{
    const struct expect *seq[] = {&ex_one,   &ex_chunks, &ex_head_chunks, &ex_total,
                                  &ex_write, &ex_empty,  &ex_file,        &ex_one};
    struct wire_conn c;

    conn_open(&c, 0);
    for (size_t i = 0; i < sizeof(seq) / sizeof(*seq); i++) {
        send_request(&c, seq[i]->method, seq[i]->target, "HTTP/1.1", NULL);
        check_response(&c, seq[i], "keep-alive");
        ck_assert_msg(!c.eof, "workers=%d keep-alive: the server closed after %s %s", n_workers,
                      seq[i]->method, seq[i]->target);
    }
    ck_assert_msg(wire_wait_close(&c, 100) == 0, "workers=%d keep-alive: connection not kept",
                  n_workers);
    wire_close(&c);
}
END_TEST

/*
 * Response heads on one keep-alive connection: the same head again (the
 * server keeps a copy of the last one per request block and thread), one
 * that differs only in its bytes or its status, heads too large for that
 * copy (twice: the second matches the memo, whose generation the copy no
 * longer holds) or for the start_response() memo, and the first head again
 * after each. /cases/headers overwrites its header buffers once start_response()
 * returned, so every header must be the server's copy of that request's.
 */
START_TEST(shapes_keepalive_heads)
{
    static const struct {
        const char *query;
        int status, n, len;
        char letter;
    } seq[] = {
        {"v=0", 200, 1, 4, 'a'},
        {"v=0", 200, 1, 4, 'a'},
        {"v=1", 200, 1, 4, 'b'},
        {"v=0", 200, 1, 4, 'a'},
        {"v=0&odd=1", 201, 1, 4, 'a'},
        {"v=0", 200, 1, 4, 'a'},
        {"n=3&v=4&len=150", 200, 3, 150, 'e'},
        {"n=3&v=4&len=150", 200, 3, 150, 'e'},
        {"v=0", 200, 1, 4, 'a'},
        {"n=9&v=5", 200, 9, 4, 'f'},
        {"v=0", 200, 1, 4, 'a'},
    };
    struct wire_conn c;

    conn_open(&c, 0);
    for (size_t i = 0; i < sizeof(seq) / sizeof(*seq); i++) {
        char target[64], name[24], value[256], want[256];
        struct wire_resp r;

        snprintf(target, sizeof(target), "/cases/headers?%s", seq[i].query);
        send_request(&c, "GET", target, "HTTP/1.1", NULL);
        ck_assert_msg(wire_read(&c, "GET", 10000, &r) == 0, "workers=%d %s: no response", n_workers,
                      target);
        ck_assert_msg(r.status == seq[i].status, "workers=%d %s: status %d", n_workers, target,
                      r.status);
        memset(want, seq[i].letter, (size_t)seq[i].len);
        want[seq[i].len] = '\0';
        for (int k = 0; k < seq[i].n; k++) {
            snprintf(name, sizeof(name), "X-Case-%d", k);
            ck_assert_msg(wire_header(&r, name, value, sizeof(value)) && strcmp(value, want) == 0 &&
                              wire_header_count(&r, name) == 1,
                          "workers=%d %s: %s wrong in %s", n_workers, target, name, r.head);
        }
        snprintf(name, sizeof(name), "X-Case-%d", seq[i].n);
        ck_assert_msg(wire_header_count(&r, name) == 0, "workers=%d %s: %s left over in %s",
                      n_workers, target, name, r.head);
        wire_resp_free(&r);
    }
    wire_close(&c);
}
END_TEST

/*
 * Each case three times in a row: csgi-server queues a thread's last small
 * buffer response again for the same one (http_mhd.c, resp_cache), built at
 * the second and sent from the third, on a connection of its own each time.
 */
#define SHAPE_REPEAT 3

/* A connection per request, closed by "Connection: close". */
START_TEST(shapes_connection_close)
{
    const struct expect *seq[] = {&ex_one,   &ex_chunks, &ex_head_chunks, &ex_total,
                                  &ex_write, &ex_empty,  &ex_file};

    for (size_t k = 0; k < SHAPE_REPEAT * sizeof(seq) / sizeof(*seq); k++) {
        size_t i = k / SHAPE_REPEAT;
        struct wire_conn c;

        conn_open(&c, 0);
        send_request(&c, seq[i]->method, seq[i]->target, "HTTP/1.1", "Connection: close\r\n");
        check_response(&c, seq[i], "connection-close");
        ck_assert_msg(wire_wait_close(&c, 2000) == 1,
                      "workers=%d Connection: close: %s %s left the connection open", n_workers,
                      seq[i]->method, seq[i]->target);
        wire_close(&c);
    }
}
END_TEST

/* HTTP/1.0 without keep-alive: a body of unknown length is close-delimited. */
START_TEST(shapes_http10)
{
    const struct expect chunks10 = {"GET", "/cases/chunks?n=3", 200, "chunk 0\nchunk 1\nchunk 2\n",
                                    WIRE_FRAMING_CLOSE};
    const struct expect one10 = {"GET", "/cases/one", 200, "one chunk\n", WIRE_FRAMING_CLOSE};
    const struct expect head10 = {"HEAD", "/cases/chunks?n=3", 200, "", WIRE_FRAMING_LENGTH};
    const struct expect *seq[] = {&one10, &chunks10, &head10, &ex_total, &ex_file};

    for (size_t k = 0; k < SHAPE_REPEAT * sizeof(seq) / sizeof(*seq); k++) {
        size_t i = k / SHAPE_REPEAT;
        struct wire_conn c;

        conn_open(&c, 0);
        send_request(&c, seq[i]->method, seq[i]->target, "HTTP/1.0", NULL);
        check_response(&c, seq[i], "HTTP/1.0");
        ck_assert_msg(wire_wait_close(&c, 2000) == 1,
                      "workers=%d HTTP/1.0: %s %s left the connection open", n_workers,
                      seq[i]->method, seq[i]->target);
        wire_close(&c);
    }
}
END_TEST

/* Three requests in one send(); the responses come back in order. */
static void
pipeline(const struct expect *const *seq, size_t n)
{
    char req[4096];
    size_t len = 0;
    struct wire_conn c;

    for (size_t i = 0; i < n; i++)
        len += format_request(req + len, sizeof(req) - len, seq[i]->method, seq[i]->target,
                              "HTTP/1.1", NULL);
    conn_open(&c, 0);
    ck_assert_int_eq(wire_send(&c, req, len), 0);
    for (size_t i = 0; i < n; i++)
        check_response(&c, seq[i], "pipelined");
    ck_assert_msg(wire_wait_close(&c, 100) == 0,
                  "workers=%d pipelined: extra bytes or a close after the responses", n_workers);
    wire_close(&c);
}

START_TEST(shapes_pipelined)
{
    const struct expect *a[] = {&ex_one, &ex_head_chunks, &ex_total};
    const struct expect *b[] = {&ex_chunks, &ex_head_skip, &ex_file};
    const struct expect *d[] = {&ex_head_chunks, &ex_head_chunks, &ex_chunks};

    pipeline(a, 3);
    pipeline(b, 3);
    pipeline(d, 3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A body streamed with delays                                         */
/* ------------------------------------------------------------------ */

/*
 * /cases/chunks?n=5&delay_ms=500&stamp=1: the application returns a chunk at
 * once, then one every 500 ms, each stamped with its CLOCK_MONOTONIC ms.
 * Every chunk must reach the client as its own chunk when it is produced.
 */
START_TEST(shapes_streamed_delays)
{
    char target[128];
    struct wire_conn c;
    struct wire_resp r;
    long long t0, prev = 0;
    size_t off = 0;
    int rc;

    snprintf(target, sizeof(target), "/cases/chunks?n=%d&size=10&delay_ms=%d&stamp=1",
             STREAM_CHUNKS, STREAM_DELAY_MS);
    conn_open(&c, 0);
    t0 = wire_now_ms();
    send_request(&c, "GET", target, "HTTP/1.1", NULL);
    rc = wire_read(&c, "GET", 15000, &r);
    ck_assert_msg(rc == 0 && r.status == 200, "workers=%d streamed: status %d, complete %d",
                  n_workers, r.status, r.complete);
    ck_assert_msg(r.framing == WIRE_FRAMING_CHUNKED, "workers=%d streamed: framing %s", n_workers,
                  wire_framing_name(r.framing));
    printf("shapes: workers=%d streamed %s: %zu chunks, head after %lld ms\n", n_workers, target,
           r.n_chunks, r.head_ms - t0);
    for (size_t i = 0; i < r.n_chunks; i++) {
        long long stamp = -1;
        char *t = memmem(r.body + off, r.chunks[i].size, " t=", 3);

        if (t)
            stamp = atoll(t + 3);
        printf("shapes: workers=%d chunk %zu: %zu bytes, +%lld ms after the request, gap %lld ms, "
               "%lld ms after the app produced it\n",
               n_workers, i, r.chunks[i].size, r.chunks[i].at_ms - t0,
               i ? r.chunks[i].at_ms - prev : 0, stamp >= 0 ? r.chunks[i].at_ms - stamp : -1);
        prev = r.chunks[i].at_ms;
        off += r.chunks[i].size;
    }
    fflush(stdout);
    ck_assert_msg(r.n_chunks == STREAM_CHUNKS,
                  "workers=%d streamed: %zu chunks on the wire, want %d", n_workers, r.n_chunks,
                  STREAM_CHUNKS);
    off = 0;
    for (size_t i = 0; i < r.n_chunks; i++) {
        char want[32];
        char *t = memmem(r.body + off, r.chunks[i].size, " t=", 3);
        long long latency = t ? r.chunks[i].at_ms - atoll(t + 3) : -1;

        snprintf(want, sizeof(want), "chunk %zu t=", i);
        ck_assert_msg(r.chunks[i].size >= strlen(want) &&
                          memcmp(r.body + off, want, strlen(want)) == 0,
                      "workers=%d streamed: wire chunk %zu is not application chunk %zu: %.*s",
                      n_workers, i, i, (int)r.chunks[i].size, r.body + off);
        if (i == 0)
            ck_assert_msg(r.chunks[0].at_ms - t0 < STREAM_FIRST_MAX,
                          "workers=%d streamed: first chunk %lld ms after the request (max %d)",
                          n_workers, r.chunks[0].at_ms - t0, STREAM_FIRST_MAX);
        else
            ck_assert_msg(r.chunks[i].at_ms - r.chunks[i - 1].at_ms > STREAM_GAP_MIN,
                          "workers=%d streamed: chunk %zu only %lld ms after chunk %zu (min %d)",
                          n_workers, i, r.chunks[i].at_ms - r.chunks[i - 1].at_ms, i - 1,
                          STREAM_GAP_MIN);
        ck_assert_msg(latency >= 0 && latency < STREAM_LATENCY_MAX,
                      "workers=%d streamed: chunk %zu reached the client %lld ms after the "
                      "application produced it (max %d)",
                      n_workers, i, latency, STREAM_LATENCY_MAX);
        off += r.chunks[i].size;
    }
    wire_resp_free(&r);
    wire_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A stream that waits between its chunks                              */
/* ------------------------------------------------------------------ */

/*
 * /waits/tick: a chunk every TICK_MS from a host timer, the thread free in
 * between (CSGI_PENDING). On HTTP/1.1 the loop writes each woken chunk itself
 * (http_mhd.c direct_run()), and libmicrohttpd ends the body and serves the
 * request pipelined behind it; on HTTP/1.0 libmicrohttpd writes it all, and
 * the body ends with the connection.
 */
#define TICK_MS 120

static void
check_ticks(const struct wire_resp *r, const char *shape, long long t0)
{
    ck_assert_msg(r->status == 200 && r->complete, "workers=%d %s: status %d, complete %d",
                  n_workers, shape, r->status, r->complete);
    ck_assert_str_eq(r->body, "ready\ntick\ntick\ntick\n");
    /* Three waits of TICK_MS (less rounding), not held back to the end. */
    ck_assert_msg(r->end_ms - t0 >= 3 * TICK_MS - 3, "workers=%d %s: done after %lld ms", n_workers,
                  shape, r->end_ms - t0);
    if (r->framing == WIRE_FRAMING_CHUNKED) {
        ck_assert_uint_eq(r->n_chunks, 4);
        for (size_t i = 2; i < r->n_chunks; i++)
            ck_assert_msg(r->chunks[i].at_ms - r->chunks[i - 1].at_ms >= TICK_MS / 2,
                          "workers=%d %s: tick %zu only %lld ms after the one before", n_workers,
                          shape, i, r->chunks[i].at_ms - r->chunks[i - 1].at_ms);
    }
}

/* Send @p req (its first request a /waits/tick) on @p c; read and check the ticks' answer. */
static void
tick_exchange(struct wire_conn *c, const char *req, int framing, const char *shape)
{
    long long t0 = wire_now_ms();
    struct wire_resp r;

    ck_assert_int_eq(wire_send(c, req, strlen(req)), 0);
    ck_assert_int_eq(wire_read(c, "GET", 10000, &r), 0);
    ck_assert_msg(r.framing == framing, "workers=%d %s: framing %s", n_workers, shape,
                  wire_framing_name(r.framing));
    check_ticks(&r, shape, t0);
    wire_resp_free(&r);
}

START_TEST(shapes_waiting_stream)
{
#define TICK_GET "GET /waits/tick?ms=120&n=3 HTTP/1.1\r\nHost: t\r\n\r\n"
    struct wire_conn c;
    struct wire_resp r;

    /* Keep-alive: twice on one connection. */
    conn_open(&c, 0);
    for (int round = 0; round < 2; round++)
        tick_exchange(&c, TICK_GET, WIRE_FRAMING_CHUNKED, "waiting stream, keep-alive");
    wire_close(&c);
    /* Pipelined: the request behind it waits its turn, then is answered. */
    conn_open(&c, 0);
    tick_exchange(&c, TICK_GET "GET /cases/one HTTP/1.1\r\nHost: t\r\n\r\n", WIRE_FRAMING_CHUNKED,
                  "waiting stream, pipelined");
    ck_assert_int_eq(wire_read(&c, "GET", 10000, &r), 0);
    ck_assert_int_eq(r.status, 200);
    wire_resp_free(&r);
    wire_close(&c);
    /* HTTP/1.0: close-delimited. */
    conn_open(&c, 0);
    tick_exchange(&c, "GET /waits/tick?ms=120&n=3 HTTP/1.0\r\nHost: t\r\n\r\n", WIRE_FRAMING_CLOSE,
                  "waiting stream, HTTP/1.0");
    wire_close(&c);
#undef TICK_GET
}
END_TEST

/* ------------------------------------------------------------------ */
/* Large uploads                                                       */
/* ------------------------------------------------------------------ */

static unsigned char
upload_byte(size_t k)
{
    return (unsigned char)((k * 31u + k / 7u) & 0xffu);
}

/* The fixture's /echo answer for @p len bytes of @p data. */
static void
echo_answer(const unsigned char *data, size_t len, char *out, size_t cap)
{
    uint64_t hash = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        hash ^= data[i];
        hash *= 0x100000001b3ULL;
    }
    snprintf(out, cap, "length=%zu fnv=%016llx\n", len, (unsigned long long)hash);
}

static void
check_echo(struct wire_conn *c, const char *want, const char *how)
{
    struct wire_resp r;
    int rc = wire_read(c, "POST", 30000, &r);

    ck_assert_msg(rc == 0 && r.status == 200, "workers=%d upload %s: status %d, complete %d",
                  n_workers, how, r.status, r.complete);
    ck_assert_msg(strcmp(r.body, want) == 0, "workers=%d upload %s: \"%s\", want \"%s\"", n_workers,
                  how, r.body, want);
    wire_resp_free(&r);
}

START_TEST(shapes_large_uploads)
{
    unsigned char *data = malloc(UPLOAD_BYTES);
    char head[256], want[96];
    struct wire_conn c;
    long long t0;
    int n;

    ck_assert_ptr_nonnull(data);
    for (size_t k = 0; k < UPLOAD_BYTES; k++)
        data[k] = upload_byte(k);
    echo_answer(data, UPLOAD_BYTES, want, sizeof(want));

    /* Content-Length. */
    t0 = wire_now_ms();
    conn_open(&c, 0);
    n = snprintf(head, sizeof(head),
                 "POST /cases/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/octet-stream\r\nContent-Length: %u\r\n\r\n",
                 UPLOAD_BYTES);
    ck_assert_int_eq(wire_send(&c, head, (size_t)n), 0);
    ck_assert_int_eq(wire_send(&c, data, UPLOAD_BYTES), 0);
    check_echo(&c, want, "Content-Length");
    /* Chunked, on the same connection. */
    n = snprintf(head, sizeof(head),
                 "POST /cases/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    ck_assert_int_eq(wire_send(&c, head, (size_t)n), 0);
    for (size_t off = 0; off < UPLOAD_BYTES;) {
        size_t len = UPLOAD_BYTES - off < 70000 ? UPLOAD_BYTES - off : 70000;
        char size_line[32];
        int sl = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);

        ck_assert_int_eq(wire_send(&c, size_line, (size_t)sl), 0);
        ck_assert_int_eq(wire_send(&c, data + off, len), 0);
        ck_assert_int_eq(wire_send(&c, "\r\n", 2), 0);
        off += len;
    }
    ck_assert_int_eq(wire_send(&c, "0\r\n\r\n", 5), 0);
    check_echo(&c, want, "chunked");
    printf("shapes: workers=%d two uploads of %u bytes in %lld ms\n", n_workers, UPLOAD_BYTES,
           wire_now_ms() - t0);
    wire_close(&c);
    free(data);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A slow reader                                                       */
/* ------------------------------------------------------------------ */

/* A multi-MB chunked response read through a small receive buffer, a little at a time. */
START_TEST(shapes_slow_reader)
{
    char target[64];
    struct wire_conn c;
    struct wire_resp r;
    long long t0;
    int rc;

    snprintf(target, sizeof(target), "/cases/big?bytes=%u", BIG_BYTES);
    conn_open(&c, 4096);
    c.read_max = 4096;
    c.read_pause_ms = 1;
    t0 = wire_now_ms();
    send_request(&c, "GET", target, "HTTP/1.1", NULL);
    /* Read nothing for a while: the server's writes must wait, not fail. */
    wire_sleep_ms(300);
    rc = wire_read(&c, "GET", 40000, &r);
    printf("shapes: workers=%d slow reader: %zu of %u bytes in %lld ms, %zu chunks\n", n_workers,
           r.body_len, BIG_BYTES, wire_now_ms() - t0, r.n_chunks);
    fflush(stdout);
    ck_assert_msg(rc == 0 && r.status == 200,
                  "workers=%d slow reader: status %d, complete %d, timed out %d, %zu bytes",
                  n_workers, r.status, r.complete, r.timed_out, r.body_len);
    ck_assert_msg(r.body_len == BIG_BYTES, "workers=%d slow reader: %zu bytes, want %u", n_workers,
                  r.body_len, BIG_BYTES);
    for (size_t k = 0; k < r.body_len; k++) {
        if ((unsigned char)r.body[k] != k % 251)
            ck_abort_msg("workers=%d slow reader: byte %zu is %u, want %zu", n_workers, k,
                         (unsigned char)r.body[k], k % 251);
    }
    wire_resp_free(&r);
    wire_close(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A client that hangs up mid-stream                                   */
/* ------------------------------------------------------------------ */

START_TEST(shapes_client_abort)
{
    char tag_hdr[64], finished[64], aborted[64], closed[64];
    struct wire_conn c;
    struct wire_resp r;

    snprintf(tag_hdr, sizeof(tag_hdr), "X-Case-Tag: abort-w%d\r\n", n_workers);
    snprintf(finished, sizeof(finished), "cases[abort-w%d] finished reason=", n_workers);
    snprintf(aborted, sizeof(aborted), "cases[abort-w%d] finished reason=2", n_workers);
    snprintf(closed, sizeof(closed), "cases[abort-w%d] close after", n_workers);
    conn_open(&c, 0);
    send_request(&c, "GET", "/cases/chunks?n=20&delay_ms=100", "HTTP/1.1", tag_hdr);
    /* Take the head and the first chunks, then hang up. */
    ck_assert_int_ne(wire_read(&c, "GET", 350, &r), 0);
    ck_assert_msg(r.status == 200 && r.n_chunks > 0, "workers=%d abort: status %d, %zu chunks",
                  n_workers, r.status, r.n_chunks);
    wire_resp_free(&r);
    wire_close(&c);
    ck_assert_msg(h_wait_log(&srv, finished, 1, 5000), "workers=%d abort: no \"%s\" in %s",
                  n_workers, finished, srv.log);
    {
        char *log = h_slurp(srv.log, NULL);
        const char *at = strstr(log, finished);
        int reason = at ? atoi(at + strlen(finished)) : -1;

        free(log);
        ck_assert_msg(h_log_count(&srv, aborted) == 1,
                      "workers=%d abort: on_finished got reason %d, want "
                      "CSGI_FINISH_CLIENT_ABORT (2)",
                      n_workers, reason);
    }
    ck_assert_msg(h_log_count(&srv, closed) == 1, "workers=%d abort: the body was closed %d times",
                  n_workers, h_log_count(&srv, closed));
    {
        /* Noticed at a send soon after the hang-up, not when the 20 chunks ran out. */
        char *log = h_slurp(srv.log, NULL);
        const char *at = strstr(log, closed);
        int produced = at ? atoi(at + strlen(closed)) : -1;

        free(log);
        ck_assert_msg(produced >= 1 && produced <= ABORT_NOTICED_MAX,
                      "workers=%d abort: the hang-up was noticed after %d of 20 chunks (max %d)",
                      n_workers, produced, ABORT_NOTICED_MAX);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Suite                                                               */
/* ------------------------------------------------------------------ */

static void
add_shapes(TCase *tc)
{
    tcase_add_test(tc, shapes_keepalive);
    tcase_add_test(tc, shapes_keepalive_heads);
    tcase_add_test(tc, shapes_connection_close);
    tcase_add_test(tc, shapes_http10);
    tcase_add_test(tc, shapes_pipelined);
    tcase_add_test(tc, shapes_streamed_delays);
    tcase_add_test(tc, shapes_waiting_stream);
    tcase_add_test(tc, shapes_large_uploads);
    tcase_add_test(tc, shapes_slow_reader);
    tcase_add_test(tc, shapes_client_abort);
}

static Suite *
shapes_suite(void)
{
    Suite *s = suite_create("shapes");
    void (*setups[])(void) = {setup_1, setup_2, setup_4, setup_busy};
    const char *names[] = {"workers1", "workers2", "workers4", "busy1"};

    for (size_t i = 0; i < 4; i++) {
        TCase *tc = tcase_create(names[i]);

        tcase_add_unchecked_fixture(tc, setups[i], teardown);
        tcase_set_timeout(tc, 60);
        add_shapes(tc);
        suite_add_tcase(s, tc);
    }
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(shapes_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
