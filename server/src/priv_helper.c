/*
 * The privileged helper (see priv_helper.h).
 *
 * After --user the master can no longer create a file in a directory only
 * root writes (/var/log, /run): a log file that logrotate renamed could not
 * be opened again on SIGUSR1, and the pid file could not be removed at exit.
 * nginx keeps its master root for this; csgi-server's master drops its
 * privileges with its workers, so one small process stays root instead. It
 * is forked before the switch and keeps nothing open but its socket to the
 * master.
 *
 * It takes no path from the other side: it works on the paths given at
 * start, so a master or worker taken over by a plugin bug can make it do
 * nothing but what the operator configured. A request is one byte, 'L'
 * (make the log files reopenable by the user); the reply is two errno values
 * (0: done), for the error log and the access log. At end of file (the
 * master is gone, however it ended) it removes the pid file if that still
 * names the master, and exits.
 *
 * Handing a file over (give_file()) opens it with O_NOFOLLOW and
 * O_NONBLOCK and changes only a regular file with one link, so a symbolic
 * link planted at the path, a FIFO or a hard link to another file are left
 * alone (the reopen then fails, and says so). The owner becomes the user,
 * the group stays (logrotate's "create 0640 root adm" keeps adm reading);
 * this is what nginx does to its logs on a reopen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "priv_helper.h"

/* The longest the master waits for the helper's answer before a SIGUSR1 reopen. */
#define HELPER_WAIT_MS 1000

/* The request: make the log files reopenable. */
#define HELPER_LOGS 'L'
/* The request: open the TLS files given at start, for a reload (passed back with SCM_RIGHTS). */
#define HELPER_TLS 'T'
/* TLS files the helper opens at most: SCM_RIGHTS carries up to 253 descriptors. */
#define HELPER_TLS_MAX 64

/* What the helper works on, fixed at start (copies: a reload frees the configuration). */
static struct {
    int fd; /* the master's end of the socket; -1: no helper */
    char *paths[2];
    char *pid_file;
    char *user;
    uid_t uid;
    pid_t master;
    /* The TLS files at start: --tls-cert..., --tls-key..., --tls-client-ca (srv_tls_load_fds()). */
    char *tls_paths[HELPER_TLS_MAX];
    size_t n_tls;
    size_t n_tls_certs;
} ph = {.fd = -1};

/*
 * Let uid open path for appending: create it if missing, make uid its owner
 * (the group stays) and give the owner write permission. Returns 0 or an errno value; EMLINK and
 * EINVAL name a file with other links, or one that is not a regular file, left alone.
 */
static int
give_file(const char *path, uid_t uid)
{
    struct stat st;
    int fd, rc = 0;

    if (!path)
        return 0;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
              0644);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) < 0)
        rc = errno;
    else if (!S_ISREG(st.st_mode))
        rc = EINVAL;
    else if (st.st_nlink != 1)
        rc = EMLINK;
    else if (st.st_uid != uid && fchown(fd, uid, (gid_t)-1) < 0)
        rc = errno;
    else if (!(st.st_mode & S_IWUSR) && fchmod(fd, (st.st_mode & 07777) | S_IWUSR) < 0)
        rc = errno;
    close(fd);
    return rc;
}

/* The pid in the pid file, or 0. */
static pid_t
pid_in_file(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return (pid_t)strtol(buf, NULL, 10);
}

/*
 * Open the TLS files given at start and send them to the master: one message
 * with an errno value per file (0: opened) and the opened descriptors, in
 * order, as SCM_RIGHTS. Returns 0, or -1 when the message could not be sent.
 */
