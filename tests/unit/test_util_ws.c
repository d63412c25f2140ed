/*
 * Unit tests for libcsgi-util's WebSocket codec (gateway/lib/util_ws.c and
 * gateway/lib/util_ws_handshake.c): the opening handshake, the frame parser
 * with every refusal RFC 6455 asks of a server, and the output queue. Frames
 * are built here byte by byte, and the parser is fed them split at every byte
 * boundary where the split matters.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/util.h>
#include <csgi/websocket.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The masking key of RFC 6455 5.7's examples. */
static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

#define FIN 0x80u

/* ------------------------------------------------------------------ */
/* Frame building and event collection                                 */
/* ------------------------------------------------------------------ */

/* A frame header for a payload of @p len; masked with rfc_mask when @p masked. */
static size_t
frame_header(uint8_t *out, unsigned b0, int masked, uint64_t len)
{
    size_t n = 0;

    out[n++] = (uint8_t)b0;
    if (len < 126) {
        out[n++] = (uint8_t)((masked ? 0x80 : 0) | len);
    } else if (len <= 0xFFFF) {
        out[n++] = (uint8_t)((masked ? 0x80 : 0) | 126);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = (uint8_t)((masked ? 0x80 : 0) | 127);
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, rfc_mask, 4);
        n += 4;
    }
    return n;
}

/* A whole frame (header and payload, masked when @p masked). Returns its size. */
static size_t
frame(uint8_t *out, unsigned b0, int masked, const void *payload, size_t len)
{
    size_t n = frame_header(out, b0, masked, len);
    const uint8_t *p = payload;

    for (size_t i = 0; i < len; i++)
        out[n + i] = (uint8_t)(masked ? p[i] ^ rfc_mask[i & 3] : p[i]);
    return n + len;
}

/* A masked client frame with FIN set. */
static size_t
client_frame(uint8_t *out, unsigned opcode, const void *payload, size_t len)
{
    return frame(out, FIN | opcode, 1, payload, len);
}

#define GOT_MAX  8
#define GOT_DATA (70 * 1024)

/* Events seen, with copies of their payloads (the codec's are valid until the next feed). */
struct got {
    int n;
    int rc;       /* the last result of csgi_ws_feed() */
    size_t unfed; /* bytes not consumed when feeding stopped */
    struct {
        int type;
        unsigned code;
        size_t len;
        int nul; /* the payload was followed by a NUL */
        uint8_t data[GOT_DATA];
    } ev[GOT_MAX];
};

static struct got got;

/* Forget the events seen (not the payload copies: 560 KiB to clear each time). */
static void
got_reset(void)
{
    got.n = 0;
    got.rc = 0;
    got.unfed = 0;
}

/* Feed @p n bytes @p step at a time (the rest as one piece when @p step is 0), adding to @p g. */
static void
feed_step(struct csgi_ws *ws, const uint8_t *buf, size_t n, size_t step, struct got *g)
{
    size_t off = 0;

    while (off < n) {
        size_t piece = step == 0 || n - off < step ? n - off : step;

        while (piece > 0) {
            struct csgi_ws_event ev;
            size_t used = 12345;
            int rc = csgi_ws_feed(ws, buf + off, piece, &used, &ev);

            g->rc = rc;
            if (rc < 0) {
                ck_assert_uint_eq(used, 0);
                ck_assert_int_eq(ev.type, CSGI_WS_EV_NONE);
                g->unfed = n - off;
                return;
            }
            ck_assert_uint_le(used, piece);
            if (rc == 0) {
                ck_assert_uint_eq(used, piece);
                ck_assert_int_eq(ev.type, CSGI_WS_EV_NONE);
            } else {
                ck_assert_int_eq(rc, 1);
                ck_assert_int_lt(g->n, GOT_MAX);
                ck_assert_uint_le(ev.data.len, GOT_DATA);
                g->ev[g->n].type = ev.type;
                g->ev[g->n].code = ev.code;
                g->ev[g->n].len = ev.data.len;
                g->ev[g->n].nul = ev.data.ptr ? ev.data.ptr[ev.data.len] == 0 : 0;
                if (ev.data.len)
                    memcpy(g->ev[g->n].data, ev.data.ptr, ev.data.len);
                g->n++;
            }
            off += used;
            piece -= used;
        }
    }
    g->unfed = 0;
}

/* Feed @p buf in two pieces, split at @p at, to a fresh codec; the events land in got. */
static struct csgi_ws *
feed_split(const struct csgi_ws_config *cfg, const uint8_t *buf, size_t n, size_t at)
{
    struct csgi_ws *ws = csgi_ws_new(cfg);

    ck_assert_ptr_nonnull(ws);
    got_reset();
    feed_step(ws, buf, at, 0, &got);
    if (got.rc >= 0)
        feed_step(ws, buf + at, n - at, 0, &got);
    return ws;
}

/* The pending output equals @p want. */
static void
assert_output(struct csgi_ws *ws, const void *want, size_t len)
{
    const void *p;
    size_t n = csgi_ws_pending(ws, &p);

    ck_assert_uint_eq(n, len);
    if (len)
        ck_assert_mem_eq(p, want, len);
}

/* The pending output is one close frame with @p code (and any reason). */
static void
assert_close_out(struct csgi_ws *ws, unsigned code)
{
    const uint8_t *p;
    size_t n = csgi_ws_pending(ws, (const void **)&p);

    ck_assert_uint_ge(n, 4);
    ck_assert_uint_eq(p[0], 0x88);
    ck_assert_uint_eq(p[1], n - 2);
    ck_assert_uint_eq((unsigned)p[2] << 8 | p[3], code);
}

/* Feeding @p buf at every split point fails the connection with @p code (and nothing before). */
static void
assert_fails_every_split(const struct csgi_ws_config *cfg, const uint8_t *buf, size_t n,
                         unsigned code)
{
    for (size_t at = 0; at <= n; at++) {
        struct csgi_ws *ws = feed_split(cfg, buf, n, at);

        ck_assert_msg(got.n == 1 && got.ev[0].type == CSGI_WS_EV_ERROR,
                      "split %zu: %d events, first %d", at, got.n, got.ev[0].type);
        ck_assert_uint_eq(got.ev[0].code, code);
        ck_assert_int_eq(csgi_ws_state(ws), CSGI_WS_CLOSED);
        assert_close_out(ws, code);
        csgi_ws_free(ws);
    }
}

