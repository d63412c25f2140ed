/*
 * The request-head checks of the host core: a pure function of the bytes a
 * transport received (method, version, target, header lines), with no HTTP
 * library types, so that it is unit-tested and fuzzed directly and both
 * transports refuse the same requests with the same status.
 */
#ifndef CSGI_HEAD_H
#define CSGI_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include <csgi/csgi.h>

#include "target.h"

/* What a transport received. Strings need not be NUL-terminated, except raw_target. */
struct csgi__head {
    const char *method;
    size_t method_len;
    const char *version;
    size_t version_len;
    /* The request-target as received, NUL-terminated after raw_target_len bytes. */
    const char *raw_target;
    size_t raw_target_len;
    /*
     * The header lines. Not const: for an absolute-form target the Host
     * line's value is replaced by the target's authority.
     */
    struct csgi_header *headers;
    size_t n_headers;
    /* The transport saw more header lines than it keeps (--max-headers). */
    int too_many_headers;
    /*
     * Pass any token method. csgi-server passes only the methods it knows
     * (501 for others, SPEC 4.2); the test client passes every token, so that
     * applications can be tested with methods of their own.
     */
    int any_method;
    /*
     * Optional (NULL: none): a Host value this connection sent before and
     * that was accepted, with the length of its name part. A Host of the same
     * bytes is not parsed again (keep-alive clients repeat it).
     */
    const char *known_host;
    size_t known_host_len;
    size_t known_host_name_len;
};

/* What the checks learned about an accepted head. */
struct csgi__head_facts {
    int http11;
    int head_request;
    /* Content-Length, or -1 when absent. */
    int64_t content_length;
    /* Transfer-Encoding: chunked. */
    int chunked;
    /* The host name the request is for (absolute-form target, else Host), or NULL. */
    const char *host;
    size_t host_len;
    /*
     * The Host header's value when there is one (head->known_host itself when
     * that matched), and the length of its name part.
     */
    struct csgi_str host_field;
    size_t host_field_name_len;
    /* Content-Type's value, or {NULL, 0}. */
    struct csgi_str content_type;
    /* The parsed target (its path is decoded into the caller's buffer). */
    struct csgi__target target;
};

/*
 * Check a request head. @p path_buf must hold raw_target_len + 1 bytes: it
 * receives the decoded path. Returns 0 and fills @p facts when the request
 * may go to an application; else the status to answer (400, 431, 501, 505)
 * with *@p why set to a static, lower-case reason (@p facts, its target in
 * particular, are then not to be read). Every refusal means the connection
 * closes after the answer (the body's framing may be in doubt).
 */
int csgi__head_check(const struct csgi__head *head, char *path_buf, struct csgi__head_facts *facts,
                     const char **why);

/*
 * A connection's memo of the last head it had accepted, and of what the
 * checks found in it: keep-alive clients send the same head again and again
 * (the same method, target and header lines, byte for byte), and the checks
 * are a pure function of those bytes. Storage is the transport's, one per
 * connection, zeroed before first use; about 1 KiB. Heads with more than
 * CSGI__HEAD_MEMO_HEADERS lines or CSGI__HEAD_MEMO_BYTES bytes, and
 * absolute-form targets (whose check rewrites the Host line), are not
 * remembered.
 */
#define CSGI__HEAD_MEMO_HEADERS 8
#define CSGI__HEAD_MEMO_BYTES   640

/* Where a remembered fact pointed: its source and the offset in it. */
struct csgi__head_ref {
    unsigned char kind;
    unsigned char index;
    uint16_t off;
};

struct csgi__head_memo {
    int valid;
    unsigned long hits; /* heads answered from the memo */
    int any_method;
    size_t method_len, version_len, target_len, n_headers, path_len;
    uint16_t name_len[CSGI__HEAD_MEMO_HEADERS];
    uint16_t value_len[CSGI__HEAD_MEMO_HEADERS];
    /* The method, version, target, each name and value, then the decoded path and its NUL. */
    char bytes[CSGI__HEAD_MEMO_BYTES];
    /* The facts, their pointers replaced by the refs below. */
    struct csgi__head_facts facts;
    struct csgi__head_ref host, content_type, raw_path, query;
};

/*
 * csgi__head_check() through @p memo (NULL: none): a head of the same bytes
 * as the remembered one gets the remembered facts (their pointers moved to
 * this head's strings, the decoded path copied into @p path_buf) without
 * being checked again; any other head is checked, and remembered when it is
 * accepted. The result is csgi__head_check()'s for the same head, always.
 */
int csgi__head_check_memo(const struct csgi__head *head, char *path_buf,
                          struct csgi__head_facts *facts, const char **why,
                          struct csgi__head_memo *memo);

#endif /* CSGI_HEAD_H */
