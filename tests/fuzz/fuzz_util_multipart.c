/*
 * Fuzz target: multipart/form-data parsing (csgi/util.h) over a stand-in
 * host (an arena of malloc() blocks, on_finished() callbacks run at the end)
 * and an input stream over the fuzz bytes. The first byte picks the read size,
 * whether a Content-Length is known, a set of limits and whether file parts
 * may go to temporary files; the rest is the body, with the fixed boundary
 * "XyZ". The same bytes are also parsed as a Content-Type.
 * Invariants: no part exceeds its limit, the parts never exceed max_parts,
 * content sizes add up to no more than what was read, content never holds a
 * delimiter, the stream is never read past max_total_bytes + 1 or after its
 * end, a temporary file holds exactly the part's bytes, and the result after
 * the end or a failure is sticky.
 */
#define _GNU_SOURCE /* P_tmpdir */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csgi/util.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FINISHED 256

struct fake_host {
    void **blocks;
    size_t n_blocks;
    struct {
        csgi_finished_fn fn;
        void *arg;
    } finished[MAX_FINISHED];
    size_t n_finished;
    /* The input stream. */
    const uint8_t *body;
    size_t len, off, read_max;
    int at_end;
};

static void *
fake_alloc(struct csgi_request *req, size_t n)
{
    struct fake_host *h = (struct fake_host *)req;
    void **nb = realloc(h->blocks, (h->n_blocks + 1) * sizeof(*nb));
    void *p;

    if (!nb)
        return NULL;
    h->blocks = nb;
    p = malloc(n ? n : 1);
    if (p)
        h->blocks[h->n_blocks++] = p;
    return p;
}

static int
fake_on_finished(struct csgi_request *req, csgi_finished_fn fn, void *arg)
{
    struct fake_host *h = (struct fake_host *)req;

    if (h->n_finished == MAX_FINISHED)
        return CSGI_ENOMEM;
    h->finished[h->n_finished].fn = fn;
    h->finished[h->n_finished].arg = arg;
    h->n_finished++;
    return 0;
}

static int64_t
fake_read(void *ctx, void *buf, size_t n)
{
    struct fake_host *h = ctx;
    size_t left = h->len - h->off;

    assert(!h->at_end); /* never read again after the end */
    if (n > h->read_max)
        n = h->read_max;
    if (n > left)
        n = left;
    if (n == 0) {
        h->at_end = 1;
        return 0;
    }
    memcpy(buf, h->body + h->off, n);
    h->off += n;
    return (int64_t)n;
}

static void
check_content_type(const uint8_t *data, size_t size)
{
    struct csgi_str ct = {(const char *)data, size}, b = {NULL, 0};
    int rc = csgi_multipart_boundary(ct, &b);

    assert(rc == 0 || rc == CSGI_EINVAL || rc == CSGI_ENOTSUP);
    if (rc == 0) {
        assert(b.len >= 1 && b.len <= CSGI_MULTIPART_BOUNDARY_MAX);
        assert(b.ptr >= ct.ptr && b.ptr + b.len <= ct.ptr + ct.len);
        assert(b.ptr[b.len - 1] != ' ');
    }
}

static void
check_part(const struct csgi_multipart_part *p, const struct csgi_multipart_limits *lim)
{
    assert(p->name.ptr && p->name.ptr[p->name.len] == '\0');
    assert(!p->filename.ptr || p->filename.ptr[p->filename.len] == '\0');
    assert(!p->content_type.ptr || p->content_type.ptr[p->content_type.len] == '\0');
    if (p->fd >= 0) {
        struct stat sb;
        assert(p->filename.ptr && lim->tmp_dir);
        assert(p->size > lim->max_file_memory && !p->data.ptr);
        assert(fstat(p->fd, &sb) == 0 && (uint64_t)sb.st_size == p->size);
        assert(lseek(p->fd, 0, SEEK_CUR) == 0);
        return;
    }
    assert(p->data.ptr && p->data.len == p->size && p->data.ptr[p->data.len] == '\0');
    assert(p->size <= (p->filename.ptr ? lim->max_file_memory : lim->max_field_bytes));
    assert(!memmem(p->data.ptr, p->data.len, "\r\n--XyZ", 7));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t read_sizes[] = {1, 2, 3, 7, 64, 1000, 4096, 1u << 20};
    static const struct csgi_multipart_limits limit_sets[] = {
        {0},
        {.max_parts = 3, .max_header_bytes = 64, .max_field_bytes = 16, .max_file_memory = 8},
        {.max_total_bytes = 200, .max_field_bytes = 100, .max_file_memory = 4},
        {.max_header_bytes = 2, .max_field_bytes = 1, .max_file_memory = 1},
    };
    struct fake_host h = {0};
    struct csgi_host_api api = {
        .version = CSGI_HOST_API_VERSION, .alloc = fake_alloc, .on_finished = fake_on_finished};
    struct csgi_input in = {.version = CSGI_INPUT_VERSION, .ctx = &h, .read = fake_read};
    struct csgi_environ env = {.version = CSGI_ENVIRON_VERSION,
                               .request = (struct csgi_request *)&h,
                               .content_type = CSGI_STR_INIT("multipart/form-data; boundary=XyZ"),
                               .input = &in};
    struct csgi_multipart_limits lim;
    struct csgi_multipart *mp = NULL;
    struct csgi_multipart_part part;
    uint64_t sizes = 0;
    size_t parts = 0;
    int rc;

    check_content_type(data, size);
    if (size < 1)
        return 0;
    h.read_max = read_sizes[data[0] & 7];
    h.body = data + 1;
    h.len = size - 1;
    env.content_length = (data[0] & 8) ? (int64_t)h.len : -1;
    lim = limit_sets[(data[0] >> 4) & 3];
    lim.tmp_dir = (data[0] & 64) ? P_tmpdir : NULL;
    rc = csgi_multipart_open(&api, &env, &lim, &mp);
    if (rc == 0) {
        /* The defaults, as the header documents them. */
        if (!lim.max_parts)
            lim.max_parts = 128;
        if (!lim.max_total_bytes)
            lim.max_total_bytes = 16u << 20;
        if (!lim.max_field_bytes)
            lim.max_field_bytes = 65536;
        if (!lim.max_file_memory)
            lim.max_file_memory = 65536;
        for (;;) {
            rc = csgi_multipart_next(mp, &part);
            if (rc != 1)
                break;
            check_part(&part, &lim);
            sizes += part.size;
            parts++;
        }
        assert(rc == 0 || rc == CSGI_EINVAL || rc == CSGI_ETOOBIG || rc == CSGI_EIO ||
               rc == CSGI_ENOMEM);
        assert(csgi_multipart_next(mp, &part) == rc);
        assert(parts <= lim.max_parts);
        assert(sizes <= h.off && h.off <= lim.max_total_bytes + 1);
    } else {
        assert(rc == CSGI_ETOOBIG && h.off == 0);
    }
    while (h.n_finished > 0) {
        h.n_finished--;
        h.finished[h.n_finished].fn(h.finished[h.n_finished].arg, CSGI_FINISH_OK);
    }
    for (size_t i = 0; i < h.n_blocks; i++)
        free(h.blocks[i]);
    free(h.blocks);
    return 0;
}
