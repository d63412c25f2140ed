/*
 * A raw-socket HTTP/1.x client for the integration tests (see wire.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

/* Longest response head accepted. */
#define WIRE_MAX_HEAD (64 * 1024)

long long
wire_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
wire_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int
wire_connect(struct wire_conn *c, int port, int rcvbuf)
{
    struct sockaddr_in sa;
    struct timeval tv = {30, 0};

    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

int
wire_send(struct wire_conn *c, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Receive more bytes into the buffer, waiting until @p deadline.
 * @return 1 with new bytes, 0 at end of stream, -1 at the deadline.
 */
static int
fill(struct wire_conn *c, long long deadline)
{
    size_t want;
    ssize_t n;

    if (c->eof)
        return 0;
    for (;;) {
        long long left = deadline - wire_now_ms();
        struct pollfd p = {c->fd, POLLIN, 0};
        int rc;

        if (left <= 0)
            return -1;
        rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        break;
    }
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        char *nb = realloc(c->buf, cap);

        if (!nb)
            return -1;
        c->buf = nb;
        c->cap = cap;
    }
    want = c->cap - c->len - 1;
    if (c->read_max && want > c->read_max)
        want = c->read_max;
    do {
        n = recv(c->fd, c->buf + c->len, want, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        c->eof = 1;
        return 0;
    }
    c->len += (size_t)n;
    c->last_ms = wire_now_ms();
    if (c->read_pause_ms > 0)
        wire_sleep_ms(c->read_pause_ms);
    return 1;
}

int
wire_recv_until(struct wire_conn *c, const char *needle, int timeout_ms)
{
    long long end = wire_now_ms() + timeout_ms;

    for (;;) {
        if (needle && c->buf && memmem(c->buf, c->len, needle, strlen(needle)))
            return 1;
        if (c->eof)
            return !needle;
        if (fill(c, end) < 0)
            return 0;
        if (c->buf)
            c->buf[c->len] = '\0';
    }
}

/* Drop the first @p n buffered bytes. */
static void
consume(struct wire_conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Append @p n bytes to the response body. @return 0, or -1 when out of memory. */
static int
body_add(struct wire_resp *r, const char *p, size_t n, size_t *cap)
{
    if (r->body_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        char *nb;

        while (nc < r->body_len + n + 1)
            nc *= 2;
        nb = realloc(r->body, nc);
        if (!nb)
            return -1;
        r->body = nb;
        *cap = nc;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

/* Find "\r\n" in the buffer from @p from. @return its offset, or -1. */
static long
find_crlf(const struct wire_conn *c, size_t from)
{
    for (size_t i = from; i + 1 < c->len; i++) {
        if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
            return (long)i;
    }
    return -1;
}

/* Read one head into r->head. @return 0, or -1 (closed, timed out, malformed). */
static int
read_head(struct wire_conn *c, long long deadline, struct wire_resp *r)
{
    for (;;) {
        char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        int rc;

        if (end) {
            size_t hl = (size_t)(end - c->buf);

            free(r->head);
            r->head = malloc(hl + 3);
            if (!r->head)
                return -1;
            memcpy(r->head, c->buf, hl + 2);
            r->head[hl + 2] = '\0';
            consume(c, hl + 4);
            r->head_ms = wire_now_ms();
            return 0;
        }
        if (c->len > WIRE_MAX_HEAD)
            return -1;
        rc = fill(c, deadline);
        if (rc < 0)
            r->timed_out = 1;
        if (rc <= 0)
            return -1;
    }
}

/* Does a comma-separated header value list contain @p token (case-insensitive)? */
static int
has_token(const char *list, const char *token)
{
    size_t tl = strlen(token);

    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        const char *stop = comma ? comma : p + strlen(p);

        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if ((size_t)(stop - p) == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

/* Read a chunked body. @return 0 when complete, -1 otherwise. */
static int
read_chunked(struct wire_conn *c, long long deadline, struct wire_resp *r, size_t *cap)
{
    size_t max_chunks = 0;

    for (;;) {
        long eol = find_crlf(c, 0);
        unsigned long long size;
        char *endp;
        int rc;

        if (eol < 0) {
            rc = fill(c, deadline);
            if (rc < 0)
                r->timed_out = 1;
            if (rc <= 0)
                return -1;
            continue;
        }
        errno = 0;
        size = strtoull(c->buf, &endp, 16);
        if (endp == c->buf || errno != 0 || (*endp != ';' && *endp != '\r'))
            return -1;
        if (size == 0) {
            /* The last chunk: trailer lines up to an empty line. */
            consume(c, (size_t)eol + 2);
            for (;;) {
                long t = find_crlf(c, 0);

                if (t == 0) {
                    consume(c, 2);
                    return 0;
                }
                if (t > 0) {
                    consume(c, (size_t)t + 2);
                    continue;
                }
                rc = fill(c, deadline);
                if (rc < 0)
                    r->timed_out = 1;
                if (rc <= 0)
                    return -1;
            }
        }
        if (r->n_chunks == max_chunks) {
            size_t nm = max_chunks ? max_chunks * 2 : 16;
            struct wire_chunk *nc = realloc(r->chunks, nm * sizeof(*nc));

            if (!nc)
                return -1;
            r->chunks = nc;
            max_chunks = nm;
        }
        r->chunks[r->n_chunks].size = (size_t)size;
        r->chunks[r->n_chunks].at_ms = c->last_ms;
        r->n_chunks++;
        consume(c, (size_t)eol + 2);
        while (size > 0) {
            size_t take = c->len < size ? c->len : (size_t)size;

            if (take > 0) {
                if (body_add(r, c->buf, take, cap) < 0)
                    return -1;
                consume(c, take);
                size -= take;
                continue;
            }
            rc = fill(c, deadline);
            if (rc < 0)
                r->timed_out = 1;
            if (rc <= 0)
                return -1;
        }
        while (c->len < 2) {
            rc = fill(c, deadline);
            if (rc < 0)
                r->timed_out = 1;
            if (rc <= 0)
                return -1;
        }
        if (c->buf[0] != '\r' || c->buf[1] != '\n')
            return -1;
        consume(c, 2);
    }
}

/* Read @p want bytes, or to the end of stream when @p want is -1. @return 0 when complete. */
static int
read_plain(struct wire_conn *c, long long deadline, struct wire_resp *r, size_t *cap,
           long long want)
{
    for (;;) {
        size_t take = c->len;
        int rc;

        if (want >= 0 && (long long)(r->body_len + take) > want)
            take = (size_t)(want - (long long)r->body_len);
        if (take > 0) {
            if (body_add(r, c->buf, take, cap) < 0)
                return -1;
            consume(c, take);
        }
        if (want >= 0 && (long long)r->body_len == want)
            return 0;
        rc = fill(c, deadline);
        if (rc < 0) {
            r->timed_out = 1;
            return -1;
        }
        if (rc == 0)
            return want < 0 ? 0 : -1;
    }
}

int
wire_read(struct wire_conn *c, const char *method, int timeout_ms, struct wire_resp *r)
{
    long long deadline = wire_now_ms() + timeout_ms;
    size_t cap = 0;
    char val[256];
    int no_body, rc;

    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->body = calloc(1, 1);
    if (!r->body)
        return -1;
    do {
        if (read_head(c, deadline, r) < 0) {
            r->status = 0;
            r->closed = c->eof;
            r->end_ms = wire_now_ms();
            return -1;
        }
        if (sscanf(r->head, "HTTP/1.%d %d", &r->minor, &r->status) != 2) {
            r->status = 0;
            r->closed = c->eof;
            return -1;
        }
    } while (r->status >= 100 && r->status < 200);

    if (wire_header(r, "Transfer-Encoding", val, sizeof(val)) && has_token(val, "chunked")) {
        r->framing = WIRE_FRAMING_CHUNKED;
    } else if (wire_header(r, "Content-Length", val, sizeof(val))) {
        r->framing = WIRE_FRAMING_LENGTH;
    } else if (r->status == 204 || r->status == 304) {
        /* RFC 9112 6.3: no body by its status, not delimited by closing the connection. */
        r->framing = WIRE_FRAMING_LENGTH;
        snprintf(val, sizeof(val), "0");
    } else {
        r->framing = WIRE_FRAMING_CLOSE;
    }
    if (r->framing == WIRE_FRAMING_LENGTH) {
        char *endp;

        r->content_length = strtoll(val, &endp, 10);
        if (endp == val || *endp || r->content_length < 0)
            return -1;
    }

    no_body = strcmp(method, "HEAD") == 0 || r->status == 204 || r->status == 304;
    if (no_body)
        rc = 0;
    else if (r->framing == WIRE_FRAMING_CHUNKED)
        rc = read_chunked(c, deadline, r, &cap);
    else if (r->framing == WIRE_FRAMING_LENGTH)
        rc = read_plain(c, deadline, r, &cap, r->content_length);
    else
        rc = read_plain(c, deadline, r, &cap, -1);
    r->complete = rc == 0;
    r->closed = c->eof;
    r->end_ms = wire_now_ms();
    return rc;
}

int
wire_wait_close(struct wire_conn *c, int ms)
{
    int rc;

    if (c->len > 0)
        return -1;
    rc = fill(c, wire_now_ms() + ms);
    if (rc == 0)
        return 1;
    return rc > 0 ? -1 : 0;
}

const char *
wire_header(const struct wire_resp *r, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = r->head ? strstr(r->head, "\r\n") : NULL;

    /* Header lines start after the status line. */
    while (p && p[0] == '\r' && p[1] == '\n' && p[2]) {
        const char *line = p + 2;
        const char *eol = strstr(line, "\r\n");
        size_t len = eol ? (size_t)(eol - line) : strlen(line);

        if (len > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1, *e = line + len;

            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return out;
        }
        p = eol;
    }
    return NULL;
}

size_t
wire_header_count(const struct wire_resp *r, const char *name)
{
    size_t nlen = strlen(name), n = 0;
    const char *p = r->head ? strstr(r->head, "\r\n") : NULL;

    while (p && p[0] == '\r' && p[1] == '\n' && p[2]) {
        const char *line = p + 2;

        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':')
            n++;
        p = strstr(line, "\r\n");
    }
    return n;
}

const char *
wire_framing_name(int framing)
{
    switch (framing) {
    case WIRE_FRAMING_LENGTH:
        return "length";
    case WIRE_FRAMING_CHUNKED:
        return "chunked";
    case WIRE_FRAMING_CLOSE:
        return "close";
    default:
        return "none";
    }
}

void
wire_resp_free(struct wire_resp *r)
{
    free(r->head);
    free(r->body);
    free(r->chunks);
    memset(r, 0, sizeof(*r));
}

void
wire_close(struct wire_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}
