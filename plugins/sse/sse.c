/*
 * sse: a server-sent events broadcast channel (see README.md). Subscribers
 * wait without holding a server thread (CSGI_PENDING, resume(), SPEC.md
 * 4.14); a publish wakes every subscriber of the worker.
 *
 *   GET  /sse/          subscribe: text/event-stream, every event published
 *                       from then on ("id: N" and one "data:" line per line);
 *                       a ": ping" comment after heartbeat_ms without events
 *   POST /sse/publish   publish the request body (at most 64 KiB) as one
 *                       event; answers "subscribers=N\n"
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
 * 0 = none; for a poll, how long it waits).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static int
publish(struct channel *ch, struct csgi_environ *env, const struct csgi_responder *resp,
        struct csgi_body *out)
{
    char *data = ch->api->alloc(env->request, MAX_PUBLISH + 1);
    char text[64];
    size_t len = 0;
    int64_t n;
    long woken = 0;
    struct event *e;

    if (!data)
        return CSGI_ENOMEM;
    while (len <= MAX_PUBLISH &&
           (n = env->input->read(env->input->ctx, data + len, MAX_PUBLISH + 1 - len)) > 0)
        len += (size_t)n;
    if (len > MAX_PUBLISH)
        return reply_text(ch, env, resp, out, 413, "event above 64 KiB\n");
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
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "heartbeat_ms") == 0)
            ch->heartbeat_ms = atol(config[i].value);
        else
            api->log(api->ctx, CSGI_LOG_WARN, "config key \"%s\" ignored", config[i].key);
    }
    pthread_mutex_init(&ch->lock, NULL);
    ch->head.next = ch->head.prev = &ch->head;
    *state = ch;
    return CSGI_OK;
}

static void
sse_exit(void *state)
{
    struct channel *ch = state;

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