/* ------------------------------------------------------------------ */
/* Handshake                                                           */
/* ------------------------------------------------------------------ */

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        {n, sizeof(n) - 1},                                                                        \
        {                                                                                          \
            v, sizeof(v) - 1                                                                       \
        }                                                                                          \
    }

static struct csgi_environ
ws_env(const struct csgi_header *h, size_t n)
{
    struct csgi_environ env = {.version = CSGI_ENVIRON_VERSION, .headers = h, .n_headers = n};

    env.request_method = csgi_str_c("GET");
    env.server_protocol = csgi_str_c("HTTP/1.1");
    return env;
}

/* RFC 6455 1.3's sample key and accept value (also what Python's hashlib and base64 give). */
START_TEST(util_ws_accept_rfc_sample)
{
    char accept[CSGI_WS_ACCEPT_SIZE];

    ck_assert_int_eq(csgi_ws_accept_key(csgi_str_c("dGhlIHNhbXBsZSBub25jZQ=="), accept), 0);
    ck_assert_str_eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_int_eq(csgi_ws_accept_key(csgi_str_c("x"), NULL), CSGI_EINVAL);
}
END_TEST

START_TEST(util_ws_handshake_valid)
{
    const struct csgi_header h[] = {
        HDR("Host", "example.com"),
        HDR("upgrade", "WebSocket"),
        HDR("Connection", "keep-alive, Upgrade"),
        HDR("Sec-WebSocket-Key", " dGhlIHNhbXBsZSBub25jZQ== "),
        HDR("Sec-WebSocket-Version", "13"),
    };
    struct csgi_environ env = ws_env(h, N_OF(h));
    char accept[CSGI_WS_ACCEPT_SIZE] = "";

    ck_assert_int_eq(csgi_ws_handshake_check(&env, accept), 101);
    ck_assert_str_eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_int_eq(csgi_ws_handshake_check(&env, NULL), 101);
    env.server_protocol = csgi_str_c("HTTP/2.0");
    ck_assert_int_eq(csgi_ws_handshake_check(&env, NULL), 101);
    ck_assert_int_eq(csgi_ws_handshake_check(NULL, accept), CSGI_EINVAL);
}
END_TEST

/* Tokens in lists, and repeated headers. */
START_TEST(util_ws_handshake_lists)
{
    const struct csgi_header h[] = {
        HDR("Upgrade", "foo/2, websocket"), HDR("Connection", "keep-alive"),
        HDR("connection", " ,UPGRADE"),     HDR("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="),
        HDR("Sec-WebSocket-Version", "13"),
    };
    struct csgi_environ env = ws_env(h, N_OF(h));

    ck_assert_int_eq(csgi_ws_handshake_check(&env, NULL), 101);
}
END_TEST

/* One environ per case: the headers differ from the valid set as the comment says. */
static const struct {
    const char *what;
    const char *method, *protocol;
    const char *upgrade, *connection, *key, *key2, *version, *version2;
    int status;
} hs_cases[] = {
    {"valid", "GET", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13",
     NULL, 101},
    {"no upgrade", "GET", "HTTP/1.1", NULL, "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13", NULL,
     200},
    {"other upgrade", "GET", "HTTP/1.1", "h2c", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13",
     NULL, 200},
    {"token prefix only", "GET", "HTTP/1.1", "websockets", "Upgrade",
     "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13", NULL, 200},
    {"POST", "POST", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13",
     NULL, 400},
    {"HTTP/1.0", "GET", "HTTP/1.0", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13",
     NULL, 400},
    {"no Connection", "GET", "HTTP/1.1", "websocket", NULL, "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13",
     NULL, 400},
    {"Connection without upgrade", "GET", "HTTP/1.1", "websocket", "keep-alive, upgrades",
     "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13", NULL, 400},
    {"no key", "GET", "HTTP/1.1", "websocket", "Upgrade", NULL, NULL, "13", NULL, 400},
    {"two keys", "GET", "HTTP/1.1", "websocket", "Upgrade",
     "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ==", "13", NULL, 400},
    {"short key", "GET", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZQ==", NULL, "13", NULL,
     400},
    {"key of 17 bytes", "GET", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZTE=", NULL,
     "13", NULL, 400},
    {"key not base64", "GET", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZ*==", NULL,
     "13", NULL, 400},
    {"key with inner space", "GET", "HTTP/1.1", "websocket", "Upgrade",
     "dGhlIHNhbX BsZSBub25jZQ==", NULL, "13", NULL, 400},
    {"no version", "GET", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL,
     NULL, NULL, 400},
    {"version 8", "GET", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL, "8",
     NULL, 426},
    {"version 13 twice", "GET", "HTTP/1.1", "websocket", "Upgrade",
     "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13", "13", 426},
    {"version list", "GET", "HTTP/1.1", "websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL,
     "13, 8", NULL, 426},
    /* A wrong version outranks a bad key: the client learns which version to speak. */
    {"version 8, bad key", "GET", "HTTP/1.1", "websocket", "Upgrade", "x", NULL, "8", NULL, 426},
};

/* One environ per case (a loop, not a loop test: a fork per case costs more than the case). */
START_TEST(util_ws_handshake_cases)
{
    for (size_t i = 0; i < N_OF(hs_cases); i++) {
        struct csgi_header h[8];
        size_t n = 0;
        struct csgi_environ env;
        char accept[CSGI_WS_ACCEPT_SIZE] = "untouched";
        int st;

#define ADD(hname, v)                                                                              \
    do {                                                                                           \
        if (v) {                                                                                   \
            h[n].name = csgi_str_c(hname);                                                         \
            h[n].value = csgi_str_c(v);                                                            \
            n++;                                                                                   \
        }                                                                                          \
    } while (0)
        ADD("Upgrade", hs_cases[i].upgrade);
        ADD("Connection", hs_cases[i].connection);
        ADD("Sec-WebSocket-Key", hs_cases[i].key);
        ADD("Sec-WebSocket-Key", hs_cases[i].key2);
        ADD("Sec-WebSocket-Version", hs_cases[i].version);
        ADD("Sec-WebSocket-Version", hs_cases[i].version2);
#undef ADD
        env = ws_env(h, n);
        env.request_method = csgi_str_c(hs_cases[i].method);
        env.server_protocol = csgi_str_c(hs_cases[i].protocol);
        st = csgi_ws_handshake_check(&env, accept);
        ck_assert_msg(st == hs_cases[i].status, "%s: %d", hs_cases[i].what, st);
        if (st != 101)
            ck_assert_msg(strcmp(accept, "untouched") == 0, "%s: accept written", hs_cases[i].what);
    }
}
END_TEST

