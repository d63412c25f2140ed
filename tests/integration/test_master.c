/*
 * The pre-fork master over real processes and real signals: reload (under
 * load, in-place overwrite, broken plugin and rollback), worker crashes, the
 * --timeout watchdog, --max-requests recycling, graceful and fast stops,
 * TTIN/TTOU, USR1 log reopening, the stats JSON and the pid file.
 *
 * Every server is our own child on an ephemeral loopback port; every loop is
 * bounded by a deadline; we only ever signal the PIDs we started.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "harness.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/*
 * Servers that outlive a failed or timed-out test. The table lives in shared
 * memory so that the runner (parent) can still stop what a killed test child
 * started; an entry is only signalled while /proc says it is our server.
 */
#define GUARD_MAX 8

struct guard {
    pid_t pids[GUARD_MAX];
};

static struct guard *guard;

static void
guard_add(pid_t pid)
{
    for (int i = 0; guard && i < GUARD_MAX; i++) {
        if (guard->pids[i] == 0) {
            guard->pids[i] = pid;
            return;
        }
    }
}

static void
guard_del(pid_t pid)
{
    for (int i = 0; guard && i < GUARD_MAX; i++) {
        if (guard->pids[i] == pid)
            guard->pids[i] = 0;
    }
}

static int
is_our_server(pid_t pid)
{
    char path[64], exe[4096];
    const char *want = getenv("CSGI_SERVER");
    char *real = want ? realpath(want, NULL) : NULL;
    ssize_t n;
    int ok;

    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    if (n < 0 || !real) {
        free(real);
        return 0;
    }
    exe[n] = '\0';
    ok = strcmp(exe, real) == 0;
    free(real);
    return ok;
}

static void
guard_reap(void)
{
    for (int i = 0; guard && i < GUARD_MAX; i++) {
        pid_t pid = guard->pids[i];
        if (pid <= 0)
            continue;
        guard->pids[i] = 0;
        if (is_our_server(pid)) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0); /* ours when the test child itself runs this */
        }
    }
}

/* Start a server with --stats and our extra arguments (NULL-terminated). */
static void
start(struct hserver *s, int ready, const char *const *extra)
{
    const char *args[40];
    size_t n = 0;

    args[n++] = "--stats";
    args[n++] = NULL; /* filled below: the path lives in s */
    for (size_t i = 0; extra && extra[i] && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    {
        /*
         * The server inherits TMPDIR: point it at the private dir, so that what
         * a plugin leaves behind when its worker is killed goes with h_cleanup().
         */
        char spec[320];
        const char *tmp = getenv("TMPDIR");
        char *saved = tmp ? strdup(tmp) : NULL;

        snprintf(spec, sizeof(spec), "unix:%s", s->stats);
        args[1] = spec;
        setenv("TMPDIR", s->dir, 1);
        h_start(s, ready, args);
        if (saved)
            setenv("TMPDIR", saved, 1);
        else
            unsetenv("TMPDIR");
        free(saved);
    }
    guard_add(s->pid);
}

/* Stop with sig; returns the wait status (-1 on timeout, after SIGKILL). */
static int
stop(struct hserver *s, int sig, int timeout_ms)
{
    pid_t pid = s->pid;
    int status = h_stop(s, sig, timeout_ms);

    guard_del(pid);
    return status;
}

static void
stop_ok(struct hserver *s)
{
    int status = stop(s, SIGTERM, 15000);

    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "server did not exit 0 on SIGTERM (status %d, log %s)", status, s->log);
}

static cJSON *
stats_get(const struct hserver *s)
{
    char *raw = h_stats_raw(s);
    cJSON *j = raw ? cJSON_Parse(raw) : NULL;

    free(raw);
    return j;
}

static long long
jnum(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

static const char *
jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The newest event of kind for generation gen (-1: any) in the stats, or NULL. */
static const cJSON *
find_event(const cJSON *j, const char *kind, long long gen)
{
    const cJSON *e, *found = NULL;

    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "events"))
    {
        const char *k = jstr(e, "kind");
        if (k && strcmp(k, kind) == 0 && (gen < 0 || jnum(e, "generation") == gen))
            found = e;
    }
    return found;
}

/* Workers in the stats; min_gen/max_gen bound their generation, state NULL = any. */
static int
count_workers(const cJSON *j, long long min_gen, long long max_gen, const char *state)
{
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(j, "workers");
    const cJSON *w;
    int n = 0;

    cJSON_ArrayForEach(w, ws)
    {
        long long g = jnum(w, "generation");
        const char *st = jstr(w, "state");
        if (g >= min_gen && g <= max_gen && (!state || (st && strcmp(st, state) == 0)))
            n++;
    }
    return n;
}

#define ANY_GEN 0, 1000000

/*
 * What a stats poll waits for. Each field set to -1 is not checked: the serving
 * generation at least gen_min, no reload in progress (idle), target_workers,
 * the number of listed workers, and how many of them are "ready".
 */
struct want {
    long long gen_min;
    int idle;
    int target;
    int listed;
    int ready;
    long long only_gen_min; /* every listed worker has at least this generation */
};

/* A want that checks nothing yet. */
static struct want
want_any(void)
{
    struct want w = {-1, -1, -1, -1, -1, -1};

    return w;
}

