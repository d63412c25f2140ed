/*
 * CSGI WebSocket protocol codec (RFC 6455), server role.
 *
 * Part of libcsgi-util (see util.h): nothing here is part of the plugin ABI.
 * The codec is pure code: it owns no socket, starts no thread and calls no
 * host service. The transport (the host's upgraded connection) hands it the
 * bytes it reads with csgi_ws_feed() and writes out what csgi_ws_pending()
 * shows; the application in between sees whole messages, never frames.
 *
 * Design:
 * - Pull, one event at a time: csgi_ws_feed() consumes input up to and
 *   including the end of the next event and returns it, so the caller loops
 *   until its bytes are used up. Input may be split anywhere (one byte per
 *   call works). An event's payload lives in the codec and stays valid until
 *   the next csgi_ws_feed() or csgi_ws_free().
 * - Messages are assembled from fragments in one buffer that is reused from
 *   message to message (no allocation per frame once it is large enough) and
 *   bounded by max_message: a message that would exceed it is refused with
 *   close code 1009 as soon as a frame header announces the length, before
 *   any of it is buffered. Text is validated as UTF-8 while it arrives,
 *   across fragments (close code 1007 at the first bad byte).
 * - Control frames (at most 125 bytes) use a fixed buffer in the object. The
 *   codec answers a ping with a pong and the peer's close with the closing
 *   frame itself, and on a protocol violation queues the close frame with the
 *   RFC's code and refuses further input (RFC 6455 7.1.7).
 * - Output is one queue of unmasked server frames, drained by the transport
 *   with csgi_ws_pending() and csgi_ws_consumed() (partial writes are fine),
 *   bounded by max_output: a send that would exceed it fails with
 *   CSGI_ETOOBIG and queues nothing, so a slow reader cannot grow memory
 *   without limit. The closing frame is always accepted.
 * - Only the server role: client frames must be masked, server frames are
 *   not. No extensions (permessage-deflate is not negotiated).
 *
 * Not thread-safe: one connection is used by one thread at a time.
 */
#ifndef CSGI_WEBSOCKET_H
#define CSGI_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Opening handshake (RFC 6455 4.2)                                    */
/* ------------------------------------------------------------------ */

/** The GUID appended to Sec-WebSocket-Key before hashing (RFC 6455 1.3). */
#define CSGI_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/** Bytes for a Sec-WebSocket-Accept value with its NUL terminator (28 + 1). */
#define CSGI_WS_ACCEPT_SIZE 29

/**
 * Decide whether a request is a WebSocket opening handshake, and compute the
 * Sec-WebSocket-Accept value for it. A handshake is a GET over HTTP/1.1 or
 * later with an Upgrade header listing the "websocket" token and a
 * Connection header listing "upgrade" (both ASCII case-insensitive, in any
 * of the headers of that name), one Sec-WebSocket-Version of exactly "13",
 * and one Sec-WebSocket-Key that is base64 of 16 bytes.
 * @param env    the request; borrowed.
 * @param accept out: the NUL-terminated Sec-WebSocket-Accept value when the
 *               result is 101; untouched otherwise. May be NULL.
 * @return 101: a valid handshake (answer 101 Switching Protocols);
 *         200: not a WebSocket request (no Upgrade: websocket): serve it as
 *         plain HTTP;
 *         426: a WebSocket request of another version: answer 426 with
 *         "Sec-WebSocket-Version: 13";
 *         400: a malformed WebSocket request (wrong method or HTTP version,
 *         no Connection: upgrade, missing, repeated or bad key, missing
 *         version): answer 400;
 *         CSGI_EINVAL when @p env is NULL.
 */
int csgi_ws_handshake_check(const struct csgi_environ *env, char accept[CSGI_WS_ACCEPT_SIZE]);

/**
 * Compute Sec-WebSocket-Accept for a key: base64(SHA-1(key + CSGI_WS_GUID)).
 * The key is used as given (not checked; csgi_ws_handshake_check() checks).
 * @param key    the Sec-WebSocket-Key value, trimmed; borrowed.
 * @param accept out: the NUL-terminated 28-character value.
 * @return 0, or CSGI_EINVAL for a NULL @p accept or a NULL key with a length.
 */
int csgi_ws_accept_key(struct csgi_str key, char accept[CSGI_WS_ACCEPT_SIZE]);

/**
 * Choose the subprotocol: the first of @p supported (the server's order of
 * preference) that the client offered in any Sec-WebSocket-Protocol header
 * (comma-separated tokens; names compare exactly, they are case-sensitive).
 * Answer with "Sec-WebSocket-Protocol: <supported[*chosen]>"; without a
 * choice, send no such header.
 * @param supported NUL-terminated names; borrowed.
 * @param chosen    out: the index into @p supported.
 * @return 0 with a choice; CSGI_ENOENT when the client offered none of them
 *         (or nothing); CSGI_EINVAL for NULL arguments.
 */
