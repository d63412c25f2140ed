/*
 * libcsgi-util: the WebSocket frame codec, server role (see csgi/websocket.h).
 *
 * A byte-at-a-time safe state machine: a frame header is collected into a
 * 14-byte array, then the payload is unmasked straight into the message
 * buffer (data frames) or the fixed control buffer (control frames). Every
 * check that the header allows is made when the header is complete, before
 * any payload is stored.
 */
#include <stdlib.h>
#include <string.h>

#include "csgi/websocket.h"

/* A buffer larger than this is released when idle, so idle connections stay small. */
#define WS_KEEP_BUFFER ((size_t)64 << 10)
/* 2 bytes, up to 8 of extended length, 4 of mask. */
#define WS_MAX_HEADER 14

/* Incremental UTF-8 check (RFC 3629): no overlongs, surrogates or > U+10FFFF. */
struct utf8_state {
    unsigned need;   /* continuation bytes still expected */
    unsigned lo, hi; /* the range of the next continuation byte */
};

struct csgi_ws {
    unsigned flags;
    int state;
    size_t max_message, max_output;

    /* The frame being parsed. */
    uint8_t hdr[WS_MAX_HEADER];
    size_t hdr_len, hdr_need;
    int in_payload;
    unsigned opcode, fin;
    uint8_t mask[4];
    unsigned mask_pos;
    uint64_t remaining;

    /* The data message being assembled: msg_opcode is 0 between messages. */
    unsigned msg_opcode;
    uint8_t *msg;
    size_t msg_len, msg_cap;
    struct utf8_state utf8;

    /* The control frame being read (with room for a NUL). */
    uint8_t ctl[CSGI_WS_MAX_CONTROL + 1];
    size_t ctl_len;

    /* Output: bytes [out_off, out_len) of out are pending. */
    uint8_t *out;
    size_t out_off, out_len, out_cap;
};

static void
utf8_reset(struct utf8_state *u)
{
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xBF;
}

/* Check @p n more bytes of a sequence. Returns 0, or -1 at the first invalid byte. */
static int
utf8_step(struct utf8_state *u, const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned b = p[i];

        if (u->need == 0) {
            /* ASCII runs, a word at a time. */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & UINT64_C(0x8080808080808080))
                    break;
                i += 8;
            }
            if (i == n)
                break;
            b = p[i++];
            if (b < 0x80)
                continue;
            u->lo = 0x80;
            u->hi = 0xBF;
            if (b >= 0xC2 && b <= 0xDF) {
                u->need = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                u->need = 2;
                if (b == 0xE0)
                    u->lo = 0xA0; /* overlong */
                else if (b == 0xED)
                    u->hi = 0x9F; /* surrogates */
            } else if (b >= 0xF0 && b <= 0xF4) {
                u->need = 3;
                if (b == 0xF0)
                    u->lo = 0x90; /* overlong */
                else if (b == 0xF4)
                    u->hi = 0x8F; /* beyond U+10FFFF */
            } else {
                return -1;
            }
            continue;
        }
        if (b < u->lo || b > u->hi)
            return -1;
        u->need--;
        u->lo = 0x80;
        u->hi = 0xBF;
        i++;
    }
    return 0;
}

/* 1 when [p, p + n) is complete, valid UTF-8. */
static int
utf8_valid(const void *p, size_t n)
{
    struct utf8_state u;

    utf8_reset(&u);
    return utf8_step(&u, p, n) == 0 && u.need == 0;
}

/* Codes a close frame may carry (RFC 6455 7.4; 1012-1014 are IANA-registered since). */
static int
close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

struct csgi_ws *
csgi_ws_new(const struct csgi_ws_config *cfg)
{
    struct csgi_ws *ws;

    if (cfg && cfg->version == 0)
        return NULL;
    ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->state = CSGI_WS_OPEN;
    ws->max_message = CSGI_WS_DEFAULT_MAX_MESSAGE;
    ws->max_output = CSGI_WS_DEFAULT_MAX_OUTPUT;
    if (cfg) {
        ws->flags = cfg->flags;
        if (cfg->max_message)
            ws->max_message = cfg->max_message;
        /* The buffer holds one byte more (the NUL): keep that sum from wrapping. */
        if (ws->max_message > SIZE_MAX / 2)
            ws->max_message = SIZE_MAX / 2;
        if (cfg->max_output)
            ws->max_output = cfg->max_output;
    }
    ws->hdr_need = 2;
    utf8_reset(&ws->utf8);
    return ws;
}