static int
stats_match(const cJSON *j, const struct want *w)
{
    long long gen = jnum(j, "generation");

    if (w->gen_min >= 0 && gen < w->gen_min)
        return 0;
    if (w->idle >= 0 && (jnum(j, "reloading_generation") == 0) != w->idle)
        return 0;
    if (w->target >= 0 && jnum(j, "target_workers") != w->target)
        return 0;
    if (w->listed >= 0 && count_workers(j, ANY_GEN, NULL) != w->listed)
        return 0;
    if (w->ready >= 0 && count_workers(j, ANY_GEN, "ready") != w->ready)
        return 0;
    if (w->only_gen_min >= 0 && count_workers(j, 0, w->only_gen_min - 1, NULL) != 0)
        return 0;
    return 1;
}

/* Poll the stats until they match; returns the matching JSON (caller frees) or fails. */
static cJSON *
wait_stats(const struct hserver *s, const struct want *w, int timeout_ms, const char *what)
{
    long long end = h_ms_now() + timeout_ms;
    char *last = NULL;

    for (;;) {
        char *raw = h_stats_raw(s);
        cJSON *j = raw ? cJSON_Parse(raw) : NULL;
        if (j && stats_match(j, w)) {
            free(raw);
            free(last);
            return j;
        }
        cJSON_Delete(j);
        if (raw) {
            free(last);
            last = raw;
        }
        if (h_ms_now() >= end)
            break;
        h_sleep_ms(50);
    }
    ck_abort_msg("timed out waiting for %s; last stats: %s (log %s)", what, last ? last : "(none)",
                 s->log);
    return NULL;
}

static long long
generation_of(const struct hserver *s)
{
    cJSON *j = stats_get(s);
    long long g = j ? jnum(j, "generation") : -1;

    cJSON_Delete(j);
    return g;
}

/* GET path and return the status, failing the test on a curl error. */
static long
get_status(const struct hserver *s, const char *path, char *body, size_t cap)
{
    struct hresp r = h_get(s, path);
    long st = r.status;

    ck_assert_msg(r.curl_code == 0, "GET %s: curl error %d (%s)", path, r.curl_code,
                  curl_easy_strerror((CURLcode)r.curl_code));
    if (body)
        snprintf(body, cap, "%s", r.body);
    h_resp_free(&r);
    return st;
}

static pid_t
worker_pid(const struct hserver *s)
{
    char body[64];

    ck_assert_int_eq(get_status(s, "/probe/pid", body, sizeof(body)), 200);
    return (pid_t)atoi(body);
}

/* Write src over dst in place (open O_TRUNC, write): no rename, same inode. */
static void
overwrite_in_place(const char *fixture, const char *dst)
{
    char src[600];
    size_t len;
    char *data;
    int fd;

    snprintf(src, sizeof(src), "%s/%s", getenv("CSGI_FIXTURES"), fixture);
    data = h_slurp(src, &len);
    ck_assert_uint_gt(len, 0);
    fd = open(dst, O_WRONLY | O_TRUNC);
    ck_assert_msg(fd >= 0, "open %s: %s", dst, strerror(errno));
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    free(data);
}

/* ------------------------------------------------------------------ */
/* Client threads                                                      */
/* ------------------------------------------------------------------ */

struct body_buf {
    char p[512];
    size_t len;
};

static size_t
body_write(char *data, size_t size, size_t n, void *userp)
{
    struct body_buf *b = userp;
    size_t add = size * n;
    size_t room = sizeof(b->p) - 1 - b->len;
    size_t take = add < room ? add : room;

    memcpy(b->p + b->len, data, take);
    b->len += take;
    b->p[b->len] = '\0';
    return add;
}

/*
 * A bounded client loop: GET path until told to stop (but at least min and
 * at most max requests), on one keep-alive connection or a fresh one each time.
 */
struct client {
    const struct hserver *s;
    const char *path;
    int fresh;
    int min, max;
    atomic_int *stop;
    atomic_int *late; /* set by the test: from now on, only version 2 may answer */
    atomic_int *total;
    int done, failed, v1, v2, late_v1, late_v2;
    char first_error[256];
};

static void *
client_run(void *arg)
{
    struct client *c = arg;
    CURL *h = curl_easy_init();
    char url[256];

    if (!h) {
        c->failed = 1;
        snprintf(c->first_error, sizeof(c->first_error), "curl_easy_init failed");
        return NULL;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->s->port, c->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 15L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
    if (c->fresh)
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    while (c->done < c->max && (c->done < c->min || !atomic_load(c->stop))) {
        struct body_buf b;
        long status = 0;
        int late = c->late && atomic_load(c->late);
        CURLcode rc;

        b.len = 0;
        b.p[0] = '\0';
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        c->done++;
        if (c->total)
            atomic_fetch_add(c->total, 1);
        if (rc != CURLE_OK || status != 200) {
            if (!c->failed++)
                snprintf(c->first_error, sizeof(c->first_error),
                         "request %d: curl %d (%s), status %ld, body \"%.100s\"", c->done, (int)rc,
                         curl_easy_strerror(rc), status, b.p);
            continue;
        }
        if (h_has(b.p, "version 1")) {
            c->v1++;
            c->late_v1 += late;
        } else if (h_has(b.p, "version 2")) {
            c->v2++;
            __atomic_fetch_add(&c->late_v2, late, __ATOMIC_RELAXED);
        }
    }
    curl_easy_cleanup(h);
    return NULL;
}

/* One request on its own thread, for slow requests in flight during a signal. */
struct slow_req {
    const struct hserver *s;
    const char *path;
    long status;
    int curl_code;
    long long elapsed_ms;
    struct body_buf body;
};

static void *
slow_run(void *arg)
{
    struct slow_req *r = arg;
    CURL *h = curl_easy_init();
    char url[256];
    long long t0 = h_ms_now();

    r->body.len = 0;
    r->body.p[0] = '\0';
    r->curl_code = -1;
    if (!h)
        return NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", r->s->port, r->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    r->curl_code = (int)curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    r->elapsed_ms = h_ms_now() - t0;
    curl_easy_cleanup(h);
    return NULL;
}

/* Wait until the stats show a request in flight (the slow one has reached the plugin). */
static void
wait_in_flight(const struct hserver *s)
{
    long long end = h_ms_now() + 5000;

    while (h_ms_now() < end) {
        cJSON *j = stats_get(s);
        const cJSON *w;
        int busy = 0;
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(j, "workers"))
        {
            if (jnum(w, "in_flight") > 0)
                busy = 1;
        }
        cJSON_Delete(j);
        if (busy)
            return;
        h_sleep_ms(50);
    }
    ck_abort_msg("the slow request never showed up in flight (log %s)", s->log);
}

