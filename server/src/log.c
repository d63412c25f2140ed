/*
 * Logging: one error log with levels, pid and worker identity, and an access
 * log in the combined format or JSON lines. Each record is formatted into one
 * buffer and written with one write(2), so lines from several threads and
 * processes sharing a file never interleave (O_APPEND).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int srv_log_verbosity = SRV_LOG_INFO;

static struct {
    int error_fd;
    int access_fd;
    int access_json;
    char *error_path;
    char *access_path;
    char role[16];
    int worker_id;
    unsigned generation;
} lg = {.error_fd = 2, .access_fd = -1, .role = "main", .worker_id = -1};

static const char *const level_names[] = {"", "error", "warn", "info", "debug", "trace"};

int
srv_log_level_parse(const char *name)
{
    for (int i = SRV_LOG_ERROR; i <= SRV_LOG_TRACE; i++) {
        if (strcmp(name, level_names[i]) == 0)
            return i;
    }
    if (strcmp(name, "warning") == 0)
        return SRV_LOG_WARN;
    return -1;
}

const char *
srv_log_level_name(int level)
{
    if (level < SRV_LOG_ERROR || level > SRV_LOG_TRACE)
        return "?";
    return level_names[level];
}

/* The path the last failed open_log() could not open. */
static char failed_path[4096];

static int
open_log(const char *path, int dflt)
{
    int fd;

    if (!path || strcmp(path, "-") == 0)
        return dflt;
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        snprintf(failed_path, sizeof(failed_path), "%s", path);
        return -e;
    }
    return fd;
}

const char *
srv_log_failed_path(void)
{
    return failed_path;
}

static void
replace_fd(int *slot, int fd)
{
    if (*slot > 2 && *slot != fd)
        close(*slot);
    *slot = fd;
}

int
srv_log_open(const char *error_path, const char *access_path, int access_json)
{
    int efd, afd = -1;

    efd = open_log(error_path, 2);
    if (efd < 0)
        return efd;
    if (access_path) {
        afd = open_log(access_path, 1);
        if (afd < 0) {
            if (efd > 2)
                close(efd);
            return afd;
        }
    }
    replace_fd(&lg.error_fd, efd);
    replace_fd(&lg.access_fd, afd);
    lg.access_json = access_json;
    free(lg.error_path);
    free(lg.access_path);
    lg.error_path = error_path ? strdup(error_path) : NULL;
    lg.access_path = access_path ? strdup(access_path) : NULL;
    return 0;
}

int
srv_log_reopen(void)
{
    int efd = lg.error_fd, afd = lg.access_fd;

    if (lg.error_path && strcmp(lg.error_path, "-") != 0) {
        efd = open_log(lg.error_path, 2);
        if (efd < 0)
            return efd;
        replace_fd(&lg.error_fd, efd);
    }
    if (lg.access_path && strcmp(lg.access_path, "-") != 0) {
        afd = open_log(lg.access_path, 1);
        if (afd < 0)
            return afd;
        replace_fd(&lg.access_fd, afd);
    }
    return 0;
}

const char *
srv_log_error_path(void)
{
    return lg.error_path;
}

const char *
srv_log_access_path(void)
{
    return lg.access_path;
}

int
srv_log_access_json(void)
{
    return lg.access_json;
}

void
srv_log_close(void)
{
    replace_fd(&lg.error_fd, 2);
    replace_fd(&lg.access_fd, -1);
    free(lg.error_path);
    free(lg.access_path);
    lg.error_path = NULL;
    lg.access_path = NULL;
}

void
srv_log_set_identity(const char *role, int worker_id, unsigned generation)
{
    snprintf(lg.role, sizeof(lg.role), "%s", role);
    lg.worker_id = worker_id;
    lg.generation = generation;
}

static void
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static size_t
timestamp(char *buf, size_t size, int iso)
{
    struct timeval tv;
    struct tm tm;
    size_t n;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    if (iso) {
        n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(buf + n, size - n, ".%03ld", (long)(tv.tv_usec / 1000));
        n += strftime(buf + n, size - n, "%z", &tm);
    } else {
        n = strftime(buf, size, "%d/%b/%Y:%H:%M:%S %z", &tm);
    }
    return n;
}

void
srv__vlog(int level, const char *fmt, va_list ap)
{
    char buf[4096];
    size_t n;
    int m;

    n = timestamp(buf, sizeof(buf), 1);
    if (lg.worker_id >= 0)
        m = snprintf(buf + n, sizeof(buf) - n, " [%s] pid=%d %s=%d gen=%u ",
                     srv_log_level_name(level), (int)getpid(), lg.role, lg.worker_id,
                     lg.generation);
    else
        m = snprintf(buf + n, sizeof(buf) - n, " [%s] pid=%d %s gen=%u ", srv_log_level_name(level),
                     (int)getpid(), lg.role, lg.generation);
    n += (size_t)m;
    m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    /* Strip newlines a plugin may have sent: one record is one line. */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n++] = '\n';
    write_all(lg.error_fd, buf, n);
}

