/*
 * TLS material and connection facts (see tls.h).
 *
 * libmicrohttpd does the handshakes; what it takes from us is a GnuTLS
 * priority string, the client CAs (PEM) and a certificate callback. The
 * callback is used for one certificate as for several, so that there is
 * one way a certificate is chosen: the master imports every chain and key
 * once (which is also the check that they parse and match), and the workers
 * use those objects, inherited through fork().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "config.h"
#include "log.h"
#include "tls.h"

/* A PEM file larger than this is refused (a chain of a dozen certificates is ~20 KiB). */
#define TLS_FILE_MAX (1024 * 1024)
/* Certificates in one --tls-cert chain, at most. */
#define TLS_CHAIN_MAX 16
/* DNS names of one certificate that SNI is matched against, at most. */
#define TLS_NAMES_MAX 64

struct tls_cert {
    gnutls_pcert_st chain[TLS_CHAIN_MAX];
    unsigned n_chain;
    gnutls_privkey_t key;
    char *names[TLS_NAMES_MAX]; /* lower-case DNS names; "*.example.com" wildcards */
    size_t n_names;
};

struct srv_tls {
    struct tls_cert *certs;
    size_t n_certs;
    char *priorities;
    char *client_ca; /* PEM, NUL-terminated; NULL: no client certificates asked for */
    int client_required;
    gnutls_datum_t ticket_key; /* session tickets (cert_callback()); one per generation */
};

struct srv_tls_facts {
    const char *protocol; /* static strings */
    const char *cipher;
    char *sni;
    const char *verify_word; /* "NONE", "SUCCESS" or "FAILED:" */
    char *verify_reason;     /* after "FAILED:" */
    char *verify;            /* the whole client_verify text */
    char *s_dn;
    char *i_dn;
    int verified;
};

static const struct srv_tls *tls_current;

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/* Overwrite n bytes in a way the compiler keeps (the key is about to be freed). */
static void
wipe(void *p, size_t n)
{
    if (p)
        explicit_bzero(p, n);
}

/* A key file others may read: warned about, not refused (a group such as ssl-cert may be meant). */
static void
warn_key_mode(const char *path, const struct stat *st)
{
    if (st->st_mode & (S_IRGRP | S_IROTH))
        srv_log(SRV_LOG_WARN,
                "--tls-key \"%s\" is readable by its %s (mode %04o): only its owner should read "
                "a private key (chmod 600)",
                path, (st->st_mode & S_IROTH) ? "group and others" : "group",
                (unsigned)(st->st_mode & 07777));
}

/*
 * Read a whole PEM file into a NUL-terminated buffer: from given_fd when it
 * is not -1 (a descriptor the privileged helper opened, read from its start;
 * the caller keeps it), else from path. Returns 0, or -1 with err set (naming
 * the option and the path, never the contents).
 */
static int
read_pem(const char *opt, const char *path, int given_fd, gnutls_datum_t *out, char *err,
         size_t err_len)
{
    int fd = given_fd >= 0 ? dup(given_fd) : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    size_t len = 0;

    if (fd < 0) {
        snprintf(err, err_len, "option --%s: cannot open \"%s\": %s", opt, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TLS_FILE_MAX) {
        snprintf(err, err_len, "option --%s: \"%s\" is not a regular file of at most 1 MiB", opt,
                 path);
        goto error_close;
    }
    if (strcmp(opt, "tls-key") == 0)
        warn_key_mode(path, &st);
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(err, err_len, "option --%s: out of memory", opt);
        goto error_close;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + len, (size_t)st.st_size - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, err_len, "option --%s: cannot read \"%s\": %s", opt, path,
                     n < 0 ? strerror(errno) : "file shrank");
            wipe(buf, len);
            free(buf);
            goto error_close;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    out->data = (unsigned char *)buf;
    out->size = (unsigned)len;
    return 0;

error_close:
    close(fd);
    return -1;
}

static void
free_pem(gnutls_datum_t *d)
{
    wipe(d->data, d->size);
    free(d->data);
    d->data = NULL;
    d->size = 0;
}

