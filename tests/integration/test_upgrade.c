/*
 * Connections taken over after a 101 (csgi_host_api.upgrade(), SPEC.md 4.15)
 * through a real csgi-server (--threads 1) and the upgrades fixture plugin,
 * a raw line protocol over raw sockets (wire.c): the 101 and its headers,
 * bytes both ways on the wake loop, bytes the client sent with the head, a
 * broadcast across connections, the host's refusals, and the stop and
 * reload notice with the old worker's exit.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "wire.h"

#define WAIT_MS 5000
/* The host's bound on a closing queue that sends nothing (CSGI__UPGRADE_DRAIN_STALL_MS). */
#define CSGI_TEST_DRAIN_MS 10000
#define ASK                "Upgrade: lines\r\nConnection: Upgrade\r\n"
/* As ASK, and the connection closes after a refusal (h_raw() reads to the end). */
#define ASK_CLOSE "Upgrade: lines\r\nConnection: Upgrade, close\r\n"

static struct hserver srv;

static void
setup(void)
{
    const char *extra[] = {"--workers", "1", "--threads", "1", "--graceful-timeout", "5", NULL};

    h_init(&srv);
    h_add_plugin(&srv, "upgrades.so", NULL);
    h_start(&srv, 1, extra);
}

static void
teardown(void)
{
    h_stop(&srv, SIGTERM, 10000);
    h_cleanup(&srv);
}

static void
send_text(struct wire_conn *c, const char *s)
{
    ck_assert_int_eq(wire_send(c, s, strlen(s)), 0);
}

/* Upgrade a new connection to @p path; @p extra goes in the same write as the head. */
static void
upgrade(struct wire_conn *c, const char *path, const char *extra)
{
    char req[512];

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n" ASK "\r\n%s", path, extra);
    memset(c, 0, sizeof(*c));
    ck_assert_int_eq(wire_connect(c, srv.port, 0), 0);
    send_text(c, req);
    ck_assert_msg(wire_recv_until(c, "\r\n\r\n", WAIT_MS), "no head: %s", c->buf ? c->buf : "");
    ck_assert_msg(strncmp(c->buf, "HTTP/1.1 101 ", 13) == 0, "%s", c->buf);
    ck_assert_msg(h_has(c->buf, "Upgrade: lines\r\n"), "%s", c->buf);
    ck_assert_msg(h_has(c->buf, "Connection: Upgrade\r\n"), "%s", c->buf);
    ck_assert_msg(!h_has(c->buf, "Content-Length") && !h_has(c->buf, "Transfer-Encoding"), "%s",
                  c->buf);
}

/* Echo on the worker's loop, bytes sent with the head, an application's close. */
START_TEST(upgrade_echo_over_http)
{
    struct wire_conn c;

    upgrade(&c, "/upgrades/echo", "early\n");
    ck_assert(wire_recv_until(&c, "\r\n\r\nhello\nearly\n", WAIT_MS));
    /* The only thread is free: a plain request is answered meanwhile. */
    ck_assert(h_get_until(&srv, "/upgrades/stats", "open=1 ok=0 abort=0", WAIT_MS));
    send_text(&c, "abc\n");
    ck_assert(wire_recv_until(&c, "early\nabc\n", WAIT_MS));
    send_text(&c, "bye\n");
    ck_assert(wire_recv_until(&c, "abc\nbye\nbye\n", WAIT_MS));
    ck_assert(wire_recv_until(&c, NULL, WAIT_MS)); /* the server closed its side */
    wire_close(&c);
    ck_assert(
        h_get_until(&srv, "/upgrades/stats", "open=0 ok=1 abort=0 shutdown=0 error=0", WAIT_MS));
}
END_TEST

