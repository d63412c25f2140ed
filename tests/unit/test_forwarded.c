/*
 * Unit tests for gateway/core/forwarded.c: the trusted-proxy rule both
 * transports apply to the environ (Forwarded, X-Forwarded-For, -Proto,
 * -Host from --trusted-proxy peers), and the trusted networks' parser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "forwarded.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* An environ as a transport builds it before the rule: peer 127.0.0.1:40000, http, port 8000. */
struct env_case {
    struct csgi_environ env;
    struct csgi_header h[8];
    struct csgi__fwd_buf buf;
    struct csgi__cidr trusted[4];
    size_t n_trusted;
    int changed;
};

static struct csgi_str
S(const char *s) {
    struct csgi_str r = {s, strlen(s)};
    return r;
}

/* Run the rule: trusted is a NULL-terminated list, headers name/value pairs ending in NULL. */
static void
run(struct env_case *c, const char *peer, const char *const *trusted, const char *const *hdrs)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; trusted[i]; i++)
        ck_assert_int_eq(csgi__cidr_parse(trusted[i], &c->trusted[c->n_trusted++]), 0);
    for (size_t i = 0; hdrs && hdrs[2 * i]; i++) {
        c->h[i].name = S(hdrs[2 * i]);
        c->h[i].value = S(hdrs[2 * i + 1]);
        c->env.n_headers = i + 1;
    }
    c->env.headers = c->h;
    c->env.remote_addr = S(peer);
    c->env.remote_port = *peer ? 40000 : 0;
    c->env.url_scheme = S("http");
    c->env.server_name = S("127.0.0.1");
    c->env.server_port = S("8000");
    c->changed = csgi__forwarded_apply(c->trusted, c->n_trusted, &c->env, &c->buf);
}

static void
assert_str(struct csgi_str s, const char *want)
{
    ck_assert_msg(s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0,
                  "got \"%.*s\", want \"%s\"", (int)s.len, s.ptr, want);
    /* Server strings are NUL-terminated (SPEC 3.1). */
    ck_assert_int_eq(s.ptr[s.len], '\0');
}

static const char *const local[] = {"127.0.0.1", NULL};
static const char *const inner[] = {"127.0.0.1", "10.0.0.0/8", NULL};

START_TEST(forwarded_cidr_parse)
{
    static const char *const good[] = {"10.0.0.0/8",    "192.0.2.7",    "0.0.0.0/0",
                                       "2001:db8::/32", "::1",          "::/0",
                                       "unix",          "192.0.2.0/24", "fe80::/10"};
    static const char *const bad[] = {"10.0.0.1/8",  "10.0.0.0/33",    "10.0.0.0/", "10.0.0.0/8x",
                                      "::1/129",     "2001:db8::1/32", "localhost", "",
                                      "10.0.0.0/-1", "1.2.3",          "unix:"};
    struct csgi__cidr c;

    for (size_t i = 0; i < N_OF(good); i++)
        ck_assert_msg(csgi__cidr_parse(good[i], &c) == 0, "%s", good[i]);
    for (size_t i = 0; i < N_OF(bad); i++)
        ck_assert_msg(csgi__cidr_parse(bad[i], &c) == CSGI_EINVAL, "%s", bad[i]);
}
END_TEST

START_TEST(forwarded_cidr_match)
{
    struct csgi__cidr c[3];

    ck_assert_int_eq(csgi__cidr_parse("192.0.2.128/25", &c[0]), 0);
    ck_assert_int_eq(csgi__cidr_parse("2001:db8:8000::/33", &c[1]), 0);
    ck_assert_int_eq(csgi__cidr_parse("unix", &c[2]), 0);
    ck_assert(csgi__cidr_match(c, 2, "192.0.2.128", 11));
    ck_assert(csgi__cidr_match(c, 2, "192.0.2.255", 11));
    ck_assert(!csgi__cidr_match(c, 2, "192.0.2.127", 11));
    ck_assert(csgi__cidr_match(c, 2, "2001:db8:ffff::1", 16));
    ck_assert(!csgi__cidr_match(c, 2, "2001:db8:7fff::1", 16));
    /* A v4 network never holds a v6 address, a unix peer only the "unix" entry. */
    ck_assert(!csgi__cidr_match(c, 2, "::ffff:192.0.2.200", 18));
    ck_assert(!csgi__cidr_match(c, 2, "", 0));
    ck_assert(csgi__cidr_match(c, 3, "", 0));
}
END_TEST

