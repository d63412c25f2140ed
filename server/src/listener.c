/*
 * Listening sockets (see listener.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "srv_limits.h"

#define BACKLOG 1024

static void
fill_names(struct srv_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0)
        return;
    l->family = ss.ss_family;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, l->host, sizeof(l->host));
        snprintf(l->port, sizeof(l->port), "%u", ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, l->host, sizeof(l->host));
        snprintf(l->port, sizeof(l->port), "%u", ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *a = (struct sockaddr_un *)&ss;
        snprintf(l->host, sizeof(l->host), "%s", a->sun_path);
        snprintf(l->port, sizeof(l->port), "0");
    }
}

static int
open_unix(struct srv_listener *l, const char *path, int mode, char *err, size_t err_len)
{
    struct sockaddr_un sa;
    struct stat st;
    mode_t old_mask;
    int fd, e, rc;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, err_len, "bind \"%s\": path too long", l->spec);
        return -ENAMETOOLONG;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    /* A stale socket file from a previous run: replace it, never another file type. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto error;
    /*
     * The socket file gets 0777 less the umask: a umask of the mode's
     * complement makes it exactly mode, with no window in which it is wider.
     * The master is single-threaded here, so the umask is ours alone.
     */
    old_mask = umask((mode_t)(~mode & 0777));
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old_mask);
    if (rc < 0)
        goto error_close;
    if (listen(fd, BACKLOG) < 0) {
        e = errno;
        unlink(path);
        errno = e;
        goto error_close;
    }
    l->fd = fd;
    fill_names(l);
    return 0;

error_close:
    e = errno;
    close(fd);
    errno = e;
error:
    e = errno;
    snprintf(err, err_len, "bind \"%s\" failed: %s", l->spec, strerror(e));
    return -e;
}

int
srv_port_valid(const char *port)
{
    size_t n = strlen(port);
    unsigned long v = 0;

    /* Digits only, no sign or space, at most five of them: no strtoul() wrap-around. */
    if (n == 0 || n > 5 || strspn(port, "0123456789") != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned long)(port[i] - '0');
    return v <= 65535;
}

int
srv_addr_split(const char *spec, char *host, size_t host_size, const char **port, char *err,
               size_t err_len)
{
    const char *colon, *scheme = strstr(spec, "://");

    if (scheme) {
        snprintf(err, err_len,
                 "address \"%s\": give host:port, not a URL (e.g. 127.0.0.1:8000, [::1]:8000; "
                 "https://host:port for TLS)",
                 spec);
        return -EINVAL;
    }
    if (spec[0] == '[') {
        const char *close_br = strchr(spec, ']');
        if (!close_br || close_br[1] != ':') {
            snprintf(err, err_len, "address \"%s\": want [v6addr]:port", spec);
            return -EINVAL;
        }
        snprintf(host, host_size, "%.*s", (int)(close_br - spec - 1), spec + 1);
        *port = close_br + 2;
    } else {
        colon = strrchr(spec, ':');
        if (!colon) {
            snprintf(err, err_len, "address \"%s\": want host:port, [v6]:port or unix:/path", spec);
            return -EINVAL;
        }
        snprintf(host, host_size, "%.*s", (int)(colon - spec), spec);
        *port = colon + 1;
    }
    if (!srv_port_valid(*port)) {
        snprintf(err, err_len, "address \"%s\": invalid port \"%s\"", spec, *port);
        return -EINVAL;
    }
    return 0;
}

int
srv_bind_flags(const char *spec, char *addr, size_t addr_size, int *proxy, char *err,
               size_t err_len)
{
    const char *comma = strchr(spec, ',');
    size_t n = comma ? (size_t)(comma - spec) : strlen(spec);

    *proxy = 0;
    if (n >= addr_size) {
        snprintf(err, err_len, "address \"%.64s...\" is too long", spec);
        return -EINVAL;
    }
    memcpy(addr, spec, n);
    addr[n] = '\0';
    while (comma) {
        const char *flag = comma + 1;
        size_t len;
        comma = strchr(flag, ',');
        len = comma ? (size_t)(comma - flag) : strlen(flag);
        if (len == 5 && memcmp(flag, "proxy", 5) == 0) {
            *proxy = 1;
            continue;
        }
        snprintf(err, err_len, "address \"%s\": unknown flag \"%.*s\" (known: proxy)", spec,
                 (int)len, flag);
        return -EINVAL;
    }
    return 0;
}

int
srv_listener_open(struct srv_listener *l, const char *spec, char *err, size_t err_len)
{
    return srv_listener_open_mode(l, spec, SRV_SOCKET_MODE_DEFAULT, err, err_len);
}

const char *
srv_bind_address(const char *spec, int *tls)
{
    *tls = 0;
    if (strncmp(spec, "https://", 8) == 0) {
        *tls = 1;
        return spec + 8;
    }
    return spec;
}

int
srv_listener_open_mode(struct srv_listener *l, const char *bind_spec, int mode, char *err,
                       size_t err_len)
{
    char host[256], addr[512];
    const char *port, *spec;
    struct addrinfo hints, *res = NULL, *ai;
    int rc, e = 0;

    memset(l, 0, sizeof(*l));
    l->fd = -1;
    l->spec = strdup(bind_spec);
    if (!l->spec)
        return -ENOMEM;
    rc = srv_bind_flags(bind_spec, addr, sizeof(addr), &l->proxy, err, err_len);
    if (rc < 0)
        return rc;
    spec = srv_bind_address(addr, &l->tls);
    if (strncmp(spec, "unix:", 5) == 0)
        return open_unix(l, spec + 5, mode, err, err_len);
    rc = srv_addr_split(spec, host, sizeof(host), &port, err, err_len);
    if (rc < 0)
        return rc;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "bind \"%s\": %s", spec, gai_strerror(rc));
        return -EINVAL;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
            e = errno;
            close(fd);
            continue;
        }
        l->fd = fd;
        break;
    }
    freeaddrinfo(res);
    if (l->fd < 0) {
        snprintf(err, err_len, "bind \"%s\" failed: %s", spec, strerror(e ? e : EINVAL));
        return -(e ? e : EINVAL);
    }
    fill_names(l);
    return 0;
}

int
srv_listener_adopt_systemd(struct srv_listener **out, size_t *n)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    int count;
    struct srv_listener *v;

    *out = NULL;
    *n = 0;
    if (!pid || !fds || atol(pid) != (long)getpid())
        return 0;
    count = atoi(fds);
    if (count <= 0 || count > 64)
        return 0;
    v = calloc((size_t)count, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (int i = 0; i < count; i++) {
        v[i].fd = 3 + i;
        v[i].inherited = 1;
        fcntl(v[i].fd, F_SETFD, FD_CLOEXEC);
        fill_names(&v[i]);
        if (asprintf(&v[i].spec, "systemd:%d", v[i].fd) < 0)
            v[i].spec = NULL;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    *out = v;
    *n = (size_t)count;
    return count;
}

int
srv_listener_shut(struct srv_listener *l)
{
    if (l->inherited || l->fd < 0)
        return 0;
    close(l->fd);
    l->fd = -1;
    if (l->family == AF_UNIX && l->host[0]) {
        unlink(l->host);
        /* Unlinked once: a later close must not remove a successor's socket. */
        l->host[0] = '\0';
    }
    return 1;
}

void
srv_listener_close(struct srv_listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->family == AF_UNIX && !l->inherited && l->host[0])
        unlink(l->host);
    free(l->spec);
    l->spec = NULL;
    l->fd = -1;
}