/* ------------------------------------------------------------------ */
/* Reload                                                              */
/* ------------------------------------------------------------------ */

#define N_CLIENTS 4

/* HUP and wait until a generation above prev serves, with no reload pending. */
static long long
reload(struct hserver *s, long long prev)
{
    struct want w = want_any();
    cJSON *j;
    long long g;

    ck_assert_int_eq(kill(s->pid, SIGHUP), 0);
    w.gen_min = prev + 1;
    w.idle = 1;
    j = wait_stats(s, &w, 15000, "the reload to finish");
    g = jnum(j, "generation");
    cJSON_Delete(j);
    return g;
}

START_TEST(master_reload_under_load)
{
    struct hserver s;
    const char *extra[] = {"--workers", "2", "--graceful-timeout", "5", NULL};
    struct client cl[N_CLIENTS];
    pthread_t th[N_CLIENTS];
    atomic_int stop_flag = 0, late = 0, total = 0;
    long long gen, v2_gen;
    int failed = 0, v1 = 0, v2 = 0;
    long long end;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 2, extra);
    gen = generation_of(&s);
    ck_assert_int_eq(gen, 1);

    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < N_CLIENTS; i++) {
        cl[i].s = &s;
        cl[i].path = "/probe/version";
        cl[i].min = 500;
        cl[i].max = 200000; /* a bound, not a target: the stop flag ends the loop */
        cl[i].stop = &stop_flag;
        cl[i].late = &late;
        cl[i].total = &total;
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_run, &cl[i]), 0);
    }
    end = h_ms_now() + 10000;
    while (atomic_load(&total) < 300 && h_ms_now() < end)
        h_sleep_ms(10);

    /* A reload with the same code, then one that brings version 2, then two quick ones. */
    gen = reload(&s, gen);
    h_add_plugin(&s, "probe_v2.so", "probe.so");
    v2_gen = gen + 1;
    gen = reload(&s, gen);
    ck_assert_int_ge(gen, v2_gen);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    gen = reload(&s, gen);

    /* Once every version-1 worker is gone, only version 2 may answer. */
    {
        struct want w = want_any();
        w.only_gen_min = v2_gen;
        w.idle = 1;
        cJSON_Delete(wait_stats(&s, &w, 15000, "the version-1 workers to exit"));
    }
    atomic_store(&late, 1);
    {
        /*
         * Every client must see version 2 answers, not just the total: on a
         * loaded machine one thread can stall while the others race ahead.
         */
        int at = atomic_load(&total), all;
        end = h_ms_now() + 15000;
        do {
            h_sleep_ms(10);
            all = atomic_load(&total) >= at + 400;
            for (int i = 0; i < N_CLIENTS; i++)
                all = all && __atomic_load_n(&cl[i].late_v2, __ATOMIC_RELAXED) >= 20;
        } while (!all && h_ms_now() < end);
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < N_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(cl[i].failed == 0, "client %d: %d of %d requests failed, first: %s", i,
                      cl[i].failed, cl[i].done, cl[i].first_error);
        ck_assert_msg(cl[i].late_v1 == 0, "client %d: %d version-1 answers after the switch", i,
                      cl[i].late_v1);
        ck_assert_msg(cl[i].late_v2 > 0, "client %d: no answer after the switch", i);
        failed += cl[i].failed;
        v1 += cl[i].v1;
        v2 += cl[i].v2;
    }
    ck_assert_int_eq(failed, 0);
    ck_assert_int_gt(v1, 0);
    ck_assert_int_gt(v2, 0);
    ck_assert_int_ge(atomic_load(&total), 2000);
    ck_assert_int_eq(h_log_count(&s, "killed by signal"), 0);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_reload_after_overwrite_in_place)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--graceful-timeout", "5", NULL};
    char body[128], dst[600];

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 1, extra);
    ck_assert_int_eq(get_status(&s, "/probe/version", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "version 1\n");

    /* cp over the live file: the running worker maps a private copy, so it keeps going. */
    snprintf(dst, sizeof(dst), "%s/probe.so", s.plugins);
    overwrite_in_place("probe_v2.so", dst);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(get_status(&s, "/probe/version", body, sizeof(body)), 200);
        ck_assert_str_eq(body, "version 1\n");
    }
    ck_assert_int_ge(reload(&s, 1), 2);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(get_status(&s, "/probe/version", body, sizeof(body)), 200);
        ck_assert_str_eq(body, "version 2\n");
    }
    ck_assert_int_eq(h_log_count(&s, "killed by signal"), 0);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_reload_broken_plugin_rolls_back)
{
    struct hserver s;
    const char *extra[] = {"--workers", "2", "--graceful-timeout", "3", NULL};
    struct client cl, slow;
    pthread_t th, th_slow;
    atomic_int stop_flag = 0;
    char body[128], path[600];
    long long gen;
    cJSON *j;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 2, extra);
    ck_assert_int_eq(generation_of(&s), 1);

    /* Fresh connections all along, so that the doomed workers get their share of accepts. */
    memset(&cl, 0, sizeof(cl));
    cl.s = &s;
    cl.path = "/probe/version";
    cl.fresh = 1;
    cl.min = 50;
    cl.max = 20000;
    cl.stop = &stop_flag;
    ck_assert_int_eq(pthread_create(&th, NULL, client_run, &cl), 0);
    /* And requests that take a while: one accepted by a doomed worker must still finish. */
    slow = cl;
    slow.path = "/probe/slow?ms=150";
    slow.min = 5;
    ck_assert_int_eq(pthread_create(&th_slow, NULL, client_run, &slow), 0);

    h_add_plugin(&s, "init_fail.so", NULL);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(h_wait_log(&s, "failed (a plugin failed to load or init", 1, 15000),
                  "no rollback in the log (%s)", s.log);
    /* The log names the plugin and why it was refused. */
    ck_assert_int_ge(h_log_count(&s, "plugin \"init_fail\" (\"init_fail.so\") skipped: "
                                     "init_worker failed"),
                     1);
    ck_assert_int_ge(h_log_count(&s, "init_fail: refusing to start on purpose"), 1);
    {
        struct want w = want_any();
        w.idle = 1;
        w.listed = 2;
        w.ready = 2;
        j = wait_stats(&s, &w, 10000, "the failed generation to go away");
    }
    ck_assert_int_eq(jnum(j, "generation"), 1);
    ck_assert_int_eq(count_workers(j, 1, 1, "ready"), 2);
    cJSON_Delete(j);
    ck_assert_int_eq(get_status(&s, "/probe/version", body, sizeof(body)), 200);
    ck_assert_str_eq(body, "version 1\n");

    /* Take the broken plugin out: the next reload goes through. */
    snprintf(path, sizeof(path), "%s/init_fail.so", s.plugins);
    ck_assert_int_eq(unlink(path), 0);
    gen = reload(&s, 1);
    ck_assert_int_gt(gen, 1);
    {
        struct want w = want_any();
        w.only_gen_min = gen;
        w.ready = 2;
        w.listed = 2;
        j = wait_stats(&s, &w, 10000, "the new generation alone");
    }
    {
        /* The events tell the story: generation 2 started and failed, then gen started and serves.
         */
        const cJSON *failed = find_event(j, "reload_failed", 2);
        ck_assert_ptr_nonnull(find_event(j, "reload_start", 2));
        ck_assert_msg(failed && strstr(jstr(failed, "detail"), "a plugin failed to load or init"),
                      "no reload_failed event for generation 2");
        ck_assert_ptr_nonnull(find_event(j, "reload_start", gen));
        ck_assert_ptr_nonnull(find_event(j, "reload", gen));
        ck_assert_ptr_null(find_event(j, "reload", 2));
        ck_assert_ptr_null(find_event(j, "crash", -1));
    }
    cJSON_Delete(j);
    ck_assert_int_eq(get_status(&s, "/probe/version", body, sizeof(body)), 200);

    atomic_store(&stop_flag, 1);
    pthread_join(th, NULL);
    pthread_join(th_slow, NULL);
    ck_assert_msg(cl.failed == 0, "%d of %d requests failed during the reloads, first: %s",
                  cl.failed, cl.done, cl.first_error);
    ck_assert_msg(slow.failed == 0, "%d of %d slow requests failed during the reloads, first: %s",
                  slow.failed, slow.done, slow.first_error);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_reload_bad_config_keeps_serving)
{
    struct hserver s;
    char cfg[400];
    const char *extra[] = {"--config", NULL, NULL};
    FILE *f;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    snprintf(cfg, sizeof(cfg), "%s/csgi.json", s.dir);
    f = fopen(cfg, "w");
    fputs("{\"workers\": 1}\n", f);
    fclose(f);
    extra[1] = cfg;
    start(&s, 1, extra);
    ck_assert_int_eq(generation_of(&s), 1);

    /* A config file broken between start and reload: refused, generation 1 serves on. */
    f = fopen(cfg, "w");
    fputs("{\"workers\": \"x\n", f);
    fclose(f);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_msg(h_wait_log(&s, "reload refused, old workers keep serving: config:", 1, 5000),
                  "log %s", s.log);
    ck_assert_int_eq(get_status(&s, "/probe/version", NULL, 0), 200);
    ck_assert_int_eq(generation_of(&s), 1);
    {
        cJSON *j = stats_get(&s);
        const cJSON *e = find_event(j, "reload_refused", 1);
        ck_assert_msg(e && strncmp(jstr(e, "detail"), "config:", 7) == 0,
                      "no reload_refused event naming the config error");
        cJSON_Delete(j);
    }

    /* Fixed, with a new worker count: the next reload applies it. */
    f = fopen(cfg, "w");
    fputs("{\"workers\": 2}\n", f);
    fclose(f);
    ck_assert_int_eq(reload(&s, 1), 2);
    {
        cJSON *j = stats_get(&s);
        int ready = 0;
        const cJSON *w;
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(j, "workers"))
        {
            if (jnum(w, "generation") == 2 && strcmp(jstr(w, "state"), "ready") == 0)
                ready++;
        }
        cJSON_Delete(j);
        ck_assert_int_eq(ready, 2);
    }
    ck_assert_int_eq(get_status(&s, "/probe/version", NULL, 0), 200);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

