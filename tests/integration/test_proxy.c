/*
 * Real client addresses behind a balancer, over real sockets on loopback:
 * a `--bind ADDR,proxy` listener reads the PROXY protocol header (v1 and
 * v2) before libmicrohttpd sees the connection, and --trusted-proxy peers'
 * X-Forwarded-For is honoured. What the probe plugin's environ shows
 * (remote_addr, remote_port), what the access log names, what the
 * per-client limit counts, and what a malformed or slow header costs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

/* A: PROXY listener, --trusted-proxy 127.0.0.1, --header-timeout 1. */
static struct hserver a;
static int a_proxy_port;

/* The port of the TCP listener whose "listening on" line says "(proxy protocol)". */
static int
proxy_port(const struct hserver *s)
{
    char *log = h_slurp(s->log, NULL);
    const char *tcp = "listening on http://127.0.0.1:";
    int port = 0;

    for (char *line = log; line && *line && !port;) {
        char *eol = strchr(line, '\n'), *at;
        if (eol)
            *eol = '\0';
        at = strstr(line, tcp);
        if (at && strstr(line, "(proxy protocol)"))
            port = atoi(at + strlen(tcp));
        line = eol ? eol + 1 : NULL;
    }
    free(log);
    ck_assert_msg(port > 0, "no proxy listener in %s", s->log);
    return port;
}

/* unix:DIR/proxy.sock,proxy of server a (its private dir), and the socket's path. */
static char a_unix_bind[400];
static char a_unix_path[400];

static void
start(struct hserver *s, const char *const *extra)
{
    const char *args[24];
    size_t n = 0;

    h_init(s);
    h_add_plugin(s, "probe.so", NULL);
    if (s == &a) {
        /* A unix socket's path has 107 bytes at most: the private dir is short. */
        ck_assert_int_lt(snprintf(a_unix_path, sizeof(a_unix_path), "%s/proxy.sock", s->dir), 108);
        ck_assert_int_lt(snprintf(a_unix_bind, sizeof(a_unix_bind), "unix:%s,proxy", a_unix_path),
                         (int)sizeof(a_unix_bind));
        args[n++] = "--bind";
        args[n++] = a_unix_bind;
    }
    args[n++] = "--bind";
    args[n++] = "127.0.0.1:0,proxy";
    args[n++] = "--workers";
    args[n++] = "1";
    args[n++] = "--access-log";
    args[n++] = s->access;
    for (size_t i = 0; extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    h_start(s, 1, args);
}

static void
setup(void)
{
    static const char *const extra[] = {"--trusted-proxy", "127.0.0.1", "--header-timeout", "1",
                                        NULL};

    start(&a, extra);
    a_proxy_port = proxy_port(&a);
}

static void
teardown(void)
{
    h_stop(&a, SIGTERM, 10000);
    h_cleanup(&a);
}

static int
dial(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/*
 * Read until the peer closes or timeout_ms pass without data; returns the
 * bytes (malloc'ed, NUL-terminated), *closed 1 when the peer closed.
 */
static char *
read_all(int fd, int timeout_ms, int *closed)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);

    ck_assert_ptr_nonnull(buf);
    *closed = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0) {
            *closed = 1;
            break;
        }
        len += (size_t)n;
        if (len + 1 >= cap)
            break;
    }
    buf[len] = '\0';
    return buf;
}

/* Send a PROXY header (hlen bytes) and a GET of /probe/env; return the answer. */
static char *
exchange(int port, const void *hdr, size_t hlen, const char *extra_headers, int *closed)
{
    char req[512];
    int fd = dial(port), n;
    char *out;

    n = snprintf(req, sizeof(req),
                 "GET /probe/env HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
                 extra_headers ? extra_headers : "");
    if (hlen) {
        /* The header and the request in one segment: no request byte may be lost. */
        char both[1024];
        ck_assert_uint_lt(hlen + (size_t)n, sizeof(both));
        memcpy(both, hdr, hlen);
        memcpy(both + hlen, req, (size_t)n);
        send_all(fd, both, hlen + (size_t)n);
    } else {
        send_all(fd, req, (size_t)n);
    }
    out = read_all(fd, 5000, closed);
    close(fd);
    return out;
}