START_TEST(forwarded_untrusted_peer_changes_nothing)
{
    static const char *const h[] = {
        "X-Forwarded-For", "192.0.2.7", "X-Forwarded-Proto", "https", "Forwarded",
        "for=192.0.2.8",   NULL};
    struct env_case c;

    run(&c, "198.51.100.1", local, h);
    ck_assert_int_eq(c.changed, 0);
    assert_str(c.env.remote_addr, "198.51.100.1");
    ck_assert_uint_eq(c.env.remote_port, 40000);
    assert_str(c.env.url_scheme, "http");
    /* No trusted list at all: nothing either. */
    run(&c, "127.0.0.1", (const char *const[]){NULL}, h);
    ck_assert_int_eq(c.changed, 0);
}
END_TEST

START_TEST(forwarded_xff_right_to_left)
{
    struct env_case c;

    run(&c, "127.0.0.1", local, (const char *const[]){"X-Forwarded-For", "192.0.2.7", NULL});
    ck_assert_int_eq(c.changed, 1);
    assert_str(c.env.remote_addr, "192.0.2.7");
    /* X-Forwarded-For has no port: 0, never the proxy's. */
    ck_assert_uint_eq(c.env.remote_port, 0);
    /* A client's own (spoofed) value on the left is passed over. */
    run(&c, "127.0.0.1", inner,
        (const char *const[]){"X-Forwarded-For", "203.0.113.9, 198.51.100.1 ,10.0.0.2", NULL});
    assert_str(c.env.remote_addr, "198.51.100.1");
    /* Every hop trusted: the leftmost. */
    run(&c, "127.0.0.1", inner,
        (const char *const[]){"x-forwarded-for", "10.1.1.1, 10.0.0.2", NULL});
    assert_str(c.env.remote_addr, "10.1.1.1");
    /* Lines in order make one list; empty elements are skipped. */
    run(&c, "127.0.0.1", inner,
        (const char *const[]){"X-Forwarded-For", "198.51.100.1", "Accept", "*/*", "X-Forwarded-For",
                              "10.0.0.3,, ", NULL});
    assert_str(c.env.remote_addr, "198.51.100.1");
}
END_TEST

START_TEST(forwarded_xff_stops_at_garbage)
{
    struct env_case c;

    /* The walk ends at an element that is not an address: the last address walked. */
    run(&c, "127.0.0.1", inner,
        (const char *const[]){"X-Forwarded-For", "198.51.100.1, unknown, 10.0.0.2", NULL});
    assert_str(c.env.remote_addr, "10.0.0.2");
    /* Nothing usable at all: the peer stands. */
    run(&c, "127.0.0.1", inner, (const char *const[]){"X-Forwarded-For", "evil.example", NULL});
    ck_assert_int_eq(c.changed, 0);
    assert_str(c.env.remote_addr, "127.0.0.1");
    ck_assert_uint_eq(c.env.remote_port, 40000);
    run(&c, "127.0.0.1", inner, (const char *const[]){"X-Forwarded-For", "192.0.2.1/24", NULL});
    assert_str(c.env.remote_addr, "127.0.0.1");
}
END_TEST