/* The uid and gid a process runs with, from /proc. */
static void
proc_ids(pid_t pid, long *uid, long *gid)
{
    char path[64], *text, *at;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    text = h_slurp(path, NULL);
    at = strstr(text, "\nUid:");
    *uid = at ? strtol(at + 5, NULL, 10) : -1;
    at = strstr(text, "\nGid:");
    *gid = at ? strtol(at + 5, NULL, 10) : -1;
    free(text);
}

START_TEST(master_user_group_drop)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1",         "--user", "nobody", "--group",
                           "nogroup",   "--tmp-dir", "/tmp",   NULL};
    long uid, gid;
    pid_t w;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    if (getuid() != 0) {
        /* Not root: switching users must fail cleanly, with the reason, exit 1. */
        int status;
        const char *argv[] = {getenv("CSGI_SERVER"),
                              "--plugins",
                              s.plugins,
                              "--bind",
                              "127.0.0.1:0",
                              "--user",
                              "nobody",
                              "--error-log",
                              s.log,
                              NULL};
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[0], (char *const *)argv);
            _exit(127);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        ck_assert_int_ge(h_log_count(&s, "cannot switch to user \"nobody\""), 1);
        h_cleanup(&s);
        return;
    }
    /*
     * The unprivileged workers read the plugins and write their private copies
     * (and the probe its scratch file) in the test's dir: open it up.
     */
    ck_assert_int_eq(chmod(s.dir, 01777), 0);
    ck_assert_int_eq(chmod(s.plugins, 0755), 0);
    start(&s, 1, extra);
    ck_assert_int_eq(get_status(&s, "/probe/version", NULL, 0), 200);
    proc_ids(s.pid, &uid, &gid);
    ck_assert_int_eq(uid, 65534);
    ck_assert_int_eq(gid, 65534);
    w = worker_pid(&s);
    proc_ids(w, &uid, &gid);
    ck_assert_int_eq(uid, 65534);
    ck_assert_int_eq(gid, 65534);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_reload_twice_drains_slow_request)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--graceful-timeout", "10", NULL};
    struct slow_req req;
    pthread_t th;
    long long gen;
    int status;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 1, extra);
    memset(&req, 0, sizeof(req));
    req.s = &s;
    req.path = "/probe/slow?ms=2500";
    ck_assert_int_eq(pthread_create(&th, NULL, slow_run, &req), 0);
    wait_in_flight(&s);
    /*
     * Generation 1 drains the slow request while two more reloads and a graceful
     * stop each tell the older generations to stop: a worker already draining
     * must not take that as a second TERM (which means "stop now").
     */
    gen = reload(&s, 1);
    gen = reload(&s, gen);
    ck_assert_int_ge(gen, 3);
    status = stop(&s, SIGTERM, 15000);
    pthread_join(th, NULL);
    ck_assert_msg(req.curl_code == 0 && req.status == 200,
                  "slow request: curl %d status %ld after %lld ms (log %s)", req.curl_code,
                  req.status, req.elapsed_ms, s.log);
    ck_assert_str_eq(req.body.p, "slept 2500 ms\n");
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d",
                  status);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Crashes, watchdog, recycling                                        */
