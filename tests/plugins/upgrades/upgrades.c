/*
 * upgrades: a fixture plugin for connections taken over after a 101
 * (csgi_host_api.upgrade(), SPEC.md 4.15), speaking a raw line protocol
 * rather than WebSocket, so that the host's plumbing is tested alone. Not
 * thread-safe: the host serializes call() and the upgrade callbacks.
 *
 * Endpoints (under its mount), each upgrading to protocol "lines" when the
 * request asks for an upgrade (else 426):
 *   /echo      every byte back; a line "bye" is answered "bye\n" and closes;
 *              a line "big" is answered with 8 MiB of 'z', "END\n", and a close;
 *              "hello\n" is written from call(), before the 101 went out;
 *   /closenow  "goodbye\n" written and the connection closed from call();
 *   /room      every line goes to every member of the room (this one too);
 *   /flood     on "go\n": writes until upgrade_write() answers 1, then
 *              "more\n" from each on_writable(), "done\n" after 3 of them;
 *   /no101     upgrade() and a 200: the host answers 500;
 *   /body101   upgrade() and a 101 with a body: the host answers 500;
 *   /plain101  a 101 without upgrade(): the host answers 500;
 *   /stats     (a plain GET) "open=N ok=A abort=B shutdown=C error=D writable=W\n":
 *              connections open now, and on_close() calls by reason.
 * On the host's stop every connection says "stopping\n" and closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/csgi.h>

struct conn {
    struct conn *prev, *next;
    struct state *st;
    const struct csgi_host_api *api;
    struct csgi_upgrade *u;
    int room;
    int flood; /* /flood: on_writable() calls so far; -1: not flooding */
    char line[256];
    size_t line_len;
};

struct state {
    struct conn head; /* every open connection */
    long open, ok, abort, shutdown, error, writable;
};

static int
init_worker(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
            void **state)
{
    struct state *st;

    (void)config;
    (void)n_config;
    if (!CSGI_HAS(api, 4))
        return CSGI_ENOSYS;
    st = calloc(1, sizeof(*st));
    if (!st)
        return CSGI_ENOMEM;
    st->head.next = st->head.prev = &st->head;
    *state = st;
    return CSGI_OK;
}

static void
exit_worker(void *state)
{
    free(state);
}

static void
say(struct conn *c, const char *text)
{
    c->api->upgrade_write(c->u, text, strlen(text));
}

/* One complete line from the client (without its '\n'). */
static void
on_line(struct conn *c, const char *line, size_t len)
{
    if (c->room) {
        for (struct conn *o = c->st->head.next; o != &c->st->head; o = o->next) {
            if (o->room) {
                o->api->upgrade_write(o->u, line, len);
                o->api->upgrade_write(o->u, "\n", 1);
            }
        }
        return;
    }
    if (len == 3 && memcmp(line, "bye", 3) == 0) {
        say(c, "bye\n");
        c->api->upgrade_close(c->u);
    } else if (len == 3 && memcmp(line, "big", 3) == 0) {
        static char block[65536];

        memset(block, 'z', sizeof(block));
        for (int k = 0; k < 128; k++)
            c->api->upgrade_write(c->u, block, sizeof(block)); /* past the soft bound: queued */
        say(c, "END\n");
        c->api->upgrade_close(c->u);
    } else if (len == 2 && memcmp(line, "go", 2) == 0 && c->flood == 0) {
        static char block[65536];

        memset(block, 'x', sizeof(block));
        for (int k = 0; k < 1024; k++) {
            if (c->api->upgrade_write(c->u, block, sizeof(block)) == 1)
                return;
        }
        say(c, "never-full\n");
    }
}

static void
on_data(void *arg, struct csgi_upgrade *u, const void *data, size_t len)
{
    struct conn *c = arg;
    const char *p = data;

    (void)u;
    if (!c->room && c->flood < 0)
        c->api->upgrade_write(c->u, data, len); /* /echo: every byte back */
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            on_line(c, c->line, c->line_len);
            c->line_len = 0;
        } else if (c->line_len < sizeof(c->line)) {
            c->line[c->line_len++] = p[i];
        }
    }
}

