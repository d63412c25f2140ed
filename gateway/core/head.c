/*
 * The request-head checks of the host core (see head.h).
 */
#include <string.h>

#include "csgi_internal.h"
#include "head.h"

/* The framing and routing headers of a head, found in one pass. */
struct head_scan {
    unsigned n_cl, n_te, n_host;
    const char *cl, *te, *host;
    size_t cl_len, te_len, host_len;
    struct csgi_str ctype;
    const char *why;
    const struct csgi_header *headers;
    size_t host_index;
    /* The connection's remembered Host (csgi__head.known_host): checked when it was remembered. */
    const char *known_host;
    size_t known_host_len;
};

/* Record one header line; sets s->why for a line that is refused outright. */
static void
scan_one(struct head_scan *s, const struct csgi_header *hd)
{
    const char *key = hd->name.ptr, *value = hd->value.ptr;
    size_t key_len = hd->name.len, value_len = hd->value.len;

    if (!csgi__is_token(key, key_len)) {
        s->why = "header name is not a token";
        return;
    }
    /*
     * libmicrohttpd 0.9.75 appends an obs-fold continuation to the field
     * name ("Content-Length:\r\n 5" arrives as "Content-Length5"): a framing
     * header hidden that way would desynchronise us from any proxy that
     * unfolds it, so such names are refused.
     */
    if ((key_len > 14 && csgi__token_ieq(key, 14, "content-length", 14)) ||
        (key_len > 17 && csgi__token_ieq(key, 17, "transfer-encoding", 17))) {
        s->why = "folded (obs-fold) Content-Length or Transfer-Encoding";
        return;
    }
    /*
     * RFC 9110 5.5: NUL, CR and LF in a value are refused (a front end that
     * takes a bare CR for a line break would see another header), and so
     * are the other controls and DEL: no plugin or log gets them. A Host
     * the same as the connection's remembered one passed this before.
     */
    if (value_len &&
        !(value_len == s->known_host_len && s->known_host &&
          csgi__bytes_eq(value, s->known_host, value_len)) &&
        !csgi__is_field_value(value, value_len)) {
        s->why = "header value has a control byte";
        return;
    }
    /* The name is a token: csgi__token_ieq() applies; it compares the length first. */
    if (csgi__token_ieq(key, key_len, "host", 4)) {
        s->host_index = (size_t)(hd - s->headers);
        s->n_host++;
        s->host = value;
        s->host_len = value_len;
    } else if (csgi__token_ieq(key, key_len, "content-type", 12)) {
        /* A single-value field: two would leave the environ's content_type and the headers
         * disagreeing (SPEC 4.2). */
        if (s->ctype.ptr)
            s->why = "repeated Content-Type";
        s->ctype = hd->value;
    } else if (csgi__token_ieq(key, key_len, "content-length", 14)) {
        s->n_cl++;
        s->cl = value;
        s->cl_len = value_len;
    } else if (csgi__token_ieq(key, key_len, "transfer-encoding", 17)) {
        s->n_te++;
        s->te = value;
        s->te_len = value_len;
    }
}

/* Content-Length and Transfer-Encoding: how the body is framed. Returns 0 or a status. */
static int
check_framing(const struct head_scan *s, struct csgi__head_facts *f, const char **why)
{
    int status;

    if (s->n_te && s->n_cl) {
        *why = "both Content-Length and Transfer-Encoding";
        return 400;
    }
    if (s->n_te) {
        if (!f->http11) {
            *why = "Transfer-Encoding in an HTTP/1.0 request";
            return 400;
        }
        if (s->n_te > 1) {
            *why = "repeated Transfer-Encoding";
            return 400;
        }
        status = csgi__te_check(s->te, s->te_len);
        if (status) {
            /* A coding the server does not implement (RFC 9112 6.1) is a 501, per SPEC. */
            *why = status == 501 ? "Transfer-Encoding other than \"chunked\""
                                 : "malformed Transfer-Encoding";
            return status;
        }
        f->chunked = 1;
    }
    if (s->n_cl > 1) {
        *why = "repeated Content-Length";
        return 400;
    }
    if (s->n_cl) {
        f->content_length = csgi__parse_content_length(s->cl, s->cl_len);
        if (f->content_length < 0) {
            *why = "invalid Content-Length";
            return 400;
        }
    }
    return 0;
}

