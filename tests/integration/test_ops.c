/*
 * What a deployer meets: csgi-server's command lines run as a user runs
 * them (bad --plugins, --check-config's table, --status against the wrong
 * address, pid files, option errors), and the operations around a running
 * server (a TERM that refuses new connections while it drains, a SIGHUP that
 * applies a changed configuration, a crashed worker's request in the logs).
 *
 * Every server is our own child on an ephemeral loopback port; every loop is
 * bounded by a deadline; we only ever signal the PIDs we started.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

static int
count_lines(const char *s)
{
    int n = 0;

    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* The output of one command run. */
struct run {
    int status; /* exit status, -1 when killed for taking too long */
    long long ms;
    char out[16384];
    char err[16384];
};

/*
 * Run argv (argv[0] a path) with stdin from /dev/null, collecting stdout and
 * stderr, for at most timeout_ms (then SIGKILL, status -1).
 */
static void
run_cmd(struct run *r, const char *const *argv, int timeout_ms)
{
    int po[2], pe[2];
    size_t no = 0, ne = 0;
    long long t0 = h_ms_now(), end = t0 + timeout_ms;
    int open_fds = 2, st;
    pid_t pid;

    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    while (open_fds > 0 && h_ms_now() < end) {
        struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
        if (poll(p, 2, (int)(end - h_ms_now())) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            char *buf = i ? r->err : r->out;
            size_t *n = i ? &ne : &no;
            ssize_t got;
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            got = read(p[i].fd, buf + *n, sizeof(r->out) - 1 - *n);
            if (got <= 0) {
                close(i ? pe[0] : po[0]);
                if (i)
                    pe[0] = -1;
                else
                    po[0] = -1;
                open_fds--;
            } else {
                *n += (size_t)got;
            }
        }
    }
    if (po[0] >= 0)
        close(po[0]);
    if (pe[0] >= 0)
        close(pe[0]);
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (h_ms_now() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            r->status = -1;
            r->ms = h_ms_now() - t0;
            return;
        }
        h_sleep_ms(10);
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->ms = h_ms_now() - t0;
}

