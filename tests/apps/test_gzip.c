/*
 * The gzip middleware plugin (plugins/examples/gzip) on the in-process test
 * client, wrapped as csgi-server --wrap wraps it (csgi_test_client_wrap_open):
 * the World app's deterministic endpoints through gzip, inflated, must be the
 * bytes the unwrapped app sends; then the negotiation and skip rules on a
 * small application whose response the query string shapes.
 *
 * Usage: test_gzip GZIP.so WORLD_RAW.so
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <csgi/testclient.h>
#include <csgi/util.h>

static const char *gzip_so, *world_so;

/* Inflate a gzip stream; returns a malloc'd NUL-terminated buffer (length in *len). */
static char *
gunzip(const char *in, size_t in_len, size_t *len)
{
    z_stream z;
    size_t cap = 1 << 16;
    char *out = malloc(cap + 1);
    int rc;

    memset(&z, 0, sizeof(z));
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)(uintptr_t)in;
    z.avail_in = (uInt)in_len;
    z.next_out = (unsigned char *)out;
    z.avail_out = (uInt)cap;
    rc = inflate(&z, Z_FINISH);
    ck_assert_msg(rc == Z_STREAM_END, "inflate: %d (%s)", rc, z.msg ? z.msg : "");
    ck_assert_uint_eq(z.avail_in, 0);
    *len = z.total_out;
    out[*len] = '\0';
    inflateEnd(&z);
    return out;
}

static struct csgi_test_response *
get(struct csgi_test_client *c, const char *method, const char *target, const char *ae,
    const char *extra)
{
    struct csgi_header h[2];
    size_t n = 0;
    struct csgi_test_request rq = {.method = method, .target = target, .headers = h};
    struct csgi_test_response *r = NULL;

    if (ae)
        h[n++] = (struct csgi_header){CSGI_STR_INIT("Accept-Encoding"), csgi_str_c(ae)};
    if (extra)
        h[n++] = (struct csgi_header){CSGI_STR_INIT("Range"), csgi_str_c(extra)};
    rq.n_headers = n;
    ck_assert_int_eq(csgi_test_client_request(c, &rq, &r), 0);
    ck_assert_int_eq(r->rc, CSGI_OK);
    return r;
}

static const char *
hdr(const struct csgi_test_response *r, const char *name)
{
    const char *v = csgi_test_response_header(r, name);
    return v ? v : "";
}

/* ------------------------------------------------------------------ */
/* The World app through gzip                                          */
/* ------------------------------------------------------------------ */