int csgi_ws_select_protocol(const struct csgi_environ *env, const char *const *supported,
                            size_t n_supported, size_t *chosen);

/* ------------------------------------------------------------------ */
/* Connection codec                                                    */
/* ------------------------------------------------------------------ */

/** Frame opcodes (RFC 6455 5.2). */
enum csgi_ws_opcode {
    CSGI_WS_OP_CONTINUATION = 0x0,
    CSGI_WS_OP_TEXT = 0x1,
    CSGI_WS_OP_BINARY = 0x2,
    CSGI_WS_OP_CLOSE = 0x8,
    CSGI_WS_OP_PING = 0x9,
    CSGI_WS_OP_PONG = 0xA
};

/** Close status codes (RFC 6455 7.4.1) the codec uses. */
enum csgi_ws_close_code {
    CSGI_WS_CLOSE_NORMAL = 1000,
    CSGI_WS_CLOSE_GOING_AWAY = 1001,
    CSGI_WS_CLOSE_PROTOCOL_ERROR = 1002,
    CSGI_WS_CLOSE_UNSUPPORTED = 1003,
    /** Reported for a close frame without a code; never sent. */
    CSGI_WS_CLOSE_NO_STATUS = 1005,
    CSGI_WS_CLOSE_INVALID_DATA = 1007,
    CSGI_WS_CLOSE_POLICY = 1008,
    CSGI_WS_CLOSE_TOO_BIG = 1009,
    CSGI_WS_CLOSE_INTERNAL_ERROR = 1011
};

/** Connection states, from the codec's point of view. */
enum csgi_ws_state {
    /** Messages flow both ways. */
    CSGI_WS_OPEN = 0,
    /**
     * We sent a close frame and wait for the peer's; input is still read.
     * The transport bounds the wait with a timer of its own and then closes
     * the TCP connection (RFC 6455 7.1.1 allows it).
     */
    CSGI_WS_CLOSING = 1,
    /**
     * Both sides are done (the closing handshake completed, or the
     * connection failed): drain csgi_ws_pending(), then close the TCP
     * connection. Input and sends are refused.
     */
    CSGI_WS_CLOSED = 2
};

/** struct csgi_ws_event.type. */
enum csgi_ws_event_type {
    CSGI_WS_EV_NONE = 0,
    /** A whole text message, valid UTF-8: @c data. */
    CSGI_WS_EV_TEXT = 1,
    /** A whole binary message: @c data. */
    CSGI_WS_EV_BINARY = 2,
    /** A ping with its payload in @c data; the pong is queued already unless CSGI_WS_NO_AUTO_PONG.
     */
    CSGI_WS_EV_PING = 3,
    /** A pong with its payload in @c data. */
    CSGI_WS_EV_PONG = 4,
    /**
     * The peer's close frame: @c code (CSGI_WS_CLOSE_NO_STATUS when it had
     * none) and the UTF-8 reason in @c data. When the peer closed first, the
     * codec queued the reply echoing the code. The state is CSGI_WS_CLOSED.
     */
    CSGI_WS_EV_CLOSE = 5,
    /**
     * The peer broke the protocol or a limit: @c code is the close code the
     * codec queued (1002, 1007, 1008 or 1009), @c data a static description
     * for the log. The state is CSGI_WS_CLOSED.
     */
    CSGI_WS_EV_ERROR = 6
};

/** One event from csgi_ws_feed(). */
struct csgi_ws_event {
    /** enum csgi_ws_event_type. */
    int type;
    /** For CSGI_WS_EV_CLOSE and CSGI_WS_EV_ERROR: the close code; else 0. */
    unsigned code;
    /**
     * The payload (see the event types). Valid until the next csgi_ws_feed()
     * or csgi_ws_free(); do not free. data.ptr[data.len] is a NUL byte for
     * every event with a payload, so a text message is also a C string (one
     * without NUL bytes inside, unless the peer sent U+0000).
     */
    struct csgi_str data;
};

/** struct csgi_ws_config.flags. */
enum csgi_ws_flags {
    /** Do not answer pings: the application calls csgi_ws_send_pong() itself. */
    CSGI_WS_NO_AUTO_PONG = 1u << 0
};

/** Default struct csgi_ws_config.max_message: 1 MiB. */
#define CSGI_WS_DEFAULT_MAX_MESSAGE ((size_t)1 << 20)
/** Default struct csgi_ws_config.max_output: 2 MiB, room for a max_message echo and more. */
#define CSGI_WS_DEFAULT_MAX_OUTPUT ((size_t)2 << 20)
/** The largest control frame payload (RFC 6455 5.5). */
#define CSGI_WS_MAX_CONTROL 125