void
csgi_ws_free(struct csgi_ws *ws)
{
    if (!ws)
        return;
    free(ws->msg);
    free(ws->out);
    free(ws);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/* Make room for @p n more output bytes. Returns 0 or CSGI_ENOMEM. */
static int
out_reserve(struct csgi_ws *ws, size_t n)
{
    size_t live = ws->out_len - ws->out_off, cap;
    uint8_t *p;

    if (ws->out_cap - ws->out_len >= n)
        return 0;
    if (ws->out_off > 0) {
        memmove(ws->out, ws->out + ws->out_off, live);
        ws->out_off = 0;
        ws->out_len = live;
        if (ws->out_cap - live >= n)
            return 0;
    }
    cap = ws->out_cap ? ws->out_cap * 2 : 256;
    if (cap < live + n)
        cap = live + n;
    p = realloc(ws->out, cap);
    if (!p)
        return CSGI_ENOMEM;
    ws->out = p;
    ws->out_cap = cap;
    return 0;
}

/*
 * Append one unmasked frame with FIN set. @p force skips the max_output
 * bound (the closing frame). Returns 0, CSGI_ETOOBIG or CSGI_ENOMEM.
 */
static int
queue_frame(struct csgi_ws *ws, unsigned opcode, const void *data, size_t len, int force)
{
    size_t hlen = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
    size_t live = ws->out_len - ws->out_off;
    uint8_t *h;

    if (!force && (len > ws->max_output || live + hlen + len > ws->max_output))
        return CSGI_ETOOBIG;
    if (out_reserve(ws, hlen + len) < 0)
        return CSGI_ENOMEM;
    h = ws->out + ws->out_len;
    h[0] = (uint8_t)(0x80 | opcode);
    if (hlen == 2) {
        h[1] = (uint8_t)len;
    } else if (hlen == 4) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (len > 0)
        memcpy(h + hlen, data, len);
    ws->out_len += hlen + len;
    return 0;
}

/* Queue a close frame with @p code (0: none) and @p reason (already checked). */
static int
queue_close(struct csgi_ws *ws, unsigned code, const void *reason, size_t reason_len)
{
    uint8_t body[CSGI_WS_MAX_CONTROL];

    if (code == 0)
        return queue_frame(ws, CSGI_WS_OP_CLOSE, NULL, 0, 1);
    body[0] = (uint8_t)(code >> 8);
    body[1] = (uint8_t)code;
    if (reason_len > 0)
        memcpy(body + 2, reason, reason_len);
    return queue_frame(ws, CSGI_WS_OP_CLOSE, body, 2 + reason_len, 1);
}

static int
send_message(struct csgi_ws *ws, unsigned opcode, const void *data, size_t len)
{
    if (!ws || (!data && len > 0))
        return CSGI_EINVAL;
    if (ws->state != CSGI_WS_OPEN)
        return CSGI_ESTATE;
    if (opcode == CSGI_WS_OP_TEXT && !utf8_valid(data, len))
        return CSGI_EINVAL;
    if ((opcode & 0x8) && len > CSGI_WS_MAX_CONTROL)
        return CSGI_EINVAL;
    return queue_frame(ws, opcode, data, len, 0);
}

int
csgi_ws_send_text(struct csgi_ws *ws, const void *data, size_t len)
{
    return send_message(ws, CSGI_WS_OP_TEXT, data, len);
}

int
csgi_ws_send_binary(struct csgi_ws *ws, const void *data, size_t len)
{
    return send_message(ws, CSGI_WS_OP_BINARY, data, len);
}

int
csgi_ws_send_ping(struct csgi_ws *ws, const void *data, size_t len)
{
    return send_message(ws, CSGI_WS_OP_PING, data, len);
}

int
csgi_ws_send_pong(struct csgi_ws *ws, const void *data, size_t len)
{
    return send_message(ws, CSGI_WS_OP_PONG, data, len);
}

int
csgi_ws_close(struct csgi_ws *ws, unsigned code, struct csgi_str reason)
{
    int rc;

    if (!ws || (!reason.ptr && reason.len > 0))
        return CSGI_EINVAL;
    if (code != 0 && !close_code_valid(code))
        return CSGI_EINVAL;
    if ((code == 0 && reason.len > 0) || reason.len > CSGI_WS_MAX_CONTROL - 2 ||
        !utf8_valid(reason.ptr, reason.len))
        return CSGI_EINVAL;
    if (ws->state != CSGI_WS_OPEN)
        return CSGI_ESTATE;
    rc = queue_close(ws, code, reason.ptr, reason.len);
    if (rc < 0)
        return rc;
    ws->state = CSGI_WS_CLOSING;
    return 0;
}

size_t
csgi_ws_pending(const struct csgi_ws *ws, const void **data)
{
    if (!ws) {
        if (data)
            *data = NULL;
        return 0;
    }
    if (data)
        *data = ws->out ? ws->out + ws->out_off : NULL;
    return ws->out_len - ws->out_off;
}

int
csgi_ws_consumed(struct csgi_ws *ws, size_t n)
{
    if (!ws || n > ws->out_len - ws->out_off)
        return CSGI_EINVAL;
    ws->out_off += n;
    if (ws->out_off == ws->out_len) {
        ws->out_off = ws->out_len = 0;
        if (ws->out_cap > WS_KEEP_BUFFER) {
            free(ws->out);
            ws->out = NULL;
            ws->out_cap = 0;
        }
    }
    return 0;
}

int
csgi_ws_state(const struct csgi_ws *ws)
{
    return ws ? ws->state : CSGI_WS_CLOSED;
}

/* ------------------------------------------------------------------ */
/* Input                                                               */
/* ------------------------------------------------------------------ */

/*
 * Fail the connection (RFC 6455 7.1.7): queue a close frame with @p code
 * (unless ours is out already) and refuse further input. Returns 1 (the
 * error event).
 */
static int
fail(struct csgi_ws *ws, unsigned code, const char *why, struct csgi_ws_event *ev)
{
    if (ws->state == CSGI_WS_OPEN) {
        /* A failed allocation leaves the peer without a close frame; nothing better is possible. */
        (void)queue_close(ws, code, why, strlen(why));
    }
    ws->state = CSGI_WS_CLOSED;
    ev->type = CSGI_WS_EV_ERROR;
    ev->code = code;
    ev->data.ptr = why;
    ev->data.len = strlen(why);
    return 1;
}

/* Check the first two header bytes. Returns NULL, or why the frame is refused. */
static const char *
check_start(struct csgi_ws *ws)
{
    unsigned b0 = ws->hdr[0], b1 = ws->hdr[1], len7 = b1 & 0x7F;

    ws->fin = b0 & 0x80;
    ws->opcode = b0 & 0x0F;
    if (b0 & 0x70)
        return "reserved bits set without an extension";
    if (!(b1 & 0x80))
        return "unmasked client frame";
    switch (ws->opcode) {
    case CSGI_WS_OP_CONTINUATION:
        if (!ws->msg_opcode)
            return "continuation frame without a message to continue";
        break;
    case CSGI_WS_OP_TEXT:
    case CSGI_WS_OP_BINARY:
        if (ws->msg_opcode)
            return "new data frame inside a fragmented message";
        break;
    case CSGI_WS_OP_CLOSE:
    case CSGI_WS_OP_PING:
    case CSGI_WS_OP_PONG:
        if (!ws->fin)
            return "fragmented control frame";
        if (len7 > CSGI_WS_MAX_CONTROL)
            return "control frame longer than 125 bytes";
        break;
    default:
        return "unknown opcode";
    }
    ws->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    return NULL;
}

/* Make the message buffer hold @p need bytes plus a NUL. Returns 0 or CSGI_ENOMEM. */
static int
msg_reserve(struct csgi_ws *ws, size_t need)
{
    size_t cap;
    uint8_t *p;

    need += 1;
    if (ws->msg_len == 0 && ws->msg_cap > WS_KEEP_BUFFER && need <= WS_KEEP_BUFFER) {
        /* A new, small message after a large one: give the memory back. */
        free(ws->msg);
        ws->msg = NULL;
        ws->msg_cap = 0;
    }
    if (ws->msg_cap >= need)
        return 0;
    /* Grow geometrically for many small fragments, but never past the limit. */
    cap = ws->msg_cap * 2;
    if (cap < need)
        cap = need;
    if (cap > ws->max_message + 1)
        cap = ws->max_message + 1 > need ? ws->max_message + 1 : need;
    p = realloc(ws->msg, cap);
    if (!p)
        return CSGI_ENOMEM;
    ws->msg = p;
    ws->msg_cap = cap;
    return 0;
}

/*
 * The header is complete: check the length, prepare the payload's
 * destination. Returns 0, or 1 with an error event.
 */
static int
start_payload(struct csgi_ws *ws, struct csgi_ws_event *ev)
{
    const uint8_t *h = ws->hdr;
    unsigned len7 = h[1] & 0x7F;
    uint64_t len = len7;
    size_t mask_at = 2;

    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        mask_at = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63)
            return fail(ws, CSGI_WS_CLOSE_PROTOCOL_ERROR, "64-bit length with the top bit set", ev);
        mask_at = 10;
    }
    memcpy(ws->mask, h + mask_at, 4);
    ws->mask_pos = 0;
    ws->remaining = len;
    ws->hdr_len = 0;
    ws->hdr_need = 2;
    ws->in_payload = 1;
    if (ws->opcode & 0x8) {
        ws->ctl_len = 0;
        return 0;
    }
    if (ws->opcode != CSGI_WS_OP_CONTINUATION) {
        ws->msg_opcode = ws->opcode;
        ws->msg_len = 0;
        utf8_reset(&ws->utf8);
    }
    /* Decided from the header, before any of the payload is buffered. */
    if (len > ws->max_message - ws->msg_len)
        return fail(ws, CSGI_WS_CLOSE_TOO_BIG, "message too big", ev);
    if (msg_reserve(ws, ws->msg_len + (size_t)len) < 0)
        return fail(ws, CSGI_WS_CLOSE_INTERNAL_ERROR, "out of memory", ev);
    return 0;
}