/* ------------------------------------------------------------------ */

START_TEST(master_worker_crash_replaced)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", NULL};
    pid_t before, after;
    struct hresp r;
    cJSON *j;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 1, extra);
    before = worker_pid(&s);

    r = h_get(&s, "/probe/crash");
    ck_assert_msg(r.curl_code != 0 || r.status != 200, "the crashing request succeeded");
    h_resp_free(&r);
    /* The very next request waits in the listen queue for the replacement. */
    after = worker_pid(&s);
    ck_assert_int_ne(after, before);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(get_status(&s, "/probe/version", NULL, 0), 200);

    ck_assert_msg(h_wait_log(&s, "killed by signal SEGV", 1, 5000), "log %s", s.log);
    /* The master lived through it. */
    ck_assert_int_eq(waitpid(s.pid, NULL, WNOHANG), 0);
    j = stats_get(&s);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(jnum(j, "master_pid"), s.pid);
    ck_assert_int_ge(jnum(j, "restarts"), 1);
    {
        /* The crash is in the recent events, with the worker, the signal and the request. */
        const cJSON *e = find_event(j, "crash", 1);
        ck_assert_msg(e != NULL, "no crash event in the stats");
        ck_assert_int_eq(jnum(e, "pid"), before);
        ck_assert_int_eq(jnum(e, "worker"), 0);
        ck_assert_str_eq(jstr(e, "signal"), "SEGV");
        ck_assert_str_eq(jstr(e, "plugin"), "probe");
        ck_assert_str_eq(jstr(e, "method"), "GET");
        ck_assert_str_eq(jstr(e, "target"), "/probe/crash");
        ck_assert_str_eq(jstr(e, "detail"), "killed by signal SEGV");
        ck_assert_int_eq(jnum(j, "events_total"), 1);
    }
    cJSON_Delete(j);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_watchdog_kills_stuck_request)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--timeout", "1", NULL};
    pid_t before, after;
    long long t0;
    struct hresp r;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 1, extra);
    before = worker_pid(&s);

    t0 = h_ms_now();
    r = h_get(&s, "/probe/slow?ms=5000");
    ck_assert_msg(r.curl_code != 0 || r.status != 200, "the stuck request completed: %ld %s",
                  r.status, r.body);
    ck_assert_msg(h_ms_now() - t0 < 4500, "the stuck request lasted %lld ms", h_ms_now() - t0);
    h_resp_free(&r);
    ck_assert_msg(h_wait_log(&s, "stuck in one request", 1, 5000), "log %s", s.log);
    after = worker_pid(&s);
    ck_assert_int_ne(after, before);
    ck_assert_int_eq(get_status(&s, "/probe/slow?ms=100", NULL, 0), 200);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_max_requests_recycles)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--max-requests", "20", "--graceful-timeout",
                           "5",         NULL};
    pid_t first, last = 0;
    int changes = 0;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 1, extra);
    first = worker_pid(&s);
    last = first;
    for (int i = 1; i < 50; i++) {
        pid_t p;
        /*
         * Workers check their count on a short tick, not per request: at a
         * realistic pace (not 50 back-to-back loopback requests in 20 ms) the
         * overshoot stays small.
         */
        h_sleep_ms(5);
        p = worker_pid(&s); /* fails the test on any error */
        if (p != last)
            changes++;
        last = p;
    }
    ck_assert_msg(last != first, "one worker served all 50 requests (max 20)");
    ck_assert_int_ge(changes, 1);
    ck_assert_msg(h_wait_log(&s, "(--max-requests): retiring", 1, 2000), "log %s", s.log);
    ck_assert_int_eq(h_log_count(&s, "killed by signal"), 0);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Stopping, scaling                                                   */
