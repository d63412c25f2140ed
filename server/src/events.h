/*
 * The master's recent events: reloads (started, done, failed, refused) and
 * worker crashes, kept in a small ring for the stats endpoint and its status
 * page. Memory is fixed: the ring keeps the last SRV_EVENTS_MAX events and
 * counts the ones it dropped.
 */
#ifndef SRV_EVENTS_H
#define SRV_EVENTS_H

#include <stddef.h>

#include "scoreboard.h"

/* Events kept; older ones are dropped (their count stays in srv_events.total). */
#define SRV_EVENTS_MAX 32
/* The longest detail text (a reload failure's reason, a refused config's error). */
#define SRV_EVENT_DETAIL_SIZE 200

enum srv_event_kind {
    SRV_EVENT_RELOAD_START,   /* a SIGHUP started generation `generation` */
    SRV_EVENT_RELOAD_DONE,    /* generation `generation` serves; the old one drains */
    SRV_EVENT_RELOAD_FAILED,  /* generation `generation` rolled back; detail says why */
    SRV_EVENT_RELOAD_REFUSED, /* the new configuration was invalid; detail says why */
    SRV_EVENT_CRASH,          /* a worker died unexpectedly (signal or exit status) */
};

/* One event. Strings are NUL-terminated and may hold any byte a client or worker sent. */
struct srv_event {
    unsigned long long seq; /* 1 for the first event, then one more each */
    double unix_time;       /* wall clock, seconds: for people, never for deadlines */
    long long uptime_ms;    /* since the master started, on the monotonic clock */
    enum srv_event_kind kind;
    unsigned generation;
    /* SRV_EVENT_CRASH only (0 / -1 / "" otherwise): */
    int pid;
    int worker_id;
    int signal;      /* the killing signal, 0 when the worker exited */
    int exit_status; /* the exit status when signal is 0 */
    char plugin[SRV_PLUGIN_NAME_SIZE];
    char method[SRV_INFLIGHT_METHOD_SIZE];
    char target[SRV_INFLIGHT_TARGET_SIZE];
    char detail[SRV_EVENT_DETAIL_SIZE];
};

/* The ring. Zeroed (or srv_events_init()) is empty. */
struct srv_events {
    struct srv_event ring[SRV_EVENTS_MAX];
    unsigned long long total; /* events ever added; the newest has seq == total */
};

void srv_events_init(struct srv_events *ev);

/*
 * Add an event of kind for generation, stamped now (uptime_ms: the master's
 * monotonic age), dropping the oldest when the ring is full. detail is
 * printf-formatted and cut to SRV_EVENT_DETAIL_SIZE - 1 bytes (NULL: none).
 * Returns the new event, for the caller to fill the crash fields; valid until
 * the next srv_events_add().
 */
struct srv_event *srv_events_add(struct srv_events *ev, enum srv_event_kind kind,
                                 unsigned generation, long long uptime_ms, const char *detail, ...)
    __attribute__((format(printf, 5, 6)));

/* The number of events kept (at most SRV_EVENTS_MAX). */
size_t srv_events_count(const struct srv_events *ev);

/* The i-th kept event, oldest first (i < srv_events_count()); NULL past the end. Borrowed. */
const struct srv_event *srv_events_get(const struct srv_events *ev, size_t i);

/* The kind's name in the stats JSON: "reload_start", ..., "crash". Static. */
const char *srv_event_kind_name(enum srv_event_kind kind);

#endif /* SRV_EVENTS_H */
