/*
 * sse: a server-sent events broadcast channel (see README.md). Subscribers
 * wait without holding a server thread (CSGI_PENDING, resume(), SPEC.md
 * 4.14); a publish wakes every subscriber of the worker.
 *
 *   GET  /sse/          subscribe: text/event-stream, every event published
 *                       from then on ("id: N" and one "data:" line per line);
 *                       a ": ping" comment after heartbeat_ms without events
 *   POST /sse/publish   publish the request body (at most 64 KiB) as one
 *                       event; answers "subscribers=N\n" (with relay_dir,
 *                       "subscribers=N workers=M\n")
 *   GET  /sse/poll      a long poll: the next event published from then on,
 *                       as one response (text/event-stream, Content-Length);
 *                       204 after heartbeat_ms without one
 *   GET  /sse/stats     "subscribers=N polls=P published=M\n"
 *
 * Events are kept once, in a ring of the last RING events, shared by every
 * subscriber (each holds a reference to the event it is sending); a
 * subscriber that falls more than RING events behind skips to the oldest.
 * On a reload or stop each subscriber gets "event: shutdown" and its stream
 * ends; "retry: 1000" at the start tells EventSource clients to reconnect a
 * second later; a waiting poll is answered 503 by the server. A poll waits
 * from call() (CSGI_PENDING, no status yet) and starts its response in the
 * next() that finds its event. Configuration: heartbeat_ms (default 15000,
 * 0 = none; for a poll, how long it waits); relay_dir (none by default): a
 * directory where each worker binds a datagram socket, so that a publish
 * reaches the subscribers of every worker (see relay_*).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <csgi/csgi.h>

#define RING        1024
#define MAX_PUBLISH (64 * 1024)

/* One published event, formatted for the wire, shared by the subscribers sending it. */
struct event {
    unsigned refs; /* the ring's and the subscribers'; under the channel lock */
    size_t len;
    char text[];
};

struct sub {
    struct sub *prev, *next;
    struct channel *ch;
    struct csgi_request *req;
    uint64_t next_seq;     /* the next event to send */
    struct event *sending; /* the event whose bytes the server holds, or NULL */
    long long quiet_since; /* CLOCK_MONOTONIC ms of the last byte sent */
    long long timer_at;    /* when the host timer armed last fires (0: none armed) */
    int state;             /* 0: hello to send, 1: streaming, 2: said goodbye (a poll: answered) */
    /* A long poll: its responder, for the delayed start (NULL: a subscriber). */
    const struct csgi_responder *poll;
    char length[24]; /* a poll's Content-Length value */
};

struct channel {
    const struct csgi_host_api *api;
    pthread_mutex_t lock;
    struct sub head;
    long subscribers;
    long polls;   /* of the subscribers, the long polls */
    uint64_t seq; /* events published */
    struct event *ring[RING];
    long heartbeat_ms;

    /*
     * The relay (relay_dir set): this worker's datagram socket, bound as
     * <relay_dir>/<pid>.sock, the thread that publishes what other workers
     * send to it, and the pipe that stops that thread. fd -1: no relay.
     */
    int relay_fd;
    int relay_stop[2];
    pthread_t relay_thread;
    char relay_dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char relay_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static const char hello[] = "retry: 1000\n: subscribed\n\n";
static const char ping[] = ": ping\n\n";
static const char goodbye[] = "event: shutdown\ndata: the server restarts\n\n";

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
event_unref(struct event *e)
{
    if (e && --e->refs == 0)
        free(e);
}

static int
path_is(const struct csgi_environ *env, const char *p)
{
    return env->path_info.len == strlen(p) &&
           memcmp(env->path_info.ptr, p, env->path_info.len) == 0;
}

/* Arm the host timer of @p s for @p due, unless one is armed (the channel locked). */
static int
sub_arm(struct sub *s, long long now, long long due)
{
    if (s->timer_at && now >= s->timer_at)
        s->timer_at = 0; /* it fired */
    if (s->timer_at)
        return CSGI_OK;
    if (s->ch->api->timer(s->req, (uint64_t)(due - now)) < 0)
        return CSGI_ENOMEM;
    s->timer_at = due;
    return CSGI_OK;
}

/* The next chunk of long poll @p s: its event, or a 204 once it waited heartbeat_ms. */
static int
poll_next_locked(struct sub *s, struct csgi_chunk *out, long long now)
{
    struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/event-stream")},
        {CSGI_STR_INIT("Cache-Control"), CSGI_STR_INIT("no-cache")},
        {CSGI_STR_INIT("Content-Length"), {s->length, 0}},
    };
    struct csgi_str reason = {NULL, 0};
    struct channel *ch = s->ch;
    int rc;

