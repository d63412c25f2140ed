/*
 * Fuzz target: query-string / urlencoded iteration and percent-decoding
 * (csgi/util.h). Invariants: pairs lie inside the input, every flag set
 * decodes to at most the input length, a decoded key compares equal to its
 * raw form, strict success implies lenient success with the same bytes, and
 * re-encoding then decoding gives the bytes back.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/util.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Percent-encode everything but unreserved bytes; returns the length. */
static size_t
encode(const char *in, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

static void
check_part(struct csgi_str raw, char *buf, char *buf2, char *enc)
{
    static const unsigned flag_sets[] = {0,
                                         CSGI_URL_PLUS_SPACE,
                                         CSGI_URL_LENIENT,
                                         CSGI_URL_PLUS_SPACE | CSGI_URL_LENIENT,
                                         CSGI_URL_NO_NUL,
                                         CSGI_URL_PLUS_SPACE | CSGI_URL_LENIENT | CSGI_URL_NO_NUL};

    for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
        unsigned flags = flag_sets[f];
        size_t n = (size_t)-1, n2 = 0;
        int rc = csgi_url_decode(raw, flags, buf, raw.len + 1, &n);

        if ((flags & CSGI_URL_LENIENT) && !(flags & CSGI_URL_NO_NUL))
            assert(rc == 0);
        assert(rc == 0 || rc == CSGI_EINVAL);
        if (rc != 0) {
            assert(!csgi_url_decoded_eq(raw, flags, (struct csgi_str){buf, 0}) || raw.len == 0);
            continue;
        }
        assert(n <= raw.len);
        assert(buf[n] == '\0');
        assert(csgi_url_decoded_eq(raw, flags, (struct csgi_str){buf, n}));
        if (!(flags & CSGI_URL_LENIENT)) {
            assert(csgi_url_decode(raw, flags | CSGI_URL_LENIENT, buf2, raw.len + 1, &n2) == 0);
            assert(n2 == n && memcmp(buf, buf2, n) == 0);
        }
        /* Round trip through a strict encoder. */
        {
            size_t elen = encode(buf, n, enc);
            struct csgi_str e = {enc, elen};
            assert(csgi_url_decode(e, 0, buf2, elen + 1, &n2) == 0);
            assert(n2 == n && memcmp(buf, buf2, n) == 0);
        }
        /* One byte short never overflows: it fails or fits exactly without the terminator. */
        if (n > 0)
            assert(csgi_url_decode(raw, flags, buf2, n - 1, &n2) == CSGI_ETOOBIG);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct csgi_str in = {s, size};
    struct csgi_query_iter it;
    struct csgi_str k, v;
    char *buf = malloc(size + 1), *buf2 = malloc(size + 1), *enc = malloc(size * 3 + 1);
    size_t pairs = 0;

    assert(buf && buf2 && enc);
    csgi_query_iter_init(&it, in);
    while (csgi_query_next(&it, &k, &v) == 1) {
        assert(++pairs <= size);
        assert(k.ptr >= s && k.ptr + k.len <= s + size);
        assert(v.ptr >= s && v.ptr + v.len <= s + size);
        assert(k.len + v.len > 0 || v.ptr > k.ptr);
        assert(!memchr(k.ptr, '&', k.len) && !memchr(k.ptr, '=', k.len));
        assert(!memchr(v.ptr, '&', v.len));
        check_part(k, buf, buf2, enc);
        check_part(v, buf, buf2, enc);
    }
    check_part(in, buf, buf2, enc);
    free(buf);
    free(buf2);
    free(enc);
    return 0;
}
