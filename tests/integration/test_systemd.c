/*
 * systemd integration: socket activation (LISTEN_FDS) and sd_notify
 * readiness (NOTIFY_SOCKET), with a real socket handed to a real server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Wait up to timeout_ms for a datagram containing want; 1 when seen. */
static int
wait_notify(int fd, const char *want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        struct pollfd p = {fd, POLLIN, 0};
        char buf[512];
        ssize_t n;

        if (poll(&p, 1, 50) <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (strstr(buf, want))
            return 1;
    }
    return 0;
}

START_TEST(systemd_socket_activation_and_notify)
{
    struct hserver s;
    struct sockaddr_in sa;
    struct sockaddr_un nu;
    socklen_t sl = sizeof(sa);
    char notify_path[400], port_env[32];
    int lfd, nfd, status;
    struct hresp r;
    pid_t pid;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);

    /* The listening socket systemd would own. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(lfd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 64), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    s.port = ntohs(sa.sin_port);

    /* The notification socket. */
    snprintf(notify_path, sizeof(notify_path), "%s/notify.sock", s.dir);
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&nu, 0, sizeof(nu));
    nu.sun_family = AF_UNIX;
    ck_assert_uint_lt(strlen(notify_path), sizeof(nu.sun_path));
    memcpy(nu.sun_path, notify_path, strlen(notify_path));
    ck_assert_int_eq(bind(nfd, (struct sockaddr *)&nu, sizeof(nu)), 0);

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *argv[] = {getenv("CSGI_SERVER"), "--plugins", s.plugins, "--workers", "1",
                              "--error-log",         s.log,       NULL};
        if (lfd != 3) {
            dup2(lfd, 3);
            close(lfd);
        }
        snprintf(port_env, sizeof(port_env), "%d", (int)getpid());
        setenv("LISTEN_PID", port_env, 1);
        setenv("LISTEN_FDS", "1", 1);
        setenv("NOTIFY_SOCKET", notify_path, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s.pid = pid;
    close(lfd);

    ck_assert_msg(wait_notify(nfd, "READY=1", 15000), "no READY=1 (log %s)", s.log);
    r = h_get(&s, "/hello");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "Hello, world!\n");
    h_resp_free(&r);
    ck_assert_int_ge(h_log_count(&s, "listening on http://127.0.0.1:"), 1);

    /* A reload is announced and then confirmed. */
    ck_assert_int_eq(kill(pid, SIGHUP), 0);
    ck_assert(wait_notify(nfd, "RELOADING=1", 10000));
    ck_assert(wait_notify(nfd, "READY=1", 15000));
    r = h_get(&s, "/hello");
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);

    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert(wait_notify(nfd, "STOPPING=1", 10000));
    status = h_stop(&s, 0, 15000);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d",
                  status);
    close(nfd);
    h_cleanup(&s);
}
END_TEST

int
main(void)
{
    Suite *su = suite_create("systemd");
    TCase *tc = tcase_create("activation");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, systemd_socket_activation_and_notify);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
