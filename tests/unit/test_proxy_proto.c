/*
 * Unit tests for server/src/proxy_proto.c: srv_proxy_parse(), the PROXY
 * protocol header (versions 1 and 2) a PROXY listener reads before it hands
 * a connection over. Every input is copied into an exact-size heap buffer,
 * so that ASan reports any read past the given length; every valid header
 * is also fed one byte at a time, each shorter prefix must ask for more.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <check.h>

#include "proxy_proto.h"

#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

/* Parse n bytes of s from an exact-size copy. */
static int
parse(const void *s, size_t n, struct srv_proxy_header *h, const char **why)
{
    uint8_t *copy = malloc(n ? n : 1);
    int rc;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, s, n);
    *why = NULL;
    rc = srv_proxy_parse(copy, n, h, why);
    free(copy);
    return rc;
}

/* Every prefix shorter than upto bytes is a valid beginning: "more". */
static void
assert_prefixes_want_more(const void *s, size_t upto)
{
    struct srv_proxy_header h;
    const char *why;

    for (size_t k = 0; k < upto; k++)
        ck_assert_msg(parse(s, k, &h, &why) == SRV_PROXY_MORE, "prefix of %zu bytes", k);
}

static const char *
v4_text(const struct srv_proxy_header *h, char *buf)
{
    const struct sockaddr_in *a = (const struct sockaddr_in *)&h->src;

    ck_assert_int_eq(a->sin_family, AF_INET);
    return inet_ntop(AF_INET, &a->sin_addr, buf, INET6_ADDRSTRLEN);
}

static const char *
v6_text(const struct srv_proxy_header *h, char *buf)
{
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&h->src;

    ck_assert_int_eq(a->sin6_family, AF_INET6);
    return inet_ntop(AF_INET6, &a->sin6_addr, buf, INET6_ADDRSTRLEN);
}

static void
assert_refused(const void *s, size_t n, const char *why_part)
{
    struct srv_proxy_header h;
    const char *why;

    ck_assert_int_eq(parse(s, n, &h, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, why_part), "\"%s\" does not say \"%s\"", why, why_part);
}

START_TEST(proxy_proto_v1_tcp4)
{
    static const char in[] = "PROXY TCP4 192.0.2.7 10.0.0.1 56324 8000\r\nGET / HTTP/1.1\r\n";
    struct srv_proxy_header h;
    const char *why;
    char text[INET6_ADDRSTRLEN];
    int hdr_len = (int)(strstr(in, "GET") - in);

    /* The header's length only: the request after it is not the parser's. */
    ck_assert_int_eq(parse(in, sizeof(in) - 1, &h, &why), hdr_len);
    ck_assert_int_eq(h.version, 1);
    ck_assert_int_eq(h.local, 0);
    ck_assert_str_eq(v4_text(&h, text), "192.0.2.7");
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&h.src)->sin_port), 56324);
    ck_assert_uint_eq(h.src_len, sizeof(struct sockaddr_in));
    assert_prefixes_want_more(in, (size_t)hdr_len);
}
END_TEST

START_TEST(proxy_proto_v1_tcp6)
{
    static const char in[] = "PROXY TCP6 2001:db8::7 ::1 65535 0\r\n";
    struct srv_proxy_header h;
    const char *why;
    char text[INET6_ADDRSTRLEN];

    ck_assert_int_eq(parse(in, sizeof(in) - 1, &h, &why), (int)sizeof(in) - 1);
    ck_assert_str_eq(v6_text(&h, text), "2001:db8::7");
    ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&h.src)->sin6_port), 65535);
}
END_TEST

START_TEST(proxy_proto_v1_unknown)
{
    static const char bare[] = "PROXY UNKNOWN\r\n";
    static const char more[] = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nX";
    struct srv_proxy_header h;
    const char *why;

    ck_assert_int_eq(parse(bare, sizeof(bare) - 1, &h, &why), (int)sizeof(bare) - 1);
    ck_assert_int_eq(h.local, 1);
    /* UNKNOWN: the rest of the line is ignored, whatever it holds. */
    ck_assert_int_eq(parse(more, sizeof(more) - 1, &h, &why), (int)sizeof(more) - 2);
    ck_assert_int_eq(h.local, 1);
}
END_TEST

