/*
 * Fuzz target: the WebSocket codec (csgi/websocket.h). The first byte picks
 * the limits, the second how the input is cut into feed() calls and how much
 * output the "transport" drains between them; the rest is what the peer
 * sends. Every message is echoed, every ping and close goes through the
 * codec's own replies, so the output queue sees traffic.
 *
 * Invariants: no crash; events are well formed (text is UTF-8, payloads are
 * NUL-terminated and within the limits, close and error codes are ones a
 * server may see or send); the state only moves forward and a closed codec
 * refuses input; queued output stays within max_output plus one closing
 * frame; and the whole output stream parses as valid unmasked server frames,
 * with nothing after the close frame. The checks here are written apart from
 * the codec's own, so that one does not vouch for itself.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/websocket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode one code point at p[0..n); returns its length, or 0 when invalid. */
static size_t
utf8_one(const uint8_t *p, size_t n)
{
    uint32_t cp;
    size_t len;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
        return 0; /* overlong */
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int
utf8_ok(const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t k = utf8_one(p, n);
        if (!k)
            return 0;
        p += k;
        n -= k;
    }
    return 1;
}

static int
code_ok(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* Everything the codec ever queued, in order. */
struct sink {
    uint8_t *p;
    size_t len, cap;
};

static void
sink_add(struct sink *s, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->p = realloc(s->p, s->cap);
        assert(s->p);
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
}

/* Move up to @p n pending bytes to the sink, as a transport's write would. */
static void
drain(struct csgi_ws *ws, struct sink *s, size_t n)
{
    const void *p;
    size_t have = csgi_ws_pending(ws, &p);

    if (n > have)
        n = have;
    sink_add(s, p, n);
    assert(csgi_ws_consumed(ws, n) == 0);
}

/* The output stream: whole, valid server frames, nothing after a close. */
static void
check_output(const uint8_t *p, size_t n, size_t max_message)
{
    size_t off = 0;
    int closed = 0;

    while (off < n) {
        unsigned b0, b1, op;
        uint64_t len;
        size_t h = 2;

        assert(!closed);
        assert(n - off >= 2);
        b0 = p[off];
        b1 = p[off + 1];
        op = b0 & 0x0F;
        assert(b0 & 0x80);        /* FIN: the codec does not fragment */
        assert((b0 & 0x70) == 0); /* no RSV bits */
        assert((b1 & 0x80) == 0); /* servers do not mask */
        assert(op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
        len = b1 & 0x7F;
        if (len == 126) {
            assert(n - off >= 4);
            len = (uint64_t)p[off + 2] << 8 | p[off + 3];
            assert(len >= 126); /* minimal encoding */
            h = 4;
        } else if (len == 127) {
            assert(n - off >= 10);
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[off + 2 + i];
            assert(len > 0xFFFF);
            h = 10;
        }
        assert(len <= n - off - h);
        if (op & 8)
            assert(len <= 125);
        else
            assert(len <= max_message);
        if (op == 1)
            assert(utf8_ok(p + off + h, (size_t)len));
        if (op == 8) {
            assert(len != 1);
            if (len >= 2) {
                assert(code_ok((unsigned)p[off + h] << 8 | p[off + h + 1]));
                assert(utf8_ok(p + off + h + 2, (size_t)len - 2));
            }
            closed = 1;
        }
        off += h + (size_t)len;
    }
}

/* Check one event and react as an echo application would. */
static void
on_event(struct csgi_ws *ws, const struct csgi_ws_event *ev, size_t max_message)
{
    const uint8_t *d = (const uint8_t *)ev->data.ptr;

    assert(ev->data.len == 0 || d);
    if (d)
        assert(d[ev->data.len] == 0);
    switch (ev->type) {
    case CSGI_WS_EV_TEXT:
        assert(utf8_ok(d, ev->data.len));
        assert(ev->data.len <= max_message);
        /* Echo; a full queue is the application's problem, not an invariant break. */
        {
            int rc = csgi_ws_send_text(ws, d, ev->data.len);
            assert(rc == 0 || rc == CSGI_ETOOBIG || rc == CSGI_ESTATE);
        }
        break;
    case CSGI_WS_EV_BINARY: {
        int rc = csgi_ws_send_binary(ws, d, ev->data.len);
        assert(ev->data.len <= max_message);
        assert(rc == 0 || rc == CSGI_ETOOBIG || rc == CSGI_ESTATE);
        break;
    }
    case CSGI_WS_EV_PING:
    case CSGI_WS_EV_PONG:
        assert(ev->data.len <= 125);
        break;
    case CSGI_WS_EV_CLOSE:
        assert(ev->code == CSGI_WS_CLOSE_NO_STATUS || code_ok(ev->code));
        assert(ev->code != CSGI_WS_CLOSE_NO_STATUS || ev->data.len == 0);
        assert(ev->data.len <= 123 && utf8_ok(d, ev->data.len));
        assert(csgi_ws_state(ws) == CSGI_WS_CLOSED);
        break;
    case CSGI_WS_EV_ERROR:
        assert(ev->code == 1002 || ev->code == 1007 || ev->code == 1008 || ev->code == 1009 ||
               ev->code == 1011);
        assert(csgi_ws_state(ws) == CSGI_WS_CLOSED);
        break;
    default:
        assert(0);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct csgi_ws_config cfg = {.version = CSGI_WS_CONFIG_VERSION};
    struct sink out = {0};
    struct csgi_ws *ws;
    size_t off = 2, step, write_size;
    int state = CSGI_WS_OPEN;

    if (size < 2)
        return 0;
    /* Small limits most of the time, so that the fuzzer reaches them. */
    cfg.max_message = (data[0] & 0x0F) == 0 ? 0 : (size_t)(data[0] & 0x0F) * 37;
    cfg.max_output = (data[0] >> 4) == 0 ? 0 : (size_t)(data[0] >> 4) * 61;
    if (data[1] & 0x80)
        cfg.flags |= CSGI_WS_NO_AUTO_PONG;
    step = (data[1] & 0x0F) + 1;
    write_size = ((data[1] >> 4) & 0x07) * 13 + 1;
    ws = csgi_ws_new(&cfg);
    assert(ws);
    if ((data[1] & 0x70) == 0x70)
        assert(csgi_ws_close(ws, 1000, (struct csgi_str){"bye", 3}) == 0);
    while (off < size) {
        size_t piece = size - off < step ? size - off : step, used = 0;
        struct csgi_ws_event ev;
        int rc = csgi_ws_feed(ws, data + off, piece, &used, &ev);

        assert(used <= piece);
        if (rc < 0) {
            assert(rc == CSGI_ESTATE && state == CSGI_WS_CLOSED && used == 0);
            break;
        }
        assert(rc == 0 ? used == piece && ev.type == CSGI_WS_EV_NONE : rc == 1);
        if (rc == 1)
            on_event(ws, &ev, cfg.max_message ? cfg.max_message : CSGI_WS_DEFAULT_MAX_MESSAGE);
        /* The state only moves forward. */
        assert(csgi_ws_state(ws) >= state);
        state = csgi_ws_state(ws);
        assert(csgi_ws_pending(ws, NULL) <=
               (cfg.max_output ? cfg.max_output : CSGI_WS_DEFAULT_MAX_OUTPUT) + 2 + 125);
        drain(ws, &out, write_size);
        off += used;
    }
    drain(ws, &out, SIZE_MAX);
    check_output(out.p, out.len, cfg.max_message ? cfg.max_message : CSGI_WS_DEFAULT_MAX_MESSAGE);
    csgi_ws_free(ws);
    free(out.p);
    return 0;
}