START_TEST(util_ws_select_protocol)
{
    const struct csgi_header h[] = {
        HDR("Sec-WebSocket-Protocol", "chat, superchat"),
        HDR("Sec-WebSocket-Protocol", "v2.json"),
    };
    const char *const ours[] = {"v3.json", "superchat", "chat"};
    const char *const upper[] = {"CHAT"};
    const char *const bad[] = {"chat", NULL};
    struct csgi_environ env = ws_env(h, N_OF(h));
    size_t chosen = 99;

    ck_assert_int_eq(csgi_ws_select_protocol(&env, ours, N_OF(ours), &chosen), 0);
    ck_assert_uint_eq(chosen, 1); /* the server's preference wins */
    ck_assert_int_eq(csgi_ws_select_protocol(&env, ours + 2, 1, &chosen), 0);
    ck_assert_uint_eq(chosen, 0);
    env.n_headers = 2;
    ck_assert_int_eq(csgi_ws_select_protocol(&env, (const char *const[]){"v2.json"}, 1, &chosen),
                     0);
    chosen = 99;
    ck_assert_int_eq(csgi_ws_select_protocol(&env, upper, 1, &chosen), CSGI_ENOENT);
    ck_assert_int_eq(csgi_ws_select_protocol(&env, ours, 1, &chosen), CSGI_ENOENT);
    ck_assert_uint_eq(chosen, 99);
    env.n_headers = 0;
    ck_assert_int_eq(csgi_ws_select_protocol(&env, ours, N_OF(ours), &chosen), CSGI_ENOENT);
    ck_assert_int_eq(csgi_ws_select_protocol(&env, bad, 2, &chosen), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_select_protocol(NULL, ours, 1, &chosen), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_select_protocol(&env, ours, 1, NULL), CSGI_EINVAL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* RFC 6455 5.7 examples                                               */
/* ------------------------------------------------------------------ */

static const uint8_t rfc_hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};

START_TEST(util_ws_rfc_masked_hello)
{
    for (size_t at = 0; at <= sizeof(rfc_hello_masked); at++) {
        struct csgi_ws *ws = feed_split(NULL, rfc_hello_masked, sizeof(rfc_hello_masked), at);

        ck_assert_int_eq(got.n, 1);
        ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_TEXT);
        ck_assert_uint_eq(got.ev[0].len, 5);
        ck_assert_mem_eq(got.ev[0].data, "Hello", 5);
        ck_assert(got.ev[0].nul);
        ck_assert_int_eq(csgi_ws_state(ws), CSGI_WS_OPEN);
        assert_output(ws, NULL, 0);
        csgi_ws_free(ws);
    }
}
END_TEST

/* The server's own frame is the RFC's unmasked "Hello"; a client may not send it. */
START_TEST(util_ws_rfc_unmasked_hello)
{
    struct csgi_ws *ws = csgi_ws_new(NULL);

    ck_assert_int_eq(csgi_ws_send_text(ws, "Hello", 5), 0);
    assert_output(ws, rfc_hello_unmasked, sizeof(rfc_hello_unmasked));
    csgi_ws_free(ws);
    assert_fails_every_split(NULL, rfc_hello_unmasked, sizeof(rfc_hello_unmasked),
                             CSGI_WS_CLOSE_PROTOCOL_ERROR);
}
END_TEST

/* "Hel" then "lo": the RFC's fragmented message, masked, split at every byte. */
START_TEST(util_ws_rfc_fragmented)
{
    uint8_t buf[64];
    size_t n = frame(buf, CSGI_WS_OP_TEXT, 1, "Hel", 3);

    n += frame(buf + n, FIN | CSGI_WS_OP_CONTINUATION, 1, "lo", 2);
    for (size_t at = 0; at <= n; at++) {
        struct csgi_ws *ws = feed_split(NULL, buf, n, at);

        ck_assert_int_eq(got.n, 1);
        ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_TEXT);
        ck_assert_uint_eq(got.ev[0].len, 5);
        ck_assert_mem_eq(got.ev[0].data, "Hello", 5);
        csgi_ws_free(ws);
    }
    /* One byte per feed() call. */
    {
        struct csgi_ws *ws = csgi_ws_new(NULL);

        got_reset();
        feed_step(ws, buf, n, 1, &got);
        ck_assert_int_eq(got.n, 1);
        ck_assert_mem_eq(got.ev[0].data, "Hello", 5);
        csgi_ws_free(ws);
    }
}
END_TEST

/* The RFC's ping "Hello" gets its pong; the RFC's masked pong is reported. */
START_TEST(util_ws_rfc_ping_pong)
{
    static const uint8_t rfc_pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                              0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t pong_out[] = {0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    uint8_t buf[32];
    size_t n = client_frame(buf, CSGI_WS_OP_PING, "Hello", 5);
    struct csgi_ws *ws;

    for (size_t at = 0; at <= n; at++) {
        ws = feed_split(NULL, buf, n, at);
        ck_assert_int_eq(got.n, 1);
        ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_PING);
        ck_assert_mem_eq(got.ev[0].data, "Hello", 5);
        assert_output(ws, pong_out, sizeof(pong_out));
        csgi_ws_free(ws);
    }
    ws = feed_split(NULL, rfc_pong_masked, sizeof(rfc_pong_masked), 3);
    ck_assert_int_eq(got.n, 1);
    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_PONG);
    ck_assert_uint_eq(got.ev[0].len, 5);
    ck_assert_mem_eq(got.ev[0].data, "Hello", 5);
    assert_output(ws, NULL, 0);
    /* The server's own ping is the RFC's unmasked one. */
    ck_assert_int_eq(csgi_ws_send_ping(ws, "Hello", 5), 0);
    {
        static const uint8_t ping_out[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
        assert_output(ws, ping_out, sizeof(ping_out));
    }
    csgi_ws_free(ws);
}
END_TEST

