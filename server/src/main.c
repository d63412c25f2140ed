/*
 * csgi-server: serve a directory of CSGI plugins over HTTP/1.1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include <csgi/csgi.h>

#include "build_version.h"
#include "config.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "master.h"
#include "plugin_loader.h"

/* Descriptors a worker needs beside its connections: listeners, log files, plugins. */
#define FD_HEADROOM 64

/* --check-config: load and init every plugin in this process, report, exit. */
static int
check_config(const struct srv_config *cfg)
{
    struct srv_plugin_set set;
    struct srv_http *h;
    int failed;

    failed = srv_plugins_load(&set, cfg);
    if (failed < 0)
        return 1;
    h = srv_http_new(cfg, NULL, 0, 1);
    if (!h) {
        srv_plugins_unload(&set);
        return 1;
    }
    failed += srv_plugins_init(&set, srv_http_api(h), 0);
    for (size_t i = 0; i < set.n; i++)
        printf("ok     %-20s %-10s %s (%s)\n", set.v[i].desc.name,
               set.v[i].desc.plugin_version ? set.v[i].desc.plugin_version : "-", set.v[i].mount,
               set.v[i].file);
    printf("%zu plugin(s) loaded, %d failed\n", set.n, failed);
    srv_plugins_unload(&set);
    srv_http_free(h);
    return failed ? 1 : 0;
}

/* --status ADDR: print a running server's JSON stats. */
static int
print_status(const char *addr)
{
    int fd;
    char buf[65536];
    ssize_t n;

    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un sa;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", addr + 5);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            fprintf(stderr, "csgi-server: cannot connect to \"%s\": %s\n", addr, strerror(errno));
            if (fd >= 0)
                close(fd);
            return 1;
        }
    } else {
        char host[256], err[256];
        const char *port;
        struct addrinfo hints, *res = NULL, *ai;

        if (srv_addr_split(addr, host, sizeof(host), &port, err, sizeof(err)) < 0) {
            fprintf(stderr, "csgi-server: --status: %s\n", err);
            return 2;
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        if (getaddrinfo(host, port, &hints, &res) != 0) {
            fprintf(stderr, "csgi-server: --status: cannot resolve \"%s\"\n", host);
            return 2;
        }
        fd = -1;
        for (ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
        if (fd < 0) {
            fprintf(stderr, "csgi-server: cannot connect to \"%s\": %s\n", addr, strerror(errno));
            return 1;
        }
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    close(fd);
    return 0;
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

static int
write_pid(const char *path)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -errno;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return 0;
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
        rc = print_status(cfg.status_addr);
        srv_config_free(&cfg);
        return rc;
    }
    srv_log_verbosity = cfg.log_level;
    rc = srv_log_open(cfg.error_log, cfg.access_log, cfg.access_json);
    if (rc < 0) {
        fprintf(stderr, "csgi-server: cannot open log file: %s\n", strerror(-rc));
        srv_config_free(&cfg);
        return 2;
    }
    if (cfg.check_config) {
        rc = check_config(&cfg);
        srv_log_close();
        srv_config_free(&cfg);
        return rc;
    }
    raise_fd_limit(&cfg);
    if (srv_listener_adopt_systemd(&ls, &n_ls) <= 0) {
        ls = calloc(cfg.n_binds, sizeof(*ls));
        if (!ls)
            return 1;
        for (size_t i = 0; i < cfg.n_binds; i++) {
            if (srv_listener_open(&ls[i], cfg.binds[i], err, sizeof(err)) < 0) {
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
    if (cfg.pid_file && write_pid(cfg.pid_file) < 0) {
        fprintf(stderr, "csgi-server: cannot write pid file \"%s\"\n", cfg.pid_file);
        return 2;
    }
    {
        char *pid_file = cfg.pid_file ? strdup(cfg.pid_file) : NULL;
        rc = srv_master_run(&cfg, argc, argv, ls, n_ls);
        if (pid_file) {
            unlink(pid_file);
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
