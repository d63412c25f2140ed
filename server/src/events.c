/*
 * The master's ring of recent events (see events.h).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "events.h"

void
srv_events_init(struct srv_events *ev)
{
    memset(ev, 0, sizeof(*ev));
}

struct srv_event *
srv_events_add(struct srv_events *ev, enum srv_event_kind kind, unsigned generation,
               long long uptime_ms, const char *detail, ...)
{
    struct srv_event *e = &ev->ring[ev->total % SRV_EVENTS_MAX];
    struct timespec now;

    memset(e, 0, sizeof(*e));
    ev->total++;
    e->seq = ev->total;
    clock_gettime(CLOCK_REALTIME, &now);
    e->unix_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    e->uptime_ms = uptime_ms;
    e->kind = kind;
    e->generation = generation;
    e->worker_id = -1;
    if (detail) {
        va_list ap;
        va_start(ap, detail);
        vsnprintf(e->detail, sizeof(e->detail), detail, ap);
        va_end(ap);
    }
    return e;
}

size_t
srv_events_count(const struct srv_events *ev)
{
    return ev->total < SRV_EVENTS_MAX ? (size_t)ev->total : SRV_EVENTS_MAX;
}

const struct srv_event *
srv_events_get(const struct srv_events *ev, size_t i)
{
    size_t n = srv_events_count(ev);

    if (i >= n)
        return NULL;
    return &ev->ring[(ev->total - n + i) % SRV_EVENTS_MAX];
}

const char *
srv_event_kind_name(enum srv_event_kind kind)
{
    switch (kind) {
    case SRV_EVENT_RELOAD_START:
        return "reload_start";
    case SRV_EVENT_RELOAD_DONE:
        return "reload";
    case SRV_EVENT_RELOAD_FAILED:
        return "reload_failed";
    case SRV_EVENT_RELOAD_REFUSED:
        return "reload_refused";
    case SRV_EVENT_CRASH:
        return "crash";
    }
    return "unknown";
}
