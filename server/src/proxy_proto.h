/*
 * The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the
 * header a load balancer sends first on a connection to say whose it is.
 * A pure function of the bytes received, so that it is unit-tested and
 * fuzzed directly; the acceptor reads the bytes (acceptor.c).
 */
#ifndef SRV_PROXY_PROTO_H
#define SRV_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest version 1 header, CRLF included (the spec's 107 bytes). */
#define SRV_PROXY_V1_MAX 107

/* Version 2: the fixed part (signature, version and command, family, length). */
#define SRV_PROXY_V2_FIXED 16

/*
 * Bytes that hold every header's addresses: version 2's fixed part and its
 * largest address block (two unix paths of 108 bytes), more than version 1's
 * longest header. A version 2 header can be longer (TLVs, up to 65535 bytes
 * after the fixed part); its addresses are always within these bytes.
 */
#define SRV_PROXY_ADDR_MAX (SRV_PROXY_V2_FIXED + 216)

/* srv_proxy_parse(): more bytes are needed to decide. */
#define SRV_PROXY_MORE 0

struct srv_proxy_header {
    int version; /* 1 or 2 */
    /*
     * 1 when the header names no client: a version 2 LOCAL command (the
     * balancer's own health check), an UNSPEC family, or version 1's
     * UNKNOWN. The connection's own address then stands.
     */
    int local;
    /* The client's address (when !local): AF_INET, AF_INET6 or AF_UNIX. */
    struct sockaddr_storage src;
    socklen_t src_len;
};

/*
 * Parse the PROXY header at the start of @p buf (@p len bytes received so
 * far). Returns the header's whole length (> 0) once its addresses are in
 * @p buf, with @p out filled: version 1's length is at most
 * SRV_PROXY_V1_MAX and within @p buf; version 2's may run past @p len (TLVs,
 * which are skipped), its addresses never do when @p len is at least
 * SRV_PROXY_ADDR_MAX. Returns SRV_PROXY_MORE while the bytes are a valid
 * beginning of a header, or -EINVAL with *@p why set to a static, lower-case
 * reason when they cannot be one (the connection is then closed).
 */
int srv_proxy_parse(const uint8_t *buf, size_t len, struct srv_proxy_header *out, const char **why);

#endif /* SRV_PROXY_PROTO_H */