    if (s->state == 2)
        return CSGI_DONE;
    if (s->next_seq < ch->seq) {
        struct event *e;

        if (s->next_seq + RING < ch->seq)
            s->next_seq = ch->seq - RING;
        e = ch->ring[s->next_seq % RING];
        h[2].value.len = (size_t)snprintf(s->length, sizeof(s->length), "%zu", e->len);
        rc = s->poll->start_response(s->poll->ctx, 200, reason, h, 3, NULL);
        if (rc < 0)
            return rc;
        e->refs++;
        s->sending = e;
        s->state = 2;
        out->ptr = e->text;
        out->len = e->len;
        return CSGI_OK;
    }
    if (ch->heartbeat_ms > 0) {
        long long due = s->quiet_since + ch->heartbeat_ms;

        if (now >= due) {
            s->state = 2;
            rc = s->poll->start_response(s->poll->ctx, 204, reason, NULL, 0, NULL);
            return rc < 0 ? rc : CSGI_DONE;
        }
        if (sub_arm(s, now, due) < 0)
            return CSGI_ENOMEM;
    }
    return CSGI_PENDING;
}

/* The next chunk of @p s (the channel locked). */
static int
sub_next_locked(struct sub *s, struct csgi_chunk *out)
{
    struct channel *ch = s->ch;
    long long now = now_ms();

    event_unref(s->sending);
    s->sending = NULL;
    if (s->poll)
        return poll_next_locked(s, out, now);
    if (s->state == 2)
        return CSGI_DONE;
    if (s->state == 0) {
        s->state = 1;
        s->quiet_since = now;
        out->ptr = hello;
        out->len = sizeof(hello) - 1;
        return CSGI_OK;
    }
    if (s->next_seq + RING < ch->seq)
        s->next_seq = ch->seq - RING; /* too far behind: the older events are gone */
    if (s->next_seq < ch->seq) {
        struct event *e = ch->ring[s->next_seq % RING];

        s->next_seq++;
        e->refs++;
        s->sending = e;
        s->quiet_since = now;
        out->ptr = e->text;
        out->len = e->len;
        return CSGI_OK;
    }
    if (ch->api->stopping(s->req)) {
        s->state = 2;
        out->ptr = goodbye;
        out->len = sizeof(goodbye) - 1;
        return CSGI_OK;
    }
    if (ch->heartbeat_ms > 0) {
        long long due = s->quiet_since + ch->heartbeat_ms;

        if (now >= due) {
            s->quiet_since = now;
            out->ptr = ping;
            out->len = sizeof(ping) - 1;
            return CSGI_OK;
        }
        /* A host timer: the heartbeat needs no thread of ours. One armed is enough. */
        if (sub_arm(s, now, due) < 0)
            return CSGI_ENOMEM;
    }
    return CSGI_PENDING;
}

static int
sub_next(void *ctx, struct csgi_chunk *out)
{
    struct sub *s = ctx;
    int rc;

    pthread_mutex_lock(&s->ch->lock);
    rc = sub_next_locked(s, out);
    pthread_mutex_unlock(&s->ch->lock);
    return rc;
}

static void
sub_close(void *ctx)
{
    struct sub *s = ctx;
    struct channel *ch = s->ch;

    /* Out of the list under the lock: no resume() for it can start after this. */
    pthread_mutex_lock(&ch->lock);
    s->prev->next = s->next;
    s->next->prev = s->prev;
    ch->subscribers--;
    ch->polls -= s->poll != NULL;
    event_unref(s->sending);
    s->sending = NULL;
    pthread_mutex_unlock(&ch->lock);
}

/*
 * GET /sse/ (a stream, started here) or, with @p poll, GET /sse/poll (a long
 * poll: no status until its event, CSGI_PENDING from here).
 */
