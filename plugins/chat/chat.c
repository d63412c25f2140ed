/*
 * chat: a WebSocket broadcast room and a WebSocket echo, on the upgraded
 * connections of CSGI 1.2 (host API version 4, gateway/SPEC.md 4.15) and the
 * WebSocket codec of libcsgi-util (csgi/websocket.h). See README.md.
 *
 *   GET /chat/ws      join the room: every message goes to every member
 *   GET /chat/echo    every message comes back (text as text, binary as binary)
 *   GET /chat/stats   "members=N echoes=M messages=K"
 *   GET /chat/        a small page that joins the room from a browser
 *
 * Not thread-safe: the server serializes call() and the connections'
 * callbacks, which all run on the worker's event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/csgi.h>
#include <csgi/util.h>
#include <csgi/websocket.h>

struct room;

/* One WebSocket connection. */
struct member {
    struct member *prev, *next;
    struct room *room;
    const struct csgi_host_api *api;
    struct csgi_upgrade *u;
    struct csgi_ws *ws;
    int echo;    /* /chat/echo rather than the room */
    int full;    /* upgrade_write() said the host's queue is above its bound */
    int closing; /* upgrade_close() called */
};

struct room {
    const struct csgi_host_api *api;
    struct member head; /* every open connection */
    long members, echoes;
    unsigned long messages;
    size_t max_message;
};

static const char page[] =
    "<!doctype html><meta charset=utf-8><title>csgi chat</title>\n"
    "<pre id=log></pre><input id=msg autofocus placeholder='say something, Enter sends'>\n"
    "<script>\n"
    "let ws;\n"
    "const log = (t) => { document.getElementById('log').textContent += t + '\\n'; };\n"
    "function join() {\n"
    "  ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host\n"
    "                     + location.pathname.replace(/\\/?$/, '/ws'));\n"
    "  ws.onopen = () => log('* joined');\n"
    "  ws.onmessage = (e) => log(e.data);\n"
    "  ws.onclose = (e) => { log('* closed ' + e.code + ' ' + e.reason); setTimeout(join, 1000); "
    "};\n"
    "}\n"
    "join();\n"
    "document.getElementById('msg').onkeydown = (e) => {\n"
    "  if (e.key === 'Enter' && ws.readyState === 1) { ws.send(e.target.value); e.target.value = "
    "''; }\n"
    "};\n"
    "</script>\n";

static int
chat_init(const struct csgi_host_api *api, const struct csgi_kv *config, size_t n_config,
          void **state)
{
    struct room *room;

    if (!CSGI_HAS(api, 4)) {
        api->log(api->ctx, CSGI_LOG_ERROR, "chat needs host API version 4 (upgrade()), got %u",
                 (unsigned)api->version);
        return CSGI_ENOSYS;
    }
    room = calloc(1, sizeof(*room));
    if (!room)
        return CSGI_ENOMEM;
    room->api = api;
    room->head.next = room->head.prev = &room->head;
    room->max_message = 64 * 1024;
    for (size_t i = 0; i < n_config; i++) {
        if (strcmp(config[i].key, "max_message") == 0 && atol(config[i].value) > 0)
            room->max_message = (size_t)atol(config[i].value);
        else
            api->log(api->ctx, CSGI_LOG_WARN, "config key \"%s\" ignored", config[i].key);
    }
    *state = room;
    return CSGI_OK;
}

static void
chat_exit(void *state)
{
    free(state);
}

/*
 * Move the codec's output to the host's queue, and close the connection once
 * the codec is done (closing handshake over, or the peer broke the protocol).
 */
static void
flush(struct member *m)
{
    const void *p;
    size_t n = csgi_ws_pending(m->ws, &p);

    if (n && !m->full) {
        int rc = m->api->upgrade_write(m->u, p, n);

        if (rc >= 0)
            csgi_ws_consumed(m->ws, n);
        /* Above the host's bound (1), or past it (ETOOBIG): the rest waits in the codec. */
        m->full = rc == 1 || rc == CSGI_ETOOBIG;
    }
    if (csgi_ws_state(m->ws) == CSGI_WS_CLOSED && !csgi_ws_pending(m->ws, NULL) && !m->closing) {
        m->closing = 1;
        m->api->upgrade_close(m->u);
    }
}

