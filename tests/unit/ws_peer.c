/*
 * The WebSocket codec as a filter over stdin and stdout, for
 * test_util_ws_peer.py: a real, independent client implementation (Python's
 * websockets, sans-I/O) talks to csgi/websocket.h through pipes, no sockets.
 *
 * It reads one HTTP request head, answers it as csgi_ws_handshake_check()
 * decides (101 with Sec-WebSocket-Accept and the subprotocol chosen among
 * "superchat" and "chat"; otherwise the status, and exits), then feeds every
 * byte read to the codec: text and binary messages are echoed, the text
 * "close-me" makes it start the closing handshake, and the output is written
 * after each read. Each event is logged on stderr. It exits 0 when the codec
 * is closed and drained, or at end of input.
 * Usage: ws_peer [MAX_MESSAGE [MAX_OUTPUT]]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <csgi/util.h>
#include <csgi/websocket.h>

#define HEAD_MAX    8192
#define HEADERS_MAX 32

static int
write_all(const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(1, c, n);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read up to the blank line; returns the head's length (the rest stays in @p buf). */
static size_t
read_head(char *buf, size_t *have)
{
    char *end;

    *have = 0;
    for (;;) {
        ssize_t r;

        end = *have ? memmem(buf, *have, "\r\n\r\n", 4) : NULL;
        if (end)
            return (size_t)(end - buf) + 4;
        if (*have == HEAD_MAX)
            exit(3);
        r = read(0, buf + *have, HEAD_MAX - *have);
        if (r <= 0)
            exit(3);
        *have += (size_t)r;
    }
}

/* Split the head into an environ: request line, then "Name: value" lines. */
static void
parse_head(char *head, size_t len, struct csgi_environ *env, struct csgi_header *h)
{
    char *line = head, *end = head + len;
    int first = 1;

    env->version = CSGI_ENVIRON_VERSION;
    env->headers = h;
    while (line < end) {
        char *eol = memmem(line, (size_t)(end - line), "\r\n", 2), *colon;

        if (!eol || eol == line)
            break;
        *eol = '\0';
        if (first) {
            char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
            if (!sp2)
                exit(3);
            env->request_method = (struct csgi_str){line, (size_t)(sp1 - line)};
            env->server_protocol = csgi_str_c(sp2 + 1);
            first = 0;
        } else if ((colon = strchr(line, ':')) && env->n_headers < HEADERS_MAX) {
            h[env->n_headers].name = (struct csgi_str){line, (size_t)(colon - line)};
            h[env->n_headers].value = csgi_str_trim(csgi_str_c(colon + 1));
            env->n_headers++;
        }
        line = eol + 2;
    }
}

/* Answer the handshake. Returns 1 when the connection is upgraded. */
static int
answer(const struct csgi_environ *env)
{
    static const char *const protocols[] = {"superchat", "chat"};
    char accept[CSGI_WS_ACCEPT_SIZE], out[512];
    int st = csgi_ws_handshake_check(env, accept), n;
    size_t chosen;

    fprintf(stderr, "ws_peer: handshake %d\n", st);
    if (st != 101) {
        n = snprintf(out, sizeof(out), "HTTP/1.1 %d Refused\r\n%sContent-Length: 0\r\n\r\n", st,
                     st == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
        write_all(out, (size_t)n);
        return 0;
    }
    n = snprintf(out, sizeof(out),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
                 accept);
    if (csgi_ws_select_protocol(env, protocols, 2, &chosen) == 0)
        n += snprintf(out + n, sizeof(out) - (size_t)n, "Sec-WebSocket-Protocol: %s\r\n",
                      protocols[chosen]);
    n += snprintf(out + n, sizeof(out) - (size_t)n, "\r\n");
    return write_all(out, (size_t)n) == 0;
}

static void
on_event(struct csgi_ws *ws, const struct csgi_ws_event *ev)
{
    int rc = 0;

    fprintf(stderr, "ws_peer: event %d code %u len %zu\n", ev->type, ev->code, ev->data.len);
    if (ev->type == CSGI_WS_EV_TEXT && csgi_str_eq_c(ev->data, "close-me"))
        rc = csgi_ws_close(ws, 1000, csgi_str_c("bye"));
    else if (ev->type == CSGI_WS_EV_TEXT)
        rc = csgi_ws_send_text(ws, ev->data.ptr, ev->data.len);
    else if (ev->type == CSGI_WS_EV_BINARY)
        rc = csgi_ws_send_binary(ws, ev->data.ptr, ev->data.len);
    if (rc < 0)
        fprintf(stderr, "ws_peer: send failed: %s\n", csgi_strerror(rc));
}

/* Feed @p n bytes, handling every event. Returns -1 when the output cannot be written. */
static int
pump(struct csgi_ws *ws, const char *p, size_t n)
{
    const void *out;
    size_t len;

    while (n > 0 && csgi_ws_state(ws) != CSGI_WS_CLOSED) {
        struct csgi_ws_event ev;
        size_t used;

        if (csgi_ws_feed(ws, p, n, &used, &ev) == 1)
            on_event(ws, &ev);
        p += used;
        n -= used;
    }
    len = csgi_ws_pending(ws, &out);
    if (len > 0 && write_all(out, len) < 0)
        return -1;
    return csgi_ws_consumed(ws, len);
}

int
main(int argc, char **argv)
{
    static char buf[HEAD_MAX];
    struct csgi_header h[HEADERS_MAX];
    struct csgi_environ env = {0};
    struct csgi_ws_config cfg = {.version = CSGI_WS_CONFIG_VERSION};
    struct csgi_ws *ws;
    size_t have, head_len;
    int rc = 0;

    if (argc > 1)
        cfg.max_message = (size_t)strtoul(argv[1], NULL, 10);
    if (argc > 2)
        cfg.max_output = (size_t)strtoul(argv[2], NULL, 10);
    head_len = read_head(buf, &have);
    parse_head(buf, head_len, &env, h);
    if (!answer(&env))
        return 0;
    ws = csgi_ws_new(&cfg);
    if (!ws)
        return 2;
    /* Bytes that came with the head belong to the first frames. */
    if (pump(ws, buf + head_len, have - head_len) < 0)
        rc = 1;
    while (rc == 0 && csgi_ws_state(ws) != CSGI_WS_CLOSED) {
        ssize_t r = read(0, buf, sizeof(buf));
        if (r <= 0)
            break;
        if (pump(ws, buf, (size_t)r) < 0)
            rc = 1;
    }
    fprintf(stderr, "ws_peer: exit in state %d\n", csgi_ws_state(ws));
    csgi_ws_free(ws);
    return rc;
}