/* ------------------------------------------------------------------ */

START_TEST(master_term_finishes_slow_request)
{
    struct hserver s;
    char pidfile[320];
    const char *extra[] = {"--workers", "1", "--graceful-timeout", "5", "--pid", NULL, NULL};
    struct slow_req req;
    pthread_t th;
    char *text;
    int status;
    long long t0;

    h_init(&s);
    snprintf(pidfile, sizeof(pidfile), "%s/server.pid", s.dir);
    extra[5] = pidfile;
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 1, extra);
    text = h_slurp(pidfile, NULL);
    ck_assert_int_eq(atoi(text), s.pid);
    free(text);

    memset(&req, 0, sizeof(req));
    req.s = &s;
    req.path = "/probe/slow?ms=1500";
    ck_assert_int_eq(pthread_create(&th, NULL, slow_run, &req), 0);
    wait_in_flight(&s);
    t0 = h_ms_now();
    status = stop(&s, SIGTERM, 10000);
    pthread_join(th, NULL);
    ck_assert_msg(req.curl_code == 0 && req.status == 200, "slow request: curl %d status %ld",
                  req.curl_code, req.status);
    ck_assert_str_eq(req.body.p, "slept 1500 ms\n");
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d",
                  status);
    ck_assert_msg(h_ms_now() - t0 >= 500, "stopped before the request could finish");
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_quit_is_fast)
{
    struct hserver s;
    const char *extra[] = {"--workers", "1", "--graceful-timeout", "20", NULL};
    struct slow_req req;
    pthread_t th;
    int status;
    long long t0, took;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 1, extra);
    memset(&req, 0, sizeof(req));
    req.s = &s;
    req.path = "/probe/slow?ms=8000";
    ck_assert_int_eq(pthread_create(&th, NULL, slow_run, &req), 0);
    wait_in_flight(&s);
    t0 = h_ms_now();
    status = stop(&s, SIGQUIT, 10000);
    took = h_ms_now() - t0;
    pthread_join(th, NULL);
    ck_assert_msg(status >= 0 && WIFEXITED(status), "no exit on SIGQUIT (status %d)", status);
    ck_assert_msg(took < 2500, "SIGQUIT took %lld ms (graceful timeout 20 s)", took);
    ck_assert_msg(req.curl_code != 0 || req.status != 200, "the slow request completed");
    h_cleanup(&s);
}
END_TEST

START_TEST(master_ttin_ttou_scale)
{
    struct hserver s;
    const char *extra[] = {"--workers", "2", "--graceful-timeout", "2", NULL};
    struct want w = want_any();

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 2, extra);
    w.target = 2;
    w.listed = 2;
    w.ready = 2;
    cJSON_Delete(wait_stats(&s, &w, 5000, "2 workers"));

    ck_assert_int_eq(kill(s.pid, SIGTTIN), 0);
    w.target = 3;
    w.listed = 3;
    w.ready = 3;
    cJSON_Delete(wait_stats(&s, &w, 10000, "3 workers after TTIN"));

    /* One at a time: two pending TTOUs would merge into one signal. */
    ck_assert_int_eq(kill(s.pid, SIGTTOU), 0);
    w.target = 2;
    w.listed = 2;
    w.ready = 2;
    cJSON_Delete(wait_stats(&s, &w, 10000, "2 workers after TTOU"));
    ck_assert_int_eq(kill(s.pid, SIGTTOU), 0);
    w.target = 1;
    w.listed = 1;
    w.ready = 1;
    cJSON_Delete(wait_stats(&s, &w, 10000, "1 worker after a second TTOU"));
    ck_assert_int_eq(get_status(&s, "/probe/version", NULL, 0), 200);
    ck_assert_int_eq(h_log_count(&s, "killed by signal"), 0);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Stats, logs                                                         */
/* ------------------------------------------------------------------ */