static int
subscribe(struct channel *ch, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out, int poll)
{
    static const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/event-stream")},
        {CSGI_STR_INIT("Cache-Control"), CSGI_STR_INIT("no-cache")},
    };
    struct csgi_str reason = {NULL, 0};
    struct sub *s = ch->api->alloc(env->request, sizeof(*s));
    int rc;

    if (!s)
        return CSGI_ENOMEM;
    memset(s, 0, sizeof(*s));
    if (!poll) {
        rc = resp->start_response(resp->ctx, 200, reason, h, 2, NULL);
        if (rc < 0)
            return rc;
    }
    s->ch = ch;
    s->req = env->request;
    s->poll = poll ? resp : NULL;
    s->quiet_since = now_ms();
    /* A poll's next() comes only once woken: its time-out is armed here (s is not shared yet). */
    if (poll && ch->heartbeat_ms > 0 &&
        sub_arm(s, s->quiet_since, s->quiet_since + ch->heartbeat_ms) < 0)
        return CSGI_ENOMEM;
    pthread_mutex_lock(&ch->lock);
    s->next_seq = ch->seq; /* events from now on */
    s->next = &ch->head;
    s->prev = ch->head.prev;
    ch->head.prev->next = s;
    ch->head.prev = s;
    ch->subscribers++;
    ch->polls += poll;
    pthread_mutex_unlock(&ch->lock);
    out->ctx = s;
    out->next = sub_next;
    out->close = sub_close;
    return poll ? CSGI_PENDING : CSGI_OK;
}

/* "id: N\n", then "data: <line>\n" per line of @p data, then "\n". NULL when out of memory. */
static struct event *
event_format(uint64_t id, const char *data, size_t len)
{
    size_t lines = 1, cap;
    struct event *e;
    char *p;

    for (size_t i = 0; i < len; i++)
        lines += data[i] == '\n';
    cap = 32 + len + lines * 7 + 2;
    e = malloc(sizeof(*e) + cap);
    if (!e)
        return NULL;
    p = e->text + snprintf(e->text, cap, "id: %llu\n", (unsigned long long)id);
    for (size_t i = 0, start = 0; i <= len; i++) {
        if (i == len || data[i] == '\n') {
            size_t n = i - start;

            if (i == len && n == 0 && start > 0)
                break; /* a trailing newline ends the last line */
            memcpy(p, "data: ", 6);
            memcpy(p + 6, data + start, n);
            p[6 + n] = '\n';
            p += 7 + n;
            start = i + 1;
        }
    }
    *p++ = '\n';
    e->len = (size_t)(p - e->text);
    e->refs = 1;
    return e;
}

static int
reply_text(struct channel *ch, struct csgi_environ *env, const struct csgi_responder *resp,
           struct csgi_body *out, int status, const char *text)
{
    static const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")},
    };
    struct csgi_str reason = {NULL, 0};
    int rc = resp->start_response(resp->ctx, status, reason, h, 1, NULL);

    if (rc < 0)
        return rc;
    return ch->api->body_from_buffer(env->request, text, strlen(text), 0, out);
}

/* Publish @p data to this worker's subscribers. Returns how many were woken, or CSGI_ENOMEM. */
static long
publish_local(struct channel *ch, const char *data, size_t len)
{
    long woken = 0;
    struct event *e;

    pthread_mutex_lock(&ch->lock);
    e = event_format(ch->seq + 1, data, len);
    if (!e) {
        pthread_mutex_unlock(&ch->lock);
        return CSGI_ENOMEM;
    }
    event_unref(ch->ring[ch->seq % RING]);
    ch->ring[ch->seq % RING] = e;
    ch->seq++;
    for (struct sub *s = ch->head.next; s != &ch->head; s = s->next) {
        if (ch->api->resume(s->req) == CSGI_OK)
            woken++;
    }
    pthread_mutex_unlock(&ch->lock);
    return woken;
}

/*
 * Send @p data to every other worker's socket in relay_dir. A socket nobody
 * reads any more (its worker died without exit_worker()) is removed; a
 * worker whose queue is full misses the event, with a warning. Returns how
 * many workers it reached.
 */
static long
relay_send(struct channel *ch, const char *data, size_t len)
{
    DIR *d = opendir(ch->relay_dir);
    struct dirent *de;
    long sent = 0;

    if (!d) {
        ch->api->log(ch->api->ctx, CSGI_LOG_WARN, "relay_dir \"%s\": %s", ch->relay_dir,
                     strerror(errno));
        return 0;
    }
    while ((de = readdir(d))) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        size_t nl = strlen(de->d_name);

        if (nl < 6 || strcmp(de->d_name + nl - 5, ".sock") != 0)
            continue;
        if (snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", ch->relay_dir, de->d_name) >=
                (int)sizeof(a.sun_path) ||
            strcmp(a.sun_path, ch->relay_path) == 0)
            continue;
        if (sendto(ch->relay_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a,
                   sizeof(a)) == (ssize_t)len) {
            sent++;
        } else if (errno == ECONNREFUSED || errno == ENOENT) {
            unlink(a.sun_path); /* its worker is gone */
        } else {
            ch->api->log(ch->api->ctx, CSGI_LOG_WARN, "relay to \"%s\": %s (event not relayed)",
                         a.sun_path, strerror(errno));
        }
    }
    closedir(d);
    return sent;
}