/* Copy @p n payload bytes to @p dst, unmasking them. */
static void
unmask(struct csgi_ws *ws, uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;

    if (n >= 16) {
        uint8_t rot[8];
        uint64_t m, w;

        for (int k = 0; k < 8; k++)
            rot[k] = ws->mask[(ws->mask_pos + k) & 3];
        memcpy(&m, rot, 8);
        for (; n - i >= 8; i += 8) {
            memcpy(&w, src + i, 8);
            w ^= m;
            memcpy(dst + i, &w, 8);
        }
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ ws->mask[(ws->mask_pos + i) & 3];
    ws->mask_pos = (unsigned)((ws->mask_pos + n) & 3);
}

/* A close frame arrived whole. Returns 1 with the close or error event. */
static int
on_close_frame(struct csgi_ws *ws, struct csgi_ws_event *ev)
{
    unsigned code = CSGI_WS_CLOSE_NO_STATUS;
    /* Without a payload, an empty reason that still ends in the NUL at ctl[0]. */
    const uint8_t *reason = ws->ctl_len ? ws->ctl + 2 : ws->ctl;
    size_t reason_len = 0;

    if (ws->ctl_len == 1)
        return fail(ws, CSGI_WS_CLOSE_PROTOCOL_ERROR, "close frame of 1 byte", ev);
    if (ws->ctl_len >= 2) {
        code = (unsigned)ws->ctl[0] << 8 | ws->ctl[1];
        reason_len = ws->ctl_len - 2;
        if (!close_code_valid(code))
            return fail(ws, CSGI_WS_CLOSE_PROTOCOL_ERROR, "invalid close code", ev);
        if (!utf8_valid(reason, reason_len))
            return fail(ws, CSGI_WS_CLOSE_INVALID_DATA, "close reason is not UTF-8", ev);
    }
    if (ws->state == CSGI_WS_OPEN) {
        /* The peer closed first: echo its code (RFC 6455 5.5.1). */
        (void)queue_close(ws, code == CSGI_WS_CLOSE_NO_STATUS ? 0 : code, NULL, 0);
    }
    ws->state = CSGI_WS_CLOSED;
    ev->type = CSGI_WS_EV_CLOSE;
    ev->code = code;
    ev->data.ptr = (const char *)reason;
    ev->data.len = reason_len;
    return 1;
}

/* The payload is complete. Returns 0, or 1 with an event. */
static int
end_frame(struct csgi_ws *ws, struct csgi_ws_event *ev)
{
    ws->in_payload = 0;
    if (ws->opcode & 0x8) {
        ws->ctl[ws->ctl_len] = 0;
        ev->data.ptr = (const char *)ws->ctl;
        ev->data.len = ws->ctl_len;
        switch (ws->opcode) {
        case CSGI_WS_OP_PING:
            if (ws->state == CSGI_WS_OPEN && !(ws->flags & CSGI_WS_NO_AUTO_PONG) &&
                queue_frame(ws, CSGI_WS_OP_PONG, ws->ctl, ws->ctl_len, 0) < 0)
                return fail(ws, CSGI_WS_CLOSE_POLICY, "output queue full: cannot answer ping", ev);
            ev->type = CSGI_WS_EV_PING;
            return 1;
        case CSGI_WS_OP_PONG:
            ev->type = CSGI_WS_EV_PONG;
            return 1;
        default:
            return on_close_frame(ws, ev);
        }
    }
    if (!ws->fin)
        return 0;
    if (ws->msg_opcode == CSGI_WS_OP_TEXT && ws->utf8.need != 0)
        return fail(ws, CSGI_WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence",
                    ev);
    ws->msg[ws->msg_len] = 0;
    ev->type = ws->msg_opcode == CSGI_WS_OP_TEXT ? CSGI_WS_EV_TEXT : CSGI_WS_EV_BINARY;
    ev->data.ptr = (const char *)ws->msg;
    ev->data.len = ws->msg_len;
    /* The bytes stay in place until the next feed(); the next message starts over. */
    ws->msg_opcode = 0;
    ws->msg_len = 0;
    return 1;
}

/* Store up to @p n payload bytes. Returns the count taken, or sets *@p evr to 1 on an error. */
static size_t
take_payload(struct csgi_ws *ws, const uint8_t *p, size_t n, struct csgi_ws_event *ev, int *evr)
{
    size_t take = ws->remaining < n ? (size_t)ws->remaining : n;

    if (ws->opcode & 0x8) {
        unmask(ws, ws->ctl + ws->ctl_len, p, take);
        ws->ctl_len += take;
    } else {
        uint8_t *dst = ws->msg + ws->msg_len;
        unmask(ws, dst, p, take);
        ws->msg_len += take;
        if (ws->msg_opcode == CSGI_WS_OP_TEXT && utf8_step(&ws->utf8, dst, take) < 0)
            *evr = fail(ws, CSGI_WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8", ev);
    }
    ws->remaining -= take;
    return take;
}

int
csgi_ws_feed(struct csgi_ws *ws, const void *data, size_t len, size_t *used,
             struct csgi_ws_event *ev)
{
    const uint8_t *p = data;
    size_t i = 0;
    int r = 0;

    if (!ws || !used || !ev || (!data && len > 0))
        return CSGI_EINVAL;
    *used = 0;
    memset(ev, 0, sizeof(*ev));
    if (ws->state == CSGI_WS_CLOSED)
        return CSGI_ESTATE;
    while (i < len && r == 0) {
        if (ws->in_payload) {
            i += take_payload(ws, p + i, len - i, ev, &r);
            if (r == 0 && ws->remaining == 0)
                r = end_frame(ws, ev);
            continue;
        }
        ws->hdr[ws->hdr_len++] = p[i++];
        if (ws->hdr_len == 2) {
            const char *why = check_start(ws);
            if (why) {
                r = fail(ws, CSGI_WS_CLOSE_PROTOCOL_ERROR, why, ev);
                break;
            }
        }
        if (ws->hdr_len < ws->hdr_need)
            continue;
        r = start_payload(ws, ev);
        if (r == 0 && ws->remaining == 0)
            r = end_frame(ws, ev);
    }
    *used = i;
    return r;
}