static struct csgi_test_client *
world_client(const char *dir, const char *db, int wrapped)
{
    char path[512], err[512];
    struct csgi_kv kv = {"db", path};
    struct csgi_test_client *c;

    snprintf(path, sizeof(path), "%s/%s", dir, db);
    c = csgi_test_client_open(world_so, "/raw", &kv, 1, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    if (wrapped)
        ck_assert_msg(csgi_test_client_wrap_open(c, gzip_so, NULL, 0, err, sizeof(err)) == 0, "%s",
                      err);
    return c;
}

START_TEST(gzip_world_bytes_identical)
{
    /* The deterministic endpoints (db, queries and updates draw random rows). */
    static const char *const paths[] = {"/raw/plaintext", "/raw/json", "/raw/fortunes",
                                        "/raw/items?limit=5", "/raw/nope"};
    char dir[400], rm[600];
    const char *tmp = getenv("TMPDIR");
    struct csgi_test_client *plain, *zipped;
    int encoded = 0;

    snprintf(dir, sizeof(dir), "%s/csgi-gzip-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    plain = world_client(dir, "plain.db", 0);
    zipped = world_client(dir, "zipped.db", 1);
    for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
        struct csgi_test_response *a = get(plain, "GET", paths[i], "gzip", NULL);
        struct csgi_test_response *b = get(zipped, "GET", paths[i], "gzip", NULL);
        int gz = strcmp(hdr(b, "Content-Encoding"), "gzip") == 0;
        size_t len = b->body_len;
        char *body = gz ? gunzip(b->body, b->body_len, &len) : NULL;

        ck_assert_int_eq(a->status, b->status);
        ck_assert_str_eq(hdr(a, "Content-Type"), hdr(b, "Content-Type"));
        ck_assert_str_eq(hdr(b, "Vary"), "Accept-Encoding");
        ck_assert_uint_eq(len, a->body_len);
        ck_assert_msg(memcmp(gz ? body : b->body, a->body, len) == 0, "%s", paths[i]);
        /* gzip's default min_length: 256 bytes and more are compressed. */
        ck_assert_int_eq(gz, a->body_len >= 256);
        encoded += gz;
        free(body);
        csgi_test_response_free(a);
        csgi_test_response_free(b);
    }
    ck_assert_int_ge(encoded, 1);
    csgi_test_client_free(zipped);
    csgi_test_client_free(plain);
    snprintf(rm, sizeof(rm), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(rm), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Negotiation and skips                                               */
/* ------------------------------------------------------------------ */

/*
 * ?status=N (default 200), ?len=N body bytes (default 1000) in ?chunks=N
 * chunks, ?cl=1 a Content-Length header instead of total_length, ?ce=1
 * Content-Encoding: br, ?vary=1 Vary: Cookie, ?write=1 the first chunk
 * through write().
 */
struct shape {
    char text[4096];
    size_t len, chunks, i;
};

static int
shape_next(void *ctx, struct csgi_chunk *out)
{
    struct shape *s = ctx;
    size_t per = s->len / s->chunks;

    if (s->i == s->chunks)
        return CSGI_DONE;
    out->ptr = s->text + s->i * per;
    out->len = ++s->i == s->chunks ? s->len - (s->i - 1) * per : per;
    return CSGI_OK;
}

static long
qnum(const struct csgi_environ *env, const char *name, long dflt)
{
    struct csgi_str v;
    int64_t n;
    char buf[32];

    if (csgi_query_find(env->query_string, csgi_str_c(name), 0, 0, buf, sizeof(buf), &v) != 0)
        return dflt;
    return csgi_str_to_i64(v, &n) == 0 ? (long)n : dflt;
}

static int
shape_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
          struct csgi_body *out)
{
    struct shape *s = env->host->alloc(env->request, sizeof(*s));
    struct csgi_header h[4] = {{CSGI_STR_INIT("Content-Type"), CSGI_STR_INIT("text/plain")}};
    size_t n = 1, skip = 0;
    char cl[32];
    int status = (int)qnum(env, "status", 200), rc;

    (void)state;
    s->len = (size_t)qnum(env, "len", 1000);
    s->chunks = (size_t)qnum(env, "chunks", 1);
    s->i = 0;
    for (size_t i = 0; i < sizeof(s->text); i++)
        s->text[i] = "abcdefghij\n"[i % 11];
    if (status == 204 || status == 304)
        s->len = 0;
    if (qnum(env, "cl", 0)) {
        snprintf(cl, sizeof(cl), "%zu", s->len);
        h[n++] = (struct csgi_header){CSGI_STR_INIT("Content-Length"), csgi_str_c(cl)};
    }
    if (qnum(env, "ce", 0))
        h[n++] = (struct csgi_header){CSGI_STR_INIT("Content-Encoding"), CSGI_STR_INIT("br")};
    if (qnum(env, "vary", 0))
        h[n++] = (struct csgi_header){CSGI_STR_INIT("Vary"), CSGI_STR_INIT("Cookie")};
    rc = resp->start_response(resp->ctx, status, (struct csgi_str){NULL, 0}, h, n, NULL);
    if (rc < 0)
        return rc;
    if (qnum(env, "write", 0) && s->len) {
        skip = s->len / s->chunks;
        rc = resp->write(resp->ctx, s->text, skip);
        if (rc < 0)
            return rc;
        s->i = 1;
    }
    out->ctx = s;
    out->next = s->len ? shape_next : NULL;
    out->total_length = qnum(env, "cl", 0) || qnum(env, "chunks", 1) > 1 ? -1 : (int64_t)s->len;
    return CSGI_OK;
}

static struct csgi_test_client *
shape_client(void)
{
    char err[512];
    const struct csgi_kv min = {"min_length", "256"};
    struct csgi_test_client *c = csgi_test_client_new_app(shape_app, NULL, "", err, sizeof(err));

    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_msg(csgi_test_client_wrap_open(c, gzip_so, &min, 1, err, sizeof(err)) == 0, "%s",
                  err);
    return c;
}

/* The response to @p target with @p ae is gzip (1) or identity (0), and its bytes are right. */
static void
expect(struct csgi_test_client *c, const char *target, const char *ae, const char *range, int gz)
{
    struct csgi_test_response *r = get(c, "GET", target, ae, range);
    size_t len = r->body_len;
    char *body = NULL;

    ck_assert_msg(strcmp(hdr(r, "Content-Encoding"), gz ? "gzip" : "") == 0 ||
                      (!gz && strcmp(hdr(r, "Content-Encoding"), "br") == 0),
                  "%s, Accept-Encoding %s: Content-Encoding \"%s\"", target, ae ? ae : "(none)",
                  hdr(r, "Content-Encoding"));
    if (gz) {
        body = gunzip(r->body, r->body_len, &len);
        ck_assert_ptr_null(csgi_test_response_header(r, "Content-Length"));
    }
    for (size_t i = 0; i < len; i++)
        ck_assert_int_eq((gz ? body : r->body)[i], "abcdefghij\n"[i % 11]);
    free(body);
    csgi_test_response_free(r);
}

START_TEST(gzip_accept_encoding)
{
    struct csgi_test_client *c = shape_client();

    expect(c, "/", NULL, NULL, 0);
    expect(c, "/", "gzip", NULL, 1);
    expect(c, "/", "x-gzip", NULL, 1);
    expect(c, "/", "br, GZIP;q=0.1", NULL, 1);
    expect(c, "/", "gzip;q=0", NULL, 0);
    expect(c, "/", "gzip;q=0.000, *", NULL, 0); /* an explicit gzip entry wins over "*" */
    expect(c, "/", "*", NULL, 1);
    expect(c, "/", "*;q=0.5", NULL, 1);
    expect(c, "/", "*;q=0", NULL, 0);
    expect(c, "/", "identity", NULL, 0);
    expect(c, "/", "deflate, br", NULL, 0);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(gzip_skips)
{
    struct csgi_test_client *c = shape_client();
    struct csgi_test_response *r;

    expect(c, "/", "gzip", "bytes=0-9", 0);  /* Range */
    expect(c, "/?len=255", "gzip", NULL, 0); /* short, by total_length */
    expect(c, "/?len=256", "gzip", NULL, 1);
    expect(c, "/?len=100&cl=1", "gzip", NULL, 0); /* short, by Content-Length */
    expect(c, "/?ce=1", "gzip", NULL, 0);         /* already encoded */
    expect(c, "/?status=206", "gzip", NULL, 0);
    r = get(c, "GET", "/?status=204", "gzip", NULL);
    ck_assert_int_eq(r->status, 204);
    ck_assert_str_eq(hdr(r, "Content-Encoding"), "");
    csgi_test_response_free(r);
    r = get(c, "GET", "/?status=304", "gzip", NULL);
    ck_assert_int_eq(r->status, 304);
    ck_assert_str_eq(hdr(r, "Content-Encoding"), "");
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

START_TEST(gzip_vary_head_stream_write)
{
    struct csgi_test_client *c = shape_client();
    struct csgi_test_response *r;

    r = get(c, "GET", "/?len=10", NULL, NULL);
    ck_assert_str_eq(hdr(r, "Vary"), "Accept-Encoding");
    csgi_test_response_free(r);
    r = get(c, "GET", "/?vary=1", "gzip", NULL);
    ck_assert_str_eq(hdr(r, "Vary"), "Cookie, Accept-Encoding");
    csgi_test_response_free(r);
    /* HEAD announces what GET would send. */
    r = get(c, "HEAD", "/", "gzip", NULL);
    ck_assert_str_eq(hdr(r, "Content-Encoding"), "gzip");
    ck_assert_uint_eq(r->body_len, 0);
    csgi_test_response_free(r);
    /* Many chunks, and write() data ahead of them: one gzip stream, in order. */
    expect(c, "/?len=4000&chunks=40", "gzip", NULL, 1);
    expect(c, "/?len=3000&chunks=3&write=1", "gzip", NULL, 1);
    r = get(c, "GET", "/?len=4000&chunks=40", "gzip", NULL);
    ck_assert_int_eq(r->framing, CSGI_TEST_FRAMING_CHUNKED);
    csgi_test_response_free(r);
    csgi_test_client_free(c);
}
END_TEST

int
main(int argc, char **argv)
{
    Suite *s = suite_create("gzip");
    TCase *tc = tcase_create("gzip");
    SRunner *sr;
    int failed;

    if (argc < 3) {
        fprintf(stderr, "usage: %s GZIP.so WORLD_RAW.so\n", argv[0]);
        return 2;
    }
    gzip_so = argv[1];
    world_so = argv[2];
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, gzip_world_bytes_identical);
    tcase_add_test(tc, gzip_accept_encoding);
    tcase_add_test(tc, gzip_skips);
    tcase_add_test(tc, gzip_vary_head_stream_write);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