/* The relay's thread: what other workers send is published here (and not sent on). */
static void *
relay_main(void *arg)
{
    struct channel *ch = arg;
    char buf[MAX_PUBLISH + 1]; /* 64 KiB of the thread's stack (8 MiB) */

    for (;;) {
        struct pollfd pf[2] = {{ch->relay_fd, POLLIN, 0}, {ch->relay_stop[0], POLLIN, 0}};
        ssize_t n;

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        if (pf[0].revents & (POLLERR | POLLNVAL)) {
            ch->api->log(ch->api->ctx, CSGI_LOG_ERROR,
                         "relay: the socket failed; events of "
                         "other workers no longer reach this one");
            break;
        }
        if (!(pf[0].revents & POLLIN))
            continue;
        n = recv(ch->relay_fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 || n > MAX_PUBLISH)
            continue; /* nothing after all, or not one of ours */
        if (publish_local(ch, buf, (size_t)n) < 0)
            ch->api->log(ch->api->ctx, CSGI_LOG_WARN, "relay: out of memory; an event was lost");
    }
    return NULL;
}

static int
publish(struct channel *ch, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    char *data = ch->api->alloc(env->request, MAX_PUBLISH + 1);
    char text[64];
    size_t len = 0;
    int64_t n;
    long woken;

    if (!data)
        return CSGI_ENOMEM;
    while (len <= MAX_PUBLISH &&
           (n = env->input->read(env->input->ctx, data + len, MAX_PUBLISH + 1 - len)) > 0)
        len += (size_t)n;
    if (len > MAX_PUBLISH)
        return reply_text(ch, env, resp, out, 413, "event above 64 KiB\n");
    woken = publish_local(ch, data, len);
    if (woken < 0)
        return CSGI_ENOMEM;
    if (ch->relay_fd >= 0)
        snprintf(text, sizeof(text), "subscribers=%ld workers=%ld\n", woken,
                 1 + relay_send(ch, data, len));
    else
        snprintf(text, sizeof(text), "subscribers=%ld\n", woken);
    return reply_text(ch, env, resp, out, 200, text);
}

static int
sse_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
         struct csgi_body *out)
{
    struct channel *ch = state;
    char text[96];
    int get = env->request_method.len == 3 && memcmp(env->request_method.ptr, "GET", 3) == 0;
    int post = env->request_method.len == 4 && memcmp(env->request_method.ptr, "POST", 4) == 0;

    if (get && (path_is(env, "") || path_is(env, "/")))
        return subscribe(ch, env, resp, out, 0);
    if (get && path_is(env, "/poll"))
        return subscribe(ch, env, resp, out, 1);
    if (post && path_is(env, "/publish"))
        return publish(ch, env, resp, out);
    if (get && path_is(env, "/stats")) {
        pthread_mutex_lock(&ch->lock);
        snprintf(text, sizeof(text), "subscribers=%ld polls=%ld published=%llu\n",
                 ch->subscribers - ch->polls, ch->polls, (unsigned long long)ch->seq);
        pthread_mutex_unlock(&ch->lock);
        return reply_text(ch, env, resp, out, 200, text);
    }
    return reply_text(ch, env, resp, out, 404, "not found\n");
}

static void
relay_close(struct channel *ch)
{
    if (ch->relay_fd >= 0) {
        close(ch->relay_fd);
        unlink(ch->relay_path);
    }
    if (ch->relay_stop[0] >= 0)
        close(ch->relay_stop[0]);
    if (ch->relay_stop[1] >= 0)
        close(ch->relay_stop[1]);
    ch->relay_fd = ch->relay_stop[0] = ch->relay_stop[1] = -1;
}

/*
 * The relay's socket, <relay_dir>/<pid>.sock, and the thread's stop pipe.
 * The directory is made 0700 when missing, and refused unless it is a
 * directory of this user that nobody else may write to (anyone who can
 * write there could read or inject events). Logs why and returns -1 on
 * failure, with nothing left open or bound.
 */
