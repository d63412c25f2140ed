/*
 * csgi-server: serve a directory of CSGI plugins over HTTP/1.1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include <csgi/csgi.h>

#include "build_version.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "master.h"
#include "plugin_loader.h"
#include "tls.h"

/* Descriptors a worker needs beside its connections: listeners, log files, plugins. */
#define FD_HEADROOM 64

/* The keys --set gives plugin p, comma-separated, into buf. */
static const char *
setting_keys(const struct srv_plugin *p, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < p->n_config && n + 1 < size; i++) {
        int m = snprintf(buf + n, size - n, "%s%s", i ? "," : "", p->config[i].key);
        if (m < 0)
            break;
        n += (size_t)m;
    }
    return buf;
}

/* " wrapped by MW,MW2" (outermost first) for a plugin served through middleware, else "". */
static const char *
wrap_list(const struct srv_plugin *p, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = p->n_layers; i-- > 0 && n + 1 < size;) {
        int m = snprintf(buf + n, size - n, "%s%s", i + 1 == p->n_layers ? " wrapped by " : ",",
                         p->layers[i].middleware->desc.name);
        if (m < 0)
            break;
        n += (size_t)m;
    }
    return buf;
}

/*
 * --check-config: load every plugin and run its init_worker in this process
 * (after the --user/--group switch, as a worker would), print one line per
 * plugin that loaded and per failure on stdout, exit 0 only when nothing
 * failed. init_worker must run: it is where a plugin checks its --set
 * values; the output says so, since an init may have side effects (creating
 * a database file, for one).
 */
static int
check_config(struct srv_config *cfg)
{
    char tls_err[512];
    int tls_failed = 0;
    struct srv_plugin_set set;
    struct srv_plugin_report rep;
    struct srv_http *h;
    int failed;
    char keys[256], wraps[512];

    /* Read as the master reads them: before the switch to --user. */
    if (srv_config_load_tls(cfg, tls_err, sizeof(tls_err)) < 0) {
        printf("FAILED  %-31s %s\n", "tls", tls_err);
        tls_failed = 1;
    } else if (cfg->tls) {
        printf("ok      %-20s %zu certificate(s), priorities \"%s\"\n", "tls",
               srv_tls_cert_count(cfg->tls), srv_tls_priorities(cfg->tls));
    }
    if (srv_master_drop_privileges(cfg) < 0)
        return 1;
    failed = srv_plugins_load_report(&set, cfg, &rep);
    if (failed < 0)
        return 1;
    h = srv_http_new(cfg, NULL, 0, 1);
    if (!h) {
        srv_plugins_unload(&set);
        srv_plugin_report_free(&rep);
        return 1;
    }
    failed += srv_plugins_init_report(&set, srv_http_api(h), 0, &rep);
    for (size_t i = 0; i < set.n; i++)
        printf("ok      %-20s %-10s %s (%s)%s%s%s\n", set.v[i].desc.name,
               set.v[i].desc.plugin_version ? set.v[i].desc.plugin_version : "-", set.v[i].mount,
               set.v[i].file, set.v[i].n_config ? " --set " : "",
               setting_keys(&set.v[i], keys, sizeof(keys)),
               wrap_list(&set.v[i], wraps, sizeof(wraps)));
    for (size_t i = 0; i < set.n_mw; i++)
        printf("ok      %-20s %-10s middleware (%s)%s%s\n", set.mw[i].desc.name,
               set.mw[i].desc.plugin_version ? set.mw[i].desc.plugin_version : "-", set.mw[i].file,
               set.mw[i].n_config ? " --set " : "", setting_keys(&set.mw[i], keys, sizeof(keys)));
    for (size_t i = 0; i < rep.n; i++)
        printf("FAILED  %-31s %s\n", rep.v[i].what, rep.v[i].why);
    printf("init_worker ran in this process for every plugin that loaded (and exit_worker "
           "after it):\nwhat a plugin's init does (a database file, say) is done here too\n");
    printf("%zu plugin(s) loaded, %d failed", set.n + set.n_mw, failed);
    if (rep.n_unknown_settings)
        printf(", %zu --set or --wrap for no loaded plugin", rep.n_unknown_settings);
    printf("\n");
    if (rep.n_unknown_settings)
        failed++;
    failed += tls_failed;
    srv_plugin_report_free(&rep);
    srv_plugins_unload(&set);
    srv_http_free(h);
    return failed ? 1 : 0;
}