/* Run csgi-server --status unix:PATH and return its stdout. */
static char *
run_status(const struct hserver *s)
{
    char spec[320];
    int fds[2];
    pid_t pid;
    char *out = calloc(1, 65536);
    size_t n = 0;
    ssize_t got;
    int status;

    ck_assert_ptr_nonnull(out);
    snprintf(spec, sizeof(spec), "unix:%s", s->stats);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(getenv("CSGI_SERVER"), getenv("CSGI_SERVER"), "--status", spec, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (n < 65535 && (got = read(fds[0], out + n, 65535 - n)) > 0)
        n += (size_t)got;
    close(fds[0]);
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--status failed: %d", status);
    return out;
}

/* Send request to the stats socket and read the whole answer (caller frees). */
static char *
stats_ask(const struct hserver *s, const char *request)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);

    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(buf);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    ck_assert_uint_lt(strlen(s->stats), sizeof(sa.sun_path));
    memcpy(sa.sun_path, s->stats, strlen(s->stats));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        ck_assert_uint_lt(len, cap - 1);
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

/* The body of an HTTP answer (after the blank line), or "" when it has none. */
static const char *
http_body(const char *reply)
{
    const char *at = strstr(reply, "\r\n\r\n");

    return at ? at + 4 : "";
}

/*
 * One stats address, three readers: a browser asking for / (Accept:
 * text/html) gets the status page with its strict headers; curl (Accept:
 * star/star) and a browser asking for /stats.json get the JSON; HEAD gets the
 * headers alone.
 */
static void
check_stats_negotiation(const struct hserver *s)
{
    const char *browser = "Host: x\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) test\r\n"
                          "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
                          "image/avif,image/webp,*/*;q=0.8\r\nAccept-Language: en\r\n\r\n";
    char req[512];
    char *r;
    cJSON *j;

    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n%s", browser);
    r = stats_ask(s, req);
    ck_assert_msg(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.200s", r);
    ck_assert_msg(strstr(r, "\r\nContent-Type: text/html; charset=utf-8\r\n"), "%.400s", r);
    ck_assert_msg(strstr(r, "\r\nContent-Security-Policy: default-src 'none'; script-src "
                            "'sha256-"),
                  "%.600s", r);
    ck_assert_msg(strstr(r, "\r\nX-Content-Type-Options: nosniff\r\n"), "%.400s", r);
    ck_assert_msg(strstr(r, "\r\nVary: Accept\r\n"), "%.400s", r);
    ck_assert_msg(strncmp(http_body(r), "<!DOCTYPE html>", 15) == 0, "%.400s", r);
    ck_assert_msg(strstr(http_body(r), "fetch(\"stats.json\""), "the page does not poll");
    free(r);

    snprintf(req, sizeof(req), "GET /stats.json HTTP/1.1\r\n%s", browser);
    r = stats_ask(s, req);
    ck_assert_msg(strstr(r, "\r\nContent-Type: application/json\r\n"), "%.400s", r);
    j = cJSON_Parse(http_body(r));
    ck_assert_msg(j && jnum(j, "master_pid") == s->pid, "%.400s", r);
    cJSON_Delete(j);
    free(r);

    r = stats_ask(s, "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
    ck_assert_msg(strstr(r, "\r\nContent-Type: application/json\r\n"), "%.400s", r);
    ck_assert_ptr_null(strstr(r, "Content-Security-Policy"));
    j = cJSON_Parse(http_body(r));
    ck_assert_msg(j && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "events")), "%.400s", r);
    cJSON_Delete(j);
    free(r);

    snprintf(req, sizeof(req), "HEAD / HTTP/1.1\r\n%s", browser);
    r = stats_ask(s, req);
    ck_assert_msg(strstr(r, "\r\nContent-Type: text/html; charset=utf-8\r\n"), "%.400s", r);
    ck_assert_str_eq(http_body(r), "");
    free(r);
}

