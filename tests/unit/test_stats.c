/*
 * Unit tests for server/src/stats.c: the master renders what workers wrote
 * into the scoreboard, so a slot full of garbage (strings without a NUL,
 * quotes, line breaks, bytes that are not UTF-8, an out-of-range state or
 * plugin count) must still give valid JSON in UTF-8 and one Prometheus
 * sample per line, with every string cut to its field.
 */
#define _GNU_SOURCE
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "events.h"
#include "stats.h"

static struct srv_scoreboard *board;

static void
stats_setup(void)
{
    board = calloc(1, sizeof(*board));
    ck_assert_ptr_nonnull(board);
}

static void
stats_teardown(void)
{
    free(board);
}

static int
valid_utf8(const char *s, size_t len)
{
    iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
    size_t in_left = len, out_cap = len * 4 + 4, out_left = out_cap;
    char *in = (char *)s, *out_buf = malloc(out_cap), *out = out_buf;
    size_t rc;

    ck_assert_ptr_ne(cd, (iconv_t)-1);
    rc = iconv(cd, &in, &in_left, &out, &out_left);
    iconv_close(cd);
    free(out_buf);
    return rc != (size_t)-1 && in_left == 0;
}

/* Slot 0 as a worker gone wrong leaves it: no NUL anywhere, hostile bytes. */
static void
corrupt_slot(struct srv_score *sc)
{
    atomic_store(&sc->state, 0x7fffffff);
    atomic_store(&sc->n_plugins, 1000);
    for (int k = 0; k < SRV_MAX_PLUGIN_STATS; k++) {
        struct srv_plugin_score *ps = &sc->plugins[k];
        memset(ps->name, 'n', sizeof(ps->name));
        memcpy(ps->name, "a\"b\n}\xff\xfe\\", 8);
        ps->name[20] = (char)('A' + k % 26); /* distinct names */
        ps->name[21] = (char)('a' + k / 26);
        memset(ps->version, 0xff, sizeof(ps->version));
        memset(ps->mount, '"', sizeof(ps->mount));
        ps->mount[3] = '\n';
        atomic_store(&ps->requests, 1);
    }
}

static void
make_view(struct srv_stats_view *v, struct srv_stats_worker *w)
{
    memset(v, 0, sizeof(*v));
    memset(w, 0, sizeof(*w));
    w->pid = 1234;
    w->slot = 0;
    w->generation = 1;
    v->board = board;
    v->generation = 1;
    v->target_workers = 1;
    v->workers = w;
    v->n_workers = 1;
}

START_TEST(stats_json_survives_corrupt_slot)
{
    struct srv_stats_view v;
    struct srv_stats_worker w;
    size_t len = 0;
    char *out;
    cJSON *j, *plugins, *p;

    corrupt_slot(&board->slots[0]);
    make_view(&v, &w);
    out = srv_stats_render(&v, 0, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(valid_utf8(out, len), "stats JSON is not UTF-8");
    j = cJSON_ParseWithLength(out, len);
    ck_assert_msg(j != NULL, "stats JSON does not parse: %.200s", out);
    plugins = cJSON_GetObjectItem(j, "plugins");
    ck_assert_int_eq(cJSON_GetArraySize(plugins), SRV_MAX_PLUGIN_STATS);
    cJSON_ArrayForEach(p, plugins)
    {
        const char *name = cJSON_GetObjectItem(p, "name")->valuestring;
        const char *mount = cJSON_GetObjectItem(p, "mount")->valuestring;
        /* Cut at the field: 63 bytes read, each at most one replacement character. */
        ck_assert_ptr_nonnull(name);
        ck_assert_uint_le(strlen(name), (SRV_PLUGIN_NAME_SIZE - 1) * 3);
        ck_assert_uint_le(strlen(mount), SRV_PLUGIN_MOUNT_SIZE - 1);
        ck_assert_ptr_null(strstr(mount, "requests"));
    }
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "workers"), 0), "state")
            ->valuestring,
        "free");
    cJSON_Delete(j);
    free(out);
}
END_TEST

START_TEST(stats_prometheus_one_sample_per_line)
{
    struct srv_stats_view v;
    struct srv_stats_worker w;
    size_t len = 0;
    char *out, *line, *save = NULL;
    int samples = 0;

    corrupt_slot(&board->slots[0]);
    make_view(&v, &w);
    out = srv_stats_render(&v, 1, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(valid_utf8(out, len), "metrics are not UTF-8");
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *close_brace;
        int quotes = 0;
        if (line[0] == '#')
            continue;
        /* name{labels} value: unescaped quotes pair up, and the value follows "} ". */
        for (const char *c = line; *c; c++) {
            if (*c == '\\' && c[1]) {
                c++;
                continue;
            }
            quotes += *c == '"';
        }
        ck_assert_msg(quotes % 2 == 0, "unbalanced quotes: %s", line);
        close_brace = strrchr(line, '}');
        if (strchr(line, '{')) {
            ck_assert_msg(close_brace && close_brace[1] == ' ', "broken sample: %s", line);
        }
        ck_assert_msg(strchr(line, ' ') != NULL, "no value: %s", line);
        samples++;
    }
    ck_assert_int_gt(samples, SRV_MAX_PLUGIN_STATS);
    free(out);
}
END_TEST

