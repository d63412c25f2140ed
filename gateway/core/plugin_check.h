/*
 * Plugin descriptor and mount checks of the host core: csgi-server's loader
 * and the test client accept and refuse the same plugins and mounts.
 */
#ifndef CSGI_PLUGIN_CHECK_H
#define CSGI_PLUGIN_CHECK_H

#include <stddef.h>

#include <csgi/csgi.h>

/* The smallest descriptor a host accepts: the version-1 layout. */
#define CSGI__DESC_MIN_SIZE (offsetof(struct csgi_plugin, exit_worker) + sizeof(void (*)(void *)))

/* The version-2 layout: up to and including unwrap. */
#define CSGI__DESC_V2_SIZE (offsetof(struct csgi_plugin, unwrap) + sizeof(void (*)(void *, void *)))

/*
 * Check the descriptor a plugin's entry point returned: magic, ABI version,
 * descriptor version and size (at least version 1's: a newer host loads
 * older plugins), name ([a-z0-9_]{1,63}) and call() (which a middleware
 * plugin may leave NULL). Returns 0, or CSGI_EABI with a one-line reason in
 * @p why.
 */
int csgi__descriptor_check(const struct csgi_plugin *d, char *why, size_t why_len);

/*
 * True when @p d (as the plugin returned it, or a zero-extended copy) is a
 * middleware plugin: version 2 or later, large enough, wrap set.
 */
int csgi__plugin_is_middleware(const struct csgi_plugin *d);

/*
 * Put middleware plugin @p mw (its init_worker() state @p mw_state) in
 * front of the application *@p app / *@p state of plugin @p inner_name:
 * call wrap() and, on success, replace *@p app and *@p state with the
 * wrapping application and store its state in *@p instance (for unwrap(),
 * csgi__unwrap()). On failure nothing changes and @p why says why, naming
 * both plugins. Returns 0 or a negative CSGI_E* code.
 */
int csgi__wrap(const struct csgi_plugin *mw, void *mw_state, const char *inner_name,
               csgi_app_fn *app, void **state, void **instance, char *why, size_t why_len);

/*
 * The descriptor flags of a plugin as mounted: its own, and for
 * CSGI_PLUGIN_WAITS those of each middleware wrapped around it (a wrapped
 * app may wait when the app or a middleware does; SPEC 4.14).
 */
static inline uint32_t
csgi__wrapped_flags(uint32_t app_flags, uint32_t middleware_flags)
{
    return app_flags | (middleware_flags & CSGI_PLUGIN_WAITS);
}

/* Undo csgi__wrap(): unwrap() when the middleware has one. */
void csgi__unwrap(const struct csgi_plugin *mw, void *mw_state, void *instance);

/* True when @p name is a valid plugin name: [a-z0-9_]{1,63}. */
int csgi__plugin_name_valid(const char *name);

/*
 * True when @p mount is a valid mount prefix: "/" or "/a/b" (no trailing
 * slash, no "//", no bytes <= 0x20, DEL, '?', '#' or '%', at most 1024 bytes).
 */
int csgi__mount_valid(const char *mount);

#endif /* CSGI_PLUGIN_CHECK_H */
