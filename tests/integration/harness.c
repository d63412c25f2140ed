/*
 * Integration-test harness (see harness.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

long long
h_ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int
h_has(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

int
h_get_until(const struct hserver *s, const char *path, const char *want, int timeout_ms)
{
    long long end = h_ms_now() + timeout_ms;

    do {
        struct hresp r = h_get(s, path);
        int ok = r.status == 200 && h_has(r.body, want);

        h_resp_free(&r);
        if (ok)
            return 1;
        h_sleep_ms(20);
    } while (h_ms_now() < end);
    return 0;
}

void
h_init(struct hserver *s)
{
    const char *tmp = getenv("TMPDIR");

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s/csgi-it-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->plugins, sizeof(s->plugins), "%s/plugins", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/error.log", s->dir);
    snprintf(s->access, sizeof(s->access), "%s/access.log", s->dir);
    snprintf(s->stats, sizeof(s->stats), "%s/stats.sock", s->dir);
    ck_assert_int_eq(mkdir(s->plugins, 0755), 0);
}

static void
copy_file(const char *src, const char *dst)
{
    char tmp[600];
    int in = open(src, O_RDONLY), out;
    char buf[65536];
    ssize_t n;

    ck_assert_msg(in >= 0, "cannot open %s: %s", src, strerror(errno));
    /* Write a temporary file and rename it: the deployment rule for plugins. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    ck_assert_msg(out >= 0, "cannot create %s", tmp);
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    ck_assert_int_eq(rename(tmp, dst), 0);
}

void
h_add_plugin(struct hserver *s, const char *file, const char *as_name)
{
    const char *dirs[] = {getenv("CSGI_FIXTURES"), getenv("CSGI_EXAMPLES")};
    char src[600], dst[600];

    for (size_t i = 0; i < 2; i++) {
        if (!dirs[i])
            continue;
        snprintf(src, sizeof(src), "%s/%s", dirs[i], file);
        if (access(src, R_OK) == 0) {
            snprintf(dst, sizeof(dst), "%s/%s", s->plugins, as_name ? as_name : file);
            copy_file(src, dst);
            return;
        }
    }
    ck_abort_msg("plugin %s not found in $CSGI_FIXTURES or $CSGI_EXAMPLES", file);
}

char *
h_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (!f) {
        buf = calloc(1, 1);
        if (len)
            *len = 0;
        return buf;
    }
    for (;;) {
        size_t got;
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int
h_log_count(const struct hserver *s, const char *needle)
{
    char *log = h_slurp(s->log, NULL);
    int n = 0;

    for (char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

int
h_wait_log(const struct hserver *s, const char *needle, int n, int timeout_ms)
{
    long long end = h_ms_now() + timeout_ms;

    while (h_ms_now() < end) {
        if (h_log_count(s, needle) >= n)
            return 1;
        h_sleep_ms(20);
    }
    return h_log_count(s, needle) >= n;
}

void
h_start(struct hserver *s, int ready, const char *const *extra)
{
    const char *server = getenv("CSGI_SERVER");
    const char *argv[64];
    int argc = 0;

    ck_assert_msg(server != NULL, "CSGI_SERVER is not set");
    argv[argc++] = server;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--plugins";
    argv[argc++] = s->plugins;
    argv[argc++] = "--error-log";
    argv[argc++] = s->log;
    argv[argc++] = "--tmp-dir";
    argv[argc++] = s->dir;
    for (size_t i = 0; extra && extra[i] && argc < 62; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    h_spawn(s, argv, ready);
}

void
h_spawn(struct hserver *s, const char *const *argv, int ready)
{
    long long end;

    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (s->pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    end = h_ms_now() + 15000;
    while (h_ms_now() < end) {
        char *log = h_slurp(s->log, NULL);
        char *at = strstr(log, "listening on http://127.0.0.1:");
        int n = 0;
        if (at)
            s->port = atoi(at + strlen("listening on http://127.0.0.1:"));
        for (char *p = log; (p = strstr(p, "worker ready")) != NULL; p++)
            n++;
        free(log);
        if (s->port && n >= ready)
            return;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            ck_abort_msg("csgi-server exited during start-up (log: %s)", s->log);
        }
        h_sleep_ms(20);
    }
    ck_abort_msg("csgi-server did not become ready (log: %s)", s->log);
}

int
h_stop(struct hserver *s, int sig, int timeout_ms)
{
    long long end = h_ms_now() + timeout_ms;
    int status;

    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    while (h_ms_now() < end) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return status;
        }
        h_sleep_ms(10);
    }
    /* Our own child only: make sure nothing outlives the test. */
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return -1;
}

void
h_cleanup(struct hserver *s)
{
    char cmd[600];

    if (s->pid > 0)
        h_stop(s, SIGKILL, 2000);
    if (getenv("CSGI_KEEP_TEST_DIRS"))
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", s->dir);
}

struct growbuf {
    char *p;
    size_t len, cap;
};

static size_t
grow_write(char *data, size_t size, size_t n, void *userp)
{
    struct growbuf *b = userp;
    size_t add = size * n;

    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + add + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            return 0;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

struct hresp
h_request(const struct hserver *s, const char *method, const char *path, const void *body,
          size_t body_len, const char *const *headers)
{
    struct hresp r;
    struct growbuf b = {NULL, 0, 0}, hb = {NULL, 0, 0};
    struct curl_slist *hl = NULL;
    char url[2048];
    CURL *c = curl_easy_init();

    memset(&r, 0, sizeof(r));
    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, grow_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, grow_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (s->accept_encoding)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, s->accept_encoding);
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    r.curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r.body = b.p ? b.p : calloc(1, 1);
    r.len = b.len;
    r.headers = hb.p ? hb.p : calloc(1, 1);
    return r;
}

void
h_resp_free(struct hresp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

size_t
h_raw(int port, const char *req, size_t len, char *out, size_t cap, int timeout_ms, int *closed)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t n = 0;

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (len)
        ck_assert_int_eq(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    *closed = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t got;
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        got = recv(fd, out + n, cap - 1 - n, 0);
        if (got <= 0) {
            *closed = 1;
            break;
        }
        n += (size_t)got;
        if (n >= cap - 1)
            break;
    }
    out[n] = '\0';
    close(fd);
    return n;
}

/* Read the stats JSON from the unix socket: NULL when it cannot be read. */
char *
h_stats_raw(const struct hserver *s)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (fd < 0)
        return NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(s->stats) >= sizeof(sa.sun_path)) {
        close(fd);
        return NULL;
    }
    memcpy(sa.sun_path, s->stats, strlen(s->stats));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return NULL;
    }
    for (;;) {
        ssize_t n;
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap ? cap * 2 : 16384);
            if (!nb) {
                free(buf);
                close(fd);
                return NULL;
            }
            buf = nb;
            cap = cap ? cap * 2 : 16384;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len == 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}