static int
send_tls_files(int fd)
{
    int errs[HELPER_TLS_MAX], fds[HELPER_TLS_MAX];
    size_t n_fds = 0;
    union {
        char buf[CMSG_SPACE(sizeof(int) * HELPER_TLS_MAX)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {errs, sizeof(int) * (ph.n_tls ? ph.n_tls : 1)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    int rc;

    errs[0] = 0;
    for (size_t i = 0; i < ph.n_tls; i++) {
        int f = open(ph.tls_paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        errs[i] = f < 0 ? errno : 0;
        if (f >= 0)
            fds[n_fds++] = f;
    }
    if (n_fds) {
        struct cmsghdr *c;
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
    }
    rc = sendmsg(fd, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
    for (size_t i = 0; i < n_fds; i++)
        close(fds[i]);
    return rc;
}

/* The helper process: answer requests until the master is gone. */
static void __attribute__((noreturn)) helper_main(int fd)
{
    sigset_t all;
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

    /* Nothing but end of file stops it: the master's signals are not for it. */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    prctl(PR_SET_NAME, "csgi-priv", 0, 0, 0);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    /* Not the listening sockets, the logs or the stats socket: only the master's line. */
    close_range(3, (unsigned)fd - 1, 0);
    close_range((unsigned)fd + 1, ~0U, 0);
    for (;;) {
        char req;
        ssize_t n = read(fd, &req, 1);
        int rc[2];

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (req == HELPER_TLS) {
            if (send_tls_files(fd) < 0)
                break;
            continue;
        }
        if (req != HELPER_LOGS)
            continue;
        rc[0] = give_file(ph.paths[0], ph.uid);
        rc[1] = give_file(ph.paths[1], ph.uid);
        if (write(fd, rc, sizeof(rc)) != (ssize_t)sizeof(rc))
            break;
    }
    if (ph.pid_file && pid_in_file(ph.pid_file) == ph.master)
        unlink(ph.pid_file);
    _exit(0);
}

/* A log path the helper keeps: NULL for none or stdout/stderr ("-"). */
static char *
log_path(const char *path)
{
    return path && strcmp(path, "-") != 0 ? strdup(path) : NULL;
}

static void
log_give_failures(const char *why, const int rc[2])
{
    for (int i = 0; i < 2; i++) {
        if (rc[i])
            srv_log(SRV_LOG_ERROR, "%s: cannot let user \"%s\" reopen \"%s\": %s", why, ph.user,
                    ph.paths[i], strerror(rc[i]));
    }
}

/* The TLS files of the start configuration, in srv_tls_load_fds() order. */
static void
keep_tls_paths(const struct srv_config *cfg)
{
    size_t n = cfg->tls_certs.n;

    if (!n || 2 * n + 1 > HELPER_TLS_MAX)
        return;
    for (size_t i = 0; i < n; i++) {
        ph.tls_paths[i] = strdup(cfg->tls_certs.v[i]);
        ph.tls_paths[n + i] = strdup(cfg->tls_keys.v[i]);
    }
    ph.n_tls = 2 * n;
    if (cfg->tls_client_ca)
        ph.tls_paths[ph.n_tls++] = strdup(cfg->tls_client_ca);
    ph.n_tls_certs = n;
}

int
srv_priv_helper_start(const struct srv_config *cfg)
{
    struct passwd *pw;
    int sv[2], rc[2];
    pid_t pid;

    if (!cfg->user || geteuid() != 0)
        return 0;
    pw = getpwnam(cfg->user);
    if (!pw)
        return 0; /* srv_master_drop_privileges() says why */
    ph.uid = pw->pw_uid;
    ph.user = strdup(cfg->user);
    ph.paths[0] = log_path(cfg->error_log);
    ph.paths[1] = log_path(cfg->access_log);
    ph.pid_file = cfg->pid_file ? strdup(cfg->pid_file) : NULL;
    ph.master = getpid();
    keep_tls_paths(cfg);
    /* The files opened as root: the user reopens them by name on SIGUSR1. */
    rc[0] = give_file(ph.paths[0], ph.uid);
    rc[1] = give_file(ph.paths[1], ph.uid);
    log_give_failures("start", rc);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        srv_log(SRV_LOG_ERROR, "privileged helper: socketpair failed: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        srv_log(SRV_LOG_ERROR, "privileged helper: fork failed: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0)
        helper_main(sv[1]);
    close(sv[1]);
    ph.fd = sv[0];
    srv_log(SRV_LOG_INFO,
            "privileged helper: pid %d (recreates rotated log files for user \"%s\"%s)", (int)pid,
            ph.user, ph.pid_file ? ", removes the pid file at exit" : "");
    return 0;
}

void
srv_priv_helper_logs(void)
{
    char req = HELPER_LOGS;
    struct pollfd p = {.fd = ph.fd, .events = POLLIN};
    int rc[2];

    if (ph.fd < 0)
        return;
    /* A late answer to an earlier request that timed out. */
    while (recv(ph.fd, rc, sizeof(rc), MSG_DONTWAIT) > 0)
        ;
    if (send(ph.fd, &req, 1, MSG_NOSIGNAL) != 1 || poll(&p, 1, HELPER_WAIT_MS) != 1 ||
        read(ph.fd, rc, sizeof(rc)) != (ssize_t)sizeof(rc)) {
        srv_log(SRV_LOG_ERROR, "SIGUSR1: the privileged helper does not answer: log files "
                               "renamed away cannot be created again");
        return;
    }
    log_give_failures("SIGUSR1", rc);
}

void
srv_priv_helper_forget(void)
{
    if (ph.fd >= 0)
        close(ph.fd);
    ph.fd = -1;
}

/* True when cfg names the same TLS files, in the same order, as the start configuration. */
static int
same_tls_paths(const struct srv_config *cfg)
{
    size_t n = cfg->tls_certs.n, k = 0;

    if (n != ph.n_tls_certs || !n || cfg->tls_keys.n != n ||
        ph.n_tls != 2 * n + (cfg->tls_client_ca ? 1 : 0))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!ph.tls_paths[k] || strcmp(ph.tls_paths[k++], cfg->tls_certs.v[i]) != 0)
            return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ph.tls_paths[k] || strcmp(ph.tls_paths[k++], cfg->tls_keys.v[i]) != 0)
            return 0;
    }
    return !cfg->tls_client_ca ||
           (ph.tls_paths[k] && strcmp(ph.tls_paths[k], cfg->tls_client_ca) == 0);
}

/* Receive the helper's answer to HELPER_TLS into fds (-1 for a file it could not open). */
static int
recv_tls_files(int *fds)
{
    int errs[HELPER_TLS_MAX], got[HELPER_TLS_MAX];
    union {
        char buf[CMSG_SPACE(sizeof(int) * HELPER_TLS_MAX)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {errs, sizeof(int) * ph.n_tls};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c;
    size_t n_got = 0, k = 0;

    if (recvmsg(ph.fd, &msg, MSG_CMSG_CLOEXEC) != (ssize_t)(sizeof(int) * ph.n_tls))
        return -1;
    for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            n_got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(got, CMSG_DATA(c), sizeof(int) * n_got);
        }
    }
    for (size_t i = 0; i < ph.n_tls; i++) {
        fds[i] = -1;
        if (!errs[i] && k < n_got)
            fds[i] = got[k++];
        else if (errs[i])
            srv_log(SRV_LOG_WARN, "reload: the privileged helper cannot open \"%s\": %s",
                    ph.tls_paths[i], strerror(errs[i]));
    }
    /* Descriptors beyond what the errno values announced: none expected, closed. */
    while (k < n_got)
        close(got[k++]);
    return 0;
}

int
srv_priv_helper_tls_files(const struct srv_config *cfg, int *fds, size_t n)
{
    char req = HELPER_TLS;
    struct pollfd p = {.fd = ph.fd, .events = POLLIN};
    char junk[64];

    if (ph.fd < 0 || !same_tls_paths(cfg) || n < ph.n_tls)
        return 0;
    /* A late answer to an earlier request that timed out. */
    while (recv(ph.fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
    if (send(ph.fd, &req, 1, MSG_NOSIGNAL) != 1 || poll(&p, 1, HELPER_WAIT_MS) != 1 ||
        recv_tls_files(fds) < 0) {
        srv_log(SRV_LOG_ERROR, "reload: the privileged helper does not answer: the TLS files "
                               "are read as the user");
        return -1;
    }
    return (int)ph.n_tls;
}