static int
relay_open(struct channel *ch)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct stat st;
    const char *what = "socket path";

    ch->relay_fd = ch->relay_stop[0] = ch->relay_stop[1] = -1;
    errno = ENAMETOOLONG;
    if (snprintf(ch->relay_path, sizeof(ch->relay_path), "%s/%ld.sock", ch->relay_dir,
                 (long)getpid()) >= (int)sizeof(ch->relay_path))
        goto fail;
    memcpy(a.sun_path, ch->relay_path, sizeof(a.sun_path));
    what = "mkdir";
    if (mkdir(ch->relay_dir, 0700) < 0 && errno != EEXIST)
        goto fail;
    what = "not a directory of this user, or others may write to it";
    errno = EPERM;
    if (lstat(ch->relay_dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & (S_IWGRP | S_IWOTH)))
        goto fail;
    what = "pipe";
    if (pipe2(ch->relay_stop, O_CLOEXEC) < 0)
        goto fail;
    what = "socket";
    ch->relay_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (ch->relay_fd < 0)
        goto fail;
    unlink(ch->relay_path); /* left by an earlier process with this pid */
    what = "bind";
    if (bind(ch->relay_fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        goto fail;
    return 0;
fail:
    ch->api->log(ch->api->ctx, CSGI_LOG_ERROR, "relay_dir \"%s\": %s: %s", ch->relay_dir, what,
                 strerror(errno));
    if (ch->relay_fd >= 0)
        close(ch->relay_fd);
    if (ch->relay_stop[0] >= 0) {
        close(ch->relay_stop[0]);
        close(ch->relay_stop[1]);
    }
    ch->relay_fd = ch->relay_stop[0] = ch->relay_stop[1] = -1;
    return -1;
}

static int
sse_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
         void **state)
{
    struct channel *ch;

    if (!CSGI_HAS(api, 3)) {
        api->log(api->ctx, CSGI_LOG_ERROR, "host API version 3 (resume, timer) needed, got %u",
                 (unsigned)api->version);
        return CSGI_ENOSYS;
    }
    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return CSGI_ENOMEM;
    ch->api = api;
    ch->heartbeat_ms = 15000;
    ch->relay_fd = -1;
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "heartbeat_ms") == 0) {
            ch->heartbeat_ms = atol(config[i].value);
        } else if (strcmp(config[i].key, "relay_dir") == 0) {
            if (strlen(config[i].value) >= sizeof(ch->relay_dir)) {
                api->log(api->ctx, CSGI_LOG_ERROR, "relay_dir \"%s\": too long for a socket path",
                         config[i].value);
                free(ch);
                return CSGI_EINVAL;
            }
            strcpy(ch->relay_dir, config[i].value);
        } else {
            api->log(api->ctx, CSGI_LOG_WARN, "config key \"%s\" ignored", config[i].key);
        }
    }
    if (ch->relay_dir[0] && relay_open(ch) < 0) {
        free(ch);
        return CSGI_EIO;
    }
    pthread_mutex_init(&ch->lock, NULL);
    ch->head.next = ch->head.prev = &ch->head;
    if (ch->relay_fd >= 0) {
        int rc = pthread_create(&ch->relay_thread, NULL, relay_main, ch);

        if (rc) {
            api->log(api->ctx, CSGI_LOG_ERROR, "relay: no thread: %s", strerror(rc));
            relay_close(ch);
            pthread_mutex_destroy(&ch->lock);
            free(ch);
            return CSGI_ENOMEM;
        }
    }
    *state = ch;
    return CSGI_OK;
}

static void
sse_exit(void *state)
{
    struct channel *ch = state;

    if (ch->relay_fd >= 0) {
        ssize_t w = write(ch->relay_stop[1], "x", 1);

        (void)w; /* a pipe with room: the thread wakes */
        pthread_join(ch->relay_thread, NULL);
        relay_close(ch);
    }
    for (size_t i = 0; i < RING; i++)
        event_unref(ch->ring[i]);
    pthread_mutex_destroy(&ch->lock);
    free(ch);
}

static const struct csgi_plugin sse_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "sse",
    .plugin_version = "1.0.0",
    .description = "server-sent events broadcast channel",
    .flags = CSGI_PLUGIN_THREADSAFE | CSGI_PLUGIN_WAITS,
    .init_worker = sse_init,
    .call = sse_call,
    .exit_worker = sse_exit,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &sse_plugin;
}
