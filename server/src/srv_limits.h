/*
 * The server's fixed limits, in one place: the sizes of the shared
 * scoreboard and the option maxima that must agree with them.
 *
 * (Not named limits.h: the tests build with -I server/src, where a limits.h
 * would stand in for the C library's <limits.h>.)
 */
#ifndef SRV_LIMITS_H
#define SRV_LIMITS_H

/* The --workers maximum, and the most SIGTTIN adds up to. */
#define SRV_MAX_WORKERS 256

/* Generations alive at once: the serving one and the one a reload starts. */
#define SRV_MAX_GENERATIONS 2

/* Scoreboard slots: a reload starts a full generation while a full one serves. */
#define SRV_MAX_SLOTS (SRV_MAX_WORKERS * SRV_MAX_GENERATIONS)

/* The --threads maximum: each thread has its own busy clock in the scoreboard. */
#define SRV_MAX_THREADS 64

/* Plugins per worker whose counters the scoreboard keeps (later ones serve uncounted). */
#define SRV_MAX_PLUGIN_STATS 32

/*
 * Sizes, with the NUL, of the strings the scoreboard keeps per plugin. A
 * plugin name fits whole (at most 63 bytes, see <csgi/plugin.h>); a longer
 * version or mount is cut in the stats.
 */
#define SRV_PLUGIN_NAME_SIZE    64
#define SRV_PLUGIN_VERSION_SIZE 32
#define SRV_PLUGIN_MOUNT_SIZE   128

/*
 * Sizes, with the NUL, of what a worker publishes about the request each
 * thread is running plugin code for (struct srv_inflight): a longer method,
 * target or address is cut.
 */
#define SRV_INFLIGHT_METHOD_SIZE 16
#define SRV_INFLIGHT_TARGET_SIZE 128
#define SRV_INFLIGHT_ADDR_SIZE   48

/*
 * The mode of the unix sockets the server creates (--bind unix:/path,
 * --stats unix:/path) unless --socket-mode says otherwise: owner and group
 * may connect (a front proxy in the group), others may not.
 */
#define SRV_SOCKET_MODE_DEFAULT 0660

/* The default --max-spill: request body bytes a worker keeps in --tmp-dir at once. */
#define SRV_MAX_SPILL_DEFAULT ((size_t)256 * 1024 * 1024)

/* The longest --health path, and the longest --drain-delay (seconds). */
#define SRV_HEALTH_PATH_MAX 256
#define SRV_DRAIN_DELAY_MAX 3600

#endif /* SRV_LIMITS_H */
