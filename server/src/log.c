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
    /* O_NOFOLLOW: a symbolic link planted at the path must not redirect our writes. */
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
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

const char *
srv_log_strerror(int rc)
{
    /* O_NOFOLLOW's refusal reads as "too many levels of symbolic links" otherwise. */
    if (rc == -ELOOP)
        return "it is a symbolic link (refused)";
    return strerror(-rc);
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

/*
 * A reopen failed: say so in the error log still open (the rotated file,
 * most likely) and on stderr when that is another file (the journal under
 * systemd), so that the failure is seen where the operator looks.
 */
static void
reopen_failed(int rc)
{
    srv__log(SRV_LOG_ERROR,
             "SIGUSR1: cannot reopen log file \"%s\": %s; still writing to the "
             "old file",
             failed_path, srv_log_strerror(rc));
    if (lg.error_fd != 2) {
        int keep = lg.error_fd;
        lg.error_fd = 2;
        srv__log(SRV_LOG_ERROR, "SIGUSR1: cannot reopen log file \"%s\": %s", failed_path,
                 srv_log_strerror(rc));
        lg.error_fd = keep;
    }
}

int
srv_log_reopen(void)
{
    int efd = lg.error_fd, afd = lg.access_fd;

    if (lg.error_path && strcmp(lg.error_path, "-") != 0) {
        efd = open_log(lg.error_path, 2);
        if (efd < 0) {
            reopen_failed(efd);
            return efd;
        }
        replace_fd(&lg.error_fd, efd);
    }
    if (lg.access_path && strcmp(lg.access_path, "-") != 0) {
        afd = open_log(lg.access_path, 1);
        if (afd < 0) {
            reopen_failed(afd);
            return afd;
        }
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

/*
 * Copy the message msg (len bytes) to out at n, with every control byte (CR
 * and LF included) and DEL written as \xHH, so that one call is one line
 * whatever a plugin or a client put in the text. Stops before passing
 * limit; a message cut here or before (cut) ends with "...". Returns the
 * new length.
 */
static size_t
esc_message(char *out, size_t limit, size_t n, const char *msg, size_t len, int cut)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        size_t need = c < 0x20 || c == 0x7f ? 4 : 1;
        if (n + need + 3 > limit) {
            memcpy(out + n, "...", 3);
            return n + 3;
        }
        if (need == 1) {
            out[n++] = (char)c;
        } else {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (cut) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    return n;
}

void
srv__vlog(int level, const char *fmt, va_list ap)
{
    char msg[4096], buf[8192];
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
    if (m > 0)
        n += (size_t)m;
    if (n > 256)
        n = 256;
    m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (m < 0)
        m = 0;
    if ((size_t)m > sizeof(msg) - 1) {
        /* Cut by the message buffer: what is left is not the message's end. */
        n = esc_message(buf, sizeof(buf) - 1, n, msg, sizeof(msg) - 1, 1);
    } else {
        /* A plugin's trailing newline is dropped; any other control byte is escaped. */
        while (m > 0 && (msg[m - 1] == '\n' || msg[m - 1] == '\r'))
            m--;
        n = esc_message(buf, sizeof(buf) - 1, n, msg, (size_t)m, 0);
    }
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

/*
 * The length of the well-formed UTF-8 sequence at s (len bytes left), or 0
 * when s does not start one (a stray continuation byte, an overlong form, a
 * surrogate, past U+10FFFF, or cut short).
 */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return 0;
    if (need > len)
        return 0;
    /* The second byte's range rules out overlongs, surrogates and > U+10FFFF. */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < need; k++) {
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    }
    return need;
}

/*
 * Append s (len bytes; NULL: "-") escaped for a quoted log field at out + n,
 * writing at most max bytes and never past cap - LOG_TAIL_RESERVE, and
 * never half an escape. Combined format: '"' and '\\' as \" and \\\\,
 * control bytes and bytes from 0x7f as \xHH. JSON: '"' and '\\' escaped,
 * control bytes as \u00HH, well-formed UTF-8 as is, every byte of
 * malformed UTF-8 as \ufffd (the replacement character), so that a record
 * is always valid JSON. Returns the new length.
 */
#define LOG_TAIL_RESERVE 512

static size_t
esc(char *out, size_t cap, size_t n, const char *s, size_t len, int json, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t end = n + max;

    if (end > cap - LOG_TAIL_RESERVE)
        end = cap - LOG_TAIL_RESERVE;
    if (!s) {
        u = (const unsigned char *)"-";
        len = 1;
    }
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        char e[8];
        size_t el = 0, take = 1;

        if (c == '"' || c == '\\') {
            e[el++] = '\\';
            e[el++] = (char)c;
        } else if (c < 0x20 || (!json && c >= 0x7f)) {
            e[el++] = '\\';
            if (json) {
                memcpy(e + el, "u00", 3);
                el += 3;
            } else {
                e[el++] = 'x';
            }
            e[el++] = hex[c >> 4];
            e[el++] = hex[c & 15];
        } else if (c < 0x80) {
            e[el++] = (char)c;
        } else {
            take = utf8_seq(u + i, len - i);
            if (take) {
                memcpy(e, u + i, take);
                el = take;
            } else {
                memcpy(e, "\\ufffd", 6);
                el = 6;
                take = 1;
            }
        }
        if (n + el > end)
            break;
        memcpy(out + n, e, el);
        n += el;
        i += take;
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

/*
 * The most bytes each field of an access record takes once escaped. Their
 * sum, the fixed text and LOG_TAIL_RESERVE fit the record buffer (16 KiB),
 * so a record is never cut in its closing part and always ends in its one
 * newline.
 */
#define LOG_FIELD_SHORT  256  /* address, method, protocol, plugin */
#define LOG_FIELD_TARGET 6144 /* the request target (at most 4096 bytes of it) */
#define LOG_FIELD_HEADER 3072 /* Referer, User-Agent */

#define CAT(str, max) n = esc(buf, sizeof(buf), n, (str), (str) ? strlen(str) : 1, json, (max))

/* True for a non-empty string of printable ASCII without space, quote or backslash. */
static int
plain_token(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

/* The status as text into buf (16 bytes), or @p none for 0 (no response, or status unknown). */
static const char *
status_text(int status, char *buf, const char *none)
{
    if (!status)
        return none;
    snprintf(buf, 16, "%d", status);
    return buf;
}

void
srv_access_log_write(const struct srv_access_record *r)
{
    char buf[16384], ts[64], status[16];
    size_t n = 0;
    int json = lg.access_json;
    int pid = r->pid ? r->pid : (int)getpid();
    int worker = r->pid ? r->worker_id : lg.worker_id;
    unsigned gen = r->pid ? r->generation : lg.generation;

    size_t target_len = r->target ? (r->target_len > 4096 ? 4096 : r->target_len) : 1;
    const char *plugin = plain_token(r->plugin) ? r->plugin : "-";
    const char *id = plain_token(r->request_id_text) ? r->request_id_text : NULL;

    if (lg.access_fd < 0)
        return;
    timestamp(ts, sizeof(ts), json);
    if (json) {
        n = app(buf, sizeof(buf), n, "{\"time\":\"%s\",\"remote_addr\":\"", ts);
        CAT(r->remote_addr, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, "\",\"method\":\"");
        CAT(r->method, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, "\",\"target\":\"");
        n = esc(buf, sizeof(buf), n, r->target, target_len, 1, LOG_FIELD_TARGET);
        n = app(buf, sizeof(buf), n, "\",\"protocol\":\"");
        CAT(r->protocol, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, "\",\"status\":%s,\"bytes\":%llu,\"referer\":\"",
                status_text(r->status, status, "null"), (unsigned long long)r->bytes);
        CAT(r->referer, LOG_FIELD_HEADER);
        n = app(buf, sizeof(buf), n, "\",\"user_agent\":\"");
        CAT(r->user_agent, LOG_FIELD_HEADER);
        n = app(buf, sizeof(buf), n, "\",\"duration_ms\":%.3f,\"plugin\":\"", r->duration_ms);
        CAT(r->plugin, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, "\",\"request_id\":%llu,\"pid\":%d,\"worker\":%d,\"gen\":%u,",
                (unsigned long long)r->request_id, pid, worker, gen);
        if (id) {
            n = app(buf, sizeof(buf), n, "\"id\":\"");
            n = esc(buf, sizeof(buf), n, id, strlen(id), 1, LOG_FIELD_SHORT);
            n = app(buf, sizeof(buf), n, "\"}\n");
        } else {
            n = app(buf, sizeof(buf), n, "\"id\":null}\n");
        }
    } else {
        CAT(r->remote_addr, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, " - - [%s] \"", ts);
        CAT(r->method, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, " ");
        n = esc(buf, sizeof(buf), n, r->target, target_len, 0, LOG_FIELD_TARGET);
        n = app(buf, sizeof(buf), n, " ");
        CAT(r->protocol, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, "\" %s %llu \"", status_text(r->status, status, "-"),
                (unsigned long long)r->bytes);
        CAT(r->referer, LOG_FIELD_HEADER);
        n = app(buf, sizeof(buf), n, "\" \"");
        CAT(r->user_agent, LOG_FIELD_HEADER);
        n = app(buf, sizeof(buf), n, "\" %.3f ", r->duration_ms);
        /* The plugin field is unquoted: a name as the loader checked it, else "-". */
        n = esc(buf, sizeof(buf), n, plugin, strlen(plugin), 0, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n,
                " %llu pid=%d worker=%d gen=%u id=", (unsigned long long)r->request_id, pid, worker,
                gen);
        n = esc(buf, sizeof(buf), n, id ? id : "-", id ? strlen(id) : 1, 0, LOG_FIELD_SHORT);
        n = app(buf, sizeof(buf), n, "\n");
    }
    /* The field bounds leave room for the closing part; this only guards against a slip. */
    if (n == 0 || buf[n - 1] != '\n') {
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
        buf[n++] = '\n';
    }
    write_all(lg.access_fd, buf, n);
}