/*
 * Close now: the closing frame the codec holds goes to the host (past its
 * soft bound if need be), and the host closes once it went out, waiting a
 * second for the client's side (its close reply still arrives in on_data()).
 */
static void
close_now(struct member *m)
{
    m->full = 0;
    flush(m);
    if (!m->closing) {
        m->closing = 1;
        m->api->upgrade_close(m->u);
    }
}

/* Queue a message for @p m; a member too slow to take it is closed (1008). */
static void
send_to(struct member *m, int type, struct csgi_str data)
{
    int rc = type == CSGI_WS_EV_TEXT ? csgi_ws_send_text(m->ws, data.ptr, data.len)
                                     : csgi_ws_send_binary(m->ws, data.ptr, data.len);

    if (rc == CSGI_ETOOBIG) {
        /*
         * A member that does not read: 1008, handed to the host past its soft
         * bound, and closed without waiting for a reply it would not send
         * (the host gives a queue that stops draining 10 s).
         */
        csgi_ws_close(m->ws, CSGI_WS_CLOSE_POLICY, (struct csgi_str)CSGI_STR_INIT("too slow"));
        close_now(m);
        return;
    }
    flush(m);
}

static void
on_message(struct member *m, const struct csgi_ws_event *ev)
{
    struct room *room = m->room;

    room->messages++;
    if (m->echo) {
        send_to(m, ev->type, ev->data);
        return;
    }
    for (struct member *o = room->head.next; o != &room->head; o = o->next) {
        if (!o->echo && csgi_ws_state(o->ws) == CSGI_WS_OPEN)
            send_to(o, ev->type, ev->data);
    }
}

static void
on_data(void *arg, struct csgi_upgrade *u, const void *data, size_t len)
{
    struct member *m = arg;
    const char *p = data;

    (void)u;
    while (len) {
        struct csgi_ws_event ev;
        size_t used = 0;
        int rc = csgi_ws_feed(m->ws, p, len, &used, &ev);

        if (rc < 0)
            break; /* closed: what follows is ignored */
        p += used;
        len -= used;
        if (rc == 1 && (ev.type == CSGI_WS_EV_TEXT || ev.type == CSGI_WS_EV_BINARY))
            on_message(m, &ev);
        else if (rc == 1 && ev.type == CSGI_WS_EV_ERROR)
            m->api->log(m->api->ctx, CSGI_LOG_INFO, "websocket closed with %u: %s", ev.code,
                        ev.data.ptr);
    }
    /* Pongs, the close reply, a close for an error: queued by the codec. */
    flush(m);
}

static void
on_writable(void *arg, struct csgi_upgrade *u)
{
    struct member *m = arg;

    (void)u;
    m->full = 0;
    flush(m);
}

/* The server reloads or stops: 1001, and the connection closed without waiting for the reply. */
static void
on_stop(void *arg, struct csgi_upgrade *u)
{
    struct member *m = arg;

    (void)u;
    csgi_ws_close(m->ws, CSGI_WS_CLOSE_GOING_AWAY,
                  (struct csgi_str)CSGI_STR_INIT("server restarts"));
    close_now(m);
}

static void
on_close(void *arg, struct csgi_upgrade *u, int reason)
{
    struct member *m = arg;

    (void)u;
    (void)reason;
    if (m->echo)
        m->room->echoes--;
    else
        m->room->members--;
    m->prev->next = m->next;
    m->next->prev = m->prev;
    csgi_ws_free(m->ws);
    free(m);
}

static const struct csgi_upgrade_handler handler = {
    .version = CSGI_UPGRADE_HANDLER_VERSION,
    .on_data = on_data,
    .on_writable = on_writable,
    .on_stop = on_stop,
    .on_close = on_close,
};

static int
answer(struct csgi_environ *env, const struct csgi_responder *resp, struct csgi_body *out,
       int status, const char *type, const char *body, size_t len, const struct csgi_header *extra)
{
    struct csgi_header h[2] = {{CSGI_STR_INIT("Content-Type"), {type, strlen(type)}}};
    int rc;

    if (extra)
        h[1] = *extra;
    rc =
        resp->start_response(resp->ctx, status, (struct csgi_str){NULL, 0}, h, extra ? 2 : 1, NULL);
    if (rc < 0)
        return rc;
    return env->host->body_from_buffer(env->request, body, len, CSGI_BUF_BORROW, out);
}

