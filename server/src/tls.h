/*
 * TLS material of csgi-server (GnuTLS): the certificates and keys of the
 * https:// listeners, read and checked by the master (before it drops its
 * privileges at start, and again on each reload into the new generation's
 * configuration), inherited by the workers through fork(); the SNI choice
 * of a certificate during a handshake; the facts of a TLS connection that
 * reach the environ (struct csgi_tls).
 */
#ifndef SRV_TLS_H
#define SRV_TLS_H

#include <stddef.h>

#include <csgi/plugin.h>

struct srv_config;
struct srv_tls;

/* The default --tls-priorities: TLS 1.2 and 1.3 only, GnuTLS's NORMAL ciphers. */
#define SRV_TLS_PRIORITIES_DEFAULT "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/*
 * Read and check cfg's --tls-cert/--tls-key pairs, --tls-priorities and
 * --tls-client-ca: every file parses, each key matches its certificate, the
 * priority string is valid. A key file with group or world read permission,
 * and a certificate past its end date, get a warning in the log. Key bytes
 * read from files are wiped before their buffers are freed; no key byte is
 * ever logged. Sets *out (NULL when cfg names no certificate). Returns 0, or
 * -1 with a one-line err naming the file and what is wrong.
 */
int srv_tls_load(const struct srv_config *cfg, struct srv_tls **out, char *err, size_t err_len);

/*
 * srv_tls_load() with the files already open: fds holds a descriptor (or -1:
 * open by path) for each --tls-cert, then each --tls-key, then the
 * --tls-client-ca when given, in cfg's order (the privileged helper opens
 * them as root for a reload after --user). The caller keeps the descriptors.
 * fds NULL: every file by path.
 */
int srv_tls_load_fds(const struct srv_config *cfg, const int *fds, struct srv_tls **out, char *err,
                     size_t err_len);

/* Free what srv_tls_load() made. NULL is ignored. */
void srv_tls_free(struct srv_tls *t);

/* The priority string for libmicrohttpd (MHD_OPTION_HTTPS_PRIORITIES). Borrowed. */
const char *srv_tls_priorities(const struct srv_tls *t);

/* The client CAs in PEM (MHD_OPTION_HTTPS_MEM_TRUST), or NULL. Borrowed. */
const char *srv_tls_client_ca(const struct srv_tls *t);

/* True when a request without a verified client certificate is refused (403). */
int srv_tls_client_required(const struct srv_tls *t);

/* How many certificates (SNI names) t holds, for the log line at start. */
size_t srv_tls_cert_count(const struct srv_tls *t);

/*
 * Make t the certificates this process serves, for the handshake callback
 * (srv_tls_cert_callback(): GnuTLS gives it no closure). Call in the worker
 * before starting the daemons.
 */
void srv_tls_use(const struct srv_tls *t);

/*
 * The certificate callback for MHD_OPTION_HTTPS_CERT_CALLBACK, typed as
 * gnutls_certificate_retrieve_function2 (void * here: no GnuTLS type in this
 * header). It picks the certificate whose names match the client's SNI, else
 * the first one.
 */
void *srv_tls_cert_callback(void);

/*
 * Prepare a new connection's GnuTLS session (a gnutls_session_t) before its
 * handshake: session tickets (resumption), with this process's key.
 */
void srv_tls_session_start(void *session);

/*
 * The TLS facts of one connection, taken once (at its first request) from its
 * GnuTLS session (a gnutls_session_t): protocol, cipher suite, SNI and, with
 * --tls-client-ca, the client certificate's verification and names. Returns
 * a malloc'ed object (free with srv_tls_facts_free()), or NULL when out of
 * memory.
 */
struct srv_tls_facts;
struct srv_tls_facts *srv_tls_facts_take(void *session);
void srv_tls_facts_free(struct srv_tls_facts *f);

/* True when the facts say a client certificate was presented and verified. */
int srv_tls_facts_verified(const struct srv_tls_facts *f);

/*
 * Fill tls with f's strings: they point into f, which the caller keeps alive
 * as long as tls is read.
 */
void srv_tls_facts_environ(const struct srv_tls_facts *f, struct csgi_tls *tls);

#endif /* SRV_TLS_H */