static const char *
server_bin(void)
{
    const char *s = getenv("CSGI_SERVER");

    ck_assert_msg(s != NULL, "CSGI_SERVER is not set");
    return s;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* connect() to 127.0.0.1:port; returns 0 or the errno. */
static int
try_connect(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        rc = errno;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Bad command lines                                                   */
/* ------------------------------------------------------------------ */

START_TEST(ops_plugins_dir_missing_exits_2)
{
    struct run r;
    struct hserver s;
    char file[400];

    /* A missing directory: one line naming it, exit 2, nothing bound or started. */
    run_cmd(
        &r,
        (const char *[]){server_bin(), "--plugins", "/nonexistent", "--bind", "127.0.0.1:0", NULL},
        5000);
    ck_assert_msg(r.status == 2, "status %d after %lld ms: %s", r.status, r.ms, r.err);
    ck_assert_msg(h_has(r.err, "\"/nonexistent\"") && count_lines(r.err) == 1, "stderr: %s", r.err);

    /* A file where a directory is wanted. */
    h_init(&s);
    snprintf(file, sizeof(file), "%s/file", s.dir);
    write_file(file, "x");
    run_cmd(&r, (const char *[]){server_bin(), "--plugins", file, NULL}, 5000);
    ck_assert_msg(r.status == 2 && h_has(r.err, "not a directory") && count_lines(r.err) == 1,
                  "status %d: %s", r.status, r.err);
    /* --check-config says the same, the same way. */
    run_cmd(&r, (const char *[]){server_bin(), "--plugins", "/nonexistent", "--check-config", NULL},
            5000);
    ck_assert_msg(r.status == 2 && h_has(r.err, "/nonexistent"), "status %d: %s", r.status, r.err);
    h_cleanup(&s);
}
END_TEST

START_TEST(ops_option_errors_name_their_subject)
{
    struct run r;
    struct hserver s;
    char cfg[400], cfgarg[420], badlog[400];

    h_init(&s);
    /* A URL where an address is wanted. */
    run_cmd(&r,
            (const char *[]){server_bin(), "--plugins", s.plugins, "--bind",
                             "http://127.0.0.1:8012/", NULL},
            5000);
    ck_assert_msg(r.status == 2 && h_has(r.err, "not a URL"), "status %d: %s", r.status, r.err);

    /* A JSON error says on which line. */
    snprintf(cfg, sizeof(cfg), "%s/bad.json", s.dir);
    write_file(cfg, "{\n  \"workers\": 2,\n  \"plugins\": \"/x\",\n  \"bogus\": 1\n}\n");
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", cfg);
    run_cmd(&r, (const char *[]){server_bin(), cfgarg, NULL}, 5000);
    ck_assert_msg(r.status == 2 && h_has(r.err, "line 4") && h_has(r.err, "bogus"), "status %d: %s",
                  r.status, r.err);
    write_file(cfg, "{\n  \"workers\": 2,\n  \"plugins\": \"/x\"\n  \"bind\": \":1\"\n}\n");
    run_cmd(&r, (const char *[]){server_bin(), cfgarg, NULL}, 5000);
    ck_assert_msg(r.status == 2 && h_has(r.err, "line 4"), "status %d: %s", r.status, r.err);

    /* A log file that cannot be opened is named. */
    snprintf(badlog, sizeof(badlog), "%s/no/such/dir/error.log", s.dir);
    run_cmd(&r, (const char *[]){server_bin(), "--plugins", s.plugins, "--error-log", badlog, NULL},
            5000);
    ck_assert_msg(r.status == 2 && h_has(r.err, badlog), "status %d: %s", r.status, r.err);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* --check-config                                                      */
/* ------------------------------------------------------------------ */

START_TEST(ops_check_config_table_lists_failures)
{
    struct run r;
    struct hserver s;
    char errlog[400];

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    h_add_plugin(&s, "init_fail.so", NULL);
    snprintf(errlog, sizeof(errlog), "%s/check.log", s.dir);
    /* With --error-log the terminal still gets every failure, on stdout. */
    run_cmd(&r,
            (const char *[]){server_bin(), "--plugins", s.plugins, "--error-log", errlog,
                             "--check-config", NULL},
            10000);
    ck_assert_msg(r.status == 1, "status %d: %s", r.status, r.out);
    ck_assert_msg(h_has(r.out, "ok      hello"), "stdout: %s", r.out);
    ck_assert_msg(h_has(r.out, "FAILED  init_fail.so") && h_has(r.out, "init_worker failed"),
                  "stdout: %s", r.out);
    ck_assert_msg(h_has(r.out, "init_worker ran in this process"), "stdout: %s", r.out);
    ck_assert_msg(h_has(r.out, "1 plugin(s) loaded, 1 failed"), "stdout: %s", r.out);
    h_cleanup(&s);
}
END_TEST

START_TEST(ops_check_config_unknown_set_name)
{
    struct run r;
    struct hserver s;
    char cfg[400], cfgarg[420];

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    /* The documented dry run: the real configuration file, so its --set counts. */
    snprintf(cfg, sizeof(cfg), "%s/csgi.json", s.dir);
    {
        char text[1024];
        snprintf(text, sizeof(text),
                 "{\"plugins\": \"%s\", \"set\": {\"hello\": {\"greeting\": \"Hi\"}}}\n",
                 s.plugins);
        write_file(cfg, text);
    }
    snprintf(cfgarg, sizeof(cfgarg), "%s", cfg);
    run_cmd(&r, (const char *[]){server_bin(), "--config", cfgarg, "--check-config", NULL}, 10000);
    ck_assert_msg(r.status == 0, "status %d: %s %s", r.status, r.out, r.err);
    ck_assert_msg(h_has(r.out, "--set greeting"), "the file's --set is not shown: %s", r.out);

    /* A mistyped plugin name is an error here ... */
    run_cmd(&r,
            (const char *[]){server_bin(), "--plugins", s.plugins, "--set", "helo.greeting=Hi",
                             "--check-config", NULL},
            10000);
    ck_assert_msg(r.status != 0, "a --set for plugin \"helo\" passed: %s", r.out);
    ck_assert_msg(h_has(r.out, "--set helo.greeting") && h_has(r.out, "no plugin named \"helo\""),
                  "stdout: %s", r.out);

    /* ... and a warning in the server. */
    h_start(&s, 1, (const char *[]){"--workers", "1", "--set", "helo.greeting=Hi", NULL});
    ck_assert_msg(h_wait_log(&s, "--set helo.greeting: no plugin named \"helo\"", 1, 3000),
                  "log %s", s.log);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* --status                                                            */
/* ------------------------------------------------------------------ */

START_TEST(ops_status_times_out_and_fails)
{
    struct run r;
    struct hserver s;
    char addr[64], stats[400];
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int silent;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    snprintf(stats, sizeof(stats), "unix:%s", s.stats);
    h_start(&s, 1, (const char *[]){"--workers", "1", "--stats", stats, NULL});

    /* The stats address: JSON, exit 0. */
    run_cmd(&r, (const char *[]){server_bin(), "--status", stats, NULL}, 10000);
    ck_assert_msg(r.status == 0 && h_has(r.out, "\"master_pid\""), "status %d: %s %s", r.status,
                  r.out, r.err);

    /* The HTTP port: an error within the timeout, not 10 s of silence and exit 0. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", s.port);
    run_cmd(&r, (const char *[]){server_bin(), "--status", addr, "--status-timeout", "1", NULL},
            8000);
    ck_assert_msg(r.status != 0 && r.status != -1, "status %d after %lld ms", r.status, r.ms);
    ck_assert_msg(r.ms < 3000, "took %lld ms", r.ms);
    ck_assert_msg(h_has(r.err, "--status") && r.out[0] == '\0', "stderr %s stdout %s", r.err,
                  r.out);

    /* A listener that never answers: bounded too. */
    silent = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(silent, 4), 0);
    ck_assert_int_eq(getsockname(silent, (struct sockaddr *)&sa, &sl), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    run_cmd(&r, (const char *[]){server_bin(), "--status", addr, "--status-timeout", "1", NULL},
            8000);
    close(silent);
    ck_assert_msg(r.status == 1 && r.ms < 3000, "status %d after %lld ms", r.status, r.ms);
    ck_assert_msg(h_has(r.err, "within 1 s"), "stderr: %s", r.err);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Pid file                                                            */
/* ------------------------------------------------------------------ */

START_TEST(ops_second_server_keeps_off_the_pid_file)
{
    struct hserver s;
    struct run r;
    char pidfile[400], *text;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    snprintf(pidfile, sizeof(pidfile), "%s/csgi.pid", s.dir);
    h_start(&s, 1, (const char *[]){"--workers", "1", "--pid", pidfile, NULL});

    run_cmd(&r,
            (const char *[]){server_bin(), "--plugins", s.plugins, "--bind", "127.0.0.1:0", "--pid",
                             pidfile, NULL},
            5000);
    ck_assert_msg(r.status == 2 && h_has(r.err, "names a running csgi-server"), "status %d: %s",
                  r.status, r.err);
    text = h_slurp(pidfile, NULL);
    ck_assert_msg(atoi(text) == s.pid, "the pid file now says %s (server %d)", text, s.pid);
    free(text);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    ck_assert_int_eq(access(pidfile, F_OK), -1);

    /* A stale file (no such process) is replaced. */
    write_file(pidfile, "999999999\n");
    write_file(s.log, "");
    h_start(&s, 1, (const char *[]){"--workers", "1", "--pid", pidfile, NULL});
    text = h_slurp(pidfile, NULL);
    ck_assert_int_eq(atoi(text), s.pid);
    free(text);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Graceful stop                                                       */
/* ------------------------------------------------------------------ */

struct slow {
    int port;
    long code;
    int curl_code;
    char body[256];
};

static size_t
slow_write(char *data, size_t size, size_t n, void *userp)
{
    struct slow *sl = userp;
    size_t have = strlen(sl->body), add = size * n;

    if (have + add < sizeof(sl->body))
        memcpy(sl->body + have, data, add);
    return size * n;
}

static void *
slow_run(void *arg)
{
    struct slow *sl = arg;
    char url[128];
    CURL *c = curl_easy_init();

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/probe/slow?ms=3000", sl->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, slow_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sl);
    sl->curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &sl->code);
    curl_easy_cleanup(c);
    return NULL;
}

START_TEST(ops_term_refuses_new_connections_while_draining)
{
    struct hserver s;
    struct slow sl;
    pthread_t th;
    long long t0, refused_at = -1;
    int status, last = 0;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    h_start(&s, 2, (const char *[]){"--workers", "2", "--graceful-timeout", "20", NULL});
    memset(&sl, 0, sizeof(sl));
    sl.port = s.port;
    ck_assert_int_eq(pthread_create(&th, NULL, slow_run, &sl), 0);
    /* The slow request is in plugin code once the probe logs nothing; give it a moment. */
    h_sleep_ms(500);
    t0 = h_ms_now();
    kill(s.pid, SIGTERM);
    /* Within a second of the TERM a new connection is refused, not queued. */
    while (h_ms_now() - t0 < 1500) {
        last = try_connect(s.port);
        if (last == ECONNREFUSED) {
            refused_at = h_ms_now() - t0;
            break;
        }
        h_sleep_ms(20);
    }
    ck_assert_msg(refused_at >= 0, "connections still accepted 1.5 s into the drain (last %s)",
                  last ? strerror(last) : "connected");
    /* The master is still draining: the in-flight request completes. */
    ck_assert_int_eq(waitpid(s.pid, NULL, WNOHANG), 0);
    pthread_join(th, NULL);
    ck_assert_msg(sl.curl_code == 0 && sl.code == 200 && h_has(sl.body, "slept 3000 ms"),
                  "slow request: curl %d status %ld body %s", sl.curl_code, sl.code, sl.body);
    status = h_stop(&s, 0, 10000);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d",
                  status);
    ck_assert_msg(h_log_count(&s, "new connections are refused") == 1, "log %s", s.log);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* SIGHUP                                                              */
/* ------------------------------------------------------------------ */

/* Start csgi-server with --config FILE only (the file holds every option). */
static void
start_with_config(struct hserver *s, const char *cfg, int ready)
{
    const char *argv[] = {server_bin(), "--config", cfg, NULL};

    h_spawn(s, argv, ready);
}

static void
write_config(const struct hserver *s, const char *cfg, const char *bind, const char *access,
             const char *stats, int workers)
{
    char text[2048];

    snprintf(text, sizeof(text),
             "{\n  \"bind\": [\"%s\"],\n  \"plugins\": \"%s\",\n  \"error-log\": \"%s\",\n"
             "  \"access-log\": \"%s\",\n  \"stats\": \"unix:%s\",\n  \"workers\": %d,\n"
             "  \"graceful-timeout\": 5\n}\n",
             bind, s->plugins, s->log, access, stats, workers);
    write_file(cfg, text);
}

/* GET /stats over a unix socket; returns the body (malloc'ed) or NULL. */
static char *
stats_text(const char *path)
{
    struct run r;
    char addr[420];

    snprintf(addr, sizeof(addr), "unix:%s", path);
    run_cmd(&r, (const char *[]){server_bin(), "--status", addr, NULL}, 8000);
    return r.status == 0 ? strdup(r.out) : NULL;
}

START_TEST(ops_hup_applies_what_it_can)
{
    struct hserver s;
    char cfg[400], access2[400], stats2[400], bind[64], url[128], *text = NULL;
    struct hresp resp;
    long long end;
    int gens;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    snprintf(cfg, sizeof(cfg), "%s/csgi.json", s.dir);
    snprintf(access2, sizeof(access2), "%s/access2.log", s.dir);
    snprintf(stats2, sizeof(stats2), "%s/stats2.sock", s.dir);
    write_config(&s, cfg, "127.0.0.1:0", s.access, s.stats, 1);
    start_with_config(&s, cfg, 1);

    /* TTIN to 2 workers, then a reload with the same --workers keeps 2. */
    kill(s.pid, SIGTTIN);
    ck_assert_msg(h_wait_log(&s, "worker ready", 2, 5000), "log %s", s.log);
    /* A changed bind port, access log and stats address. */
    snprintf(bind, sizeof(bind), "127.0.0.1:%d", s.port + 1 > 65535 ? 1 : s.port + 1);
    write_config(&s, cfg, bind, access2, stats2, 1);
    kill(s.pid, SIGHUP);
    ck_assert_msg(h_wait_log(&s, "reload: generation 2 ready", 1, 10000), "log %s", s.log);
    ck_assert_msg(h_log_count(&s, "--bind changed") == 1, "log %s", s.log);

    /* New workers log requests to the new file. */
    snprintf(url, sizeof(url), "/hello/hup%d", (int)getpid());
    end = h_ms_now() + 5000;
    while (h_ms_now() < end) {
        char *a;
        resp = h_get(&s, url);
        ck_assert_int_eq(resp.status, 200);
        h_resp_free(&resp);
        h_sleep_ms(100);
        a = h_slurp(access2, NULL);
        if (h_has(a, url)) {
            free(a);
            break;
        }
        free(a);
    }
    text = h_slurp(access2, NULL);
    ck_assert_msg(h_has(text, url), "new access log: %s", text);
    free(text);

    /* Stats on the new address, with the TTIN count kept. */
    end = h_ms_now() + 5000;
    text = NULL;
    while (h_ms_now() < end && !text) {
        text = stats_text(stats2);
        if (!text)
            h_sleep_ms(100);
    }
    ck_assert_msg(text != NULL, "no stats on the new address (log %s)", s.log);
    ck_assert_msg(h_has(text, "\"target_workers\":2"), "stats: %s", text);
    free(text);
    gens = h_log_count(&s, "worker ready");
    ck_assert_int_ge(gens, 4);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    h_cleanup(&s);
}
END_TEST

START_TEST(ops_ttou_at_one_worker_is_logged)
{
    struct hserver s;

    h_init(&s);
    h_add_plugin(&s, "hello.so", NULL);
    h_start(&s, 1, (const char *[]){"--workers", "1", NULL});
    kill(s.pid, SIGTTOU);
    ck_assert_msg(h_wait_log(&s, "SIGTTOU ignored: one worker is the minimum", 1, 3000), "log %s",
                  s.log);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A crash: the plugin and the request in the logs                     */
/* ------------------------------------------------------------------ */

START_TEST(ops_crash_names_plugin_and_request)
{
    struct hserver s;
    struct hresp r;
    char *text;
    char pidtag[32];

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    h_start(&s, 1, (const char *[]){"--workers", "1", "--access-log", s.access, NULL});
    r = h_get(&s, "/probe/crash?who=ops");
    ck_assert_msg(r.curl_code != 0 || r.status != 200, "the crashing request succeeded");
    h_resp_free(&r);
    ck_assert_msg(h_wait_log(&s, "killed by signal SEGV", 1, 5000), "log %s", s.log);
    ck_assert_msg(h_log_count(&s, "in plugin \"probe\" during request") == 1 &&
                      h_log_count(&s, "\"GET /probe/crash?who=ops\"") == 1,
                  "the crash line names no plugin or request: %s", s.log);
    h_sleep_ms(200);
    text = h_slurp(s.access, NULL);
    ck_assert_msg(h_has(text, "\"GET /probe/crash?who=ops -\" 500 0") && h_has(text, " probe "),
                  "no access-log line for the lost request: %s", text);
    /* The line names the dead worker, as its error-log lines do. */
    snprintf(pidtag, sizeof(pidtag), "pid=");
    ck_assert_msg(h_has(text, pidtag) && h_has(text, "worker=0"), "access log: %s", text);
    free(text);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    h_cleanup(&s);
}
END_TEST

/*
 * The crash record copies the target whole from a padded buffer and cuts it:
 * a short target after a long one on the same thread reads as itself, and a
 * long one as its first 127 bytes (SRV_INFLIGHT_TARGET_SIZE - 1).
 */
START_TEST(ops_crash_record_cuts_target)
{
    struct hserver s;
    struct hresp r;
    char long_echo[400], long_crash[300], want[300];

    snprintf(long_echo, sizeof(long_echo), "/probe/echo?%0300d", 7);
    snprintf(long_crash, sizeof(long_crash), "/probe/crash?%0200d", 9);
    /* "GET " and the first 127 bytes of the target, then the closing quote. */
    snprintf(want, sizeof(want), "\"GET %.127s\" from", long_crash);
    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    h_start(&s, 1, (const char *[]){"--workers", "1", NULL});
    r = h_get(&s, long_echo);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    r = h_get(&s, "/probe/crash?s");
    h_resp_free(&r);
    ck_assert_msg(h_wait_log(&s, "killed by signal SEGV", 1, 5000), "log %s", s.log);
    ck_assert_msg(h_log_count(&s, "\"GET /probe/crash?s\" from") == 1, "short target: %s", s.log);
    ck_assert_msg(h_wait_log(&s, "worker ready", 2, 5000), "log %s", s.log);
    r = h_get(&s, long_echo);
    ck_assert_int_eq(r.status, 200);
    h_resp_free(&r);
    r = h_get(&s, long_crash);
    h_resp_free(&r);
    ck_assert_msg(h_wait_log(&s, "killed by signal SEGV", 2, 5000), "log %s", s.log);
    ck_assert_msg(h_log_count(&s, want) == 1, "long target not cut to 127 bytes: %s", s.log);
    ck_assert_int_eq(WEXITSTATUS(h_stop(&s, SIGTERM, 10000)), 0);
    h_cleanup(&s);
}
END_TEST

static Suite *
ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc;

    tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ops_plugins_dir_missing_exits_2);
    tcase_add_test(tc, ops_option_errors_name_their_subject);
    tcase_add_test(tc, ops_check_config_table_lists_failures);
    tcase_add_test(tc, ops_check_config_unknown_set_name);
    tcase_add_test(tc, ops_status_times_out_and_fails);
    tcase_add_test(tc, ops_second_server_keeps_off_the_pid_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("running");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ops_term_refuses_new_connections_while_draining);
    tcase_add_test(tc, ops_hup_applies_what_it_can);
    tcase_add_test(tc, ops_ttou_at_one_worker_is_logged);
    tcase_add_test(tc, ops_crash_names_plugin_and_request);
    tcase_add_test(tc, ops_crash_record_cuts_target);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ops_suite());
    int failed;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