/* A client that leaves; a broadcast across connections; refusals. */
START_TEST(upgrade_room_leave_refusals)
{
    struct wire_conn a, b;
    struct hresp r;

    upgrade(&a, "/upgrades/room", "");
    upgrade(&b, "/upgrades/room", "");
    ck_assert(h_get_until(&srv, "/upgrades/stats", "open=2 ", WAIT_MS));
    send_text(&a, "from a\n");
    ck_assert(wire_recv_until(&a, "\r\n\r\nfrom a\n", WAIT_MS));
    ck_assert(wire_recv_until(&b, "\r\n\r\nfrom a\n", WAIT_MS));
    wire_close(&a);
    ck_assert(h_get_until(&srv, "/upgrades/stats", "open=1 ok=0 abort=1 ", WAIT_MS));
    send_text(&b, "alone\n");
    ck_assert(wire_recv_until(&b, "from a\nalone\n", WAIT_MS));
    wire_close(&b);
    ck_assert(h_get_until(&srv, "/upgrades/stats", "open=0 ok=0 abort=2 ", WAIT_MS));

    r = h_get(&srv, "/upgrades/echo"); /* no Upgrade asked */
    ck_assert_int_eq(r.status, 426);
    h_resp_free(&r);
    {
        /* HTTP/1.0 has no upgrade (as the test client answers: tests/gateway/test_upgrade.c). */
        static const char req10[] = "GET /upgrades/echo HTTP/1.0\r\nHost: x\r\n" ASK "\r\n";
        char out[4096];
        int closed;

        h_raw(srv.port, req10, sizeof(req10) - 1, out, sizeof(out), 2000, &closed);
        ck_assert_msg(strncmp(out, "HTTP/1.0 426 ", 13) == 0 ||
                          strncmp(out, "HTTP/1.1 426 ", 13) == 0,
                      "%s", out);
    }
    {
        static const char *const fails[] = {"/upgrades/no101", "/upgrades/body101",
                                            "/upgrades/plain101"};
        char req[256], out[4096];
        int closed;

        for (int i = 0; i < 3; i++) {
            snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n" ASK_CLOSE "\r\n", fails[i]);
            h_raw(srv.port, req, strlen(req), out, sizeof(out), 2000, &closed);
            ck_assert_msg(strncmp(out, "HTTP/1.1 500 ", 13) == 0, "%s: %s", fails[i], out);
        }
    }
    ck_assert(
        h_get_until(&srv, "/upgrades/stats", "open=0 ok=0 abort=2 shutdown=0 error=2", WAIT_MS));
}
END_TEST

/*
 * A reload: each old-generation connection hears "stopping" and is closed,
 * the old worker exits, and a new connection is served by the new one.
 */
START_TEST(upgrade_reload_notice)
{
    struct wire_conn c[3], n;

    for (int i = 0; i < 3; i++) {
        upgrade(&c[i], "/upgrades/echo", "");
        ck_assert(wire_recv_until(&c[i], "hello\n", WAIT_MS));
    }
    ck_assert_int_eq(kill(srv.pid, SIGHUP), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(wire_recv_until(&c[i], "hello\nstopping\n", WAIT_MS), "%d: %s", i, c[i].buf);
        ck_assert(wire_recv_until(&c[i], NULL, WAIT_MS));
        wire_close(&c[i]);
    }
    ck_assert(h_wait_log(&srv, "worker ready", 2, WAIT_MS));
    ck_assert(h_wait_log(&srv, "(gen 1, pid", 1, WAIT_MS));
    upgrade(&n, "/upgrades/echo", "again\n");
    ck_assert(wire_recv_until(&n, "hello\nagain\n", WAIT_MS));
    wire_close(&n);
    ck_assert_int_eq(h_log_count(&srv, "killed by signal"), 0);
    ck_assert_int_eq(h_log_count(&srv, "graceful timeout"), 0);
}
END_TEST

/* SIGTERM with a client that never closes: the notice, then the linger ends it, and the server
 * exits. */
START_TEST(upgrade_stop_with_silent_client)
{
    struct wire_conn c;
    long long t0;

    upgrade(&c, "/upgrades/echo", "");
    ck_assert(wire_recv_until(&c, "hello\n", WAIT_MS));
    t0 = h_ms_now();
    ck_assert_int_eq(kill(srv.pid, SIGTERM), 0);
    ck_assert(wire_recv_until(&c, "hello\nstopping\n", WAIT_MS));
    ck_assert(wire_recv_until(&c, NULL, WAIT_MS));
    ck_assert_int_eq(h_stop(&srv, 0, 10000), 0);
    ck_assert_msg(h_ms_now() - t0 < 5000, "stopped after %lld ms", h_ms_now() - t0);
    wire_close(&c);
}
END_TEST