void
srv__log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    srv__vlog(level, fmt, ap);
    va_end(ap);
}

int
srv_access_log_enabled(void)
{
    return lg.access_fd >= 0;
}

/* Append s escaped for a quoted log field (combined: \" and \xHH; JSON: \u00HH). */
static size_t
esc(char *out, size_t cap, size_t n, const char *s, size_t len, int json)
{
    static const char hex[] = "0123456789abcdef";

    if (!s) {
        s = "-";
        len = 1;
    }
    for (size_t i = 0; i < len && n + 32 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            if (json && c >= 0x7f) {
                out[n++] = (char)c; /* UTF-8 passes through JSON */
                continue;
            }
            out[n++] = '\\';
            if (json) {
                memcpy(out + n, "u00", 3);
                n += 3;
            } else {
                out[n++] = 'x';
            }
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

/* snprintf at offset n, clamped so that n never passes cap - 16. */
static size_t __attribute__((format(printf, 4, 5)))
app(char *buf, size_t cap, size_t n, const char *fmt, ...)
{
    va_list ap;
    int m;

    if (n + 16 >= cap)
        return n;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, cap - n - 16, fmt, ap);
    va_end(ap);
    if (m < 0)
        return n;
    n += (size_t)m;
    return n < cap - 16 ? n : cap - 16;
}

#define CAT(str) n = esc(buf, sizeof(buf), n, (str), (str) ? strlen(str) : 1, json)

void
srv_access_log_write(const struct srv_access_record *r)
{
    char buf[16384], ts[64];
    size_t n = 0;
    int json = lg.access_json;
    int pid = r->pid ? r->pid : (int)getpid();
    int worker = r->pid ? r->worker_id : lg.worker_id;
    unsigned gen = r->pid ? r->generation : lg.generation;

    if (lg.access_fd < 0)
        return;
    timestamp(ts, sizeof(ts), json);
    if (json) {
        n = app(buf, sizeof(buf), n, "{\"time\":\"%s\",\"remote_addr\":\"", ts);
        CAT(r->remote_addr);
        n = app(buf, sizeof(buf), n, "\",\"method\":\"");
        CAT(r->method);
        n = app(buf, sizeof(buf), n, "\",\"target\":\"");
        n = esc(buf, sizeof(buf), n, r->target,
                r->target ? (r->target_len > 4096 ? 4096 : r->target_len) : 1, 1);
        n = app(buf, sizeof(buf), n, "\",\"protocol\":\"");
        CAT(r->protocol);
        n = app(buf, sizeof(buf), n, "\",\"status\":%d,\"bytes\":%llu,\"referer\":\"", r->status,
                (unsigned long long)r->bytes);
        CAT(r->referer);
        n = app(buf, sizeof(buf), n, "\",\"user_agent\":\"");
        CAT(r->user_agent);
        n = app(buf, sizeof(buf), n, "\",\"duration_ms\":%.3f,\"plugin\":\"", r->duration_ms);
        CAT(r->plugin);
        n = app(buf, sizeof(buf), n,
                "\",\"request_id\":%llu,\"pid\":%d,\"worker\":%d,\"gen\":%u}\n",
                (unsigned long long)r->request_id, pid, worker, gen);
    } else {
        n = esc(buf, sizeof(buf), n, r->remote_addr, r->remote_addr ? strlen(r->remote_addr) : 1,
                0);
        n = app(buf, sizeof(buf), n, " - - [%s] \"", ts);
        CAT(r->method);
        n = app(buf, sizeof(buf), n, " ");
        n = esc(buf, sizeof(buf), n, r->target,
                r->target ? (r->target_len > 4096 ? 4096 : r->target_len) : 1, 0);
        n = app(buf, sizeof(buf), n, " ");
        CAT(r->protocol);
        n = app(buf, sizeof(buf), n, "\" %d %llu \"", r->status, (unsigned long long)r->bytes);
        CAT(r->referer);
        n = app(buf, sizeof(buf), n, "\" \"");
        CAT(r->user_agent);
        n = app(buf, sizeof(buf), n, "\" %.3f %s %llu pid=%d worker=%d gen=%u\n", r->duration_ms,
                r->plugin ? r->plugin : "-", (unsigned long long)r->request_id, pid, worker, gen);
    }
    write_all(lg.access_fd, buf, n);
}
