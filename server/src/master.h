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

#endif /* SRV_MASTER_H */
