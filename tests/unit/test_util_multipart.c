/*
 * Unit tests for libcsgi-util's multipart/form-data parser
 * (gateway/lib/util_multipart.c), run through the in-process test client's
 * real input stream and request arena, whole or one byte per read().
 */
#define _GNU_SOURCE /* pread(), mkdtemp(), P_tmpdir */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <csgi/testclient.h>
#include <csgi/util.h>

#define MAX_PARTS 8

struct got_part {
    char name[64], filename[64], content_type[64];
    int has_filename, has_content_type;
    int fd; /* the temporary file's descriptor, -1 when in memory */
    char *data;
    size_t size;
};

struct mp_state {
    const struct csgi_host_api *api;
    const struct csgi_multipart_limits *limits;
    int byte_at_a_time;
    const struct csgi_input *inner; /* the client's stream, under the one-byte wrapper */
    uint64_t read_bytes;
    int rc_open, rc; /* csgi_multipart_open(), the last csgi_multipart_next() */
    int rc_again;    /* one more csgi_multipart_next() after the last */
    size_t n;
    struct got_part parts[MAX_PARTS];
};

static int64_t
counting_read(void *ctx, void *buf, size_t n)
{
    struct mp_state *st = ctx;
    int64_t got;

    if (st->byte_at_a_time && n > 1)
        n = 1;
    got = st->inner->read(st->inner->ctx, buf, n);
    if (got > 0)
        st->read_bytes += (uint64_t)got;
    return got;
}

static void
copy_str(char *dst, size_t cap, struct csgi_str s, int *present)
{
    ck_assert_uint_lt(s.len, cap);
    memcpy(dst, s.ptr ? s.ptr : "", s.len);
    dst[s.len] = '\0';
    if (present)
        *present = s.ptr != NULL;
}

/* Copy a part out of request memory (or its temporary file) before the request ends. */
static void
keep_part(struct got_part *g, const struct csgi_multipart_part *p)
{
    copy_str(g->name, sizeof(g->name), p->name, NULL);
    copy_str(g->filename, sizeof(g->filename), p->filename, &g->has_filename);
    copy_str(g->content_type, sizeof(g->content_type), p->content_type, &g->has_content_type);
    g->fd = p->fd;
    g->size = (size_t)p->size;
    g->data = malloc(g->size + 1);
    if (p->fd >= 0) {
        ck_assert_ptr_null(p->data.ptr);
        ck_assert_int_eq(pread(p->fd, g->data, g->size + 1, 0), (ssize_t)g->size);
        ck_assert_int_eq(lseek(p->fd, 0, SEEK_CUR), 0);
    } else {
        ck_assert_uint_eq(p->data.len, g->size);
        ck_assert_int_eq(p->data.ptr[p->data.len], '\0');
        memcpy(g->data, p->data.ptr, g->size);
    }
    g->data[g->size] = '\0';
}

static int
mp_app(void *state, struct csgi_environ *env, const struct csgi_responder *resp,
       struct csgi_body *out)
{
    struct mp_state *st = state;
    struct csgi_input wrapped = *env->input;
    struct csgi_multipart *mp = NULL;
    struct csgi_multipart_part part;

    (void)out;
    st->inner = env->input;
    wrapped.ctx = st;
    wrapped.read = counting_read;
    env->input = &wrapped;
    st->rc_open = csgi_multipart_open(st->api, env, st->limits, &mp);
    if (st->rc_open == 0) {
        for (;;) {
            st->rc = csgi_multipart_next(mp, &part);
            if (st->rc != 1)
                break;
            ck_assert_uint_lt(st->n, MAX_PARTS);
            keep_part(&st->parts[st->n++], &part);
        }
        st->rc_again = csgi_multipart_next(mp, &part);
    }
    return resp->start_response(resp->ctx, 204, (struct csgi_str){NULL, 0}, NULL, 0, NULL);
}

