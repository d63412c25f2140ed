/*
 * The server's one logger: error log with levels, and the access log.
 * Call sites never add timestamps, pids or levels; srv_log() does.
 */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

enum srv_log_level {
    SRV_LOG_ERROR = 1,
    SRV_LOG_WARN = 2,
    SRV_LOG_INFO = 3,
    SRV_LOG_DEBUG = 4,
    SRV_LOG_TRACE = 5
};

/* Current verbosity; messages above it are dropped before formatting. */
extern int srv_log_verbosity;

/* Parse "error".."trace"; returns the level or -1. */
int srv_log_level_parse(const char *name);
const char *srv_log_level_name(int level);

/*
 * Open the error log (NULL or "-" = stderr) and the access log (NULL = off,
 * "-" = stdout). json selects JSON lines for the access log.
 * Returns 0 or -errno.
 */
int srv_log_open(const char *error_path, const char *access_path, int access_json);
/*
 * The file the last failed srv_log_open() or srv_log_reopen() could not
 * open. Borrowed; valid until the next call of either.
 */
const char *srv_log_failed_path(void);
/*
 * Reopen both files (SIGUSR1, logrotate). Returns 0 or -errno; a failure is
 * logged here (to the error log still open, and to stderr when that is
 * another file), and the old files stay. Log files are opened with
 * O_NOFOLLOW: a symbolic link at the path is refused (-ELOOP).
 */
int srv_log_reopen(void);
/* The text for a failure rc of srv_log_open() or srv_log_reopen(). Static. */
const char *srv_log_strerror(int rc);
/*
 * The paths srv_log_open() was given last (NULL: stderr, or no access log)
 * and the JSON flag, to tell whether a reload changes them.
 */
const char *srv_log_error_path(void);
const char *srv_log_access_path(void);
int srv_log_access_json(void);
void srv_log_close(void);

/* Identity added to every line: role "master"/"worker", worker id, generation. */
void srv_log_set_identity(const char *role, int worker_id, unsigned generation);

void srv__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv__vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define srv_log(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) <= srv_log_verbosity)                                                          \
            srv__log((level), __VA_ARGS__);                                                        \
    } while (0)

/* One access-log record. Strings may be NULL. */
struct srv_access_record {
    const char *remote_addr;
    const char *method;
    const char *target;
    size_t target_len;
    const char *protocol;
    /*
     * The status sent; 0 when no response was sent (the client left, a
     * timeout, a connection dropped) or its status cannot be known: written
     * as "-" (JSON null), never as a status code.
     */
    int status;
    uint64_t bytes;
    const char *referer;
    const char *user_agent;
    double duration_ms;
    const char *plugin;
    uint64_t request_id; /* per worker: (pid, request_id) names a request */
    /*
     * The environ's request_id (unique across workers and generations), or
     * NULL when the request has none (a request lost with a crashed worker,
     * logged by the master): written as "id=<text>" ("id=-"), JSON "id".
     */
    const char *request_id_text;
    /*
     * The worker that served the request; pid 0 = this process (its own
     * identity). Set when the master writes the line of a request lost with
     * a crashed worker.
     */
    int pid;
    int worker_id;
    unsigned generation;
};

/* True when an access log is open. */
int srv_access_log_enabled(void);
/*
 * Write one record: the combined format + " <duration_ms> <plugin>
 * <request_id> pid=<pid> worker=<id> gen=<generation> id=<request_id_text>",
 * or JSON with the same fields ("id": a string, or null). pid and request id
 * match the error log's "pid=" and "request N"; id is what the plugin saw.
 */
void srv_access_log_write(const struct srv_access_record *rec);

#endif /* SRV_LOG_H */