/*
 * Wait up to *left_ms for fd to become ready for events; the time spent is
 * taken off *left_ms. Returns 1 when ready, 0 on timeout, -1 on error.
 */
static int
wait_fd(int fd, short events, long long *left_ms)
{
    long long t0 = srv_clock_ms();
    struct pollfd p = {.fd = fd, .events = events};
    int rc;

    do {
        rc = poll(&p, 1, (int)(*left_ms > 0 ? *left_ms : 0));
    } while (rc < 0 && errno == EINTR);
    *left_ms -= srv_clock_ms() - t0;
    return rc;
}

/* Connect fd to sa within *left_ms. Returns 0, or -errno (-ETIMEDOUT). */
static int
connect_within(int fd, const struct sockaddr *sa, socklen_t len, long long *left_ms)
{
    int e = 0;
    socklen_t el = sizeof(e);
    int rc;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return -errno;
    rc = wait_fd(fd, POLLOUT, left_ms);
    if (rc == 0)
        return -ETIMEDOUT;
    if (rc < 0)
        return -errno;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
        return -errno;
    return -e;
}

/* Open a connection to a --status address within *left_ms. Returns the fd or -1 (printed). */
static int
status_connect(const char *addr, long long *left_ms)
{
    int fd = -1, rc = -EINVAL;

    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", addr + 5);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        rc = fd < 0 ? -errno : connect_within(fd, (struct sockaddr *)&sa, sizeof(sa), left_ms);
    } else {
        char host[256], err[256];
        const char *port;
        struct addrinfo hints, *res = NULL, *ai;

        if (srv_addr_split(addr, host, sizeof(host), &port, err, sizeof(err)) < 0) {
            fprintf(stderr, "csgi-server: --status: %s\n", err);
            return -1;
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        if (getaddrinfo(host, port, &hints, &res) != 0) {
            fprintf(stderr, "csgi-server: --status: cannot resolve \"%s\"\n", host);
            return -1;
        }
        for (ai = res; ai && *left_ms > 0; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            rc = fd < 0 ? -errno : connect_within(fd, ai->ai_addr, ai->ai_addrlen, left_ms);
            if (rc == 0)
                break;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
    }
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "csgi-server: --status: cannot connect to \"%s\": %s\n", addr,
                strerror(-rc));
        return -1;
    }
    return fd;
}

/* The largest stats reply --status takes. */
#define STATUS_MAX_BYTES (16 * 1024 * 1024)

/*
 * --status ADDR: print a running server's JSON stats. Connecting and reading
 * together take at most --status-timeout seconds; an address that answers
 * something other than the stats JSON (the HTTP port, say) is an error.
 * Returns the exit status: 0, or 1 with one line on stderr.
 */
