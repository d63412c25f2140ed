/*
 * The PROXY protocol header (see proxy_proto.h), after HAProxy's
 * proxy-protocol.txt.
 *
 * Version 1 is one text line: "PROXY TCP4|TCP6 src dst sport dport\r\n", or
 * "PROXY UNKNOWN" and anything up to the CRLF. Single spaces, at most 107
 * bytes with the CRLF, addresses in their usual text form, ports 0..65535
 * in decimal without a leading zero.
 *
 * Version 2 is binary: a 12-byte signature, the version (2) and command
 * (LOCAL or PROXY) in one byte, the family and transport in the next, then
 * the length of what follows (big endian): the address block of the family
 * (12 bytes for INET, 36 for INET6, 216 for UNIX), then TLVs, which we skip.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "proxy_proto.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

static int
fail(const char **why, const char *reason)
{
    *why = reason;
    return -EINVAL;
}

/* A port of version 1: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static int
v1_port(const char *s, size_t n, uint16_t *out)
{
    unsigned long v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* An address of version 1 in family af, n bytes at s, into a (in_addr or in6_addr). */
static int
v1_addr(int af, const char *s, size_t n, void *a)
{
    char text[INET6_ADDRSTRLEN];

    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    return inet_pton(af, text, a) == 1 ? 0 : -1;
}

/*
 * Split the version 1 line (without "PROXY " and the CRLF) at single
 * spaces into at most max tokens. Returns the count, or -1 for an empty
 * token (two spaces, or a space at either end) or too many.
 */
static int
v1_tokens(const char *s, size_t n, const char **tok, size_t *tok_len, int max)
{
    int count = 0;
    size_t start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ')
            continue;
        if (i == start || count == max)
            return -1;
        tok[count] = s + start;
        tok_len[count++] = i - start;
        start = i + 1;
    }
    return count;
}

static int
v1_parse(const uint8_t *buf, size_t len, struct srv_proxy_header *out, const char **why)
{
    const char *line = (const char *)buf + sizeof(v1_sig) - 1;
    const char *tok[5];
    size_t tok_len[5], end = 0, n;
    int af, count;
    uint16_t sport, dport;
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } src, dst;

    for (size_t i = 0; i < len && i < SRV_PROXY_V1_MAX; i++) {
        if (buf[i] == '\n')
            return fail(why, "proxy v1 header with a bare LF");
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return SRV_PROXY_MORE;
            if (buf[i + 1] != '\n')
                return fail(why, "proxy v1 header with a bare CR");
            end = i;
            break;
        }
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            return fail(why, "proxy v1 header with a control byte");
    }
    if (!end)
        return len >= SRV_PROXY_V1_MAX ? fail(why, "proxy v1 header longer than 107 bytes")
                                       : SRV_PROXY_MORE;
    if (end + 2 > SRV_PROXY_V1_MAX)
        return fail(why, "proxy v1 header longer than 107 bytes");
    n = end - (sizeof(v1_sig) - 1);
    memset(out, 0, sizeof(*out));
    out->version = 1;
    /* UNKNOWN: whatever follows is to be ignored, up to the CRLF. */
    if (n >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (n == 7 || line[7] == ' ')) {
        out->local = 1;
        return (int)end + 2;
    }
    count = v1_tokens(line, n, tok, tok_len, 5);
    if (count < 0)
        return fail(why, "proxy v1 header: fields not one space apart, or too many");
    if (tok_len[0] != 4 || (memcmp(tok[0], "TCP4", 4) != 0 && memcmp(tok[0], "TCP6", 4) != 0))
        return fail(why, "proxy v1 header: the protocol is not TCP4, TCP6 or UNKNOWN");
    if (count != 5)
        return fail(why, "proxy v1 header: want source, destination and two ports");
    af = tok[0][3] == '4' ? AF_INET : AF_INET6;
    if (v1_addr(af, tok[1], tok_len[1], &src) < 0 || v1_addr(af, tok[2], tok_len[2], &dst) < 0)
        return fail(why, "proxy v1 header: an address is not of its protocol");
    if (v1_port(tok[3], tok_len[3], &sport) < 0 || v1_port(tok[4], tok_len[4], &dport) < 0)
        return fail(why, "proxy v1 header: a port is not 0..65535");
    if (af == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&out->src;
        sa->sin_family = AF_INET;
        sa->sin_addr = src.v4;
        sa->sin_port = htons(sport);
        out->src_len = sizeof(*sa);
    } else {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&out->src;
        sa->sin6_family = AF_INET6;
        sa->sin6_addr = src.v6;
        sa->sin6_port = htons(sport);
        out->src_len = sizeof(*sa);
    }
    return (int)end + 2;
}