#define TEXT(env, resp, out, status, lit, extra)                                                   \
    answer(env, resp, out, status, "text/plain; charset=utf-8", lit, sizeof(lit) - 1, extra)

/* Join (or echo): the opening handshake, then the connection is the codec's. */
static int
join(struct room *room, struct csgi_environ *env, const struct csgi_responder *resp,
     struct csgi_body *out, int echo)
{
    static const struct csgi_header version = {CSGI_STR_INIT("Sec-WebSocket-Version"),
                                               CSGI_STR_INIT("13")};
    struct csgi_ws_config cfg = {.version = CSGI_WS_CONFIG_VERSION,
                                 .max_message = room->max_message};
    char accept[CSGI_WS_ACCEPT_SIZE];
    struct csgi_header h[3] = {{CSGI_STR_INIT("Upgrade"), CSGI_STR_INIT("websocket")},
                               {CSGI_STR_INIT("Connection"), CSGI_STR_INIT("Upgrade")},
                               {CSGI_STR_INIT("Sec-WebSocket-Accept"), {accept, 28}}};
    struct member *m;
    int rc = csgi_ws_handshake_check(env, accept);

    if (rc == 200 || rc == 426)
        return TEXT(env, resp, out, 426, "a WebSocket endpoint\n", &version);
    if (rc != 101)
        return TEXT(env, resp, out, 400, "bad WebSocket handshake\n", NULL);
    m = calloc(1, sizeof(*m));
    if (!m)
        return CSGI_ENOMEM;
    m->ws = csgi_ws_new(&cfg);
    m->room = room;
    m->api = env->host;
    m->echo = echo;
    rc = m->ws ? env->host->upgrade(env->request, &handler, m, &m->u) : CSGI_ENOMEM;
    if (rc < 0) {
        csgi_ws_free(m->ws);
        free(m);
        return rc;
    }
    /* Listed now: on_close() unlinks it, also when the 101 never goes out. */
    m->next = room->head.next;
    m->prev = &room->head;
    room->head.next->prev = m;
    room->head.next = m;
    if (echo)
        room->echoes++;
    else
        room->members++;
    return resp->start_response(resp->ctx, 101, (struct csgi_str){NULL, 0}, h, 3, NULL);
}

static int
chat_call(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    struct room *room = state;

    if (csgi_str_eq_c(env->path_info, "/ws"))
        return join(room, env, resp, out, 0);
    if (csgi_str_eq_c(env->path_info, "/echo"))
        return join(room, env, resp, out, 1);
    if (csgi_str_eq_c(env->path_info, "/stats")) {
        char *buf = env->host->alloc(env->request, 96);
        int n;

        if (!buf)
            return CSGI_ENOMEM;
        n = snprintf(buf, 96, "members=%ld echoes=%ld messages=%lu\n", room->members, room->echoes,
                     room->messages);
        return answer(env, resp, out, 200, "text/plain", buf, (size_t)n, NULL);
    }
    if (csgi_str_eq_c(env->path_info, "/") || csgi_str_eq_c(env->path_info, ""))
        return answer(env, resp, out, 200, "text/html; charset=utf-8", page, sizeof(page) - 1,
                      NULL);
    return TEXT(env, resp, out, 404, "not found\n", NULL);
}

static const struct csgi_plugin chat_plugin = {
    CSGI_PLUGIN_HEADER,
    .name = "chat",
    .plugin_version = "1.0.0",
    .description = "a WebSocket broadcast room and echo (upgraded connections)",
    .mount = "/chat",
    .flags = CSGI_PLUGIN_UPGRADES,
    .init_worker = chat_init,
    .call = chat_call,
    .exit_worker = chat_exit,
};

CSGI_EXPORT const struct csgi_plugin *
csgi_plugin_entry(uint32_t host_abi_version)
{
    (void)host_abi_version;
    return &chat_plugin;
}