/* 256 bytes (16-bit length) and 64 KiB (64-bit length), both ways. */
START_TEST(util_ws_rfc_lengths)
{
    static const size_t sizes[] = {125, 126, 256, 65535, 65536};
    static uint8_t payload[65536], buf[65536 + 14];

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + (i >> 8));
    for (size_t s = 0; s < N_OF(sizes); s++) {
        size_t len = sizes[s], n = client_frame(buf, CSGI_WS_OP_BINARY, payload, len);
        struct csgi_ws *ws = feed_split(NULL, buf, n, n / 3);
        const uint8_t *out;
        size_t hlen = len < 126 ? 2 : len < 65536 ? 4 : 10;

        ck_assert_int_eq(got.n, 1);
        ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_BINARY);
        ck_assert_uint_eq(got.ev[0].len, len);
        ck_assert_mem_eq(got.ev[0].data, payload, len);
        ck_assert_int_eq(csgi_ws_send_binary(ws, payload, len), 0);
        ck_assert_uint_eq(csgi_ws_pending(ws, (const void **)&out), hlen + len);
        ck_assert_mem_eq(out, buf, 1); /* 0x82 */
        if (len == 256) {
            static const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
            ck_assert_mem_eq(out, h256, 4);
        } else if (len == 65536) {
            static const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
            ck_assert_mem_eq(out, h64k, 10);
        }
        ck_assert_mem_eq(out + hlen, payload, len);
        csgi_ws_free(ws);
    }
    /* 256 bytes, split at every byte. */
    {
        size_t n = client_frame(buf, CSGI_WS_OP_BINARY, payload, 256);
        for (size_t at = 0; at <= n; at++) {
            struct csgi_ws *ws = feed_split(NULL, buf, n, at);
            ck_assert_int_eq(got.n, 1);
            ck_assert_uint_eq(got.ev[0].len, 256);
            ck_assert_mem_eq(got.ev[0].data, payload, 256);
            csgi_ws_free(ws);
        }
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Frame rules                                                         */
/* ------------------------------------------------------------------ */

START_TEST(util_ws_rsv_bits)
{
    static const unsigned rsv[] = {0x40, 0x20, 0x10, 0x70};
    uint8_t buf[32];

    for (size_t i = 0; i < N_OF(rsv); i++) {
        size_t n = frame(buf, FIN | rsv[i] | CSGI_WS_OP_TEXT, 1, "hi", 2);
        assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
    }
}
END_TEST

START_TEST(util_ws_unknown_opcodes)
{
    static const unsigned ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    uint8_t buf[32];

    for (size_t i = 0; i < N_OF(ops); i++) {
        size_t n = frame(buf, FIN | ops[i], 1, "x", 1);
        assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
    }
}
END_TEST

START_TEST(util_ws_control_rules)
{
    static uint8_t payload[126], buf[200];
    static const unsigned ops[] = {CSGI_WS_OP_PING, CSGI_WS_OP_PONG, CSGI_WS_OP_CLOSE};
    size_t n;

    memset(payload, 'a', sizeof(payload));
    for (size_t i = 0; i < N_OF(ops); i++) {
        /* 126 bytes: too long for a control frame. */
        n = frame(buf, FIN | ops[i], 1, payload, 126);
        assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
        /* Fragmented. */
        n = frame(buf, ops[i], 1, "ab", 2);
        assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
    }
    /* 125 bytes is fine. */
    n = client_frame(buf, CSGI_WS_OP_PING, payload, 125);
    csgi_ws_free(feed_split(NULL, buf, n, 0));
    ck_assert_int_eq(got.n, 1);
    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_PING);
    ck_assert_uint_eq(got.ev[0].len, 125);
}
END_TEST

START_TEST(util_ws_fragment_order)
{
    uint8_t buf[64];
    size_t n;

    /* A continuation with no message to continue, final or not. */
    n = client_frame(buf, CSGI_WS_OP_CONTINUATION, "x", 1);
    assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
    n = frame(buf, CSGI_WS_OP_CONTINUATION, 1, "x", 1);
    assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
    /* A new text or binary frame inside a fragmented message. */
    for (unsigned op = CSGI_WS_OP_TEXT; op <= CSGI_WS_OP_BINARY; op++) {
        n = frame(buf, CSGI_WS_OP_TEXT, 1, "ab", 2);
        n += client_frame(buf + n, op, "cd", 2);
        assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
    }
    /* A continuation after a complete message. */
    n = client_frame(buf, CSGI_WS_OP_TEXT, "ab", 2);
    n += client_frame(buf + n, CSGI_WS_OP_CONTINUATION, "cd", 2);
    csgi_ws_free(feed_split(NULL, buf, n, 0));
    ck_assert_int_eq(got.n, 2);
    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_TEXT);
    ck_assert_int_eq(got.ev[1].type, CSGI_WS_EV_ERROR);
    ck_assert_uint_eq(got.ev[1].code, CSGI_WS_CLOSE_PROTOCOL_ERROR);
}
END_TEST

/* Empty frames, a binary message in many fragments, and pings between fragments. */
START_TEST(util_ws_fragments_and_control)
{
    uint8_t buf[128];
    size_t n = frame(buf, CSGI_WS_OP_BINARY, 1, "", 0);

    n += frame(buf + n, CSGI_WS_OP_CONTINUATION, 1, "He", 2);
    n += client_frame(buf + n, CSGI_WS_OP_PING, "p1", 2);
    n += frame(buf + n, CSGI_WS_OP_CONTINUATION, 1, "l", 1);
    n += client_frame(buf + n, CSGI_WS_OP_PONG, "", 0);
    n += frame(buf + n, CSGI_WS_OP_CONTINUATION, 1, "", 0);
    n += frame(buf + n, FIN | CSGI_WS_OP_CONTINUATION, 1, "lo", 2);
    n += client_frame(buf + n, CSGI_WS_OP_TEXT, "", 0);
    for (size_t at = 0; at <= n; at++) {
        struct csgi_ws *ws = feed_split(NULL, buf, n, at);
        static const uint8_t pong[] = {0x8a, 0x02, 'p', '1'};

        ck_assert_int_eq(got.n, 4);
        ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_PING);
        ck_assert_mem_eq(got.ev[0].data, "p1", 2);
        ck_assert_int_eq(got.ev[1].type, CSGI_WS_EV_PONG);
        ck_assert_uint_eq(got.ev[1].len, 0);
        ck_assert_int_eq(got.ev[2].type, CSGI_WS_EV_BINARY);
        ck_assert_uint_eq(got.ev[2].len, 5);
        ck_assert_mem_eq(got.ev[2].data, "Hello", 5);
        ck_assert_int_eq(got.ev[3].type, CSGI_WS_EV_TEXT);
        ck_assert_uint_eq(got.ev[3].len, 0);
        ck_assert(got.ev[3].nul);
        assert_output(ws, pong, sizeof(pong));
        csgi_ws_free(ws);
    }
}
END_TEST

