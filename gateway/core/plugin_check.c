/*
 * Plugin descriptor and mount checks of the host core (see plugin_check.h).
 */
#include <stdio.h>
#include <string.h>

#include "plugin_check.h"

/* Longest mount prefix accepted. */
#define MOUNT_MAX 1024
/* Longest plugin name accepted. */
#define NAME_MAX_LEN 63

int
csgi__plugin_name_valid(const char *name)
{
    size_t n;

    if (!name)
        return 0;
    n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

int
csgi__mount_valid(const char *m)
{
    size_t n = m ? strlen(m) : 0;

    if (n == 0 || m[0] != '/' || n > MOUNT_MAX)
        return 0;
    if (n == 1)
        return 1;
    if (m[n - 1] == '/' || strstr(m, "//"))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];

        if (c <= 0x20 || c == 0x7f || c == '?' || c == '#' || c == '%')
            return 0;
    }
    return 1;
}

int
csgi__descriptor_check(const struct csgi_plugin *d, char *why, size_t why_len)
{
    if (d->magic != CSGI_PLUGIN_MAGIC) {
        snprintf(why, why_len, "bad descriptor magic 0x%08x: not a CSGI plugin descriptor",
                 (unsigned)d->magic);
        return CSGI_EABI;
    }
    if (d->abi_version != CSGI_ABI_VERSION) {
        snprintf(why, why_len,
                 "plugin built for CSGI ABI %u, this host speaks ABI %d (EABI): rebuild it "
                 "against the csgi-%d headers",
                 (unsigned)d->abi_version, CSGI_ABI_VERSION, CSGI_ABI_VERSION);
        return CSGI_EABI;
    }
    if (d->version < 1 || d->size < CSGI__DESC_MIN_SIZE) {
        snprintf(why, why_len, "descriptor version %u size %u is smaller than version 1 (%zu)",
                 (unsigned)d->version, (unsigned)d->size, (size_t)CSGI__DESC_MIN_SIZE);
        return CSGI_EABI;
    }
    if (!csgi__plugin_name_valid(d->name)) {
        snprintf(why, why_len, "invalid plugin name \"%.64s\" (want [a-z0-9_]{1,63})",
                 d->name ? d->name : "(null)");
        return CSGI_EABI;
    }
    if (!d->call && !csgi__plugin_is_middleware(d)) {
        snprintf(why, why_len, "descriptor has no call function");
        return CSGI_EABI;
    }
    return CSGI_OK;
}

int
csgi__plugin_is_middleware(const struct csgi_plugin *d)
{
    /* A version-1 descriptor ends before wrap: read it only when it is there. */
    return d->version >= 2 && d->size >= CSGI__DESC_V2_SIZE && d->wrap != NULL;
}

int
csgi__wrap(const struct csgi_plugin *mw, void *mw_state, const char *inner_name, csgi_app_fn *app,
           void **state, void **instance, char *why, size_t why_len)
{
    csgi_app_fn outer = NULL;
    void *outer_state = NULL;
    int rc;

    if (!csgi__plugin_is_middleware(mw)) {
        snprintf(why, why_len, "plugin \"%s\" is not a middleware plugin (no wrap function)",
                 mw->name);
        return CSGI_EINVAL;
    }
    rc = mw->wrap(mw_state, *app, *state, inner_name, &outer, &outer_state);
    if (rc >= 0 && !outer) {
        /* A wrap that "succeeds" without an application would serve nothing: refuse it. */
        if (mw->unwrap)
            mw->unwrap(mw_state, outer_state);
        rc = CSGI_EAPP;
    }
    if (rc < 0) {
        snprintf(why, why_len, "middleware \"%s\" failed to wrap \"%s\": %s (%s)", mw->name,
                 inner_name, csgi_strerror(rc), csgi_err_name(rc));
        return rc;
    }
    *app = outer;
    *state = outer_state;
    *instance = outer_state;
    return CSGI_OK;
}

void
csgi__unwrap(const struct csgi_plugin *mw, void *mw_state, void *instance)
{
    if (csgi__plugin_is_middleware(mw) && mw->unwrap)
        mw->unwrap(mw_state, instance);
}
