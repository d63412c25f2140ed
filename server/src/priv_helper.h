/*
 * The privileged helper (see priv_helper.c): what still needs root after the
 * master switched to --user, and nothing else.
 */
#ifndef SRV_PRIV_HELPER_H
#define SRV_PRIV_HELPER_H

#include "config.h"

/*
 * As root, with --user set: hand the log files to the user (so that the
 * master and the workers can reopen them by name), and fork the helper that
 * creates them again after a rotation and removes the pid file at exit.
 * Call before srv_master_drop_privileges(), after the log files and the pid
 * file are written. Does nothing (returns 0) when not root or without
 * --user. Returns 0, or -1 (logged).
 */
int srv_priv_helper_start(const struct srv_config *cfg);

/*
 * Before a SIGUSR1 reopen: have the helper create the log files that are
 * missing (a rotation renamed them), owned by the user. Waits at most a
 * second; failures are logged. Does nothing without a helper.
 */
void srv_priv_helper_logs(void);

/*
 * For a reload after --user: when cfg names the same TLS files as the start
 * configuration (the helper opens nothing else), have the helper open them
 * as root and pass the descriptors back, into fds (n slots) in
 * srv_tls_load_fds() order, -1 for a file it could not open (logged).
 * Returns how many slots it filled (the caller closes the descriptors), 0
 * without a helper or when the files differ, -1 when the helper did not
 * answer (logged). Waits at most a second.
 */
int srv_priv_helper_tls_files(const struct srv_config *cfg, int *fds, size_t n);

/* In a worker after fork: close the master's end of the helper's socket. */
void srv_priv_helper_forget(void);

#endif /* SRV_PRIV_HELPER_H */