START_TEST(util_ws_length_top_bit)
{
    uint8_t buf[16];
    size_t n;

    /* A 64-bit length with the top bit set: 0x8000000000000001. */
    buf[0] = FIN | CSGI_WS_OP_BINARY;
    buf[1] = 0x80 | 127;
    buf[2] = 0x80;
    memset(buf + 3, 0, 6);
    buf[9] = 1;
    memcpy(buf + 10, rfc_mask, 4);
    n = 14;
    assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
}
END_TEST

START_TEST(util_ws_too_big)
{
    const struct csgi_ws_config cfg = {
        .version = CSGI_WS_CONFIG_VERSION, .max_message = 1000, .max_output = 0};
    static uint8_t payload[1001], buf[2048];
    size_t n;
    struct csgi_ws *ws;

    memset(payload, 'z', sizeof(payload));
    /* Exactly the limit: fine. */
    n = client_frame(buf, CSGI_WS_OP_BINARY, payload, 1000);
    csgi_ws_free(feed_split(&cfg, buf, n, 7));
    ck_assert_int_eq(got.n, 1);
    ck_assert_uint_eq(got.ev[0].len, 1000);
    /* One byte over: refused from the header alone (2 + 2 + 4 bytes), before the payload. */
    n = client_frame(buf, CSGI_WS_OP_BINARY, payload, 1001);
    ws = feed_split(&cfg, buf, 8, 8);
    ck_assert_int_eq(got.n, 1);
    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_ERROR);
    ck_assert_uint_eq(got.ev[0].code, CSGI_WS_CLOSE_TOO_BIG);
    assert_close_out(ws, CSGI_WS_CLOSE_TOO_BIG);
    csgi_ws_free(ws);
    assert_fails_every_split(&cfg, buf, n, CSGI_WS_CLOSE_TOO_BIG);
    /* Fragments adding up to more: refused at the second header. */
    n = frame(buf, CSGI_WS_OP_TEXT, 1, payload, 600);
    n += frame(buf + n, FIN | CSGI_WS_OP_CONTINUATION, 1, payload, 401);
    ws = feed_split(&cfg, buf, 600 + 8 + 8, 0);
    ck_assert_int_eq(got.n, 1);
    ck_assert_uint_eq(got.ev[0].code, CSGI_WS_CLOSE_TOO_BIG);
    ck_assert_int_eq(got.rc, 1);
    csgi_ws_free(ws);
    /* A huge announced length (2^62) on the default limit. */
    n = frame_header(buf, FIN | CSGI_WS_OP_BINARY, 1, (uint64_t)1 << 62);
    ws = feed_split(NULL, buf, n, 0);
    ck_assert_int_eq(got.n, 1);
    ck_assert_uint_eq(got.ev[0].code, CSGI_WS_CLOSE_TOO_BIG);
    csgi_ws_free(ws);
}
END_TEST

/* After a failure, input is refused and sends are refused. */
START_TEST(util_ws_refuses_after_error)
{
    struct csgi_ws *ws = feed_split(NULL, rfc_hello_unmasked, sizeof(rfc_hello_unmasked), 0);
    struct csgi_ws_event ev;
    size_t used = 7;

    ck_assert_int_eq(got.n, 1);
    ck_assert_int_eq(got.rc, CSGI_ESTATE);
    ck_assert_uint_eq(got.unfed, 5); /* the payload after the refused header */
    ck_assert_int_eq(csgi_ws_feed(ws, rfc_hello_masked, sizeof(rfc_hello_masked), &used, &ev),
                     CSGI_ESTATE);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(csgi_ws_send_text(ws, "x", 1), CSGI_ESTATE);
    ck_assert_int_eq(csgi_ws_close(ws, 1000, csgi_str_c("")), CSGI_ESTATE);
    /* The refusal was decided on the second byte: the payload was never consumed. */
    ws = (csgi_ws_free(ws), csgi_ws_new(NULL));
    ck_assert_int_eq(csgi_ws_feed(ws, rfc_hello_unmasked, sizeof(rfc_hello_unmasked), &used, &ev),
                     1);
    ck_assert_uint_eq(used, 2);
    ck_assert_str_eq(ev.data.ptr, "unmasked client frame");
    csgi_ws_free(ws);
}
END_TEST

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */
/* ------------------------------------------------------------------ */

static const struct {
    const char *bytes;
    int valid;
} utf8_cases[] = {
    {"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", 1},
    {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1}, /* kosme */
    {"\xf4\x8f\xbf\xbf", 1},                             /* U+10FFFF */
    {"\xed\x9f\xbf", 1},                                 /* U+D7FF */
    {"\xee\x80\x80", 1},                                 /* U+E000 */
    {"\xef\xbf\xbf", 1},                                 /* U+FFFF */
    {"\xf0\x90\x80\x80", 1},                             /* U+10000 */
    {"0123456789abcdef0123456789abcdef\xc2\x80", 1},     /* word-at-a-time, then not */
    {"\xc0\x80", 0},                                     /* overlong NUL */
    {"\xc1\xbf", 0},                                     /* overlong */
    {"\xe0\x80\xaf", 0},                                 /* overlong '/' */
    {"\xe0\x9f\xbf", 0},                                 /* overlong U+07FF */
    {"\xf0\x8f\xbf\xbf", 0},                             /* overlong U+FFFF */
    {"\xed\xa0\x80", 0},                                 /* U+D800 */
    {"\xed\xbf\xbf", 0},                                 /* U+DFFF */
    {"\xf4\x90\x80\x80", 0},                             /* U+110000 */
    {"\xf5\x80\x80\x80", 0},
    {"\xfe", 0},
    {"\xff", 0},
    {"\x80", 0},     /* stray continuation */
    {"a\xc2", 0},    /* truncated at the end */
    {"\xe2\x82", 0}, /* truncated at the end */
    {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
     "edited",
     0},
    {"0123456789abcdef0123456789abcde\xff", 0},
};

/* Each case's bytes as a text message split into two fragments at every position, each
 * frame sequence fed split at every byte. */
