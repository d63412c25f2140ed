/*
 * Fuzz target: HTTP-date parsing and formatting (csgi/util.h). Invariants: a
 * parsed date that can be formatted parses back to the same time; any time in
 * range formats to 29 bytes that parse back to it.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include <csgi/util.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[CSGI_HTTP_DATE_LEN + 1];
    int64_t t = 0, back = 0;
    uint64_t raw = 0;
    int rc;

    rc = csgi_http_date_parse((struct csgi_str){(const char *)data, size}, &t);
    assert(rc == 0 || rc == CSGI_EINVAL);
    if (rc == 0 && csgi_http_date_format(t, buf) == 0) {
        assert(strlen(buf) == CSGI_HTTP_DATE_LEN);
        assert(csgi_http_date_parse((struct csgi_str){buf, CSGI_HTTP_DATE_LEN}, &back) == 0);
        assert(back == t);
    }
    /* The first 8 bytes as a time. */
    memcpy(&raw, data, size < 8 ? size : 8);
    t = (int64_t)raw;
    rc = csgi_http_date_format(t, buf);
    assert(rc == 0 || rc == CSGI_EINVAL);
    assert((rc == 0) == (t >= CSGI_HTTP_DATE_MIN && t <= CSGI_HTTP_DATE_MAX));
    if (rc == 0) {
        assert(strlen(buf) == CSGI_HTTP_DATE_LEN);
        assert(csgi_http_date_parse((struct csgi_str){buf, CSGI_HTTP_DATE_LEN}, &back) == 0);
        assert(back == t);
    }
    return 0;
}