static int
print_status(const char *addr, unsigned timeout_s)
{
    long long left = (long long)timeout_s * 1000;
    char *buf = NULL;
    size_t len = 0, cap = 0, b, e;
    int fd = status_connect(addr, &left);
    int rc = 1;

    if (fd < 0)
        return 1;
    for (;;) {
        ssize_t n;
        int ready;
        if (len + 65536 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 65536;
            nb = cap <= STATUS_MAX_BYTES ? realloc(buf, cap) : NULL;
            if (!nb) {
                fprintf(stderr, "csgi-server: --status \"%s\": reply too large\n", addr);
                goto out;
            }
            buf = nb;
        }
        ready = left > 0 ? wait_fd(fd, POLLIN, &left) : 0;
        if (ready == 0) {
            fprintf(stderr,
                    "csgi-server: --status \"%s\": no complete answer within %u s "
                    "(--status-timeout): is it the --stats address?\n",
                    addr, timeout_s);
            goto out;
        }
        n = ready < 0 ? -1 : read(fd, buf + len, cap - len - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            fprintf(stderr, "csgi-server: --status \"%s\": read failed: %s\n", addr,
                    strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    /* Plain readers get bare JSON (stats.c): anything else is not a stats endpoint. */
    for (b = 0; b < len && (buf[b] == ' ' || buf[b] == '\n' || buf[b] == '\r'); b++)
        ;
    for (e = len; e > b && (buf[e - 1] == ' ' || buf[e - 1] == '\n' || buf[e - 1] == '\r'); e--)
        ;
    if (e - b < 2 || buf[b] != '{' || buf[e - 1] != '}') {
        fprintf(stderr,
                "csgi-server: --status \"%s\": the answer is not csgi-server stats JSON "
                "(is it the --stats address?)\n",
                addr);
        goto out;
    }
    fwrite(buf, 1, len, stdout);
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

/*
 * Raise the soft descriptor limit to the hard one (nginx's
 * worker_rlimit_nofile): a worker needs one descriptor per connection, and
 * the usual soft limit of 1024 is about --max-connections' default. Warn when
 * even the hard limit is too low.
 */
static void
raise_fd_limit(const struct srv_config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_connections + FD_HEADROOM;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
        srv_log(SRV_LOG_WARN,
                "open file limit %llu is below --max-connections %u + %d: raise it (ulimit -n)",
                (unsigned long long)rl.rlim_cur, cfg->max_connections, FD_HEADROOM);
}

/* The pid a pid file names, or 0 when it cannot be read. */
static pid_t
read_pid(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    long v = 0;

    if (!f) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    if (fscanf(f, "%ld", &v) != 1 || v <= 0 || v > INT_MAX)
        v = 0;
    fclose(f);
    return (pid_t)v;
}

/* Read the command name at path (/proc/PID/comm) into buf. Returns 0, or -1 when unreadable. */
static int
read_comm(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");

    buf[0] = '\0';
    if (!f)
        return -1;
    if (!fgets(buf, (int)size, f))
        buf[0] = '\0';
    fclose(f);
    return 0;
}

/* True when pid is a live process running the same program as this one. */
static int
same_program_alive(pid_t pid)
{
    char path[64], mine[64], theirs[64];

    if (pid == getpid() || (kill(pid, 0) < 0 && errno != EPERM))
        return 0;
    /* The pid may have been reused since a crash: compare the command names. */
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    if (read_comm(path, theirs, sizeof(theirs)) < 0)
        return 1; /* no /proc: assume the worst */
    read_comm("/proc/self/comm", mine, sizeof(mine));
    return strcmp(mine, theirs) == 0;
}

/*
 * Write the master's pid to path, refusing when the file names another live
 * csgi-server (a second server must not take over, and later delete, the pid
 * file of one that runs). A stale file is replaced. Returns 0, or -1 with err
 * set.
 */
static int
write_pid(const char *path, char *err, size_t err_len)
{
    pid_t other = read_pid(path);
    char tmp[4096];
    struct stat st;
    FILE *f = NULL;
    int fd;

    if (other > 0 && same_program_alive(other)) {
        snprintf(err, err_len,
                 "pid file \"%s\" names a running csgi-server (pid %d): stop it first, or "
                 "give this one another --pid",
                 path, (int)other);
        return -1;
    }
    /* Write a temporary file and rename it: a reader never sees a half-written pid. */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= sizeof(tmp)) {
        snprintf(err, err_len, "cannot write pid file \"%s\": path too long", path);
        return -1;
    }
    /* A link at the path is refused, not replaced: someone put it there. */
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        snprintf(err, err_len, "pid file \"%s\" is a symbolic link: refused", path);
        return -1;
    }
    /* O_EXCL | O_NOFOLLOW: a file or link planted at the temporary name is not written through. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) {
        f = fdopen(fd, "w");
        if (!f)
            close(fd);
    }
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
        int e = errno;
        if (fd >= 0)
            unlink(tmp);
        snprintf(err, err_len, "cannot write pid file \"%s\": %s", path, strerror(e));
        return -1;
    }
    return 0;
}

/* Remove the pid file at exit, unless it no longer names this process. */
static void
remove_pid(const char *path)
{
    if (read_pid(path) == getpid())
        unlink(path);
}

int
main(int argc, char **argv)
{
    struct srv_config cfg;
    char err[512];
    struct srv_listener *ls = NULL;
    size_t n_ls = 0;
    int rc;

    srv_config_init(&cfg);
    if (srv_config_parse_args(&cfg, argc, argv, err, sizeof(err)) < 0 ||
        srv_config_validate(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "csgi-server: %s\n", err);
        srv_config_free(&cfg);
        return 2;
    }
    if (!cfg.show_help && !cfg.show_version && !cfg.status_addr &&
        srv_config_check_paths(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "csgi-server: %s\n", err);
        srv_config_free(&cfg);
        return 2;
    }
    if (cfg.show_help) {
        srv_config_usage(stdout);
        srv_config_free(&cfg);
        return 0;
    }
    if (cfg.show_version) {
        printf("csgi-server %s (CSGI %s, ABI %d, libmicrohttpd %s)\n", SRV_VERSION,
               CSGI_VERSION_STRING, CSGI_ABI_VERSION, MHD_get_version());
        srv_config_free(&cfg);
        return 0;
    }
    if (cfg.status_addr) {
        rc = print_status(cfg.status_addr, cfg.status_timeout);
        srv_config_free(&cfg);
        return rc;
    }
    srv_log_verbosity = cfg.log_level;
    rc = srv_log_open(cfg.error_log, cfg.access_log, cfg.access_json);
    if (rc < 0) {
        fprintf(stderr, "csgi-server: cannot open log file \"%s\": %s\n", srv_log_failed_path(),
                srv_log_strerror(rc));
        srv_config_free(&cfg);
        return 2;
    }
    if (cfg.tls_certs.n && !MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        fprintf(stderr, "csgi-server: libmicrohttpd %s was built without TLS: no https:// bind\n",
                MHD_get_version());
        srv_log_close();
        srv_config_free(&cfg);
        return 2;
    }
    if (cfg.check_config) {
        rc = check_config(&cfg);
        srv_log_close();
        srv_config_free(&cfg);
        return rc;
    }
    /* The keys are read here, as the user that started the server (root, with --user). */
    if (srv_config_load_tls(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "csgi-server: %s\n", err);
        srv_log_close();
        srv_config_free(&cfg);
        return 2;
    }
    raise_fd_limit(&cfg);
    if (srv_listener_adopt_systemd(&ls, &n_ls) <= 0) {
        ls = calloc(cfg.n_binds, sizeof(*ls));
        if (!ls)
            return 1;
        for (size_t i = 0; i < cfg.n_binds; i++) {
            if (srv_listener_open_mode(&ls[i], cfg.binds[i], srv_config_socket_mode(&cfg), err,
                                       sizeof(err)) < 0) {
                fprintf(stderr, "csgi-server: %s\n", err);
                free(ls[i].spec);
                for (size_t j = 0; j < i; j++)
                    srv_listener_close(&ls[j]);
                free(ls);
                srv_config_free(&cfg);
                return 2;
            }
            n_ls++;
        }
    }
    if (cfg.pid_file && write_pid(cfg.pid_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "csgi-server: %s\n", err);
        for (size_t i = 0; i < n_ls; i++)
            srv_listener_close(&ls[i]);
        free(ls);
        srv_log_close();
        srv_config_free(&cfg);
        return 2;
    }
    {
        char *pid_file = cfg.pid_file ? strdup(cfg.pid_file) : NULL;
        rc = srv_master_run(&cfg, argc, argv, ls, n_ls);
        if (pid_file) {
            remove_pid(pid_file);
            free(pid_file);
        }
    }
    for (size_t i = 0; i < n_ls; i++)
        srv_listener_close(&ls[i]);
    free(ls);
    srv_log_close();
    srv_config_free(&cfg);
    return rc;
}