START_TEST(util_ws_utf8_fragments)
{
    for (size_t c = 0; c < N_OF(utf8_cases); c++) {
        const char *s = utf8_cases[c].bytes;
        size_t len = strlen(s);
        uint8_t buf[256];

        for (size_t cut = 0; cut <= len; cut++) {
            size_t n = frame(buf, CSGI_WS_OP_TEXT, 1, s, cut);

            n += frame(buf + n, FIN | CSGI_WS_OP_CONTINUATION, 1, s + cut, len - cut);
            for (size_t at = 0; at <= n; at++) {
                struct csgi_ws *ws = feed_split(NULL, buf, n, at);
                int want = utf8_cases[c].valid ? CSGI_WS_EV_TEXT : CSGI_WS_EV_ERROR;

                ck_assert_msg(got.n == 1 && got.ev[0].type == want,
                              "case %zu cut %zu at %zu: %d events, first %d", c, cut, at, got.n,
                              got.ev[0].type);
                if (utf8_cases[c].valid) {
                    ck_assert_uint_eq(got.ev[0].len, len);
                    ck_assert_mem_eq(got.ev[0].data, s, len);
                } else {
                    ck_assert_uint_eq(got.ev[0].code, CSGI_WS_CLOSE_INVALID_DATA);
                    assert_close_out(ws, CSGI_WS_CLOSE_INVALID_DATA);
                }
                csgi_ws_free(ws);
            }
        }
    }
}
END_TEST

/* The same bytes as a binary message are not checked; as text they fail fast. */
START_TEST(util_ws_utf8_fail_fast)
{
    uint8_t buf[64];
    size_t n = frame(buf, CSGI_WS_OP_TEXT, 1, "ok\xed\xa0\x80", 5);
    struct csgi_ws *ws;

    /* The bad byte is in an unfinished first fragment: no need to wait for the end. */
    ws = feed_split(NULL, buf, n, 0);
    ck_assert_int_eq(got.n, 1);
    ck_assert_uint_eq(got.ev[0].code, CSGI_WS_CLOSE_INVALID_DATA);
    csgi_ws_free(ws);
    n = client_frame(buf, CSGI_WS_OP_BINARY, "\xff\xfe", 2);
    ws = feed_split(NULL, buf, n, 0);
    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_BINARY);
    /* And the codec will not send invalid text either. */
    ck_assert_int_eq(csgi_ws_send_text(ws, "\xed\xa0\x80", 3), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_send_text(ws, "a\xc2", 2), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_send_binary(ws, "\xed\xa0\x80", 3), 0);
    csgi_ws_free(ws);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Closing                                                             */
/* ------------------------------------------------------------------ */

START_TEST(util_ws_close_codes)
{
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                    1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};
    uint8_t body[8], buf[32];

    for (size_t i = 0; i < N_OF(good); i++) {
        size_t n;
        struct csgi_ws *ws;

        body[0] = (uint8_t)(good[i] >> 8);
        body[1] = (uint8_t)good[i];
        memcpy(body + 2, "bye", 3);
        n = client_frame(buf, CSGI_WS_OP_CLOSE, body, 5);
        ws = feed_split(NULL, buf, n, n / 2);
        ck_assert_int_eq(got.n, 1);
        ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_CLOSE);
        ck_assert_uint_eq(got.ev[0].code, good[i]);
        ck_assert_uint_eq(got.ev[0].len, 3);
        ck_assert_mem_eq(got.ev[0].data, "bye", 3);
        ck_assert_int_eq(csgi_ws_state(ws), CSGI_WS_CLOSED);
        /* The reply echoes the code. */
        {
            const uint8_t want[] = {0x88, 0x02, body[0], body[1]};
            assert_output(ws, want, 4);
        }
        ck_assert_int_eq(csgi_ws_close(ws, 1000, csgi_str_c("")), CSGI_ESTATE);
        ck_assert_int_eq(csgi_ws_send_ping(ws, "", 0), CSGI_ESTATE);
        csgi_ws_free(ws);
        /* The same code is accepted for sending. */
        ws = csgi_ws_new(NULL);
        ck_assert_int_eq(csgi_ws_close(ws, good[i], csgi_str_c("")), 0);
        csgi_ws_free(ws);
    }
    for (size_t i = 0; i < N_OF(bad); i++) {
        size_t n;
        struct csgi_ws *ws;

        body[0] = (uint8_t)(bad[i] >> 8);
        body[1] = (uint8_t)bad[i];
        n = client_frame(buf, CSGI_WS_OP_CLOSE, body, 2);
        assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
        ws = csgi_ws_new(NULL);
        if (bad[i] != 0)
            ck_assert_int_eq(csgi_ws_close(ws, bad[i], csgi_str_c("")), CSGI_EINVAL);
        csgi_ws_free(ws);
    }
}
END_TEST

START_TEST(util_ws_close_payloads)
{
    uint8_t buf[64];
    size_t n;
    struct csgi_ws *ws;

    /* No payload: reported as 1005 with an empty, NUL-terminated reason (after a ping left
     * bytes in the control buffer), answered with an empty close. */
    n = client_frame(buf, CSGI_WS_OP_PING, "abcd", 4);
    n += client_frame(buf + n, CSGI_WS_OP_CLOSE, "", 0);
    ws = feed_split(&(struct csgi_ws_config){CSGI_WS_CONFIG_VERSION, CSGI_WS_NO_AUTO_PONG, 0, 0},
                    buf, n, 1);
    ck_assert_int_eq(got.n, 2);
    ck_assert_int_eq(got.ev[1].type, CSGI_WS_EV_CLOSE);
    ck_assert_uint_eq(got.ev[1].code, CSGI_WS_CLOSE_NO_STATUS);
    ck_assert_uint_eq(got.ev[1].len, 0);
    ck_assert(got.ev[1].nul);
    {
        static const uint8_t empty_close[] = {0x88, 0x00};
        assert_output(ws, empty_close, 2);
    }
    csgi_ws_free(ws);
    /* One byte. */
    n = client_frame(buf, CSGI_WS_OP_CLOSE, "\x03", 1);
    assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_PROTOCOL_ERROR);
    /* A reason that is not UTF-8. */
    n = client_frame(buf, CSGI_WS_OP_CLOSE, "\x03\xe8ok\xed\xa0\x80", 7);
    assert_fails_every_split(NULL, buf, n, CSGI_WS_CLOSE_INVALID_DATA);
    /* Bytes after the close frame are not read. */
    n = client_frame(buf, CSGI_WS_OP_CLOSE, "\x03\xe8", 2);
    n += client_frame(buf + n, CSGI_WS_OP_TEXT, "late", 4);
    ws = feed_split(NULL, buf, n, 0);
    ck_assert_int_eq(got.n, 1);
    ck_assert_int_eq(got.rc, CSGI_ESTATE);
    ck_assert_uint_eq(got.unfed, 10);
    csgi_ws_free(ws);
}
END_TEST