static void
on_writable(void *arg, struct csgi_upgrade *u)
{
    struct conn *c = arg;

    (void)u;
    c->st->writable++;
    if (c->flood < 0)
        return;
    if (++c->flood < 3) {
        static char block[65536];

        memset(block, 'y', sizeof(block));
        say(c, "more\n");
        /* Past the soft bound again: on_writable() once more. */
        for (int k = 0; k < 1024 && c->api->upgrade_write(c->u, block, sizeof(block)) == 0; k++)
            ;
    } else {
        say(c, "done\n");
    }
}

static void
on_stop(void *arg, struct csgi_upgrade *u)
{
    struct conn *c = arg;

    (void)u;
    say(c, "stopping\n");
    c->api->upgrade_close(c->u);
}

static void
on_close(void *arg, struct csgi_upgrade *u, int reason)
{
    struct conn *c = arg;
    struct state *st = c->st;

    (void)u;
    st->open--;
    if (reason == CSGI_FINISH_OK)
        st->ok++;
    else if (reason == CSGI_FINISH_CLIENT_ABORT)
        st->abort++;
    else if (reason == CSGI_FINISH_SHUTDOWN)
        st->shutdown++;
    else
        st->error++;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    free(c);
}

static const struct csgi_upgrade_handler handler = {
    .version = CSGI_UPGRADE_HANDLER_VERSION,
    .on_data = on_data,
    .on_writable = on_writable,
    .on_stop = on_stop,
    .on_close = on_close,
};

static int
text(const struct csgi_environ *env, const struct csgi_responder *resp, struct csgi_body *out,
     int status, const char *body)
{
    static const struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")}};
    int rc = resp->start_response(resp->ctx, status, (struct csgi_str){NULL, 0}, h, 1, NULL);

    if (rc < 0)
        return rc;
    return env->host->body_from_buffer(env->request, body, strlen(body), 0, out);
}

static int
path_is(const struct csgi_environ *env, const char *p)
{
    return env->path_info.len == strlen(p) &&
           memcmp(env->path_info.ptr, p, env->path_info.len) == 0;
}

static int
call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
     struct csgi_body *out)
{
    static const struct csgi_header up[] = {
        {CSGI_STR_INIT("Upgrade"), CSGI_STR_INIT("lines")},
        {CSGI_STR_INIT("Connection"), CSGI_STR_INIT("upgrade")}};
    const struct csgi_host_api *api = env->host;
    struct state *st = state;
    struct conn *c;
    int rc;

    if (path_is(env, "/stats")) {
        char *buf = api->alloc(env->request, 160);

        if (!buf)
            return CSGI_ENOMEM;
        snprintf(buf, 160, "open=%ld ok=%ld abort=%ld shutdown=%ld error=%ld writable=%ld\n",
                 st->open, st->ok, st->abort, st->shutdown, st->error, st->writable);
        return text(env, resp, out, 200, buf);
    }
    if (path_is(env, "/plain101"))
        return resp->start_response(resp->ctx, 101, (struct csgi_str){NULL, 0}, up, 2, NULL);
    c = calloc(1, sizeof(*c));
    if (!c)
        return CSGI_ENOMEM;
    c->st = st;
    c->api = api;
    c->room = path_is(env, "/room");
    c->flood = path_is(env, "/flood") ? 0 : -1;
    rc = api->upgrade(env->request, &handler, c, &c->u);
    if (rc == CSGI_ESTATE) {
        free(c);
        return text(env, resp, out, 426, "upgrade required\n");
    }
    if (rc < 0) {
        free(c);
        return rc;
    }
    st->open++;
    c->next = st->head.next;
    c->prev = &st->head;
    st->head.next->prev = c;
    st->head.next = c;
    if (path_is(env, "/no101"))
        return text(env, resp, out, 200, "not upgraded\n");
    rc = resp->start_response(resp->ctx, 101, (struct csgi_str){NULL, 0}, up, 2, NULL);
    if (rc < 0)
        return rc;
    if (path_is(env, "/body101"))
        return api->body_from_buffer(env->request, "body", 4, 0, out);
    if (path_is(env, "/echo"))
        say(c, "hello\n");
    if (path_is(env, "/closenow")) {
        say(c, "goodbye\n");
        api->upgrade_close(c->u);
    }
    return CSGI_OK;
}

static const struct csgi_plugin plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "upgrades",
    .plugin_version = "1",
    .description = "raw upgraded connections (a test fixture)",
    .flags = CSGI_PLUGIN_UPGRADES,
    .init_worker = init_worker,
    .call = call,
    .exit_worker = exit_worker,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &plugin;
}