/* upgrade_write() and upgrade_close() from call(): the bytes follow the 101, then the close. */
START_TEST(upgrade_close_from_call)
{
    struct wire_conn c;

    upgrade(&c, "/upgrades/closenow", "");
    ck_assert_msg(wire_recv_until(&c, "\r\n\r\ngoodbye\n", WAIT_MS), "%s", c.buf);
    ck_assert_msg(wire_recv_until(&c, NULL, WAIT_MS), "the server did not close: %s", c.buf);
    wire_close(&c);
    ck_assert(
        h_get_until(&srv, "/upgrades/stats", "open=0 ok=1 abort=0 shutdown=0 error=0", WAIT_MS));
}
END_TEST

/* The bytes after the 101 head in c (the whole stream read to its end): 8 MiB of 'z', then END. */
static void
assert_big_reply(const struct wire_conn *c)
{
    const char *body = memmem(c->buf, c->len, "\r\n\r\n", 4);
    const char *z, *end;
    size_t n = 0;

    ck_assert_ptr_nonnull(body);
    z = memchr(body, 'z', c->len - (size_t)(body - c->buf));
    ck_assert_msg(z != NULL, "no data after the head");
    end = c->buf + c->len;
    while (z + n < end && z[n] == 'z')
        n++;
    ck_assert_msg(n == 128 * 65536, "%zu bytes of the 8 MiB arrived", n);
    ck_assert_msg((size_t)(end - (z + n)) == 4 && memcmp(z + n, "END\n", 4) == 0,
                  "%zu bytes after the data", (size_t)(end - (z + n)));
}

/* The whole big reply, then the server's close; on_close() says OK. */
static void
big_reply_then_ok(struct wire_conn *c)
{
    ck_assert(wire_recv_until(c, NULL, 30000));
    assert_big_reply(c);
    wire_close(c);
    ck_assert(
        h_get_until(&srv, "/upgrades/stats", "open=0 ok=1 abort=0 shutdown=0 error=0", WAIT_MS));
}

/*
 * A close behind 8 MiB of queue, to a client that reads only 2.5 s later:
 * everything goes out before the close (the linger waits for the client's
 * close only once the queue is empty), and on_close() says OK.
 */
START_TEST(upgrade_close_waits_for_the_queue)
{
    struct wire_conn c;

    upgrade(&c, "/upgrades/echo", "big\n");
    h_sleep_ms(2500);
    big_reply_then_ok(&c);
}
END_TEST

/*
 * The client closes its sending side right after its last line: what the
 * application queued still goes out, and its close is the end (OK).
 */
START_TEST(upgrade_client_half_close)
{
    struct wire_conn c;

    upgrade(&c, "/upgrades/echo", "big\n");
    ck_assert_int_eq(shutdown(c.fd, SHUT_WR), 0);
    big_reply_then_ok(&c);
}
END_TEST

/*
 * A close behind 8 MiB of queue to a client that never reads: the queue
 * stops draining, and 10 s without a byte sent end the connection
 * (CLIENT_ABORT): a client cannot hold a closing connection for ever.
 */
START_TEST(upgrade_close_to_a_client_that_never_reads)
{
    struct wire_conn c;
    long long t0;

    upgrade(&c, "/upgrades/echo", "big\n");
    t0 = h_ms_now();
    ck_assert(
        h_get_until(&srv, "/upgrades/stats", "open=0 ok=0 abort=1 shutdown=0 error=0", 30000));
    ck_assert_msg(h_ms_now() - t0 >= CSGI_TEST_DRAIN_MS - 1000, "ended after %lld ms",
                  h_ms_now() - t0);
    wire_close(&c);
}
END_TEST

static Suite *
upgrade_suite(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("raw");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, upgrade_echo_over_http);
    tcase_add_test(tc, upgrade_room_leave_refusals);
    tcase_add_test(tc, upgrade_reload_notice);
    tcase_add_test(tc, upgrade_stop_with_silent_client);
    tcase_add_test(tc, upgrade_close_from_call);
    tcase_add_test(tc, upgrade_close_waits_for_the_queue);
    tcase_add_test(tc, upgrade_client_half_close);
    tcase_add_test(tc, upgrade_close_to_a_client_that_never_reads);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(upgrade_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