START_TEST(forwarded_xff_ipv6_and_ports)
{
    struct env_case c;

    run(&c, "127.0.0.1", local, (const char *const[]){"X-Forwarded-For", "2001:DB8:0::7", NULL});
    /* The canonical text form. */
    assert_str(c.env.remote_addr, "2001:db8::7");
    run(&c, "127.0.0.1", local,
        (const char *const[]){"X-Forwarded-For", "[2001:db8::7]:4711", NULL});
    assert_str(c.env.remote_addr, "2001:db8::7");
    ck_assert_uint_eq(c.env.remote_port, 4711);
    run(&c, "127.0.0.1", local, (const char *const[]){"X-Forwarded-For", "192.0.2.7:65535", NULL});
    assert_str(c.env.remote_addr, "192.0.2.7");
    ck_assert_uint_eq(c.env.remote_port, 65535);
    run(&c, "127.0.0.1", local, (const char *const[]){"X-Forwarded-For", "192.0.2.7:65536", NULL});
    assert_str(c.env.remote_addr, "127.0.0.1");
}
END_TEST

START_TEST(forwarded_rfc7239)
{
    struct env_case c;

    run(&c, "127.0.0.1", local,
        (const char *const[]){"Forwarded",
                              "for=192.0.2.60;proto=https;host=\"example.org:8443\";by=x", NULL});
    assert_str(c.env.remote_addr, "192.0.2.60");
    assert_str(c.env.url_scheme, "https");
    ck_assert(c.env.flags & CSGI_ENV_TLS);
    assert_str(c.env.server_name, "example.org");
    assert_str(c.env.server_port, "8443");
    run(&c, "127.0.0.1", local,
        (const char *const[]){"Forwarded", "For=\"[2001:db8:cafe::17]:4711\"", NULL});
    assert_str(c.env.remote_addr, "2001:db8:cafe::17");
    ck_assert_uint_eq(c.env.remote_port, 4711);
    /* proto and host of the element that named the client, not another's. */
    run(&c, "127.0.0.1", inner,
        (const char *const[]){"Forwarded",
                              "for=198.51.100.1;proto=http;host=a.example, "
                              "for=10.0.0.2;proto=https;host=b.example",
                              NULL});
    assert_str(c.env.remote_addr, "198.51.100.1");
    assert_str(c.env.url_scheme, "http");
    assert_str(c.env.server_name, "a.example");
    assert_str(c.env.server_port, "80");
    /* A comma inside quotes is no element boundary; an obfuscated port is no port. */
    run(&c, "127.0.0.1", local,
        (const char *const[]){"Forwarded", "for=192.0.2.1;x=\"a,b\"", "Forwarded",
                              "for=\"192.0.2.9:_p\";x=\"c,d\"", NULL});
    assert_str(c.env.remote_addr, "192.0.2.9");
    ck_assert_uint_eq(c.env.remote_port, 0);
}
END_TEST

START_TEST(forwarded_rfc7239_malformed)
{
    static const char *const bad[] = {
        "for=unknown",           "for=_hidden",      "for=192.0.2.1;for=192.0.2.2",
        "for=\"192.0.2.1",       "for=2001:db8::1",  "proto=https",
        "for=\"192.0.2.1\\\"\"", "for=192.0.2.1;=x", "for=192.0.2.1;a b=c",
    };
    struct env_case c;

    /* Each one alone: nothing is taken. After a good element on its right, it ends the walk. */
    for (size_t i = 0; i < N_OF(bad); i++) {
        run(&c, "127.0.0.1", local, (const char *const[]){"Forwarded", bad[i], NULL});
        ck_assert_msg(c.changed == 0, "%s", bad[i]);
    }
    /* Forwarded present: X-Forwarded-* are not read, even when Forwarded is useless. */
    run(&c, "127.0.0.1", local,
        (const char *const[]){"Forwarded", "for=unknown", "X-Forwarded-For", "192.0.2.7",
                              "X-Forwarded-Proto", "https", NULL});
    ck_assert_int_eq(c.changed, 0);
}
END_TEST

