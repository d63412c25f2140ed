/*
 * The pre-fork master (see master.c).
 */
#ifndef SRV_MASTER_H
#define SRV_MASTER_H

#include <stddef.h>

#include "config.h"
#include "listener.h"

/*
 * Run the master until it is stopped. cfg is the parsed configuration (the
 * master re-parses argc/argv on SIGHUP); ls are the bound listening sockets.
 * Returns the process exit status.
 */
int srv_master_run(struct srv_config *cfg, int argc, char **argv, struct srv_listener *ls,
                   size_t n_ls);

/*
 * Switch to cfg's --group and --user (nothing when neither is set). Returns
 * 0, or -1 (logged) when a switch failed.
 */
int srv_master_drop_privileges(const struct srv_config *cfg);

#endif /* SRV_MASTER_H */