/* ------------------------------------------------------------------ */
/* Certificates                                                        */
/* ------------------------------------------------------------------ */

static void
cert_free(struct tls_cert *c)
{
    for (unsigned i = 0; i < c->n_chain; i++)
        gnutls_pcert_deinit(&c->chain[i]);
    c->n_chain = 0;
    if (c->key)
        gnutls_privkey_deinit(c->key);
    c->key = NULL;
    for (size_t i = 0; i < c->n_names; i++)
        free(c->names[i]);
    c->n_names = 0;
}

static void
add_name(struct tls_cert *c, const char *name, size_t len)
{
    char *n;

    if (c->n_names >= TLS_NAMES_MAX || !len)
        return;
    n = strndup(name, len);
    if (!n)
        return;
    for (char *p = n; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    c->names[c->n_names++] = n;
}

/*
 * The names SNI is matched against: the DNS names of the subject alternative
 * name, else the subject's common name. Warns when the certificate's validity
 * has ended or not begun.
 */
static int
cert_names(struct tls_cert *c, const char *path, char *err, size_t err_len)
{
    gnutls_x509_crt_t crt;
    char buf[256];
    size_t size;
    time_t now = time(NULL);
    int rc;

    if (gnutls_x509_crt_init(&crt) < 0)
        return snprintf(err, err_len, "out of memory"), -1;
    rc = gnutls_x509_crt_import(crt, &c->chain[0].cert, GNUTLS_X509_FMT_DER);
    if (rc < 0) {
        snprintf(err, err_len, "option --tls-cert: \"%s\": %s", path, gnutls_strerror(rc));
        gnutls_x509_crt_deinit(crt);
        return -1;
    }
    for (unsigned i = 0;; i++) {
        size = sizeof(buf);
        rc = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, NULL);
        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (rc == GNUTLS_SAN_DNSNAME)
            add_name(c, buf, size);
    }
    size = sizeof(buf);
    if (!c->n_names &&
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size) == 0)
        add_name(c, buf, size);
    if (gnutls_x509_crt_get_expiration_time(crt) < now)
        srv_log(SRV_LOG_WARN, "--tls-cert \"%s\" has expired", path);
    else if (gnutls_x509_crt_get_activation_time(crt) > now)
        srv_log(SRV_LOG_WARN, "--tls-cert \"%s\" is not valid yet", path);
    gnutls_x509_crt_deinit(crt);
    return 0;
}

/* True when the key's public half is the certificate's public key. */
static int
key_matches(struct tls_cert *c)
{
    gnutls_pubkey_t pub;
    gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
    int same = 0;

    if (gnutls_pubkey_init(&pub) < 0)
        return 0;
    if (gnutls_pubkey_import_privkey(pub, c->key, 0, 0) == 0 &&
        gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) == 0 &&
        gnutls_pubkey_export2(c->chain[0].pubkey, GNUTLS_X509_FMT_DER, &b) == 0)
        same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
    gnutls_free(a.data);
    gnutls_free(b.data);
    gnutls_pubkey_deinit(pub);
    return same;
}