START_TEST(forwarded_proto_and_host_single_values)
{
    struct env_case c;

    run(&c, "127.0.0.1", local,
        (const char *const[]){"X-Forwarded-Proto", "HTTPS", "X-Forwarded-Host", "shop.example",
                              NULL});
    assert_str(c.env.remote_addr, "127.0.0.1");
    assert_str(c.env.url_scheme, "https");
    ck_assert(c.env.flags & CSGI_ENV_TLS);
    assert_str(c.env.server_name, "shop.example");
    assert_str(c.env.server_port, "443");
    /* A list (an appending proxy after a client's own value), two lines, or junk: ignored. */
    run(&c, "127.0.0.1", local,
        (const char *const[]){"X-Forwarded-Proto", "https, http", "X-Forwarded-Host",
                              "a.example, b.example", NULL});
    ck_assert_int_eq(c.changed, 0);
    run(&c, "127.0.0.1", local,
        (const char *const[]){"X-Forwarded-Proto", "https", "X-Forwarded-Proto", "https", NULL});
    ck_assert_int_eq(c.changed, 0);
    run(&c, "127.0.0.1", local,
        (const char *const[]){"X-Forwarded-Proto", "ftp", "X-Forwarded-Host", "bad host", NULL});
    ck_assert_int_eq(c.changed, 0);
    assert_str(c.env.server_name, "127.0.0.1");
    /* Proto http clears TLS. */
    run(&c, "127.0.0.1", local, (const char *const[]){"X-Forwarded-Proto", "http", NULL});
    assert_str(c.env.url_scheme, "http");
    ck_assert(!(c.env.flags & CSGI_ENV_TLS));
    run(&c, "127.0.0.1", local,
        (const char *const[]){"X-Forwarded-Host", "[2001:db8::1]:8080", NULL});
    assert_str(c.env.server_name, "[2001:db8::1]");
    assert_str(c.env.server_port, "8080");
}
END_TEST

START_TEST(forwarded_unix_peer)
{
    struct env_case c;

    run(&c, "", (const char *const[]){"unix", NULL},
        (const char *const[]){"X-Forwarded-For", "192.0.2.7", NULL});
    assert_str(c.env.remote_addr, "192.0.2.7");
    run(&c, "", local, (const char *const[]){"X-Forwarded-For", "192.0.2.7", NULL});
    ck_assert_int_eq(c.changed, 0);
}
END_TEST

START_TEST(forwarded_hop_limit)
{
    char list[1024] = "198.51.100.1";
    struct env_case c;

    /* 40 trusted hops after the client: the walk stops at the 32nd, a trusted one. */
    for (int i = 0; i < 40; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), ", 10.0.0.%d", i + 1);
    run(&c, "127.0.0.1", inner, (const char *const[]){"X-Forwarded-For", list, NULL});
    assert_str(c.env.remote_addr, "10.0.0.9");
}
END_TEST

static Suite *
forwarded_suite(void)
{
    Suite *s = suite_create("forwarded");
    TCase *cidr = tcase_create("cidr");
    TCase *rule = tcase_create("rule");

    tcase_add_test(cidr, forwarded_cidr_parse);
    tcase_add_test(cidr, forwarded_cidr_match);
    suite_add_tcase(s, cidr);
    tcase_add_test(rule, forwarded_untrusted_peer_changes_nothing);
    tcase_add_test(rule, forwarded_xff_right_to_left);
    tcase_add_test(rule, forwarded_xff_stops_at_garbage);
    tcase_add_test(rule, forwarded_xff_ipv6_and_ports);
    tcase_add_test(rule, forwarded_rfc7239);
    tcase_add_test(rule, forwarded_rfc7239_malformed);
    tcase_add_test(rule, forwarded_proto_and_host_single_values);
    tcase_add_test(rule, forwarded_unix_peer);
    tcase_add_test(rule, forwarded_hop_limit);
    suite_add_tcase(s, rule);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(forwarded_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
