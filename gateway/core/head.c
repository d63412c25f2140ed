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

/* ------------------------------------------------------------------ */
/* The per-connection memo (head.h)                                    */
/* ------------------------------------------------------------------ */

enum { REF_NULL, REF_EMPTY, REF_TARGET, REF_VALUE };

/* Whether @p p lies in [base, base + len] (its end included: empty strings point there). */
static int
ref_in(const char *p, const char *base, size_t len)
{
    return base && (uintptr_t)p >= (uintptr_t)base && (uintptr_t)p - (uintptr_t)base <= len;
}

/* Record where @p p points: into this head's target or a header value, or a static "". */
static int
ref_make(const struct csgi__head *head, const char *p, size_t len, struct csgi__head_ref *ref)
{
    ref->index = 0;
    ref->off = 0;
    if (!p) {
        ref->kind = REF_NULL;
        return 0;
    }
    if (ref_in(p, head->raw_target, head->raw_target_len)) {
        ref->kind = REF_TARGET;
        ref->off = (uint16_t)(p - head->raw_target);
        return 0;
    }
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct csgi_str *v = &head->headers[i].value;
        if (ref_in(p, v->ptr, v->len)) {
            ref->kind = REF_VALUE;
            ref->index = (unsigned char)i;
            ref->off = (uint16_t)(p - v->ptr);
            return 0;
        }
    }
    if (!len && !*p) {
        ref->kind = REF_EMPTY; /* a static "" (the query of a target without one) */
        return 0;
    }
    return -1;
}

/* The pointer a ref of a header value (or NULL) stands for in @p head. */
static inline __attribute__((always_inline)) const char *
value_ref(const struct csgi__head *head, const struct csgi__head_ref *ref)
{
    return ref->kind == REF_VALUE ? head->headers[ref->index].value.ptr + ref->off : NULL;
}

/* The pointer a ref into the target (or to "") stands for in @p head. */
static inline __attribute__((always_inline)) const char *
target_ref(const struct csgi__head *head, const struct csgi__head_ref *ref)
{
    return ref->kind == REF_TARGET ? head->raw_target + ref->off : "";
}

/* Remember an accepted head and its facts, when they fit. */
static void
memo_keep(struct csgi__head_memo *m, const struct csgi__head *head, const char *path_buf,
          const struct csgi__head_facts *f)
{
    const struct csgi__target *t = &f->target;
    size_t total = head->method_len + head->version_len + head->raw_target_len + t->path_len + 1;
    char *b = m->bytes;

    m->valid = 0;
    if (head->n_headers > CSGI__HEAD_MEMO_HEADERS || t->host || t->path != path_buf ||
        head->raw_target_len > UINT16_MAX)
        return;
    for (size_t i = 0; i < head->n_headers; i++)
        total += head->headers[i].name.len + head->headers[i].value.len;
    if (total > sizeof(m->bytes))
        return;
    /*
     * Host and Content-Type point into their lines (the Host field is the Host
     * line's value, or the known Host standing in for it), the raw path and
     * the query into the target (or the query is a static "").
     */
    if (ref_make(head, f->host, 0, &m->host) || (f->host && m->host.kind != REF_VALUE) ||
        (f->host_field.ptr && m->host.kind != REF_VALUE) ||
        ref_make(head, f->content_type.ptr, f->content_type.len, &m->content_type) ||
        (f->content_type.ptr && m->content_type.kind != REF_VALUE) ||
        ref_make(head, t->raw_path, t->raw_path_len, &m->raw_path) ||
        m->raw_path.kind != REF_TARGET || ref_make(head, t->query, t->query_len, &m->query) ||
        (m->query.kind != REF_TARGET && m->query.kind != REF_EMPTY))
        return;
    memcpy(b, head->method, head->method_len);
    b += head->method_len;
    memcpy(b, head->version, head->version_len);
    b += head->version_len;
    memcpy(b, head->raw_target, head->raw_target_len);
    b += head->raw_target_len;
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct csgi_header *hd = &head->headers[i];
        m->name_len[i] = (uint16_t)hd->name.len;
        m->value_len[i] = (uint16_t)hd->value.len;
        memcpy(b, hd->name.ptr, hd->name.len);
        b += hd->name.len;
        memcpy(b, hd->value.ptr, hd->value.len);
        b += hd->value.len;
    }
    memcpy(b, t->path, t->path_len + 1);
    m->method_len = head->method_len;
    m->version_len = head->version_len;
    m->target_len = head->raw_target_len;
    m->n_headers = head->n_headers;
    m->path_len = t->path_len;
    m->any_method = head->any_method;
    m->facts = *f;
    m->valid = 1;
}

/* Whether @p head has the remembered bytes; *path then points at the remembered path. */
static int
memo_same(const struct csgi__head_memo *m, const struct csgi__head *head, const char **path)
{
    const char *b = m->bytes;

    if (!m->valid || head->method_len != m->method_len || head->version_len != m->version_len ||
        head->raw_target_len != m->target_len || head->n_headers != m->n_headers ||
        head->too_many_headers || head->any_method != m->any_method)
        return 0;
    if (!csgi__bytes_eq(b, head->method, m->method_len))
        return 0;
    b += m->method_len;
    if (!csgi__bytes_eq(b, head->version, m->version_len))
        return 0;
    b += m->version_len;
    if (!csgi__bytes_eq(b, head->raw_target, m->target_len))
        return 0;
    b += m->target_len;
    for (size_t i = 0; i < m->n_headers; i++) {
        const struct csgi_header *hd = &head->headers[i];
        if (hd->name.len != m->name_len[i] || hd->value.len != m->value_len[i] ||
            !csgi__bytes_eq(b, hd->name.ptr, hd->name.len) ||
            !csgi__bytes_eq(b + hd->name.len, hd->value.ptr, hd->value.len))
            return 0;
        b += hd->name.len + hd->value.len;
    }
    *path = b;
    return 1;
}

/* The remembered facts, moved to @p head's strings, the decoded path to @p path_buf. */
static void
memo_replay(const struct csgi__head_memo *m, const struct csgi__head *head, const char *path,
            char *path_buf, struct csgi__head_facts *f)
{
    *f = m->facts;
    f->host = value_ref(head, &m->host);
    if (f->host_field.ptr) {
        /*
         * The Host line's value, or the known Host when it has the same bytes,
         * as csgi__head_check() chooses (the lengths are the same either way:
         * they are those of the same bytes).
         */
        size_t n = f->host_field.len;
        f->host_field.ptr = head->known_host && head->known_host_len == n &&
                                    csgi__bytes_eq(head->known_host, f->host, n)
                                ? head->known_host
                                : f->host;
    }
    f->content_type.ptr = value_ref(head, &m->content_type);
    f->target.raw_path = head->raw_target + m->raw_path.off;
    f->target.query = target_ref(head, &m->query);
    f->target.path = path_buf;
    memcpy(path_buf, path, m->path_len + 1);
}

int
csgi__head_check_memo(const struct csgi__head *head, char *path_buf, struct csgi__head_facts *facts,
                      const char **why, struct csgi__head_memo *memo)
{
    const char *path;
    int status;

    if (memo && memo_same(memo, head, &path)) {
        memo_replay(memo, head, path, path_buf, facts);
        memo->hits++;
        return 0;
    }
    status = csgi__head_check(head, path_buf, facts, why);
    if (memo) {
        if (status)
            memo->valid = 0;
        else
            memo_keep(memo, head, path_buf, facts);
    }
    return status;
}