/* Import one --tls-cert chain and its --tls-key. Returns 0 or -1 with err set. */
static int
cert_load(struct tls_cert *c, const char *cert_path, const char *key_path, const int fds[2],
          char *err, size_t err_len)
{
    gnutls_datum_t pem = {NULL, 0};
    int rc;

    if (read_pem("tls-cert", cert_path, fds[0], &pem, err, err_len) < 0)
        return -1;
    c->n_chain = TLS_CHAIN_MAX;
    rc = gnutls_pcert_list_import_x509_raw(c->chain, &c->n_chain, &pem, GNUTLS_X509_FMT_PEM, 0);
    free_pem(&pem);
    if (rc < 0 || !c->n_chain) {
        c->n_chain = 0;
        snprintf(err, err_len, "option --tls-cert: \"%s\": %s", cert_path,
                 rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
        return -1;
    }
    if (cert_names(c, cert_path, err, err_len) < 0)
        return -1;
    if (read_pem("tls-key", key_path, fds[1], &pem, err, err_len) < 0)
        return -1;
    rc = gnutls_privkey_init(&c->key);
    if (rc == 0)
        rc = gnutls_privkey_import_x509_raw(c->key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0);
    free_pem(&pem);
    if (rc < 0) {
        snprintf(err, err_len, "option --tls-key: \"%s\": %s", key_path, gnutls_strerror(rc));
        return -1;
    }
    if (!key_matches(c)) {
        snprintf(err, err_len, "option --tls-key: \"%s\" is not the key of --tls-cert \"%s\"",
                 key_path, cert_path);
        return -1;
    }
    return 0;
}

/* The client CAs: read, and checked to hold at least one certificate. */
static int
client_ca_load(struct srv_tls *t, const char *path, int fd, char *err, size_t err_len)
{
    gnutls_datum_t pem = {NULL, 0};
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    int rc;

    if (read_pem("tls-client-ca", path, fd, &pem, err, err_len) < 0)
        return -1;
    rc = gnutls_x509_crt_list_import2(&list, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
    for (unsigned i = 0; rc >= 0 && i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    if (rc < 0 || !n) {
        snprintf(err, err_len, "option --tls-client-ca: \"%s\": %s", path,
                 rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
        free_pem(&pem);
        return -1;
    }
    t->client_ca = (char *)pem.data;
    return 0;
}

static int
priorities_check(const char *prio, char *err, size_t err_len)
{
    gnutls_priority_t p;
    const char *at = NULL;
    int rc = gnutls_priority_init(&p, prio, &at);

    if (rc < 0) {
        snprintf(err, err_len, "option --tls-priorities: \"%s\": %s%s%.40s%s", prio,
                 gnutls_strerror(rc), at ? " at \"" : "", at ? at : "", at ? "\"" : "");
        return -1;
    }
    gnutls_priority_deinit(p);
    return 0;
}

int
srv_tls_load(const struct srv_config *cfg, struct srv_tls **out, char *err, size_t err_len)
{
    return srv_tls_load_fds(cfg, NULL, out, err, err_len);
}

int
srv_tls_load_fds(const struct srv_config *cfg, const int *fds, struct srv_tls **out, char *err,
                 size_t err_len)
{
    struct srv_tls *t;
    size_t n = cfg->tls_certs.n;

    *out = NULL;
    if (!cfg->tls_certs.n)
        return 0;
    t = calloc(1, sizeof(*t));
    if (!t)
        return snprintf(err, err_len, "out of memory"), -1;
    t->certs = calloc(cfg->tls_certs.n, sizeof(*t->certs));
    t->priorities = strdup(cfg->tls_priorities ? cfg->tls_priorities : SRV_TLS_PRIORITIES_DEFAULT);
    if (!t->certs || !t->priorities) {
        snprintf(err, err_len, "out of memory");
        goto error_free;
    }
    if (priorities_check(t->priorities, err, err_len) < 0)
        goto error_free;
    for (size_t i = 0; i < n; i++) {
        int pair[2] = {fds ? fds[i] : -1, fds ? fds[n + i] : -1};
        int rc =
            cert_load(&t->certs[i], cfg->tls_certs.v[i], cfg->tls_keys.v[i], pair, err, err_len);
        t->n_certs = i + 1;
        if (rc < 0)
            goto error_free;
    }
    if (cfg->tls_client_ca &&
        client_ca_load(t, cfg->tls_client_ca, fds ? fds[2 * n] : -1, err, err_len) < 0)
        goto error_free;
    if (gnutls_session_ticket_key_generate(&t->ticket_key) < 0) {
        snprintf(err, err_len, "no random bytes for the TLS session ticket key");
        goto error_free;
    }
    t->client_required = !cfg->tls_client_verify || strcmp(cfg->tls_client_verify, "require") == 0;
    *out = t;
    return 0;

error_free:
    srv_tls_free(t);
    return -1;
}

void
srv_tls_free(struct srv_tls *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_certs; i++)
        cert_free(&t->certs[i]);
    free(t->certs);
    free(t->priorities);
    free(t->client_ca);
    if (t->ticket_key.data) {
        wipe(t->ticket_key.data, t->ticket_key.size);
        gnutls_free(t->ticket_key.data);
    }
    if (tls_current == t)
        tls_current = NULL;
    free(t);
}

const char *
srv_tls_priorities(const struct srv_tls *t)
{
    return t->priorities;
}

const char *
srv_tls_client_ca(const struct srv_tls *t)
{
    return t->client_ca;
}

int
srv_tls_client_required(const struct srv_tls *t)
{
    return t && t->client_ca && t->client_required;
}

size_t
srv_tls_cert_count(const struct srv_tls *t)
{
    return t ? t->n_certs : 0;
}

void
srv_tls_use(const struct srv_tls *t)
{
    tls_current = t;
}

/* ------------------------------------------------------------------ */
/* SNI                                                                 */
/* ------------------------------------------------------------------ */

/* RFC 6125 matching: exact (case-insensitive), or "*." plus the rest for one whole left label. */
static int
name_matches(const char *pattern, const char *host)
{
    if (strcasecmp(pattern, host) == 0)
        return 1;
    if (pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = strchr(host, '.');
        return dot && dot != host && strcasecmp(pattern + 1, dot) == 0;
    }
    return 0;
}

static const struct tls_cert *
pick_cert(const struct srv_tls *t, gnutls_session_t session)
{
    char host[256];
    size_t len = sizeof(host) - 1;
    unsigned type;

    if (gnutls_server_name_get(session, host, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS) {
        host[len < sizeof(host) ? len : sizeof(host) - 1] = '\0';
        for (size_t i = 0; i < t->n_certs; i++) {
            for (size_t k = 0; k < t->certs[i].n_names; k++) {
                if (name_matches(t->certs[i].names[k], host))
                    return &t->certs[i];
            }
        }
    }
    return &t->certs[0];
}

static int
cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int n_req_ca_dn,
              const gnutls_pk_algorithm_t *pk_algos, int n_pk_algos, gnutls_pcert_st **pcert,
              unsigned int *pcert_length, gnutls_privkey_t *key)
{
    const struct srv_tls *t = tls_current;
    const struct tls_cert *c;

    (void)req_ca_dn;
    (void)n_req_ca_dn;
    (void)pk_algos;
    (void)n_pk_algos;
    if (!t || !t->n_certs)
        return -1;
    c = pick_cert(t, session);
    /* GnuTLS neither frees nor changes what a retrieve_function2 returns. */
    *pcert = (gnutls_pcert_st *)c->chain;
    *pcert_length = c->n_chain;
    *key = c->key;
    return 0;
}

void
srv_tls_session_start(void *session)
{
    const struct srv_tls *t = tls_current;

    /*
     * Session tickets, as OpenSSL servers send them: resumption for clients
     * that keep them, and, in TLS 1.3, data from the server right after the
     * handshake. Without them a client's first request waited behind its
     * Finished message for our delayed ACK (40 ms on Linux, measured: the
     * client's Nagle algorithm holds the request until then). libmicrohttpd
     * never enables them; GnuTLS must know before it reads the ClientHello.
     */
    if (t && t->ticket_key.data)
        gnutls_session_ticket_enable_server(session, &t->ticket_key);
}

void *
srv_tls_cert_callback(void)
{
    gnutls_certificate_retrieve_function2 *fn = cert_callback;
    void *p;

    /* libmicrohttpd's option array carries it as a data pointer (POSIX: same size). */
    _Static_assert(sizeof(p) == sizeof(fn), "function and data pointers differ in size");
    memcpy(&p, &fn, sizeof(p));
    return p;
}

/* ------------------------------------------------------------------ */
/* Connection facts                                                    */
/* ------------------------------------------------------------------ */

/* Apache's names for the protocol versions (SSL_PROTOCOL). */
static const char *
protocol_name(gnutls_protocol_t p)
{
    switch (p) {
    case GNUTLS_TLS1_3:
        return "TLSv1.3";
    case GNUTLS_TLS1_2:
        return "TLSv1.2";
    case GNUTLS_TLS1_1:
        return "TLSv1.1";
    case GNUTLS_TLS1_0:
        return "TLSv1";
    default:
        return "unknown";
    }
}

/* A certificate's subject or issuer DN (RFC 4514 text), malloc'ed; "" when unknown. */
static char *
cert_dn(const gnutls_datum_t *der, int issuer)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = {NULL, 0};
    char *s = NULL;

    if (gnutls_x509_crt_init(&crt) < 0)
        return strdup("");
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) == 0 &&
        (issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &dn, 0)
                : gnutls_x509_crt_get_dn3(crt, &dn, 0)) == 0)
        s = strndup((const char *)dn.data, dn.size);
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
    return s ? s : strdup("");
}

