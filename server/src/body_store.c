/*
 * Request body storage for csgi-server's HTTP front: in memory up to
 * --body-buffer, then in an unlinked temporary file (see body_store.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "body_store.h"
#include "log.h"
#include "request.h"

/* ------------------------------------------------------------------ */
/* The worker's spilled bytes (--max-spill)                            */
/* ------------------------------------------------------------------ */

/*
 * The spill files this worker has open, to bound the bytes they hold
 * together. The adapter closes a request's body_fd without telling us, so
 * an entry is checked against its descriptor when the total is counted: a
 * descriptor closed (or reused for another file) no longer matches its
 * device and inode and is dropped. "held" only grows between counts; it is
 * recounted from the files themselves when it would pass the bound.
 */
struct spill_file {
    int fd;
    dev_t dev;
    ino_t ino;
};

static struct {
    pthread_mutex_t lock;
    struct spill_file *v;
    size_t n, cap;
    uint64_t held; /* an upper bound of the bytes in the files of v */
} spills = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Drop the entries whose descriptor is no longer their file; recount held. Under the lock. */
static void
spills_recount(void)
{
    size_t k = 0;

    spills.held = 0;
    for (size_t i = 0; i < spills.n; i++) {
        struct spill_file *f = &spills.v[i];
        struct stat st;
        if (fstat(f->fd, &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino)
            continue;
        spills.held += (uint64_t)st.st_size;
        spills.v[k++] = *f;
    }
    spills.n = k;
}

/* Remember fd as a spill file. Returns 0 or -ENOMEM. */
static int
spills_add(int fd)
{
    struct stat st;
    int rc = 0;

    if (fstat(fd, &st) < 0)
        return -errno;
    pthread_mutex_lock(&spills.lock);
    /* A descriptor number seen before was closed since: its old entry goes. */
    for (size_t i = 0; i < spills.n; i++) {
        if (spills.v[i].fd == fd)
            spills.v[i] = spills.v[--spills.n];
    }
    if (spills.n == spills.cap) {
        size_t cap = spills.cap ? spills.cap * 2 : 64;
        struct spill_file *nv = realloc(spills.v, cap * sizeof(*nv));
        if (!nv) {
            rc = -ENOMEM;
            goto out;
        }
        spills.v = nv;
        spills.cap = cap;
    }
    spills.v[spills.n++] = (struct spill_file){fd, st.st_dev, st.st_ino};
out:
    pthread_mutex_unlock(&spills.lock);
    return rc;
}

/*
 * Reserve len more spilled bytes under limit (0: no bound). Returns 0, or
 * -ENOSPC when the worker's spill files would hold more than limit.
 */
static int
spills_reserve(uint64_t len, uint64_t limit)
{
    int rc = 0;

    if (!limit)
        return 0;
    pthread_mutex_lock(&spills.lock);
    if (spills.held + len > limit)
        spills_recount();
    if (spills.held + len > limit)
        rc = -ENOSPC;
    else
        spills.held += len;
    pthread_mutex_unlock(&spills.lock);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Body storage                                                        */
/* ------------------------------------------------------------------ */

/* Write all of [p, p+len) to fd. Returns 0 or -errno. */
static int
write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int
spill(struct csgi_request *r)
{
    int fd, rc;

    rc = spills_reserve(r->body_len, r->h->cfg->max_spill);
    if (rc < 0)
        return rc;
    fd = open(r->h->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd < 0) {
        char path[600];
        snprintf(path, sizeof(path), "%s/csgi-body-XXXXXX", r->h->tmp_dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0)
            return -errno;
        unlink(path);
    }
    rc = write_all(fd, r->body_mem, (size_t)r->body_len);
    if (rc == 0)
        rc = spills_add(fd);
    if (rc < 0) {
        close(fd);
        return rc;
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
    int rc;

    if (r->body_fd < 0 && r->body_len + len > cfg->body_buffer) {
        rc = spill(r);
        if (rc == -ENOSPC) {
            srv_log(SRV_LOG_ERROR,
                    "request %llu: body refused: this worker's spilled bodies would pass "
                    "--max-spill %zu bytes",
                    (unsigned long long)r->id, cfg->max_spill);
            return rc;
        }
        if (rc < 0) {
            srv_log(SRV_LOG_ERROR, "request %llu: cannot spill the body to \"%s\": %s",
                    (unsigned long long)r->id, r->h->tmp_dir, strerror(-rc));
            return rc;
        }
    }
    if (r->body_fd >= 0) {
        if (spills_reserve(len, cfg->max_spill) < 0) {
            srv_log(SRV_LOG_ERROR,
                    "request %llu: body refused after %llu bytes: this worker's spilled bodies "
                    "would pass --max-spill %zu bytes",
                    (unsigned long long)r->id, (unsigned long long)r->body_len, cfg->max_spill);
            return -ENOSPC;
        }
        rc = write_all(r->body_fd, data, len);
        if (rc == 0)
            r->body_len += len;
        return rc;
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
