/*
 * Listening sockets: parse --bind specs and create bound, listening sockets
 * (in the master, before fork; or taken from systemd's LISTEN_FDS).
 */
#ifndef SRV_LISTENER_H
#define SRV_LISTENER_H

#include <stddef.h>

struct srv_listener {
    int fd;
    int family;     /* AF_INET, AF_INET6, AF_UNIX */
    char *spec;     /* as given: "127.0.0.1:8000", "[::1]:0", "unix:/run/x.sock" */
    char host[256]; /* address text ("127.0.0.1", "::1", unix path) */
    char port[8];   /* actual port after bind ("0" for unix) */
    int inherited;  /* from LISTEN_FDS */
    int proxy;      /* ",proxy": each connection starts with a PROXY protocol header */
    int tls;        /* bound as https://ADDR: connections speak TLS */
};

/*
 * The address of a --bind spec: "https://ADDR" gives ADDR and sets *tls;
 * any other spec is returned as is (and clears *tls).
 */
const char *srv_bind_address(const char *spec, int *tls);

/*
 * True when port is a port number as --bind and --stats take it: 1 to 5
 * decimal digits, at most 65535 (0 asks the kernel for a free port). Anything
 * else (a sign, spaces, 65536, 4294967296) is refused.
 */
int srv_port_valid(const char *port);

/*
 * Split "host:port" or "[v6]:port" into host (copied) and port (points into
 * spec). Returns 0 or -EINVAL with err set.
 */
int srv_addr_split(const char *spec, char *host, size_t host_size, const char **port, char *err,
                   size_t err_len);
/*
 * Split a --bind value into its address and its flags: "ADDR" or
 * "ADDR,FLAG[,FLAG]...", where the one flag is "proxy" (a PROXY protocol
 * header starts every connection). A unix path with a comma cannot be
 * bound. Copies the address into addr and sets *proxy. Returns 0 or -EINVAL
 * with err set.
 */
int srv_bind_flags(const char *spec, char *addr, size_t addr_size, int *proxy, char *err,
                   size_t err_len);

/*
 * Create and bind a listening socket for spec (with its flags, see
 * srv_bind_flags()); a unix socket's file gets
 * mode (srv_listener_open(): SRV_SOCKET_MODE_DEFAULT, 0660) and is removed
 * by srv_listener_close() or srv_listener_shut(). Returns 0 or -errno (err
 * set).
 */
int srv_listener_open(struct srv_listener *l, const char *spec, char *err, size_t err_len);
int srv_listener_open_mode(struct srv_listener *l, const char *spec, int mode, char *err,
                           size_t err_len);
/* Adopt LISTEN_FDS from systemd; returns the number adopted (0 if none). */
int srv_listener_adopt_systemd(struct srv_listener **out, size_t *n);
void srv_listener_close(struct srv_listener *l);
/*
 * Stop listening for good (the master, at a stop): close the socket and
 * unlink a unix socket's path, so that once the workers have closed their
 * copies too, a new connection is refused at once instead of waiting in a
 * queue nobody will accept from. A socket inherited from systemd is left
 * alone: systemd keeps its queue for the next instance. Returns 1 when the
 * socket was closed, else 0. srv_listener_close() still frees the rest.
 */
int srv_listener_shut(struct srv_listener *l);

#endif /* SRV_LISTENER_H */
