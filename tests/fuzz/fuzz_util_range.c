/*
 * Fuzz target: Range evaluation (csgi/util.h). The first 8 bytes give the
 * representation length; the rest is the header. Invariants: the status is
 * 200, 206 or 416, and a 206 range lies inside the representation.
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
    uint64_t raw = 0;
    int64_t length;
    struct csgi_range r = {-1, -1};
    int st;

    if (size < 8)
        return 0;
    memcpy(&raw, data, 8);
    /* Small lengths most of the time, so that ranges meet them. */
    length = (raw >> 63) ? (int64_t)(raw & INT64_MAX) : (int64_t)(raw % 4096);
    st = csgi_range_parse((struct csgi_str){(const char *)data + 8, size - 8}, length, &r);
    assert(st == 200 || st == 206 || st == 416);
    if (st == 206) {
        assert(r.first >= 0 && r.first <= r.last && r.last < length);
    } else {
        assert(r.first == -1 && r.last == -1);
    }
    return 0;
}