static size_t
v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t n)
{
    memcpy(out, V2_SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
    if (n)
        memcpy(out + 16, body, n);
    return 16 + n;
}

/* The access log has a line that starts with addr and a space. */
static int
access_names(const struct hserver *s, const char *addr)
{
    char needle[64];
    long long end = h_ms_now() + 3000;

    snprintf(needle, sizeof(needle), "\n%s ", addr);
    while (h_ms_now() < end) {
        char *log = h_slurp(s->access, NULL);
        size_t n = strlen(addr);
        int found = strstr(log, needle) || (strncmp(log, addr, n) == 0 && log[n] == ' ');
        free(log);
        if (found)
            return 1;
        h_sleep_ms(20);
    }
    return 0;
}

START_TEST(proxy_v1_client_reaches_app_and_log)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.7 127.0.0.1 56324 80\r\n";
    int closed;
    char *out = exchange(a_proxy_port, hdr, sizeof(hdr) - 1, NULL, &closed);

    ck_assert_msg(h_has(out, "HTTP/1.1 200"), "%s", out);
    ck_assert_msg(h_has(out, "remote_addr=192.0.2.7\n"), "%s", out);
    ck_assert_msg(h_has(out, "remote_port=56324\n"), "%s", out);
    ck_assert(access_names(&a, "192.0.2.7"));
    free(out);
}
END_TEST

START_TEST(proxy_v2_header_in_pieces)
{
    uint8_t body[36 + 7], hdr[64];
    size_t n;
    int fd, closed;
    char *out;
    static const char req[] = "GET /probe/env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    memset(body, 0, sizeof(body));
    inet_pton(AF_INET6, "2001:db8::42", body);
    inet_pton(AF_INET6, "::1", body + 16);
    body[32] = 0x30;
    body[33] = 0x39; /* 12345 */
    /* A TLV (ALPN "http/1" cut to 4 bytes) to skip. */
    memcpy(body + 36, "\x01\x00\x04http", 7);
    n = v2(hdr, 0x21, 0x21, body, sizeof(body));
    /* The header in three pieces, the last with the request: the acceptor waits, never stalls. */
    fd = dial(a_proxy_port);
    send_all(fd, hdr, 10);
    h_sleep_ms(100);
    send_all(fd, hdr + 10, 30);
    h_sleep_ms(100);
    {
        char rest[256];
        memcpy(rest, hdr + 40, n - 40);
        memcpy(rest + n - 40, req, sizeof(req) - 1);
        send_all(fd, rest, n - 40 + sizeof(req) - 1);
    }
    out = read_all(fd, 5000, &closed);
    close(fd);
    ck_assert_msg(h_has(out, "HTTP/1.1 200"), "%s", out);
    ck_assert_msg(h_has(out, "remote_addr=2001:db8::42\n"), "%s", out);
    ck_assert_msg(h_has(out, "remote_port=12345\n"), "%s", out);
    ck_assert(access_names(&a, "2001:db8::42"));
    free(out);
}
END_TEST

/* A unix socket with the flag: the header's client is the peer (not "" as for unix peers). */
START_TEST(proxy_on_a_unix_socket)
{
    static const char in[] = "PROXY TCP4 192.0.2.77 10.0.0.1 40000 80\r\n"
                             "GET /probe/env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), closed;
    char *out;

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    ck_assert_int_lt(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a_unix_path),
                     (int)sizeof(sa.sun_path));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    send_all(fd, in, sizeof(in) - 1);
    out = read_all(fd, 5000, &closed);
    close(fd);
    ck_assert_msg(h_has(out, "remote_addr=192.0.2.77\n"), "%s", out);
    ck_assert_msg(h_has(out, "remote_port=40000\n"), "%s", out);
    free(out);
    ck_assert(access_names(&a, "192.0.2.77"));
}
END_TEST

START_TEST(proxy_local_and_unknown_keep_the_peer)
{
    static const char unknown[] = "PROXY UNKNOWN\r\n";
    uint8_t hdr[32];
    int closed;
    char *out = exchange(a_proxy_port, hdr, v2(hdr, 0x20, 0x00, NULL, 0), NULL, &closed);

    ck_assert_msg(h_has(out, "remote_addr=127.0.0.1\n"), "%s", out);
    free(out);
    out = exchange(a_proxy_port, unknown, sizeof(unknown) - 1, NULL, &closed);
    ck_assert_msg(h_has(out, "remote_addr=127.0.0.1\n"), "%s", out);
    free(out);
}
END_TEST

START_TEST(proxy_malformed_closes_and_logs)
{
    static const char bad[] = "PROXY TCP4 300.0.0.1 127.0.0.1 1 2\r\n";
    int closed;
    char *out = exchange(a_proxy_port, bad, sizeof(bad) - 1, NULL, &closed);

    /* Closed unanswered: no byte of the request reached libmicrohttpd. */
    ck_assert_msg(closed && out[0] == '\0', "answered: %s", out);
    free(out);
    ck_assert(h_wait_log(&a, "from 127.0.0.1 closed: proxy v1 header: an address", 1, 3000));
    /* A plain HTTP request on a PROXY listener is no header either. */
    out = exchange(a_proxy_port, NULL, 0, NULL, &closed);
    ck_assert_msg(closed && out[0] == '\0', "answered: %s", out);
    free(out);
    ck_assert(h_wait_log(&a, "closed: no proxy protocol header", 1, 3000));
}
END_TEST