/* POST @p body as @p content_type and parse it; with_cl sends Content-Length. */
static void
run_mp(const char *content_type, const char *body, size_t len, int with_cl, struct mp_state *st)
{
    char err[128], cl_text[32];
    struct csgi_header h[] = {
        {CSGI_STR_INIT("Content-Type"), csgi_str_c(content_type)},
        {CSGI_STR_INIT("Content-Length"), {cl_text, 0}},
    };
    struct csgi_test_request rq = {.method = "POST", .target = "/", .headers = h};
    struct csgi_test_response *r = NULL;
    struct csgi_test_client *cl;

    h[1].value.len = (size_t)snprintf(cl_text, sizeof(cl_text), "%zu", len);
    rq.n_headers = with_cl ? 2 : 1;
    rq.body = body;
    rq.body_len = len;
    cl = csgi_test_client_new_app(mp_app, st, "", err, sizeof(err));
    ck_assert_msg(cl != NULL, "%s", err);
    st->api = csgi_test_client_host_api(cl);
    st->rc_open = st->rc = st->rc_again = 12345;
    ck_assert_int_eq(csgi_test_client_request(cl, &rq, &r), 0);
    ck_assert_int_eq(r->status, 204);
    csgi_test_response_free(r);
    csgi_test_client_free(cl);
}

static void
free_parts(struct mp_state *st)
{
    for (size_t i = 0; i < st->n; i++)
        free(st->parts[i].data);
}

#define CT "multipart/form-data; boundary=XyZ"

/* ------------------------------------------------------------------ */
/* Well-formed bodies                                                  */
/* ------------------------------------------------------------------ */

static const char form_body[] =
    "This is the preamble; --XyZ without CRLF before it is not a boundary.\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"title\"\r\n"
    "\r\n"
    "Hello\r\nworld\r\n"
    "--XyZ \t\r\n" /* transport padding */
    "content-disposition: form-data; name=\"upload\"; filename=\"a \\\"b\\\".txt\"\r\n"
    "Content-Type:  text/plain  \r\n"
    "X-Ignored: yes\r\n"
    "\r\n"
    "line\r\n--XyY is data, a--XyZ too\r\n-XyZ\r\n--Xy\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=empty\r\n"
    "\r\n"
    "\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"nofile\"; filename=\"\"\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "\r\n"
    "--XyZ--\r\n"
    "This is the epilogue.\r\n--XyZ\r\ngarbage";

START_TEST(multipart_parses_form)
{
    struct mp_state st = {.byte_at_a_time = _i & 1};

    run_mp(CT, form_body, sizeof(form_body) - 1, _i < 2, &st);
    ck_assert_int_eq(st.rc_open, 0);
    ck_assert_int_eq(st.rc, 0);
    ck_assert_int_eq(st.rc_again, 0);
    ck_assert_uint_eq(st.n, 4);
    ck_assert_str_eq(st.parts[0].name, "title");
    ck_assert(!st.parts[0].has_filename && !st.parts[0].has_content_type);
    ck_assert_str_eq(st.parts[0].data, "Hello\r\nworld");
    ck_assert_int_eq(st.parts[0].fd, -1);
    ck_assert_str_eq(st.parts[1].name, "upload");
    ck_assert_str_eq(st.parts[1].filename, "a \"b\".txt");
    ck_assert_str_eq(st.parts[1].content_type, "text/plain");
    ck_assert_str_eq(st.parts[1].data, "line\r\n--XyY is data, a--XyZ too\r\n-XyZ\r\n--Xy");
    ck_assert_str_eq(st.parts[2].name, "empty");
    ck_assert_uint_eq(st.parts[2].size, 0);
    ck_assert_str_eq(st.parts[3].name, "nofile");
    ck_assert(st.parts[3].has_filename);
    ck_assert_str_eq(st.parts[3].filename, "");
    ck_assert_uint_eq(st.parts[3].size, 0);
    /* The epilogue is left unread, as far as the stream returned it. */
    ck_assert_uint_le(st.read_bytes, sizeof(form_body) - 1);
    if (st.byte_at_a_time)
        ck_assert_uint_eq(st.read_bytes, strstr(form_body, "--XyZ--") + 7 - form_body);
    free_parts(&st);
}
END_TEST

START_TEST(multipart_first_boundary_at_start)
{
    static const char body[] = "--b'(),./:=?+_-\r\n"
                               "Content-Disposition: form-data; name=\"a\"; "
                               "filename=\"C:\\dir\\f.txt\"\r\n"
                               "\r\n"
                               "1\r\n"
                               "--b'(),./:=?+_---";
    struct mp_state st = {.byte_at_a_time = _i};

    run_mp("Multipart/Form-Data ; charset=utf-8; boundary=\"b'(),./:=?+_-\"", body,
           sizeof(body) - 1, 1, &st);
    ck_assert_int_eq(st.rc_open, 0);
    ck_assert_int_eq(st.rc, 0);
    ck_assert_uint_eq(st.n, 1);
    /* Old browsers send Windows paths with single backslashes: they survive. */
    ck_assert_str_eq(st.parts[0].filename, "C:\\dir\\f.txt");
    ck_assert_str_eq(st.parts[0].data, "1");
    free_parts(&st);
}
END_TEST

