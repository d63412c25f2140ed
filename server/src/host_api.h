/*
 * The host services of csgi-server's HTTP front (host_api.c).
 */
#ifndef SRV_HOST_API_H
#define SRV_HOST_API_H

#include <stddef.h>

#include <csgi/csgi.h>

#include "core.h"

/* Fill the csgi_host_api table handed to init_worker(); @p ctx is its ctx. */
void srv_host_api_init(struct csgi_host_api *api, void *ctx);

/* The host core's view of csgi-server: a request's arena, log and plugin lock. */
extern const struct csgi__host_ops srv_core_ops;
/* The same for a thread-safe plugin, which has no lock to take: no app_enter. */
extern const struct csgi__host_ops srv_core_ops_threadsafe;

/* Where a request's error stream goes (ctx: the request). */
void srv_errors_sink(void *ctx, int level, const char *msg, size_t len);

#endif /* SRV_HOST_API_H */