START_TEST(proxy_slow_header_costs_one_descriptor)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.9 127.0.0.1 1000 80\r\n";
    long long t0, served_ms, closed_ms;
    int slow = dial(a_proxy_port), closed;
    char *out;

    /* Half a header, then silence. */
    send_all(slow, "PROXY TCP4 192.0", 16);
    h_sleep_ms(50);
    t0 = h_ms_now();
    out = exchange(a_proxy_port, hdr, sizeof(hdr) - 1, NULL, &closed);
    served_ms = h_ms_now() - t0;
    ck_assert_msg(h_has(out, "remote_addr=192.0.2.9\n"), "%s", out);
    free(out);
    /* Served at once, not after the slow header's deadline (--header-timeout 1). */
    ck_assert_msg(served_ms < 800, "served after %lld ms", served_ms);
    out = read_all(slow, 4000, &closed);
    closed_ms = h_ms_now() - t0;
    close(slow);
    ck_assert_msg(closed && out[0] == '\0', "slow connection: closed %d, %s", closed, out);
    ck_assert_msg(closed_ms >= 700 && closed_ms < 3500, "closed after %lld ms", closed_ms);
    free(out);
    ck_assert(h_wait_log(&a, "no whole proxy protocol header in time", 1, 2000));
}
END_TEST

START_TEST(proxy_peer_decides_trust)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.10 127.0.0.1 1000 80\r\n";
    static const char xff[] = "X-Forwarded-For: 203.0.113.5\r\n";
    int closed;
    char *out;

    /* From the trusted peer 127.0.0.1, X-Forwarded-For names the client. */
    out = exchange(a.port, NULL, 0, xff, &closed);
    ck_assert_msg(h_has(out, "remote_addr=203.0.113.5\n"), "%s", out);
    ck_assert_msg(h_has(out, "remote_port=0\n"), "%s", out);
    free(out);
    ck_assert(access_names(&a, "203.0.113.5"));
    /* Behind a PROXY header the peer is 192.0.2.10, not trusted: the header is ignored. */
    out = exchange(a_proxy_port, hdr, sizeof(hdr) - 1, xff, &closed);
    ck_assert_msg(h_has(out, "remote_addr=192.0.2.10\n"), "%s", out);
    free(out);
}
END_TEST