/* We close first: CLOSING until the peer's close, messages still read, none sent. */
START_TEST(util_ws_close_initiated)
{
    struct csgi_ws *ws = csgi_ws_new(NULL);
    static const uint8_t want[] = {0x88, 0x05, 0x03, 0xe8, 'b', 'y', 'e'};
    uint8_t buf[64];
    size_t n;

    ck_assert_int_eq(csgi_ws_close(ws, 1000, csgi_str_c("bye")), 0);
    ck_assert_int_eq(csgi_ws_state(ws), CSGI_WS_CLOSING);
    assert_output(ws, want, sizeof(want));
    ck_assert_int_eq(csgi_ws_send_text(ws, "x", 1), CSGI_ESTATE);
    ck_assert_int_eq(csgi_ws_close(ws, 1000, csgi_str_c("")), CSGI_ESTATE);
    n = client_frame(buf, CSGI_WS_OP_TEXT, "still", 5);
    n += client_frame(buf + n, CSGI_WS_OP_PING, "p", 1);
    n += client_frame(buf + n, CSGI_WS_OP_CLOSE, "\x03\xe8", 2);
    got_reset();
    feed_step(ws, buf, n, 1, &got);
    ck_assert_int_eq(got.n, 3);
    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_TEXT);
    ck_assert_int_eq(got.ev[1].type, CSGI_WS_EV_PING);
    ck_assert_int_eq(got.ev[2].type, CSGI_WS_EV_CLOSE);
    ck_assert_uint_eq(got.ev[2].code, 1000);
    ck_assert_int_eq(csgi_ws_state(ws), CSGI_WS_CLOSED);
    /* No pong while closing, and no second close. */
    assert_output(ws, want, sizeof(want));
    csgi_ws_free(ws);
    /* A protocol error while closing: no second close frame either. */
    ws = csgi_ws_new(NULL);
    ck_assert_int_eq(csgi_ws_close(ws, 0, csgi_str_c("")), 0);
    {
        static const uint8_t empty_close[] = {0x88, 0x00};
        assert_output(ws, empty_close, 2);
    }
    got_reset();
    feed_step(ws, rfc_hello_unmasked, sizeof(rfc_hello_unmasked), 0, &got);
    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_ERROR);
    ck_assert_int_eq(csgi_ws_state(ws), CSGI_WS_CLOSED);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 2);
    csgi_ws_free(ws);
}
END_TEST

START_TEST(util_ws_close_arguments)
{
    struct csgi_ws *ws = csgi_ws_new(NULL);
    char reason[125];

    memset(reason, 'r', sizeof(reason));
    ck_assert_int_eq(csgi_ws_close(ws, 1000, (struct csgi_str){reason, 124}), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_close(ws, 1000, csgi_str_c("\xff")), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_close(ws, 0, csgi_str_c("why")), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_close(ws, 1000, (struct csgi_str){NULL, 1}), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_close(NULL, 1000, csgi_str_c("")), CSGI_EINVAL);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 0);
    ck_assert_int_eq(csgi_ws_state(ws), CSGI_WS_OPEN);
    ck_assert_int_eq(csgi_ws_close(ws, 4999, (struct csgi_str){reason, 123}), 0);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 2 + 125);
    csgi_ws_free(ws);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Output queue                                                        */
/* ------------------------------------------------------------------ */

START_TEST(util_ws_output_bound)
{
    const struct csgi_ws_config cfg = {.version = CSGI_WS_CONFIG_VERSION, .max_output = 100};
    struct csgi_ws *ws = csgi_ws_new(&cfg);
    static uint8_t data[200];
    const uint8_t *p;

    memset(data, 'd', sizeof(data));
    ck_assert_int_eq(csgi_ws_send_binary(ws, data, 98), 0); /* 2 + 98: exactly the bound */
    ck_assert_int_eq(csgi_ws_send_text(ws, "", 0), CSGI_ETOOBIG);
    ck_assert_int_eq(csgi_ws_send_ping(ws, "", 0), CSGI_ETOOBIG);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 100);
    /* A partial write makes room for exactly that much. */
    ck_assert_int_eq(csgi_ws_consumed(ws, 101), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_consumed(ws, 50), 0);
    ck_assert_uint_eq(csgi_ws_pending(ws, (const void **)&p), 50);
    ck_assert_uint_eq(p[0], 'd');
    ck_assert_int_eq(csgi_ws_send_binary(ws, data, 49), CSGI_ETOOBIG);
    ck_assert_int_eq(csgi_ws_send_binary(ws, data, 48), 0);
    ck_assert_uint_eq(csgi_ws_pending(ws, (const void **)&p), 100);
    ck_assert_uint_eq(p[50], 0x82);
    ck_assert_uint_eq(p[51], 48);
    /* A message larger than the bound can never be sent. */
    ck_assert_int_eq(csgi_ws_consumed(ws, 100), 0);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 0);
    ck_assert_int_eq(csgi_ws_send_binary(ws, data, 200), CSGI_ETOOBIG);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 0);
    /* The closing frame always fits. */
    ck_assert_int_eq(csgi_ws_send_binary(ws, data, 98), 0);
    ck_assert_int_eq(csgi_ws_close(ws, 1001, csgi_str_c("going")), 0);
    ck_assert_uint_eq(csgi_ws_pending(ws, (const void **)&p), 100 + 9);
    ck_assert_uint_eq(p[100], 0x88);
    csgi_ws_free(ws);
}
END_TEST

/* A ping flood against a reader that does not drain: refused with 1008, memory bounded. */
START_TEST(util_ws_ping_flood)
{
    const struct csgi_ws_config cfg = {.version = CSGI_WS_CONFIG_VERSION, .max_output = 1000};
    struct csgi_ws *ws = csgi_ws_new(&cfg);
    static uint8_t payload[100], buf[64 * 120];
    size_t n = 0;

    for (int i = 0; i < 64; i++)
        n += client_frame(buf + n, CSGI_WS_OP_PING, payload, 100);
    got_reset();
    {
        size_t off = 0, used;
        struct csgi_ws_event ev;
        int pings = 0, rc;

        while ((rc = csgi_ws_feed(ws, buf + off, n - off, &used, &ev)) == 1) {
            off += used;
            if (ev.type != CSGI_WS_EV_PING)
                break;
            pings++;
        }
        ck_assert_int_eq(pings, 9); /* 9 pongs of 102 bytes fit in 1000 */
        ck_assert_int_eq(ev.type, CSGI_WS_EV_ERROR);
        ck_assert_uint_eq(ev.code, CSGI_WS_CLOSE_POLICY);
    }
    ck_assert_uint_le(csgi_ws_pending(ws, NULL), 1000 + 2 + 125);
    csgi_ws_free(ws);
}
END_TEST

