/*
 * sse_bench: N server-sent-event subscribers and one publisher against the
 * sse plugin (plugins/sse) on 127.0.0.1, in one epoll loop. It subscribes N
 * connections, waits until every one has its first bytes, then publishes E
 * events, one every I ms, each carrying its send time (each publish's answer
 * is read beside the subscribers' bytes, which are never left waiting for
 * it); it measures when each event reaches each subscriber, and prints one
 * JSON object: delivered and expected counts, delivery latency percentiles,
 * the longest a publish waited for its answer, and, with --pid, the
 * server worker's RSS and thread count while the subscribers wait and the
 * CPU time it used per event (the fan-out's cost, which the machine's load
 * does not inflate as it does the latency).
 *
 *   sse_bench --port P [--subscribers N] [--events E] [--interval-ms I]
 *             [--pid WORKER] [--prefix /sse] [--timeout-s S] [--mode stream|poll]
 *
 * --mode poll: N long polls (GET PREFIX/poll) instead of streams. A poll
 * gets no byte before its event, so they count as waiting once the
 * plugin's PREFIX/stats says "polls=N"; then the worker's RSS and threads
 * are read, and one event (whatever --events says) answers every poll.
 *
 * Bounded: every phase gives up after --timeout-s (default 60).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sub {
    int fd;
    int hello;      /* its first bytes arrived */
    long events;    /* events received */
    char line[256]; /* the current partial line */
    size_t line_len;
};

static struct {
    int port;
    long n;
    long events;
    long interval_ms;
    int pid;
    const char *prefix;
    long timeout_s;
    int poll;
} opt = {0, 1000, 10, 100, 0, "/sse", 60, 0};

static double *lat_ms;
static size_t n_lat, cap_lat;
static long hellos, delivered, requested;

/*
 * The publish in flight: its connection (-1: none) and its answer so far.
 * pump() reads the answer beside the subscribers' bytes: a publisher that
 * waited for it would leave them unread until the server had answered, after
 * its whole fan-out, and add that to every latency.
 */
#define PUB_ID UINT32_MAX
static struct {
    int fd;
    char resp[512];
    size_t got;
    long long sent_ns; /* when it was sent */
} pub = {-1, {0}, 0, 0};
static long failed_publish;
/* The longest a publish waited for its answer (ms). */
static double publish_answer_ms = -1;

static long long
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
connect_nb(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One complete line of a subscriber's stream. */
static void
on_line(struct sub *s, const char *line, size_t len)
{
    long long sent;

    if (len > 8 && memcmp(line, "data: t=", 8) == 0 && sscanf(line + 8, "%lld", &sent) == 1) {
        double ms = (double)(now_ns() - sent) / 1e6;

        if (n_lat == cap_lat) {
            cap_lat = cap_lat ? cap_lat * 2 : 65536;
            lat_ms = realloc(lat_ms, cap_lat * sizeof(*lat_ms));
            if (!lat_ms) {
                perror("realloc");
                exit(2);
            }
        }
        lat_ms[n_lat++] = ms;
        s->events++;
        delivered++;
    }
}

static void
on_data(struct sub *s, const char *buf, size_t n)
{
    if (!s->hello) {
        s->hello = 1;
        hellos += !opt.poll; /* a poll's first bytes are its answer: counted by wait_polls() */
    }
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            on_line(s, s->line, s->line_len);
            s->line_len = 0;
        } else if (s->line_len < sizeof(s->line) - 1) {
            s->line[s->line_len++] = buf[i];
        }
    }
}

/* The publish's answer is whole (or broken): a 200 or a failed publish. */
static void
pub_end(int ep)
{
    pub.resp[pub.got] = '\0';
    if (strncmp(pub.resp, "HTTP/1.1 200", 12) != 0) {
        failed_publish++;
    } else {
        double ms = (double)(now_ns() - pub.sent_ns) / 1e6;

        if (ms > publish_answer_ms)
            publish_answer_ms = ms;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, pub.fd, NULL);
    close(pub.fd);
    pub.fd = -1;
}

/* Read what came of the publish's answer; it ends with the connection ("Connection: close"). */
static void
pub_read(int ep)
{
    char scratch[512];
    ssize_t n;

    for (;;) {
        if (pub.got < sizeof(pub.resp) - 1)
            n = read(pub.fd, pub.resp + pub.got, sizeof(pub.resp) - 1 - pub.got);
        else
            n = read(pub.fd, scratch, sizeof(scratch)); /* past what the check reads */
        if (n > 0 && pub.got < sizeof(pub.resp) - 1)
            pub.got += (size_t)n;
        else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
        else if (n < 0)
            return;
    }
    pub_end(ep);
}

