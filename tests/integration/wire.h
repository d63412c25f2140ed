/*
 * A raw-socket HTTP/1.x client for the integration tests, for what libcurl
 * hides: how a response was framed (Content-Length, chunked, close-delimited),
 * when each chunk arrived, whether the body was cut short, whether the server
 * closed the connection, and pipelining (several requests in one send()).
 * Loopback only. Every wait is bounded by a deadline.
 */
#ifndef CSGI_TEST_WIRE_H
#define CSGI_TEST_WIRE_H

#include <stddef.h>

/* How a response body was delimited (values match enum csgi_test_framing). */
enum wire_framing {
    /* No response arrived (the connection closed or timed out before a status line). */
    WIRE_FRAMING_NONE = 0,
    /* Content-Length. */
    WIRE_FRAMING_LENGTH = 1,
    /* Transfer-Encoding: chunked. */
    WIRE_FRAMING_CHUNKED = 2,
    /* Neither: the body ends when the server closes the connection. */
    WIRE_FRAMING_CLOSE = 3
};

/* One chunk of a chunked body. */
struct wire_chunk {
    /* Its size in bytes (the terminating zero-size chunk is not listed). */
    size_t size;
    /* CLOCK_MONOTONIC ms at which its size line had arrived. */
    long long at_ms;
};

/* One connection to 127.0.0.1. Zero-initialise, then wire_connect(). */
struct wire_conn {
    int fd;
    /* Received bytes not consumed yet. */
    char *buf;
    size_t len, cap;
    /* The peer closed (or reset) the connection. */
    int eof;
    /* CLOCK_MONOTONIC ms of the last recv() that returned data. */
    long long last_ms;
    /* Slow reader: at most this many bytes per recv() (0: no limit). */
    size_t read_max;
    /* Slow reader: sleep this long after each recv() that returned data. */
    int read_pause_ms;
};

/* One response. Free with wire_resp_free(). */
struct wire_resp {
    /* The final status (interim 1xx responses are skipped); 0 when none arrived. */
    int status;
    /* x of HTTP/1.x in the status line. */
    int minor;
    /* The status line and header lines, CRLFs kept, without the empty line; NUL-terminated. */
    char *head;
    /* enum wire_framing, read from the headers (also for HEAD, 204 and 304). */
    int framing;
    /* The Content-Length header, or -1. */
    long long content_length;
    /* Body bytes received (none for HEAD, 204, 304); NUL-terminated. */
    char *body;
    size_t body_len;
    /* Chunked bodies: one entry per non-empty chunk, in order. */
    struct wire_chunk *chunks;
    size_t n_chunks;
    /* The body was delimited completely (all Content-Length bytes, the chunked
     * end, or the close for a close-delimited body); 1 when there is no body. */
    int complete;
    /* The peer had closed the connection when the response was read. */
    int closed;
    /* The deadline passed before the response was complete. */
    int timed_out;
    /* CLOCK_MONOTONIC ms when the head was complete, and when the response was. */
    long long head_ms;
    long long end_ms;
};

/* CLOCK_MONOTONIC in milliseconds. */
long long wire_now_ms(void);

/* Sleep @p ms milliseconds. */
void wire_sleep_ms(int ms);

/*
 * Connect to 127.0.0.1:@p port. @p rcvbuf > 0 sets SO_RCVBUF first (a slow
 * reader). Sends time out after 30 s.
 * @return 0, or -1 (errno set).
 */
int wire_connect(struct wire_conn *c, int port, int rcvbuf);

/* Send all @p len bytes. @return 0, or -1 when the connection failed. */
int wire_send(struct wire_conn *c, const void *data, size_t len);

/*
 * Read one response to a request made with @p method ("HEAD" reads no body),
 * waiting at most @p timeout_ms in all. On return *r is always set (status 0
 * when nothing arrived).
 * @return 0 when a complete response was read, -1 otherwise (see r->timed_out,
 *         r->complete, r->status).
 */
int wire_read(struct wire_conn *c, const char *method, int timeout_ms, struct wire_resp *r);

/*
 * Wait up to @p ms for the peer to close the connection.
 * @return 1 when it closed (or had closed) with no further bytes, 0 when it
 *         stayed open, -1 when bytes arrived instead.
 */
int wire_wait_close(struct wire_conn *c, int ms);

/*
 * Receive into c->buf (kept NUL-terminated, nothing consumed) until it holds
 * @p needle, or, with @p needle NULL, until the peer closed. Waits at most
 * @p timeout_ms. @return 1 when it does (or did), 0 otherwise.
 */
int wire_recv_until(struct wire_conn *c, const char *needle, int timeout_ms);

/*
 * The first header called @p name (ASCII case-insensitive), its value without
 * surrounding whitespace, copied into @p out.
 * @return out, or NULL when there is no such header.
 */
const char *wire_header(const struct wire_resp *r, const char *name, char *out, size_t cap);

/* Number of headers called @p name. */
size_t wire_header_count(const struct wire_resp *r, const char *name);

/* A printable description of the framing ("length", "chunked", "close", "none"). */
const char *wire_framing_name(int framing);

void wire_resp_free(struct wire_resp *r);

/* Close the connection and free its buffer. */
void wire_close(struct wire_conn *c);

#endif
