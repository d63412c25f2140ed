/*
 * Trusted proxies: the client's address, scheme and host from Forwarded
 * (RFC 7239) or X-Forwarded-For / -Proto / -Host, honoured only when the
 * peer is a trusted proxy. One rule for both transports (csgi-server and
 * the test client), written once here and applied to a built environ.
 *
 * The rule (README, "Deploying behind a load balancer"):
 * - Nothing is taken unless the peer (remote_addr) is in the trusted list.
 * - When any Forwarded line is present, only Forwarded is read; else the
 *   X-Forwarded-* fields are.
 * - The address list (Forwarded's for=, or X-Forwarded-For, lines in
 *   order) is walked right to left, skipping trusted addresses: the first
 *   untrusted one is the client (nginx's real_ip_recursive, gunicorn's
 *   forwarded_allow_ips). When every address is trusted, the leftmost is.
 *   An element that is not an IP address ("unknown", an obfuscated name,
 *   garbage) ends the walk: the client is the last address walked, or the
 *   peer when there was none. At most CSGI__FWD_MAX_HOPS are walked.
 * - Forwarded's proto= and host= come from the element that named the
 *   client. X-Forwarded-Proto and X-Forwarded-Host count only as a single
 *   line with a single value (a list, which an appending proxy makes of a
 *   client's own value, is ignored).
 * - proto must be "http" or "https" (case-insensitive); host must be a
 *   valid Host value; otherwise they are ignored.
 */
#ifndef CSGI_FORWARDED_H
#define CSGI_FORWARDED_H

#include <stddef.h>
#include <stdint.h>

#include <csgi/csgi.h>

/* Addresses walked at most in an address list (the nearest ones). */
#define CSGI__FWD_MAX_HOPS 32

/* Bytes for an address in text, with its NUL (INET6_ADDRSTRLEN). */
#define CSGI__ADDR_TEXT_SIZE 46

/* Bytes for a forwarded host name, with its NUL: a longer one is ignored. */
#define CSGI__FWD_HOST_SIZE 256

/* One trusted network: an IPv4 or IPv6 prefix, or every unix-domain peer. */
struct csgi__cidr {
    int family; /* 4, 6, or 0: a unix-domain peer ("unix") */
    unsigned bits;
    uint8_t addr[16];
};

/* Where the rule puts the strings it makes; lives as long as the environ. */
struct csgi__fwd_buf {
    char addr[CSGI__ADDR_TEXT_SIZE];
    char host[CSGI__FWD_HOST_SIZE];
    char port[8];
};

/*
 * Parse one trusted network: "192.0.2.0/24", "2001:db8::/32", an address
 * alone (its full length), or "unix" (peers on a unix-domain socket).
 * Returns 0, or CSGI_EINVAL (a bad address, or a prefix length past the
 * family's, or bits set past the prefix: "10.0.0.1/8" is refused so that a
 * typo does not trust more than meant).
 */
int csgi__cidr_parse(const char *text, struct csgi__cidr *out);

/*
 * True when the address text [addr, addr+len) is in one of the n networks
 * (len 0: a unix-domain peer).
 */
int csgi__cidr_match(const struct csgi__cidr *list, size_t n, const char *addr, size_t len);

/*
 * Apply the rule to @p env, whose remote_addr (the peer), headers,
 * url_scheme, flags, server_name and server_port are set. When the peer is
 * trusted, sets remote_addr and remote_port (0 when the header gave no
 * port), url_scheme and CSGI_ENV_TLS, server_name and server_port from the
 * headers, pointing into @p buf or the header values. Returns 1 when the
 * environ changed, else 0.
 */
int csgi__forwarded_apply(const struct csgi__cidr *trusted, size_t n_trusted,
                          struct csgi_environ *env, struct csgi__fwd_buf *buf);

#endif /* CSGI_FORWARDED_H */