/* Host (required on HTTP/1.1, at most once, well formed). Returns 0 or 400. */
static int
check_host(const struct csgi__head *head, const struct head_scan *s, struct csgi__head_facts *f,
           const char **why)
{
    size_t name_len, port_len;
    const char *port;
    const char *s_host = s->host;

    if (s->n_host > 1) {
        *why = "repeated Host";
        return 400;
    }
    if (f->http11 && s->n_host == 0) {
        *why = "HTTP/1.1 request without Host";
        return 400;
    }
    if (s->n_host) {
        if (head->known_host && s->host_len == head->known_host_len &&
            csgi__bytes_eq(s->host, head->known_host, s->host_len)) {
            name_len = head->known_host_name_len;
            /* Tells the transport that its memo held. */
            s_host = head->known_host;
        } else if (csgi__host_parse(s->host, s->host_len, &name_len, &port, &port_len) < 0) {
            *why = "invalid Host";
            return 400;
        }
        f->host_field.ptr = s_host;
        f->host_field.len = s->host_len;
        f->host_field_name_len = name_len;
        f->host = s->host;
        f->host_len = name_len;
    }
    return 0;
}

/* Method and request-target. Returns 0 or a status. */
static int
check_line(const struct csgi__head *head, char *path_buf, struct csgi__head_facts *f,
           const char **why)
{
    if (!csgi__is_token(head->method, head->method_len)) {
        *why = "method is not a token";
        return 400;
    }
    if (!head->any_method && !csgi__method_known(head->method, head->method_len)) {
        *why = "method not implemented";
        return 501;
    }
    if (csgi__target_parse(head->raw_target, head->raw_target_len, path_buf, &f->target, why) < 0)
        return 400;
    if (f->target.asterisk && !(head->method_len == 7 && memcmp(head->method, "OPTIONS", 7) == 0)) {
        *why = "\"*\" target with a method other than OPTIONS";
        return 400;
    }
    if (f->target.host) {
        /* Absolute form: its authority replaces Host (RFC 9112 3.2.2). */
        f->host = f->target.host;
        f->host_len = f->target.host_name_len;
    }
    return 0;
}

int
csgi__head_check(const struct csgi__head *head, char *path_buf, struct csgi__head_facts *facts,
                 const char **why)
{
    struct head_scan s;
    int status;

    /* Field by field: the target (half the struct) is csgi__target_parse()'s to fill. */
    facts->http11 = 0;
    facts->head_request = 0;
    facts->content_length = -1;
    facts->chunked = 0;
    facts->host = NULL;
    facts->host_len = 0;
    facts->host_field.ptr = NULL;
    facts->host_field.len = 0;
    facts->host_field_name_len = 0;
    facts->content_type.ptr = NULL;
    facts->content_type.len = 0;
    facts->http11 = head->version_len == 8 && memcmp(head->version, "HTTP/1.1", 8) == 0;
    if (!facts->http11 && !(head->version_len == 8 && memcmp(head->version, "HTTP/1.0", 8) == 0)) {
        *why = "unsupported HTTP version";
        return 505;
    }
    if (head->too_many_headers) {
        *why = "too many header lines";
        return 431;
    }
    memset(&s, 0, sizeof(s));
    s.headers = head->headers;
    s.known_host = head->known_host;
    s.known_host_len = head->known_host_len;
    for (size_t i = 0; i < head->n_headers && !s.why; i++)
        scan_one(&s, &head->headers[i]);
    if (s.why) {
        *why = s.why;
        return 400;
    }
    status = check_framing(&s, facts, why);
    if (!status)
        status = check_host(head, &s, facts, why);
    if (!status)
        status = check_line(head, path_buf, facts, why);
    if (status)
        return status;
    if (facts->target.host && s.n_host) {
        /*
         * Absolute form: the target's authority replaces Host (RFC 9112
         * 3.2.2), in the headers too, so that header_get("host"),
         * request_url() and server_name agree.
         */
        head->headers[s.host_index].value.ptr = facts->target.host;
        head->headers[s.host_index].value.len = facts->target.host_len;
    }
    facts->content_type = s.ctype;
    facts->head_request = head->method_len == 4 && memcmp(head->method, "HEAD", 4) == 0;
    return 0;
}