/* The client of a version 2 PROXY command from its address block (checked long enough). */
static void
v2_source(int fam, const uint8_t *a, struct srv_proxy_header *out)
{
    if (fam == 1) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&out->src;
        sa->sin_family = AF_INET;
        memcpy(&sa->sin_addr, a, 4);
        memcpy(&sa->sin_port, a + 8, 2);
        out->src_len = sizeof(*sa);
    } else if (fam == 2) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&out->src;
        sa->sin6_family = AF_INET6;
        memcpy(&sa->sin6_addr, a, 16);
        memcpy(&sa->sin6_port, a + 32, 2);
        out->src_len = sizeof(*sa);
    } else {
        struct sockaddr_un *sa = (struct sockaddr_un *)&out->src;
        sa->sun_family = AF_UNIX;
        /* 108 bytes, NUL-padded; a path that fills them all is cut by one byte. */
        memcpy(sa->sun_path, a, sizeof(sa->sun_path) - 1);
        out->src_len = sizeof(*sa);
    }
}

static int
v2_parse(const uint8_t *buf, size_t len, struct srv_proxy_header *out, const char **why)
{
    static const size_t addr_len[4] = {0, 12, 36, 216};
    unsigned cmd, fam, proto;
    size_t body;

    if (len < SRV_PROXY_V2_FIXED)
        return SRV_PROXY_MORE;
    if ((buf[12] >> 4) != 2)
        return fail(why, "proxy v2 header of another version");
    cmd = buf[12] & 0x0f;
    fam = buf[13] >> 4;
    proto = buf[13] & 0x0f;
    body = (size_t)buf[14] << 8 | buf[15];
    if (cmd > 1)
        return fail(why, "proxy v2 header with an unknown command");
    if (fam > 3 || proto > 2)
        return fail(why, "proxy v2 header with an unknown family or transport");
    memset(out, 0, sizeof(*out));
    out->version = 2;
    /*
     * LOCAL: the balancer speaks for itself (a health check); the address
     * block, if any, is ignored. UNSPEC: no address to use either.
     */
    if (cmd == 0 || fam == 0) {
        out->local = 1;
        return (int)(SRV_PROXY_V2_FIXED + body);
    }
    if (proto != 1)
        return fail(why, "proxy v2 header for a transport other than a stream");
    if (body < addr_len[fam])
        return fail(why, "proxy v2 header shorter than its addresses");
    if (len < SRV_PROXY_V2_FIXED + addr_len[fam])
        return SRV_PROXY_MORE;
    v2_source((int)fam, buf + SRV_PROXY_V2_FIXED, out);
    return (int)(SRV_PROXY_V2_FIXED + body);
}

int
srv_proxy_parse(const uint8_t *buf, size_t len, struct srv_proxy_header *out, const char **why)
{
    size_t n;

    if (len == 0)
        return SRV_PROXY_MORE;
    if (buf[0] == v1_sig[0]) {
        n = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
        if (memcmp(buf, v1_sig, n) != 0)
            return fail(why, "no proxy protocol header");
        return len < sizeof(v1_sig) - 1 ? SRV_PROXY_MORE : v1_parse(buf, len, out, why);
    }
    n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(buf, v2_sig, n) != 0)
        return fail(why, "no proxy protocol header");
    return v2_parse(buf, len, out, why);
}