/* Read what the sockets have, for up to @p ms. */
static void
pump(int ep, struct sub *subs, int ms)
{
    struct epoll_event evs[256];
    char buf[16384];
    int k = epoll_wait(ep, evs, 256, ms);

    for (int i = 0; i < k; i++) {
        struct sub *s = &subs[evs[i].data.u32];
        ssize_t n;

        if (evs[i].data.u32 == PUB_ID) {
            pub_read(ep);
            continue;
        }
        if (evs[i].events & EPOLLOUT) {
            char req[128];
            int len = snprintf(req, sizeof(req), "GET %s/%s HTTP/1.1\r\nHost: bench\r\n\r\n",
                               opt.prefix, opt.poll ? "poll" : "");
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[i].data.u32};

            if (write(s->fd, req, (size_t)len) != len) {
                fprintf(stderr, "subscribe write failed: %s\n", strerror(errno));
                exit(2);
            }
            epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
            requested++;
            continue;
        }
        while ((n = read(s->fd, buf, sizeof(buf))) > 0)
            on_data(s, buf, (size_t)n);
    }
}

/*
 * One request over a fresh blocking connection ("Connection: close"): @p resp
 * gets the whole response, NUL-terminated. Returns 0 on a 200.
 */
static int
http_call(const char *method, const char *path, const char *body, char *resp, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    char req[512];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), len, one = 1;
    size_t got = 0;
    ssize_t n;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    len = snprintf(req, sizeof(req),
                   "%s %s%s HTTP/1.1\r\nHost: bench\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   method, opt.prefix, path, strlen(body), body);
    if (write(fd, req, (size_t)len) != len) {
        close(fd);
        return -1;
    }
    while (got < cap - 1 && (n = read(fd, resp + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    close(fd);
    return strncmp(resp, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
}

/*
 * POST one event, carrying its send time, over a fresh connection
 * ("Connection: close"); pump() reads the answer. A publish whose answer has
 * not come by the next one counts as failed.
 */
static void
publish(int ep, long seq)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = PUB_ID};
    char body[64], req[512];
    int len, one = 1;

    if (pub.fd >= 0) {
        pub.got = 0;
        pub_end(ep);
    }
    pub.got = 0;
    pub.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (pub.fd < 0 || connect(pub.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (pub.fd >= 0)
            close(pub.fd);
        pub.fd = -1;
        failed_publish++;
        return;
    }
    setsockopt(pub.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pub.sent_ns = now_ns();
    snprintf(body, sizeof(body), "t=%lld seq=%ld", pub.sent_ns, seq);
    len = snprintf(req, sizeof(req),
                   "POST %s/publish HTTP/1.1\r\nHost: bench\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   opt.prefix, strlen(body), body);
    if (write(pub.fd, req, (size_t)len) != len ||
        fcntl(pub.fd, F_SETFL, fcntl(pub.fd, F_GETFL) | O_NONBLOCK) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, pub.fd, &ev) < 0) {
        close(pub.fd);
        pub.fd = -1;
        failed_publish++;
    }
}

/* The number of long polls waiting, from PREFIX/stats ("... polls=P ..."), or -1. */
static long
polls_waiting(void)
{
    char resp[1024];
    const char *p;

    if (http_call("GET", "/stats", "", resp, sizeof(resp)) < 0)
        return -1;
    p = strstr(resp, " polls=");
    return p ? atol(p + 7) : -1;
}

/* Until every long poll waits (no byte comes before the event): reads the stats every 100 ms. */
static long
wait_polls(int ep, struct sub *subs, long long deadline)
{
    long n = -1;

    while (now_ns() < deadline) {
        n = polls_waiting();
        if (n >= opt.n)
            break;
        pump(ep, subs, 100);
    }
    return n;
}

/* A field of /proc/PID/status, as a number (kB for VmRSS), or -1. */
static long
proc_status(int pid, const char *field)
{
    char path[64], line[256];
    size_t fl = strlen(field);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = atol(line + fl + 1);
            break;
        }
    }
    fclose(f);
    return v;
}

/* The CPU time process @p pid used so far (user and system, all threads), in ms, or -1. */
static double
proc_cpu_ms(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15 (utime, stime), counted after the command's closing parenthesis. */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(double p)
{
    size_t i;

    if (!n_lat)
        return -1;
    i = (size_t)(p * (double)(n_lat - 1) + 0.5);
    return lat_ms[i];
}

static void
parse_args(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port"))
            opt.port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--subscribers"))
            opt.n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--events"))
            opt.events = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval-ms"))
            opt.interval_ms = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--pid"))
            opt.pid = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefix"))
            opt.prefix = argv[i + 1];
        else if (!strcmp(argv[i], "--timeout-s"))
            opt.timeout_s = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--mode") &&
                 (!strcmp(argv[i + 1], "poll") || !strcmp(argv[i + 1], "stream")))
            opt.poll = !strcmp(argv[i + 1], "poll");
        else {
            fprintf(stderr, "sse_bench: unknown option %s\n", argv[i]);
            exit(2);
        }
    }
    if (!opt.port || opt.n < 1 || opt.events < 1) {
        fprintf(stderr, "usage: sse_bench --port P [--subscribers N] [--events E] "
                        "[--interval-ms I] [--pid WORKER] [--prefix /sse] [--timeout-s S] "
                        "[--mode stream|poll]\n");
        exit(2);
    }
    if (opt.poll)
        opt.events = 1; /* a poll answers one event */
}

int
main(int argc, char **argv)
{
    struct sub *subs;
    long long t0, deadline, subscribed_ms;
    long rss_kb = -1, threads = -1;
    double cpu0 = -1, cpu1 = -1;
    int ep;

    parse_args(argc, argv);
    subs = calloc((size_t)opt.n, sizeof(*subs));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!subs || ep < 0)
        return 2;
    t0 = now_ns();
    deadline = t0 + opt.timeout_s * 1000000000LL;
    for (long i = 0; i < opt.n; i++) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};

        subs[i].fd = connect_nb();
        if (subs[i].fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev) < 0) {
            fprintf(stderr, "connection %ld: %s\n", i, strerror(errno));
            return 2;
        }
        /*
         * At most 500 subscriptions unanswered (polls: not yet sent): a full
         * listen backlog costs SYN retries of 1 s.
         */
        while (i + 1 - (opt.poll ? requested : hellos) >= 500 && now_ns() < deadline)
            pump(ep, subs, 10);
    }
    if (opt.poll)
        hellos = wait_polls(ep, subs, deadline);
    while (!opt.poll && hellos < opt.n && now_ns() < deadline)
        pump(ep, subs, 100);
    subscribed_ms = (now_ns() - t0) / 1000000;
    if (opt.pid) {
        rss_kb = proc_status(opt.pid, "VmRSS");
        threads = proc_status(opt.pid, "Threads");
        cpu0 = proc_cpu_ms(opt.pid);
    }
    for (long e = 0; e < opt.events && now_ns() < deadline; e++) {
        long long next = now_ns() + opt.interval_ms * 1000000LL;

        publish(ep, e);
        while (now_ns() < next)
            pump(ep, subs, (int)((next - now_ns()) / 1000000) + 1);
    }
    while ((delivered < opt.n * opt.events || pub.fd >= 0) && now_ns() < deadline)
        pump(ep, subs, 100);
    if (pub.fd >= 0)
        pub_end(ep); /* no answer by the deadline */
    if (opt.pid)
        cpu1 = proc_cpu_ms(opt.pid);
    qsort(lat_ms, n_lat, sizeof(*lat_ms), cmp_double);
    printf("{\"mode\": \"%s\", \"subscribers\": %ld, \"subscribed\": %ld, \"subscribe_ms\": %lld, "
           "\"events\": %ld, "
           "\"publish_failed\": %ld, \"expected\": %ld, \"delivered\": %ld, "
           "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"publish_answer_max_ms\": %.2f, "
           "\"worker_rss_kib\": %ld, \"worker_threads\": %ld, \"worker_cpu_ms_per_event\": %.1f}\n",
           opt.poll ? "poll" : "stream", opt.n, hellos, subscribed_ms, opt.events, failed_publish,
           opt.n * opt.events, delivered, pct(0.5), pct(0.99), n_lat ? lat_ms[n_lat - 1] : -1.0,
           publish_answer_ms, rss_kb, threads,
           cpu0 >= 0 && cpu1 >= 0 ? (cpu1 - cpu0) / (double)opt.events : -1.0);
    for (long i = 0; i < opt.n; i++)
        close(subs[i].fd);
    free(subs);
    free(lat_ms);
    close(ep);
    return delivered == opt.n * opt.events && hellos == opt.n ? 0 : 1;
}
