/*
 * The floor under the SSE benchmark (csgi-bench --sse): a raw libmicrohttpd
 * broadcast channel that speaks plugins/sse's protocol as far as
 * bench/sse_bench uses it, with no gateway at all.
 *
 *   GET  PREFIX/          subscribe: "retry: 1000" and a comment first, then
 *                         each event as "data: BODY" (chunked, as plugins/sse)
 *   POST PREFIX/publish   the body goes to every subscriber; answers
 *                         "subscribers=N"
 *
 * Threading and memory as csgi-server's with one worker and --threads 1 (one
 * libmicrohttpd daemon on its own epoll thread, with ITC), the connection
 * memory csgi-bench --sse gives csgi-server; a subscriber waits suspended
 * (MHD_suspend_connection() from the content reader) between events and is
 * resumed by the publish, as csgi-server suspends a waiting response. All of
 * it runs on the daemon's one thread: no locks.
 *
 * Built against libmicrohttpd 0.9.7x or 1.0.x: the calls below mean the same in both.
 *
 * Usage: mhd_sse PORT [POOL_BYTES [MAX_CONNECTIONS [PREFIX]]]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <microhttpd.h>

/* The largest event body kept (sse_bench sends about 40 bytes). */
#define EVENT_MAX 256

static const char hello[] = "retry: 1000\n: subscribed\n\n";

/* One subscriber: where it is in what it was sent. */
struct sub {
    struct MHD_Connection *conn;
    /* The event it has sent last (0: none); the bytes of the piece being sent. */
    unsigned long seq;
    size_t off;
    int hello_done;
    int suspended;
    struct sub *prev, *next;
};

/* A publish's body, gathered. */
struct body {
    size_t len;
    char bytes[EVENT_MAX];
};

/* One request: a subscriber, or a publish with its body (taken at its first byte). */
struct req {
    struct sub *sub;
    struct body *body;
};

static struct sub *subs;
static size_t n_subs;
/* The current event as it goes out ("data: BODY\n\n"), and its number. */
static char piece[EVENT_MAX + 16];
static size_t piece_len;
static unsigned long seq;
static const char *prefix = "/sse";

/* Copy what is left of @p text from s->off into @p buf; 1 when it was the rest of it. */
static size_t
copy_piece(struct sub *s, const char *text, size_t len, char *buf, size_t max, int *whole)
{
    size_t n = len - s->off < max ? len - s->off : max;

    memcpy(buf, text + s->off, n);
    s->off += n;
    *whole = s->off == len;
    if (*whole)
        s->off = 0;
    return n;
}

/*
 * The content reader: the hello, then each event once. With nothing to send,
 * the connection is suspended until the next publish. (A piece is a few dozen
 * bytes and libmicrohttpd offers the free write buffer, so a piece is only cut
 * when the buffer is nearly full; events come seconds apart.)
 */
static ssize_t
reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sub *s = cls;
    size_t n;
    int whole;

    (void)pos;
    if (!s->hello_done) {
        n = copy_piece(s, hello, sizeof(hello) - 1, buf, max, &whole);
        s->hello_done = whole;
        s->seq = seq; /* events from the subscription on */
        return (ssize_t)n;
    }
    if (s->seq != seq) {
        n = copy_piece(s, piece, piece_len, buf, max, &whole);
        if (whole)
            s->seq = seq;
        return (ssize_t)n;
    }
    s->suspended = 1;
    MHD_suspend_connection(s->conn);
    return 0;
}

static enum MHD_Result
subscribe(struct MHD_Connection *c, struct req *q)
{
    struct MHD_Response *r;
    struct sub *s = calloc(1, sizeof(*s));
    enum MHD_Result ret;

    if (!s)
        return MHD_NO;
    /* A small block: libmicrohttpd fills a chunked body straight into its write buffer. */
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16, reader, s, NULL);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    s->conn = c;
    s->next = subs;
    if (subs)
        subs->prev = s;
    subs = s;
    n_subs++;
    q->sub = s;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
text(struct MHD_Connection *c, unsigned status, const char *t)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain");
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The publish's body becomes the current event; every waiting subscriber is resumed. */
static enum MHD_Result
publish(struct MHD_Connection *c, struct req *q)
{
    char answer[64];
    int n = snprintf(piece, sizeof(piece), "data: %.*s\n\n", q->body ? (int)q->body->len : 0,
                     q->body ? q->body->bytes : "");

    piece_len = (size_t)n;
    seq++;
    for (struct sub *s = subs; s; s = s->next) {
        if (s->suspended) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
    }
    snprintf(answer, sizeof(answer), "subscribers=%zu\n", n_subs);
    return text(c, 200, answer);
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct req *q = *con_cls;
    size_t pl = strlen(prefix);

    (void)cls;
    (void)version;
    if (!q) {
        q = calloc(1, sizeof(*q));
        *con_cls = q;
        return q ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;

        if (!q->body && !(q->body = calloc(1, sizeof(*q->body))))
            return MHD_NO;
        if (n > sizeof(q->body->bytes) - q->body->len)
            n = sizeof(q->body->bytes) - q->body->len;
        memcpy(q->body->bytes + q->body->len, upload_data, n);
        q->body->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, prefix, pl) != 0)
        return text(c, 404, "not found\n");
    url += pl;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/") == 0)
        return subscribe(c, q);
    if (strcmp(method, "POST") == 0 && strcmp(url, "/publish") == 0)
        return publish(c, q);
    return text(c, 404, "not found\n");
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct req *q = *con_cls;
    struct sub *s = q ? q->sub : NULL;

    (void)cls;
    (void)c;
    (void)toe;
    if (s) {
        /* The reader is not called again once the request is complete. */
        if (s->prev)
            s->prev->next = s->next;
        else
            subs = s->next;
        if (s->next)
            s->next->prev = s->prev;
        n_subs--;
        free(s);
    }
    if (q)
        free(q->body);
    free(q);
    *con_cls = NULL;
}

int
main(int argc, char **argv)
{
    struct MHD_Daemon *d;
    sigset_t set;
    int sig;
    size_t pool = argc > 2 ? (size_t)atol(argv[2]) : 4096;
    unsigned max_conn = argc > 3 ? (unsigned)atol(argv[3]) : 1000;

    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [POOL_BYTES [MAX_CONNECTIONS [PREFIX]]]\n", argv[0]);
        return 2;
    }
    if (argc > 4)
        prefix = argv[4];
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME,
        (uint16_t)atoi(argv[1]), NULL, NULL, handler, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        pool, MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_sse: cannot start on port %s (libmicrohttpd %s)\n", argv[1],
                MHD_get_version());
        return 1;
    }
    printf("mhd_sse listening on %s\n", argv[1]);
    fflush(stdout);
    sigwait(&set, &sig);
    /*
     * libmicrohttpd refuses to stop with connections suspended, and the
     * subscribers are the daemon thread's alone: the process just ends.
     */
    _exit(0);
}