START_TEST(util_ws_no_auto_pong)
{
    const struct csgi_ws_config cfg = {.version = CSGI_WS_CONFIG_VERSION,
                                       .flags = CSGI_WS_NO_AUTO_PONG};
    uint8_t buf[32];
    size_t n = client_frame(buf, CSGI_WS_OP_PING, "hb", 2);
    struct csgi_ws *ws = feed_split(&cfg, buf, n, 0);

    ck_assert_int_eq(got.ev[0].type, CSGI_WS_EV_PING);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 0);
    ck_assert_int_eq(csgi_ws_send_pong(ws, "hb", 2), 0);
    {
        static const uint8_t want[] = {0x8a, 0x02, 'h', 'b'};
        assert_output(ws, want, 4);
    }
    csgi_ws_free(ws);
}
END_TEST

START_TEST(util_ws_arguments)
{
    const struct csgi_ws_config v0 = {0};
    struct csgi_ws *ws = csgi_ws_new(NULL);
    struct csgi_ws_event ev;
    size_t used;
    static uint8_t big[126];

    ck_assert_ptr_null(csgi_ws_new(&v0));
    csgi_ws_free(NULL);
    ck_assert_int_eq(csgi_ws_state(NULL), CSGI_WS_CLOSED);
    ck_assert_uint_eq(csgi_ws_pending(NULL, NULL), 0);
    ck_assert_int_eq(csgi_ws_consumed(NULL, 0), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_feed(NULL, "", 0, &used, &ev), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_feed(ws, NULL, 1, &used, &ev), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_feed(ws, "", 0, NULL, &ev), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_feed(ws, "", 0, &used, NULL), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_feed(ws, NULL, 0, &used, &ev), 0);
    ck_assert_int_eq(csgi_ws_send_text(ws, NULL, 1), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_send_ping(ws, big, 126), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_send_pong(ws, big, 126), CSGI_EINVAL);
    ck_assert_int_eq(csgi_ws_send_ping(ws, big, 125), 0);
    ck_assert_int_eq(csgi_ws_send_text(ws, NULL, 0), 0);
    ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 127 + 2);
    ck_assert_int_eq(csgi_ws_consumed(ws, 0), 0);
    csgi_ws_free(ws);
}
END_TEST

/* A chat-like stream: many messages through one codec, its buffers reused and released. */
START_TEST(util_ws_many_messages)
{
    static uint8_t payload[100000], buf[100000 + 14];
    struct csgi_ws *ws = csgi_ws_new(NULL);
    size_t sizes[] = {5, 70000, 3, 100000, 0, 12};

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)('a' + i % 26);
    for (int round = 0; round < 3; round++) {
        for (size_t s = 0; s < N_OF(sizes); s++) {
            size_t n = client_frame(buf, CSGI_WS_OP_TEXT, payload, sizes[s]);
            struct csgi_ws_event ev;
            size_t used;
            const void *out;

            ck_assert_int_eq(csgi_ws_feed(ws, buf, n, &used, &ev), 1);
            ck_assert_uint_eq(used, n);
            ck_assert_int_eq(ev.type, CSGI_WS_EV_TEXT);
            ck_assert_uint_eq(ev.data.len, sizes[s]);
            ck_assert_mem_eq(ev.data.ptr, payload, sizes[s]);
            ck_assert_int_eq(ev.data.ptr[sizes[s]], 0);
            /* Echo it and drain the output in two writes. */
            ck_assert_int_eq(csgi_ws_send_text(ws, ev.data.ptr, ev.data.len), 0);
            n = csgi_ws_pending(ws, &out);
            ck_assert_int_eq(csgi_ws_consumed(ws, n / 2), 0);
            ck_assert_int_eq(csgi_ws_consumed(ws, n - n / 2), 0);
            ck_assert_uint_eq(csgi_ws_pending(ws, NULL), 0);
        }
    }
    csgi_ws_free(ws);
}
END_TEST

static Suite *
util_ws_suite(void)
{
    Suite *s = suite_create("util_ws");
    TCase *tc = tcase_create("handshake");

    tcase_add_test(tc, util_ws_accept_rfc_sample);
    tcase_add_test(tc, util_ws_handshake_valid);
    tcase_add_test(tc, util_ws_handshake_lists);
    tcase_add_test(tc, util_ws_handshake_cases);
    tcase_add_test(tc, util_ws_select_protocol);
    suite_add_tcase(s, tc);

    tc = tcase_create("rfc_examples");
    tcase_add_test(tc, util_ws_rfc_masked_hello);
    tcase_add_test(tc, util_ws_rfc_unmasked_hello);
    tcase_add_test(tc, util_ws_rfc_fragmented);
    tcase_add_test(tc, util_ws_rfc_ping_pong);
    tcase_add_test(tc, util_ws_rfc_lengths);
    suite_add_tcase(s, tc);

    tc = tcase_create("frames");
    tcase_add_test(tc, util_ws_rsv_bits);
    tcase_add_test(tc, util_ws_unknown_opcodes);
    tcase_add_test(tc, util_ws_control_rules);
    tcase_add_test(tc, util_ws_fragment_order);
    tcase_add_test(tc, util_ws_fragments_and_control);
    tcase_add_test(tc, util_ws_length_top_bit);
    tcase_add_test(tc, util_ws_too_big);
    tcase_add_test(tc, util_ws_refuses_after_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("utf8");
    tcase_add_test(tc, util_ws_utf8_fragments);
    tcase_add_test(tc, util_ws_utf8_fail_fast);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_test(tc, util_ws_close_codes);
    tcase_add_test(tc, util_ws_close_payloads);
    tcase_add_test(tc, util_ws_close_initiated);
    tcase_add_test(tc, util_ws_close_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_test(tc, util_ws_output_bound);
    tcase_add_test(tc, util_ws_ping_flood);
    tcase_add_test(tc, util_ws_no_auto_pong);
    tcase_add_test(tc, util_ws_arguments);
    tcase_add_test(tc, util_ws_many_messages);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_ws_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