START_TEST(multipart_binary_and_large_fields)
{
    size_t len = 50000, blen;
    char *data = malloc(len), *body = malloc(len + 512);
    struct csgi_multipart_limits lim = {.max_field_bytes = len, .max_file_memory = len};
    struct mp_state st = {.limits = &lim};

    /* Every byte value, CR and LF in all orders, and a near-delimiter. */
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 7 + i / 256);
    memcpy(data + 1000, "\r\n--XyZ", 6);
    blen = (size_t)sprintf(body, "--XyZ\r\nContent-Disposition: form-data; name=bin\r\n\r\n");
    memcpy(body + blen, data, len);
    blen += len;
    blen += (size_t)sprintf(body + blen, "\r\n--XyZ--");
    run_mp(CT, body, blen, 1, &st);
    ck_assert_int_eq(st.rc, 0);
    ck_assert_uint_eq(st.n, 1);
    ck_assert_uint_eq(st.parts[0].size, len);
    ck_assert_mem_eq(st.parts[0].data, data, len);
    free_parts(&st);
    /* One byte over the field limit. */
    lim.max_field_bytes = len - 1;
    memset(&st, 0, sizeof(st));
    st.limits = &lim;
    run_mp(CT, body, blen, 1, &st);
    ck_assert_int_eq(st.rc, CSGI_ETOOBIG);
    ck_assert_int_eq(st.rc_again, CSGI_ETOOBIG);
    free(data);
    free(body);
}
END_TEST

/* Count the entries of @p dir other than "." and "..". */
static int
dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