START_TEST(master_stats_json)
{
    struct hserver s;
    const char *extra[] = {"--workers", "2", NULL};
    const cJSON *w, *p, *probe = NULL;
    char *out;
    cJSON *j;
    long long end;
    int n_workers = 0;

    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 2, extra);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(get_status(&s, "/probe/version", NULL, 0), 200);
    ck_assert_int_eq(get_status(&s, "/probe/status?code=404", NULL, 0), 404);
    ck_assert_int_eq(get_status(&s, "/probe/error", NULL, 0), 500);

    /* Workers publish their counters on their next tick. */
    end = h_ms_now() + 5000;
    for (;;) {
        j = stats_get(&s);
        ck_assert_ptr_nonnull(j);
        probe = NULL;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "plugins"))
        {
            if (jstr(p, "name") && strcmp(jstr(p, "name"), "probe") == 0)
                probe = p;
        }
        if ((probe && jnum(probe, "requests") >= 7 && jnum(probe, "status_4xx") >= 1 &&
             jnum(probe, "status_5xx") >= 1) ||
            h_ms_now() >= end)
            break;
        cJSON_Delete(j);
        h_sleep_ms(50);
    }
    ck_assert_int_eq(jnum(j, "master_pid"), s.pid);
    ck_assert_int_eq(jnum(j, "generation"), 1);
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(j, "workers"))
    {
        ck_assert_int_gt(jnum(w, "pid"), 0);
        ck_assert_int_ne(jnum(w, "pid"), s.pid);
        ck_assert_int_eq(jnum(w, "generation"), 1);
        ck_assert_str_eq(jstr(w, "state"), "ready");
        ck_assert_int_ge(jnum(w, "requests"), 0);
        n_workers++;
    }
    ck_assert_int_eq(n_workers, 2);
    ck_assert_msg(probe != NULL, "no probe plugin in the stats");
    ck_assert_str_eq(jstr(probe, "version"), "1");
    ck_assert_str_eq(jstr(probe, "mount"), "/probe");
    ck_assert_int_eq(jnum(probe, "requests"), 7);
    ck_assert_int_eq(jnum(probe, "status_4xx"), 1);
    ck_assert_int_eq(jnum(probe, "status_5xx"), 1);
    ck_assert_int_ge(jnum(j, "requests_total"), 7);
    cJSON_Delete(j);

    /* The same figures for Prometheus: GET /metrics over HTTP on the stats socket. */
    {
        CURL *c = curl_easy_init();
        struct body_buf mb;
        long status = 0;
        mb.len = 0;
        mb.p[0] = '\0';
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s.stats);
        curl_easy_setopt(c, CURLOPT_URL, "http://localhost/metrics");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &mb);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        ck_assert_int_eq(status, 200);
        ck_assert_msg(strstr(mb.p, "csgi_generation 1\n") &&
                          strstr(mb.p, "csgi_workers{state=\"ready\"} 2\n"),
                      "%s", mb.p);
    }

    check_stats_negotiation(&s);

    /* The command-line reader prints the same document. */
    out = run_status(&s);
    j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "--status printed: %s", out);
    ck_assert_int_eq(jnum(j, "master_pid"), s.pid);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "workers")), 2);
    cJSON_Delete(j);
    free(out);
    stop_ok(&s);
    h_cleanup(&s);
}
END_TEST

START_TEST(master_usr1_reopens_logs)
{
    struct hserver s;
    char access_log[320], old_err[340], old_access[340];
    const char *extra[] = {"--workers", "2", "--access-log", NULL, NULL};
    long long end;
    int found = 0;
    char *text;

    h_init(&s);
    snprintf(access_log, sizeof(access_log), "%s", s.access);
    extra[3] = access_log;
    h_add_plugin(&s, "probe.so", NULL);
    start(&s, 2, extra);
    ck_assert_int_eq(get_status(&s, "/probe/version", NULL, 0), 200);

    /* logrotate: move the files away, then USR1. */
    snprintf(old_err, sizeof(old_err), "%s.1", s.log);
    snprintf(old_access, sizeof(old_access), "%s.1", s.access);
    ck_assert_int_eq(rename(s.log, old_err), 0);
    ck_assert_int_eq(rename(s.access, old_access), 0);
    ck_assert_int_eq(kill(s.pid, SIGUSR1), 0);

    /* Each worker reopens on its next tick; ask until a worker writes to the new file. */
    end = h_ms_now() + 5000;
    while (!found && h_ms_now() < end) {
        ck_assert_int_eq(get_status(&s, "/probe/log", NULL, 0), 200);
        found = h_log_count(&s, "probe log line") > 0;
        if (!found)
            h_sleep_ms(50);
    }
    ck_assert_msg(found, "no new error log at %s", s.log);
    /* The access line is written once the response is out: give it a moment. */
    end = h_ms_now() + 2000;
    for (;;) {
        text = h_slurp(s.access, NULL);
        if (h_has(text, "/probe/log") || h_ms_now() >= end)
            break;
        free(text);
        h_sleep_ms(20);
    }
    ck_assert_msg(h_has(text, "/probe/log"), "new access log: %s", text);
    free(text);
    text = h_slurp(old_err, NULL);
    ck_assert_msg(h_has(text, "SIGUSR1: reopening log files"), "old error log: %s", text);
    free(text);

    /* The master reopened too: its last words land in the new file. */
    stop_ok(&s);
    ck_assert_int_ge(h_log_count(&s, "master exiting"), 1);
    text = h_slurp(old_err, NULL);
    ck_assert_msg(!h_has(text, "master exiting"), "the master still wrote the old log");
    free(text);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *
master_suite(void)
{
    Suite *s = suite_create("master");
    TCase *tc;

    tc = tcase_create("reload");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, master_reload_under_load);
    tcase_add_test(tc, master_reload_after_overwrite_in_place);
    tcase_add_test(tc, master_reload_broken_plugin_rolls_back);
    tcase_add_test(tc, master_reload_twice_drains_slow_request);
    tcase_add_test(tc, master_reload_bad_config_keeps_serving);
    suite_add_tcase(s, tc);

    tc = tcase_create("workers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, master_worker_crash_replaced);
    tcase_add_test(tc, master_watchdog_kills_stuck_request);
    tcase_add_test(tc, master_max_requests_recycles);
    suite_add_tcase(s, tc);

    tc = tcase_create("signals");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, master_term_finishes_slow_request);
    tcase_add_test(tc, master_quit_is_fast);
    tcase_add_test(tc, master_ttin_ttou_scale);
    tcase_add_test(tc, master_usr1_reopens_logs);
    tcase_add_test(tc, master_user_group_drop);
    suite_add_tcase(s, tc);

    tc = tcase_create("stats");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, master_stats_json);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(master_suite());
    struct rlimit no_core = {0, 0};
    int failed;

    /* Crashes and the watchdog's SIGABRT are expected here: no core files. */
    setrlimit(RLIMIT_CORE, &no_core);
    guard = mmap(NULL, sizeof(*guard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED)
        guard = NULL;
    atexit(guard_reap);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    guard_reap();
    return failed ? 1 : 0;
}