START_TEST(proxy_proto_v1_longest)
{
    /* The spec's worst case: 107 bytes with the CRLF. */
    static const char in[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    static const char tcp6[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    char longer[160];
    struct srv_proxy_header h;
    const char *why;

    ck_assert_uint_eq(sizeof(in) - 1, SRV_PROXY_V1_MAX);
    ck_assert_int_eq(parse(in, sizeof(in) - 1, &h, &why), SRV_PROXY_V1_MAX);
    ck_assert_int_eq(parse(tcp6, sizeof(tcp6) - 1, &h, &why), (int)sizeof(tcp6) - 1);
    ck_assert_int_eq(h.local, 0);
    /* One byte more before the CRLF, and no CRLF within 107 bytes. */
    snprintf(longer, sizeof(longer), "PROXY UNKNOWN x%s", in + 14);
    assert_refused(longer, strlen(longer), "longer than 107");
    memset(longer, 'a', sizeof(longer));
    memcpy(longer, "PROXY UNKNOWN ", 14);
    ck_assert_int_eq(parse(longer, SRV_PROXY_V1_MAX - 1, &h, &why), SRV_PROXY_MORE);
    assert_refused(longer, SRV_PROXY_V1_MAX, "longer than 107");
}
END_TEST

START_TEST(proxy_proto_v1_malformed)
{
    static const char *const bad[][2] = {
        {"PROXY TCP4 192.0.2.7  10.0.0.1 1 2\r\n", "one space apart"},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1 2 \r\n", "one space apart"},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3\r\n", "too many"},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1\r\n", "want source"},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n", "port"},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 080 2\r\n", "port"},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 -1 2\r\n", "port"},
        {"PROXY TCP4 ::1 10.0.0.1 1 2\r\n", "address"},
        {"PROXY TCP6 192.0.2.7 ::1 1 2\r\n", "address"},
        {"PROXY TCP4 192.0.2 10.0.0.1 1 2\r\n", "address"},
        {"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n", "protocol"},
        {"PROXY tcp4 192.0.2.7 10.0.0.1 1 2\r\n", "protocol"},
        {"PROXY UNKNOWNX\r\n", "protocol"},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n", "bare LF"},
        {"PROXY TCP4 192.0.2.7\r10.0.0.1 1 2\r\n", "bare CR"},
        {"PROXY TCP4 192.0.2.7\t10.0.0.1 1 2\r\n", "control"},
        {"proxy TCP4 192.0.2.7 10.0.0.1 1 2\r\n", "no proxy protocol header"},
        {"PROXYTCP4\r\n", "no proxy protocol header"},
        {"GET / HTTP/1.1\r\n", "no proxy protocol header"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_refused(bad[i][0], strlen(bad[i][0]), bad[i][1]);
}
END_TEST

/* A version 2 header: command, family byte, length field, then body bytes. */
static size_t
v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, uint16_t len_field, const void *body, size_t n)
{
    memcpy(out, V2_SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len_field >> 8);
    out[15] = (uint8_t)len_field;
    if (n)
        memcpy(out + 16, body, n);
    return 16 + n;
}

START_TEST(proxy_proto_v2_inet)
{
    /* 192.0.2.7 -> 10.0.0.1, 56324 -> 8000, then a TLV (ALPN "h2", 5 bytes). */
    static const uint8_t body[] = {192,  0,    2,    7,    10,   0,    0,   1,  0xDC,
                                   0x04, 0x1F, 0x40, 0x01, 0x00, 0x02, 'h', '2'};
    uint8_t in[64];
    size_t n = v2(in, 0x21, 0x11, sizeof(body), body, sizeof(body));
    struct srv_proxy_header h;
    const char *why;
    char text[INET6_ADDRSTRLEN];

    memcpy(in + n, "GET", 3);
    ck_assert_int_eq(parse(in, n + 3, &h, &why), (int)n);
    ck_assert_int_eq(h.version, 2);
    ck_assert_int_eq(h.local, 0);
    ck_assert_str_eq(v4_text(&h, text), "192.0.2.7");
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&h.src)->sin_port), 56324);
    /* The addresses are in after 28 bytes: the TLV need not be, its length is known. */
    assert_prefixes_want_more(in, 28);
    ck_assert_int_eq(parse(in, 28, &h, &why), (int)n);
}
END_TEST

START_TEST(proxy_proto_v2_inet6_and_long_tlvs)
{
    uint8_t body[36 + 1000], in[16 + sizeof(body)];
    size_t n;
    struct srv_proxy_header h;
    const char *why;
    char text[INET6_ADDRSTRLEN];

    memset(body, 0, sizeof(body));
    inet_pton(AF_INET6, "2001:db8::42", body);
    inet_pton(AF_INET6, "::1", body + 16);
    body[32] = 0x30;
    body[33] = 0x39; /* 12345 */
    /* A NOOP TLV of 997 bytes: the header runs far past what the acceptor peeks. */
    body[36] = 0x04;
    body[37] = (uint8_t)(997 >> 8);
    body[38] = (uint8_t)(997 & 0xff);
    n = v2(in, 0x21, 0x21, sizeof(body), body, sizeof(body));
    ck_assert_int_eq(parse(in, SRV_PROXY_ADDR_MAX, &h, &why), (int)n);
    ck_assert_str_eq(v6_text(&h, text), "2001:db8::42");
    ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&h.src)->sin6_port), 12345);
    assert_prefixes_want_more(in, 16 + 36);
}
END_TEST

