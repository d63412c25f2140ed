/*
 * Request body storage for csgi-server's HTTP front: in memory up to
 * --body-buffer, then in an unlinked temporary file (see body_store.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "body_store.h"
#include "log.h"
#include "request.h"

/* ------------------------------------------------------------------ */
/* Body storage                                                        */
/* ------------------------------------------------------------------ */

static int
spill(struct csgi_request *r)
{
    int fd = open(r->h->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd < 0) {
        char path[600];
        snprintf(path, sizeof(path), "%s/csgi-body-XXXXXX", r->h->tmp_dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
            return -errno;
        unlink(path);
    }
    if (r->body_len) {
        const char *p = r->body_mem;
        size_t left = (size_t)r->body_len;
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                close(fd);
                return -errno;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    free(r->body_mem);
    r->body_mem = NULL;
    r->body_cap = 0;
    r->body_fd = fd;
    srv_log(SRV_LOG_DEBUG, "request %llu: body spilled to a temporary file after %llu bytes",
            (unsigned long long)r->id, (unsigned long long)r->body_len);
    return 0;
}

int
srv_body_store(struct csgi_request *r, const char *data, size_t len)
{
    const struct srv_config *cfg = r->h->cfg;

    if (r->body_fd < 0 && r->body_len + len > cfg->body_buffer) {
        int rc = spill(r);
        if (rc < 0) {
            srv_log(SRV_LOG_ERROR, "request %llu: cannot spill the body to \"%s\": %s",
                    (unsigned long long)r->id, r->h->tmp_dir, strerror(-rc));
            return rc;
        }
    }
    if (r->body_fd >= 0) {
        while (len) {
            ssize_t w = write(r->body_fd, data, len);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            data += w;
            len -= (size_t)w;
            r->body_len += (uint64_t)w;
        }
        return 0;
    }
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        char *nb;
        while (cap < r->body_len + len)
            cap *= 2;
        if (cap > cfg->body_buffer)
            cap = cfg->body_buffer;
        nb = realloc(r->body_mem, cap);
        if (!nb)
            return -ENOMEM;
        r->body_mem = nb;
        r->body_cap = cap;
    }
    memcpy(r->body_mem + r->body_len, data, len);
    r->body_len += len;
    return 0;
}