/* The ring keeps the last SRV_EVENTS_MAX events, oldest first, and counts them all. */
START_TEST(events_ring_keeps_the_last)
{
    struct srv_events *ev = calloc(1, sizeof(*ev));
    const struct srv_event *e;

    ck_assert_ptr_nonnull(ev);
    srv_events_init(ev);
    ck_assert_uint_eq(srv_events_count(ev), 0);
    ck_assert_ptr_null(srv_events_get(ev, 0));
    for (unsigned i = 1; i <= SRV_EVENTS_MAX + 8; i++)
        srv_events_add(ev, SRV_EVENT_RELOAD_START, i, (long long)i * 10, "event %u", i);
    ck_assert_uint_eq(ev->total, SRV_EVENTS_MAX + 8);
    ck_assert_uint_eq(srv_events_count(ev), SRV_EVENTS_MAX);
    e = srv_events_get(ev, 0);
    ck_assert_uint_eq(e->seq, 9);
    ck_assert_uint_eq(e->generation, 9);
    ck_assert_str_eq(e->detail, "event 9");
    e = srv_events_get(ev, SRV_EVENTS_MAX - 1);
    ck_assert_uint_eq(e->seq, SRV_EVENTS_MAX + 8);
    ck_assert_int_eq(e->uptime_ms, (SRV_EVENTS_MAX + 8) * 10);
    ck_assert_int_eq(e->worker_id, -1);
    ck_assert_ptr_null(srv_events_get(ev, SRV_EVENTS_MAX));
    /* A detail longer than the field is cut, NUL-terminated. */
    e = srv_events_add(ev, SRV_EVENT_RELOAD_FAILED, 1, 0, "%0*d", SRV_EVENT_DETAIL_SIZE * 2, 7);
    ck_assert_uint_eq(strlen(e->detail), SRV_EVENT_DETAIL_SIZE - 1);
    ck_assert_str_eq(srv_event_kind_name(SRV_EVENT_CRASH), "crash");
    ck_assert_str_eq(srv_event_kind_name(SRV_EVENT_RELOAD_DONE), "reload");
    free(ev);
}
END_TEST

/*
 * Events carry what clients sent (a crash's request target) and what a
 * config error said: the JSON stays valid UTF-8, every string round-trips
 * (bytes outside ASCII as U+FFFD), and only a crash has the worker's fields.
 */
START_TEST(stats_json_events_escaped)
{
    struct srv_stats_view v;
    struct srv_stats_worker w;
    struct srv_events *ev = calloc(1, sizeof(*ev));
    struct srv_event *e;
    size_t len = 0;
    char *out;
    cJSON *j, *events, *crash, *refused;

    ck_assert_ptr_nonnull(ev);
    make_view(&v, &w);
    v.events = ev;
    srv_events_add(ev, SRV_EVENT_RELOAD_REFUSED, 1, 1500, "config: \"%s\"\n\x01", "</script>");
    e = srv_events_add(ev, SRV_EVENT_CRASH, 1, 2500, "killed by signal %s", "SEGV");
    e->pid = 4321;
    e->worker_id = 0;
    e->signal = 11;
    snprintf(e->plugin, sizeof(e->plugin), "probe");
    snprintf(e->method, sizeof(e->method), "GET");
    snprintf(e->target, sizeof(e->target), "/x?<img src=x onerror=alert(1)>\"\\\xff");
    out = srv_stats_render(&v, 0, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(valid_utf8(out, len), "stats JSON is not UTF-8");
    j = cJSON_ParseWithLength(out, len);
    ck_assert_msg(j != NULL, "stats JSON does not parse: %.400s", out);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "events_total")->valueint, 2);
    events = cJSON_GetObjectItem(j, "events");
    ck_assert_int_eq(cJSON_GetArraySize(events), 2);
    refused = cJSON_GetArrayItem(events, 0);
    crash = cJSON_GetArrayItem(events, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(refused, "kind")->valuestring, "reload_refused");
    ck_assert_str_eq(cJSON_GetObjectItem(refused, "detail")->valuestring,
                     "config: \"</script>\"\n\x01");
    ck_assert_ptr_null(cJSON_GetObjectItem(refused, "pid"));
    ck_assert_double_eq_tol(cJSON_GetObjectItem(refused, "uptime_s")->valuedouble, 1.5, 1e-9);
    ck_assert_str_eq(cJSON_GetObjectItem(crash, "kind")->valuestring, "crash");
    ck_assert_int_eq(cJSON_GetObjectItem(crash, "seq")->valueint, 2);
    ck_assert_int_eq(cJSON_GetObjectItem(crash, "pid")->valueint, 4321);
    ck_assert_int_eq(cJSON_GetObjectItem(crash, "worker")->valueint, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(crash, "signal")->valuestring, "SEGV");
    ck_assert_str_eq(cJSON_GetObjectItem(crash, "target")->valuestring,
                     "/x?<img src=x onerror=alert(1)>\"\\\xef\xbf\xbd");
    ck_assert_msg(cJSON_GetObjectItem(j, "time")->valuedouble > 1.6e9, "time is not unix time");
    cJSON_Delete(j);
    free(out);
    free(ev);
}
END_TEST

static Suite *
stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("render");

    tcase_add_checked_fixture(tc, stats_setup, stats_teardown);
    tcase_add_test(tc, stats_json_survives_corrupt_slot);
    tcase_add_test(tc, stats_prometheus_one_sample_per_line);
    tcase_add_test(tc, stats_json_events_escaped);
    suite_add_tcase(s, tc);
    tc = tcase_create("events");
    tcase_add_test(tc, events_ring_keeps_the_last);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(stats_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