START_TEST(proxy_proto_v2_unix)
{
    uint8_t body[216], in[16 + 216];
    struct srv_proxy_header h;
    const char *why;

    memset(body, 0, sizeof(body));
    memcpy(body, "/run/client.sock", 16);
    ck_assert_int_eq(parse(in, v2(in, 0x21, 0x31, 216, body, 216), &h, &why), 16 + 216);
    ck_assert_int_eq(h.local, 0);
    ck_assert_int_eq(((struct sockaddr_un *)&h.src)->sun_family, AF_UNIX);
    ck_assert_str_eq(((struct sockaddr_un *)&h.src)->sun_path, "/run/client.sock");
    /* A path that fills all 108 bytes is cut, not read past. */
    memset(body, 'p', 108);
    ck_assert_int_eq(parse(in, v2(in, 0x21, 0x31, 216, body, 216), &h, &why), 16 + 216);
    ck_assert_uint_eq(strlen(((struct sockaddr_un *)&h.src)->sun_path), 107);
}
END_TEST

START_TEST(proxy_proto_v2_local_and_unspec)
{
    static const uint8_t addrs[12] = {192, 0, 2, 7, 10, 0, 0, 1, 0, 1, 0, 2};
    uint8_t in[64];
    struct srv_proxy_header h;
    const char *why;

    /* LOCAL (a health check of the balancer's own): no body, or an address block ignored. */
    ck_assert_int_eq(parse(in, v2(in, 0x20, 0x00, 0, NULL, 0), &h, &why), 16);
    ck_assert_int_eq(h.local, 1);
    ck_assert_int_eq(parse(in, v2(in, 0x20, 0x11, 12, addrs, 12), &h, &why), 28);
    ck_assert_int_eq(h.local, 1);
    /* PROXY with the UNSPEC family: no address to use either. */
    ck_assert_int_eq(parse(in, v2(in, 0x21, 0x00, 0, NULL, 0), &h, &why), 16);
    ck_assert_int_eq(h.local, 1);
    /* LOCAL's length is known at 16 bytes, the body unread. */
    v2(in, 0x20, 0x11, 12, addrs, 12);
    ck_assert_int_eq(parse(in, 16, &h, &why), 28);
}
END_TEST

START_TEST(proxy_proto_v2_malformed)
{
    static const uint8_t addrs[12] = {192, 0, 2, 7, 10, 0, 0, 1, 0, 1, 0, 2};
    uint8_t in[64];

    assert_refused(in, v2(in, 0x11, 0x11, 12, addrs, 12), "another version");
    assert_refused(in, v2(in, 0x31, 0x11, 12, addrs, 12), "another version");
    assert_refused(in, v2(in, 0x22, 0x11, 12, addrs, 12), "unknown command");
    assert_refused(in, v2(in, 0x21, 0x41, 12, addrs, 12), "unknown family");
    assert_refused(in, v2(in, 0x21, 0x13, 12, addrs, 12), "unknown family");
    assert_refused(in, v2(in, 0x21, 0x12, 12, addrs, 12), "stream");
    assert_refused(in, v2(in, 0x21, 0x10, 12, addrs, 12), "stream");
    assert_refused(in, v2(in, 0x21, 0x11, 11, addrs, 12), "shorter than its addresses");
    assert_refused(in, v2(in, 0x21, 0x21, 12, addrs, 12), "shorter than its addresses");
    /* A signature wrong in its last byte. */
    memcpy(in, V2_SIG, 12);
    in[11] = 'X';
    assert_refused(in, 12, "no proxy protocol header");
    assert_refused("\r\n\r\nQ", 5, "no proxy protocol header");
}
END_TEST

static Suite *
proxy_proto_suite(void)
{
    Suite *s = suite_create("proxy_proto");
    TCase *v1 = tcase_create("v1");
    TCase *v2c = tcase_create("v2");

    tcase_add_test(v1, proxy_proto_v1_tcp4);
    tcase_add_test(v1, proxy_proto_v1_tcp6);
    tcase_add_test(v1, proxy_proto_v1_unknown);
    tcase_add_test(v1, proxy_proto_v1_longest);
    tcase_add_test(v1, proxy_proto_v1_malformed);
    suite_add_tcase(s, v1);
    tcase_add_test(v2c, proxy_proto_v2_inet);
    tcase_add_test(v2c, proxy_proto_v2_inet6_and_long_tlvs);
    tcase_add_test(v2c, proxy_proto_v2_unix);
    tcase_add_test(v2c, proxy_proto_v2_local_and_unspec);
    tcase_add_test(v2c, proxy_proto_v2_malformed);
    suite_add_tcase(s, v2c);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(proxy_proto_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