START_TEST(multipart_file_to_temp_file)
{
    char dir[] = P_tmpdir "/csgi-mp-test-XXXXXX";
    size_t len = 100000, blen;
    char *body = malloc(len + 512);
    struct csgi_multipart_limits lim = {.max_file_memory = 1000, .max_field_bytes = 10};
    struct mp_state st = {.limits = &lim, .byte_at_a_time = 0};

    ck_assert_ptr_nonnull(mkdtemp(dir));
    lim.tmp_dir = dir;
    blen = (size_t)sprintf(body, "--XyZ\r\nContent-Disposition: form-data; name=f; "
                                 "filename=\"big.bin\"\r\n\r\n");
    for (size_t i = 0; i < len; i++)
        body[blen + i] = (char)('a' + i % 23);
    blen += len;
    blen += (size_t)sprintf(body + blen, "\r\n--XyZ\r\nContent-Disposition: form-data; "
                                         "name=small; filename=s\r\n\r\n1000 bytes or less"
                                         "\r\n--XyZ--\r\n");
    run_mp(CT, body, blen, 1, &st);
    ck_assert_int_eq(st.rc, 0);
    ck_assert_uint_eq(st.n, 2);
    ck_assert_int_ge(st.parts[0].fd, 0);
    ck_assert_uint_eq(st.parts[0].size, len);
    for (size_t i = 0; i < len; i++)
        ck_assert_int_eq(st.parts[0].data[i], 'a' + i % 23);
    ck_assert_int_eq(st.parts[1].fd, -1);
    ck_assert_str_eq(st.parts[1].data, "1000 bytes or less");
    /* Closed when the request finished, and never visible in the directory. */
    ck_assert_int_eq(fcntl(st.parts[0].fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(dir_entries(dir), 0);
    free_parts(&st);

    /* Without a directory, the same file part is too big. */
    memset(&st, 0, sizeof(st));
    lim.tmp_dir = NULL;
    st.limits = &lim;
    run_mp(CT, body, blen, 1, &st);
    ck_assert_int_eq(st.rc, CSGI_ETOOBIG);
    ck_assert_uint_eq(st.n, 0);
    /* A directory that cannot hold files. */
    memset(&st, 0, sizeof(st));
    lim.tmp_dir = "/nonexistent/csgi";
    st.limits = &lim;
    run_mp(CT, body, blen, 1, &st);
    ck_assert_int_eq(st.rc, CSGI_EIO);
    ck_assert_int_eq(rmdir(dir), 0);
    free(body);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Malformed bodies and limits                                         */
/* ------------------------------------------------------------------ */

#define PART(name, data)                                                                           \
    "--XyZ\r\nContent-Disposition: form-data; name=" name "\r\n\r\n" data "\r\n"

static const struct {
    const char *body;
    size_t n_parts; /* parts returned before the failure */
    int rc;
    struct csgi_multipart_limits lim;
} bad_cases[] = {
    /* Missing final boundary, and a stream that ends in various places. */
    {PART("a", "1"), 0, CSGI_EINVAL, {0}},
    {PART("a", "1") "--XyZ", 1, CSGI_EINVAL, {0}},
    {PART("a", "1") "--XyZ-", 1, CSGI_EINVAL, {0}},
    {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n12", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n", 0, CSGI_EINVAL, {0}},
    {"--XyZ", 0, CSGI_EINVAL, {0}},
    {"", 0, CSGI_EINVAL, {0}},
    {"no boundary at all", 0, CSGI_EINVAL, {0}},
    /* Bad boundary lines. */
    {"--XyZ x\r\n", 0, CSGI_EINVAL, {0}},
    {"--XyZ\n", 0, CSGI_EINVAL, {0}},
    {PART("a", "1") "--XyZz\r\n", 1, CSGI_EINVAL, {0}},
    /* Bad headers. */
    {"--XyZ\r\n\r\n\r\n--XyZ--", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nContent-Type: text/plain\r\n\r\n\r\n--XyZ--", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\n\r\n--XyZ--", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nContent-Disposition: form-data\r\n\r\n\r\n--XyZ--", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n\r\n--XyZ--",
     0,
     CSGI_EINVAL,
     {0}},
    {"--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\n\r\n--XyZ--", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; "
     "name=b\r\n\r\n\r\n--XyZ--",
     0,
     CSGI_EINVAL,
     {0}},
    {"--XyZ\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\n\r\n--XyZ--", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nno colon\r\n\r\n\r\n--XyZ--", 0, CSGI_EINVAL, {0}},
    {"--XyZ\r\nX: a\nb\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--XyZ--",
     0,
     CSGI_EINVAL,
     {0}},
    /* Limits: header block, parts, total bytes, field size. */
    {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--XyZ--",
     1,
     0,
     {.max_header_bytes = 42}},
    {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--XyZ--",
     0,
     CSGI_ETOOBIG,
     {.max_header_bytes = 41}},
    {"--XyZ\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     0,
     CSGI_ETOOBIG,
     {.max_header_bytes = 20}},
    {PART("a", "1") PART("b", "2") "--XyZ--", 2, 0, {.max_parts = 2}},
    {PART("a", "1") PART("b", "2") PART("c", "3") "--XyZ--", 2, CSGI_ETOOBIG, {.max_parts = 2}},
    {PART("a", "123") "--XyZ--", 1, 0, {.max_field_bytes = 3}},
    {PART("a", "1234") "--XyZ--", 0, CSGI_ETOOBIG, {.max_field_bytes = 3}},
    {PART("a", "1") "--XyZ--", 1, 0, {.max_total_bytes = 59}},
    {PART("a", "1") "--XyZ--\r\n", 1, 0, {.max_total_bytes = 59}},
    {PART("a", "1") "--XyZ--", 1, CSGI_ETOOBIG, {.max_total_bytes = 58}},
};

START_TEST(multipart_rejects)
{
    int c = _i / 3, mode = _i % 3; /* 0: with Content-Length, 1: chunked, 2: one byte per read */
    const char *body = bad_cases[c].body;
    struct mp_state st = {.limits = &bad_cases[c].lim, .byte_at_a_time = mode == 2};
    int rc = bad_cases[c].rc;

    run_mp(CT, body, strlen(body), mode == 0, &st);
    /* A Content-Length over max_total_bytes is refused before reading. */
    if (mode == 0 && bad_cases[c].lim.max_total_bytes &&
        strlen(body) > bad_cases[c].lim.max_total_bytes) {
        ck_assert_int_eq(st.rc_open, CSGI_ETOOBIG);
        ck_assert_uint_eq(st.read_bytes, 0);
        return;
    }
    ck_assert_int_eq(st.rc_open, 0);
    ck_assert_msg(st.rc == rc && st.rc_again == rc, "case %d mode %d: rc %d then %d", c, mode,
                  st.rc, st.rc_again);
    ck_assert_msg(st.n == bad_cases[c].n_parts, "case %d: %zu parts", c, st.n);
    if (bad_cases[c].lim.max_total_bytes)
        ck_assert_uint_le(st.read_bytes, bad_cases[c].lim.max_total_bytes + 1);
    free_parts(&st);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The Content-Type                                                    */
/* ------------------------------------------------------------------ */

static const struct {
    const char *ct;
    int rc;
    const char *boundary;
} boundary_cases[] = {
    {"multipart/form-data; boundary=abc", 0, "abc"},
    {"MULTIPART/FORM-DATA;boundary=\"a b\"", 0, "a b"},
    {" multipart/form-data ; charset=\"x;y\" ; boundary=abc ;", 0, "abc"},
    {"multipart/form-data; BOUNDARY=----WebKitFormBoundary7MA4YWxkTrZu0gW", 0,
     "----WebKitFormBoundary7MA4YWxkTrZu0gW"},
    {"multipart/form-data; boundary="
     "\"1234567890123456789012345678901234567890123456789012345678901234567890\"",
     0, "1234567890123456789012345678901234567890123456789012345678901234567890"},
    {"multipart/form-data; boundary="
     "12345678901234567890123456789012345678901234567890123456789012345678901",
     CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary=\"\"", CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary=\"ab \"", CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary=\"a\\b\"", CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary=\"a\"b\"", CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary=a*b", CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary=a; boundary=a", CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary = a", CSGI_EINVAL, NULL},
    {"multipart/form-data; boundary=\"abc", CSGI_EINVAL, NULL},
    {"multipart/form-data", CSGI_EINVAL, NULL},
    {"multipart/form-data; charset=utf-8", CSGI_EINVAL, NULL},
    {"multipart/form-data x; boundary=abc", CSGI_EINVAL, NULL},
    {"multipart/mixed; boundary=abc", CSGI_ENOTSUP, NULL},
    {"multipart/form-datax; boundary=abc", CSGI_ENOTSUP, NULL},
    {"application/x-www-form-urlencoded", CSGI_ENOTSUP, NULL},
    {"", CSGI_ENOTSUP, NULL},
};

START_TEST(multipart_boundary)
{
    struct csgi_str b = {"unchanged", 9};
    int rc = csgi_multipart_boundary(csgi_str_c(boundary_cases[_i].ct), &b);

    ck_assert_msg(rc == boundary_cases[_i].rc, "case %d: rc %d", _i, rc);
    if (rc == 0)
        ck_assert(csgi_str_eq_c(b, boundary_cases[_i].boundary));
    else
        ck_assert(csgi_str_eq_c(b, "unchanged"));
}
END_TEST

START_TEST(multipart_open_checks)
{
    struct mp_state st = {0};
    struct csgi_multipart *mp;
    struct csgi_multipart_part part;

    run_mp("text/plain", "x", 1, 1, &st);
    ck_assert_int_eq(st.rc_open, CSGI_ENOTSUP);
    run_mp("multipart/form-data; boundary=\"\"", "x", 1, 1, &st);
    ck_assert_int_eq(st.rc_open, CSGI_EINVAL);
    ck_assert_uint_eq(st.read_bytes, 0);
    ck_assert_int_eq(csgi_multipart_open(NULL, NULL, NULL, &mp), CSGI_EINVAL);
    ck_assert_int_eq(csgi_multipart_next(NULL, &part), CSGI_EINVAL);
    ck_assert_int_eq(csgi_multipart_boundary(csgi_str_c("x"), NULL), CSGI_EINVAL);
}
END_TEST

static Suite *
util_multipart_suite(void)
{
    Suite *s = suite_create("util_multipart");
    TCase *tc = tcase_create("parse");
    TCase *tb = tcase_create("boundary");

    tcase_add_loop_test(tc, multipart_parses_form, 0, 4);
    tcase_add_loop_test(tc, multipart_first_boundary_at_start, 0, 2);
    tcase_add_test(tc, multipart_binary_and_large_fields);
    tcase_add_test(tc, multipart_file_to_temp_file);
    tcase_add_loop_test(tc, multipart_rejects, 0,
                        (int)(3 * sizeof(bad_cases) / sizeof(bad_cases[0])));
    suite_add_tcase(s, tc);
    tcase_add_loop_test(tb, multipart_boundary, 0,
                        (int)(sizeof(boundary_cases) / sizeof(boundary_cases[0])));
    tcase_add_test(tb, multipart_open_checks);
    suite_add_tcase(s, tb);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(util_multipart_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