/* The per-client limit counts the PROXY header's client, not the balancer. */
START_TEST(proxy_per_ip_limit_counts_the_client)
{
    static const char *const extra[] = {"--max-connections-per-ip", "1", NULL};
    static const char c7[] = "PROXY TCP4 192.0.2.7 127.0.0.1 1000 80\r\n";
    static const char c8[] = "PROXY TCP4 192.0.2.8 127.0.0.1 1000 80\r\n";
    struct hserver b;
    int held, closed, port;
    char *out;

    start(&b, extra);
    port = proxy_port(&b);
    /* 192.0.2.7 holds its one connection (a header, no request yet). */
    held = dial(port);
    send_all(held, c7, sizeof(c7) - 1);
    h_sleep_ms(200);
    out = exchange(port, c7, sizeof(c7) - 1, NULL, &closed);
    ck_assert_msg(!h_has(out, "HTTP/1.1 200"), "a second connection of 192.0.2.7 was served");
    free(out);
    /* Another client through the same balancer is served. */
    out = exchange(port, c8, sizeof(c8) - 1, NULL, &closed);
    ck_assert_msg(h_has(out, "remote_addr=192.0.2.8\n"), "%s", out);
    free(out);
    /* Not trusted here: X-Forwarded-For changes nothing. */
    out = exchange(b.port, NULL, 0, "X-Forwarded-For: 203.0.113.5\r\n", &closed);
    ck_assert_msg(h_has(out, "remote_addr=127.0.0.1\n"), "%s", out);
    free(out);
    close(held);
    h_stop(&b, SIGTERM, 10000);
    h_cleanup(&b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* --health and --drain-delay                                          */
/* ------------------------------------------------------------------ */

/* One request on a new connection to port (HTTP/1.1, keep-alive unless said). */
static char *
ask(int port, const char *method, const char *path)
{
    char req[256];
    int fd = dial(port), closed;
    char *out;

    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path);
    send_all(fd, req, strlen(req));
    out = read_all(fd, 300, &closed);
    close(fd);
    return out;
}

/* True when a connection to port is refused now. */
static int
refused(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return rc < 0 && errno == ECONNREFUSED;
}

static void
start_health(struct hserver *s)
{
    static const char *const extra[] = {"--health", "/healthz", "--drain-delay", "1", NULL};

    start(s, extra);
}

/*
 * SIGTERM with --drain-delay 1: within the delay health fails and requests
 * are served, each on a closing connection; then the drain as before.
 */
static void
health_fails_first_on_sigterm(struct hserver *s)
{
    long long t0, refused_ms = -1;
    char *out;

    /* A response each worker's thread has cached (sent more than twice, see http_mhd.c). */
    for (int i = 0; i < 12; i++)
        free(ask(s->port, "GET", "/probe/vary?h=1&b=1"));
    t0 = h_ms_now();
    kill(s->pid, SIGTERM);
    ck_assert(h_wait_log(s, "failing health checks for 1 s", 1, 2000));
    out = ask(s->port, "GET", "/healthz");
    ck_assert_msg(h_has(out, "HTTP/1.1 503") && h_has(out, "draining\n"), "%s", out);
    free(out);
    out = ask(s->port, "GET", "/probe/env");
    ck_assert_msg(h_has(out, "HTTP/1.1 200") && h_has(out, "Connection: close"), "%s", out);
    free(out);
    /* The cached one is not sent as it was: this one closes too. */
    for (int i = 0; i < 4; i++) {
        out = ask(s->port, "GET", "/probe/vary?h=1&b=1");
        ck_assert_msg(h_has(out, "body 1\n") && h_has(out, "Connection: close"), "%s", out);
        free(out);
    }
    ck_assert_msg(h_ms_now() - t0 < 900, "the checks took too long to be meaningful");
    /* Then new connections are refused, and the master exits. */
    while (h_ms_now() - t0 < 5000) {
        if (refused(s->port)) {
            refused_ms = h_ms_now() - t0;
            break;
        }
        h_sleep_ms(20);
    }
    ck_assert_msg(refused_ms >= 950 && refused_ms < 3000, "refused after %lld ms", refused_ms);
    ck_assert_int_eq(h_stop(s, 0, 10000), 0);
}

START_TEST(health_answers_before_plugins)
{
    struct hserver s;
    char *out;

    start_health(&s);
    out = ask(s.port, "GET", "/healthz");
    ck_assert_msg(h_has(out, "HTTP/1.1 200") && h_has(out, "\r\n\r\nok\n"), "%s", out);
    ck_assert_msg(h_has(out, "Cache-Control: no-store"), "%s", out);
    free(out);
    /* Any method (HAProxy checks with OPTIONS), a query ignored, on the PROXY listener too. */
    out = ask(s.port, "OPTIONS", "/healthz?from=lb");
    ck_assert_msg(h_has(out, "HTTP/1.1 200"), "%s", out);
    free(out);
    {
        uint8_t hdr[96];
        int closed;
        size_t n = v2(hdr, 0x20, 0x00, NULL, 0);
        static const char req[] = "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        int fd = dial(proxy_port(&s));
        memcpy(hdr + n, req, sizeof(req) - 1);
        send_all(fd, hdr, n + sizeof(req) - 1);
        out = read_all(fd, 300, &closed);
        close(fd);
        ck_assert_msg(h_has(out, "HTTP/1.1 200") && !h_has(out, "ok\n"), "%s", out);
        free(out);
    }
    /* Other paths still reach the plugins. */
    out = ask(s.port, "GET", "/healthz/x");
    ck_assert_msg(h_has(out, "HTTP/1.1 404"), "%s", out);
    free(out);
    health_fails_first_on_sigterm(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(health_second_sigterm_skips_the_delay)
{
    struct hserver s;
    long long t0;

    start_health(&s);
    kill(s.pid, SIGTERM);
    ck_assert(h_wait_log(&s, "failing health checks", 1, 2000));
    t0 = h_ms_now();
    ck_assert_int_eq(h_stop(&s, SIGTERM, 10000), 0);
    ck_assert_msg(h_ms_now() - t0 < 1500, "stopped after %lld ms", h_ms_now() - t0);
    ck_assert_int_eq(h_log_count(&s, "not waiting out --drain-delay"), 1);
    h_cleanup(&s);
}
END_TEST

static Suite *
proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("proxy"), *health;

    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, proxy_v1_client_reaches_app_and_log);
    tcase_add_test(tc, proxy_v2_header_in_pieces);
    tcase_add_test(tc, proxy_on_a_unix_socket);
    tcase_add_test(tc, proxy_local_and_unknown_keep_the_peer);
    tcase_add_test(tc, proxy_malformed_closes_and_logs);
    tcase_add_test(tc, proxy_slow_header_costs_one_descriptor);
    tcase_add_test(tc, proxy_peer_decides_trust);
    tcase_add_test(tc, proxy_per_ip_limit_counts_the_client);
    suite_add_tcase(s, tc);
    health = tcase_create("health");
    tcase_set_timeout(health, 60);
    tcase_add_test(health, health_answers_before_plugins);
    tcase_add_test(health, health_second_sigterm_skips_the_delay);
    suite_add_tcase(s, health);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(proxy_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
