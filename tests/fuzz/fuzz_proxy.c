/*
 * Fuzz target: the PROXY protocol header (server/src/proxy_proto.c).
 * Invariants: an accepted header lies within what its version allows (v1 up
 * to 107 bytes ending in CRLF and within the input; v2 at least 16 bytes),
 * names a usable address unless local, and every shorter prefix of an input
 * is either "more" or the same answer: a valid beginning is never refused,
 * so the acceptor may decide on whatever has arrived.
 */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_header(const uint8_t *data, size_t size, int rc, const struct srv_proxy_header *h)
{
    assert(h->version == 1 || h->version == 2);
    if (h->version == 1) {
        assert((size_t)rc <= size && rc <= SRV_PROXY_V1_MAX);
        assert(data[rc - 2] == '\r' && data[rc - 1] == '\n');
    } else {
        assert(rc >= SRV_PROXY_V2_FIXED && rc <= SRV_PROXY_V2_FIXED + 65535);
    }
    if (!h->local) {
        int fam = h->src.ss_family;
        assert(fam == AF_INET || fam == AF_INET6 || fam == AF_UNIX);
        assert(h->src_len > 0 && h->src_len <= sizeof(h->src));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct srv_proxy_header h, hp;
    const char *why = NULL;
    uint8_t *copy = malloc(size ? size : 1);
    int rc;

    assert(copy);
    memcpy(copy, data, size);
    rc = srv_proxy_parse(copy, size, &h, &why);
    assert(rc == SRV_PROXY_MORE || rc == -EINVAL || rc > 0);
    if (rc < 0)
        assert(why && *why);
    if (rc > 0)
        check_header(copy, size, rc, &h);
    /* Prefixes (up to where every header's addresses are known). */
    for (size_t k = 0; k < size && k <= SRV_PROXY_ADDR_MAX; k++) {
        int rk = srv_proxy_parse(copy, k, &hp, &why);
        if (rc >= 0)
            assert(rk == SRV_PROXY_MORE || rk == rc);
        if (rk > 0 && rc > 0)
            assert(hp.local == h.local && hp.src_len == h.src_len &&
                   memcmp(&hp.src, &h.src, sizeof(h.src)) == 0);
    }
    free(copy);
    return 0;
}