/** Limits and options of a connection; zero fields take the defaults. */
struct csgi_ws_config {
#define CSGI_WS_CONFIG_VERSION 1
    uint32_t version;
    /** enum csgi_ws_flags. */
    uint32_t flags;
    /** The largest message accepted, in bytes, after reassembly (0: the default). */
    size_t max_message;
    /**
     * The most output queued and not yet consumed, in bytes, frame headers
     * included (0: the default). The closing frame is always queued.
     */
    size_t max_output;
};

/** A connection's codec state. Opaque. */
struct csgi_ws;

/**
 * Create the codec for one upgraded connection, in the CSGI_WS_OPEN state.
 * It allocates with malloc(): a WebSocket outlives the request whose arena
 * the other helpers use.
 * @param cfg limits and options; NULL for the defaults. Read, not retained.
 * @return the codec (Caller owns; release with csgi_ws_free()), or NULL when
 *         out of memory or @p cfg has version 0.
 */
struct csgi_ws *csgi_ws_new(const struct csgi_ws_config *cfg);

/** Release the codec and everything it holds. NULL is ignored. */
void csgi_ws_free(struct csgi_ws *ws);

/**
 * Parse received bytes up to the next event.
 * @param data the bytes read from the peer; borrowed, not retained.
 * @param used out: how many of @p len bytes were consumed. The caller hands
 *             the rest in again (the codec does not keep them).
 * @param ev   out: the event when the result is 1; type CSGI_WS_EV_NONE otherwise.
 * @return 1 with an event; 0 when all @p len bytes were consumed without
 *         completing one (feed more); CSGI_ESTATE in the CSGI_WS_CLOSED state
 *         (after a close or error event: read no more); CSGI_EINVAL for
 *         NULL arguments (NULL @p data is fine with @p len 0).
 */
int csgi_ws_feed(struct csgi_ws *ws, const void *data, size_t len, size_t *used,
                 struct csgi_ws_event *ev);

/**
 * Queue a text message (one frame). The bytes are copied.
 * @return 0; CSGI_EINVAL for invalid UTF-8 or NULL @p data with a length;
 *         CSGI_ETOOBIG when the output queue would exceed max_output
 *         (nothing is queued); CSGI_ESTATE unless the state is CSGI_WS_OPEN;
 *         CSGI_ENOMEM.
 */
int csgi_ws_send_text(struct csgi_ws *ws, const void *data, size_t len);

/** As csgi_ws_send_text(), for a binary message (any bytes). */
int csgi_ws_send_binary(struct csgi_ws *ws, const void *data, size_t len);

/**
 * Queue a ping (the peer's pong comes back as CSGI_WS_EV_PONG).
 * @return as csgi_ws_send_binary(); CSGI_EINVAL when @p len > 125.
 */
int csgi_ws_send_ping(struct csgi_ws *ws, const void *data, size_t len);

/** Queue a pong (unsolicited, or with CSGI_WS_NO_AUTO_PONG). As csgi_ws_send_ping(). */
int csgi_ws_send_pong(struct csgi_ws *ws, const void *data, size_t len);

/**
 * Start the closing handshake: queue a close frame and move to
 * CSGI_WS_CLOSING (no more messages may be sent; the peer's close frame,
 * read through csgi_ws_feed(), moves to CSGI_WS_CLOSED).
 * @param code   a code a endpoint may send: 1000-1003, 1007-1014 or
 *               3000-4999; or 0 to send a close frame without a code.
 * @param reason UTF-8, at most 123 bytes (none with code 0); borrowed.
 * @return 0; CSGI_EINVAL for a code or reason that may not be sent;
 *         CSGI_ESTATE unless the state is CSGI_WS_OPEN; CSGI_ENOMEM.
 */
int csgi_ws_close(struct csgi_ws *ws, unsigned code, struct csgi_str reason);

/**
 * The queued output not yet consumed, as one contiguous span.
 * @param data out: the first byte; Valid until the next call on @p ws other
 *             than csgi_ws_pending() and csgi_ws_state(). May be NULL.
 * @return the number of bytes (0 when nothing is queued, or @p ws is NULL).
 */
size_t csgi_ws_pending(const struct csgi_ws *ws, const void **data);

/**
 * Drop the first @p n pending bytes: the transport wrote them.
 * @return 0, or CSGI_EINVAL when @p n exceeds csgi_ws_pending().
 */
int csgi_ws_consumed(struct csgi_ws *ws, size_t n);

/** The state (enum csgi_ws_state); CSGI_WS_CLOSED for NULL. */
int csgi_ws_state(const struct csgi_ws *ws);

#ifdef __cplusplus
}
#endif

#endif /* CSGI_WEBSOCKET_H */
