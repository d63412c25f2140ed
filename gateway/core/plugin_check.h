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

/*
 * Check the descriptor a plugin's entry point returned: magic, ABI version,
 * descriptor version and size (at least version 1's: a newer host loads
 * older plugins), name ([a-z0-9_]{1,63}) and call(). Returns 0, or CSGI_EABI
 * with a one-line reason in @p why.
 */
int csgi__descriptor_check(const struct csgi_plugin *d, char *why, size_t why_len);

/* True when @p name is a valid plugin name: [a-z0-9_]{1,63}. */
int csgi__plugin_name_valid(const char *name);

/*
 * True when @p mount is a valid mount prefix: "/" or "/a/b" (no trailing
 * slash, no "//", no bytes <= 0x20, DEL, '?', '#' or '%', at most 1024 bytes).
 */
int csgi__mount_valid(const char *mount);

#endif /* CSGI_PLUGIN_CHECK_H */