/* The client certificate: verified against --tls-client-ca, and its names. */
static void
client_facts(struct srv_tls_facts *f, gnutls_session_t s)
{
    unsigned n = 0, status = 0;
    const gnutls_datum_t *peer = gnutls_certificate_get_peers(s, &n);
    int rc;

    f->verify_word = "NONE";
    if (!peer || !n)
        return;
    f->s_dn = cert_dn(&peer[0], 0);
    f->i_dn = cert_dn(&peer[0], 1);
    rc = gnutls_certificate_verify_peers2(s, &status);
    if (rc == 0 && status == 0) {
        f->verify_word = "SUCCESS";
        f->verified = 1;
        return;
    }
    f->verify_word = "FAILED:";
    if (rc < 0) {
        f->verify_reason = strdup(gnutls_strerror(rc));
    } else {
        gnutls_datum_t why = {NULL, 0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0)
            f->verify_reason = strndup((const char *)why.data, why.size);
        gnutls_free(why.data);
        /* GnuTLS ends each sentence with ". ": no trailing space in the environ. */
        for (size_t len = f->verify_reason ? strlen(f->verify_reason) : 0;
             len && f->verify_reason[len - 1] == ' '; len--)
            f->verify_reason[len - 1] = '\0';
    }
}

struct srv_tls_facts *
srv_tls_facts_take(void *session)
{
    gnutls_session_t s = session;
    struct srv_tls_facts *f = calloc(1, sizeof(*f));
    char host[256];
    size_t len = sizeof(host) - 1;
    unsigned type;
    const char *cs;

    if (!f)
        return NULL;
    f->protocol = protocol_name(gnutls_protocol_get_version(s));
    cs = gnutls_ciphersuite_get(s);
    f->cipher = cs ? cs : "unknown";
    if (gnutls_server_name_get(s, host, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS)
        f->sni = strndup(host, len < sizeof(host) ? len : sizeof(host) - 1);
    client_facts(f, s);
    if (asprintf(&f->verify, "%s%s", f->verify_word, f->verify_reason ? f->verify_reason : "") < 0)
        f->verify = NULL;
    return f;
}

void
srv_tls_facts_free(struct srv_tls_facts *f)
{
    if (!f)
        return;
    free(f->sni);
    free(f->verify_reason);
    free(f->verify);
    free(f->s_dn);
    free(f->i_dn);
    free(f);
}

int
srv_tls_facts_verified(const struct srv_tls_facts *f)
{
    return f && f->verified;
}

static struct csgi_str
str_of(const char *s)
{
    struct csgi_str r;

    r.ptr = s ? s : "";
    r.len = s ? strlen(s) : 0;
    return r;
}

void
srv_tls_facts_environ(const struct srv_tls_facts *f, struct csgi_tls *tls)
{
    memset(tls, 0, sizeof(*tls));
    tls->version = CSGI_TLS_VERSION;
    tls->protocol = str_of(f->protocol);
    tls->cipher = str_of(f->cipher);
    tls->sni = str_of(f->sni);
    tls->client_verify = str_of(f->verify ? f->verify : f->verify_word);
    tls->client_s_dn = str_of(f->s_dn);
    tls->client_i_dn = str_of(f->i_dn);
}
