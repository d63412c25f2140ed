/*
 * libFuzzer target for the server's own request translation: request-target
 * parsing and percent-decoding, Host and Transfer-Encoding checks, method
 * checks, mount matching, and the response-head validation start_response()
 * applies. Each stage asserts the invariants the rest of the server relies on.
 *
 * Input layout: the bytes are split at the first '\n' into a request-target
 * and a "response head" ("<status> <name>: <value>\n..."), so that one input
 * exercises both directions.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csgi_internal.h"
#include "plugin_loader.h"
#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct srv_plugin plugins[4];
static size_t order[4] = {0, 1, 2, 3};
static struct srv_plugin_set set = {plugins, 4, order};

static void
init_mounts(void)
{
    static char m[4][8] = {"/api/v1", "/api", "/a", "/"};

    if (plugins[0].mount)
        return;
    for (size_t i = 0; i < 4; i++) {
        plugins[i].mount = m[i];
        plugins[i].mount_len = strlen(m[i]);
    }
}

static void
fuzz_target(const char *p, size_t n)
{
    struct csgi__target t;
    const char *why = NULL;
    char *buf = malloc(n + 2);
    size_t iter = 0, last_len = (size_t)-1;
    struct srv_plugin *pl;

    if (!buf)
        return;
    if (csgi__target_parse(p, n, buf, &t, &why) == 0) {
        assert(t.path && t.path[t.path_len] == '\0');
        assert(strlen(t.path) == t.path_len);
        assert(t.path_len <= n);
        assert(t.asterisk || t.path[0] == '/');
        assert(t.query);
        if (t.query_len)
            assert(t.query >= p && t.query + t.query_len <= p + n);
        if (t.host) {
            size_t nl, pl_len;
            const char *port;
            assert(csgi__host_parse(t.host, t.host_len, &nl, &port, &pl_len) == 0);
        }
        /* Mount matching: each match is a prefix at a segment boundary, longest first. */
        while ((pl = srv_plugins_match(&set, t.path, t.path_len, &iter))) {
            size_t ml = pl->mount_len;
            assert(ml <= last_len);
            last_len = ml;
            if (ml > 1) {
                assert(t.path_len >= ml && memcmp(t.path, pl->mount, ml) == 0);
                assert(t.path_len == ml || t.path[ml] == '/');
            }
        }
    } else {
        assert(why && *why);
    }
    {
        long d = csgi__percent_decode(p, n, buf);
        if (d >= 0) {
            assert((size_t)d <= n);
            assert(memchr(buf, '\0', (size_t)d) == NULL);
        }
    }
    {
        size_t nl, pl_len;
        const char *port;
        if (csgi__host_parse(p, n, &nl, &port, &pl_len) == 0) {
            assert(nl > 0 && nl <= n);
            assert(!port || (port > p && port + pl_len == p + n && pl_len <= 5));
        }
    }
    {
        int te = csgi__te_check(p, n);
        assert(te == 0 || te == 400 || te == 501);
        if (te == 0)
            assert(n == 7);
    }
    if (csgi__method_known(p, n))
        assert(csgi__is_token(p, n));
    {
        int64_t cl = csgi__parse_content_length(p, n);
        assert(cl >= -1);
    }
    free(buf);
}

static void
fuzz_head(const char *p, size_t n)
{
    struct csgi_header h[16] = {{{NULL, 0}, {NULL, 0}}};
    size_t nh = 0;
    int status = 0;
    size_t i = 0;
    char why[256];
    int64_t cl = -2;

    while (i < n && i < 6 && p[i] >= '0' && p[i] <= '9')
        status = status * 10 + (p[i++] - '0');
    while (i < n && nh < 16) {
        const char *line = p + i, *colon, *end = memchr(line, '\n', n - i);
        size_t len = end ? (size_t)(end - line) : n - i;
        colon = memchr(line, ':', len);
        if (colon) {
            h[nh].name.ptr = line;
            h[nh].name.len = (size_t)(colon - line);
            h[nh].value.ptr = colon + 1;
            h[nh].value.len = len - (size_t)(colon - line) - 1;
            nh++;
        }
        i += len + 1;
    }
    {
        struct csgi_str reason = {NULL, 0};
        int rc = csgi__check_response_head(status, reason, h, nh, &cl, why, sizeof(why));
        if (rc == 0) {
            assert(status >= 200 && status <= 599);
            for (size_t k = 0; k < nh; k++) {
                assert(csgi__is_token(h[k].name.ptr, h[k].name.len));
                assert(csgi__is_field_value(h[k].value.ptr, h[k].value.len));
                assert(!csgi__is_hop_by_hop(h[k].name.ptr, h[k].name.len));
            }
            assert(cl >= -1);
        } else {
            assert(rc == CSGI_ESTATUS || rc == CSGI_EHEADER);
            assert(why[0]);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nl = memchr(p, '\n', size);
    size_t tn = nl ? (size_t)(nl - p) : size;

    init_mounts();
    fuzz_target(p, tn);
    if (nl)
        fuzz_head(nl + 1, size - tn - 1);
    return 0;
}
