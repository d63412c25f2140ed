/*
 * Fuzz target: Cookie parsing and Set-Cookie building (csgi/util.h).
 * Invariants: cookies lie inside the input and hold no ';'; names are not
 * empty; a Set-Cookie value that builds has no CTL and parses back to the
 * same name and value.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <csgi/util.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_build(const char *s, size_t size)
{
    /* Layout: flags byte, same_site byte, then name NUL value NUL domain NUL path. */
    struct csgi_str part[4] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    struct csgi_cookie c = {0};
    char out[512];
    size_t len = 0, i = 2, k = 0;
    int rc;

    if (size < 2)
        return;
    while (k < 4 && i <= size) {
        const char *nul = memchr(s + i, '\0', size - i);
        size_t e = nul ? (size_t)(nul - s) : size;
        part[k].ptr = s + i;
        part[k].len = e - i;
        k++;
        i = e + 1;
    }
    c.name = part[0];
    c.value = part[1];
    c.domain = part[2];
    c.path = part[3];
    c.flags = (unsigned char)s[0] & 0x1f;
    c.same_site = (signed char)s[1] % 5;
    c.max_age = (int64_t)(unsigned char)s[0] * 1000 - 100000;
    c.expires = (int64_t)(signed char)s[1] * 100000000;
    rc = csgi_set_cookie_format(&c, out, sizeof(out), &len);
    assert(rc == 0 || rc == CSGI_EHEADER || rc == CSGI_ETOOBIG);
    if (rc != 0)
        return;
    assert(len < sizeof(out) && out[len] == '\0' && strlen(out) == len);
    for (size_t j = 0; j < len; j++)
        assert((unsigned char)out[j] >= 0x20 && (unsigned char)out[j] < 0x7f);
    {
        struct csgi_cookie_iter it;
        struct csgi_str n, v;
        csgi_cookie_iter_init(&it, (struct csgi_str){out, len});
        assert(csgi_cookie_next(&it, &n, &v) == 1);
        assert(csgi_str_eq(n, c.name));
        assert(csgi_str_eq(v, c.value));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct csgi_cookie_iter it;
    struct csgi_str n, v;
    size_t count = 0;

    csgi_cookie_iter_init(&it, (struct csgi_str){s, size});
    while (csgi_cookie_next(&it, &n, &v) == 1) {
        assert(++count <= size);
        assert(n.len > 0);
        assert(n.ptr >= s && n.ptr + n.len <= s + size);
        assert(v.ptr >= s && v.ptr + v.len <= s + size);
        assert(!memchr(n.ptr, ';', n.len) && !memchr(v.ptr, ';', v.len));
        assert(!memchr(n.ptr, '=', n.len));
    }
    check_build(s, size);
    return 0;
}
