/*
 * HTTPS in csgi-server (issue 13), over real TLS on loopback: certificates
 * made at test time by openssl (tls_certs.sh), libcurl (OpenSSL) and
 * openssl s_client as the clients, a real csgi-server with the probe plugin,
 * which prints its environ, the TLS facts included.
 *
 * Two servers: "main" serves plain HTTP and HTTPS side by side with two
 * certificates (SNI) and optional client certificates; "strict" requires a
 * client certificate and also allows TLS 1.1 (--tls-priorities), which
 * proves that the TLS 1.1 client refused by "main" can connect when allowed.
 * Every loop is bounded; we only signal the PIDs we started.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

/* A TLS request's options; zero means the default. */
struct tls_opts {
    const char *host; /* the URL's host (SNI), resolved to 127.0.0.1; NULL: 127.0.0.1 */
    const char *cert; /* client certificate (file name in the cert dir) */
    const char *key;  /* its key */
    int old_tls;      /* offer only TLS 1.0 and 1.1, from a client that can speak them */
    const char *ca;   /* the CA file name (default ca.pem) */
};

struct tls_resp {
    int curl_code;
    long status;
    char *body;
    char subject[512]; /* the server certificate's subject, as libcurl prints it */
};

static char certs[300]; /* the certificates' directory, in the main server's dir */

static int
https_port(const struct hserver *s)
{
    char *log = h_slurp(s->log, NULL);
    const char *tag = "listening on https://127.0.0.1:";
    char *at = log ? strstr(log, tag) : NULL;
    int port = at ? atoi(at + strlen(tag)) : 0;

    free(log);
    ck_assert_int_gt(port, 0);
    return port;
}

static size_t
collect(char *data, size_t size, size_t n, void *userp)
{
    char **buf = userp;
    size_t old = *buf ? strlen(*buf) : 0;
    char *p = realloc(*buf, old + size * n + 1);

    if (!p)
        return 0;
    memcpy(p + old, data, size * n);
    p[old + size * n] = '\0';
    *buf = p;
    return size * n;
}

static void
cert_subject(CURL *c, struct tls_resp *r)
{
    struct curl_certinfo *ci = NULL;

    if (curl_easy_getinfo(c, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci || ci->num_of_certs < 1)
        return;
    for (struct curl_slist *l = ci->certinfo[0]; l; l = l->next) {
        if (strncmp(l->data, "Subject:", 8) == 0)
            snprintf(r->subject, sizeof(r->subject), "%s", l->data + 8);
    }
}

static struct tls_resp
tls_get(int port, const char *path, const struct tls_opts *o)
{
    struct tls_resp r;
    struct curl_slist *resolve = NULL;
    char url[512], path_buf[400], res[300];
    const char *host = o && o->host ? o->host : "127.0.0.1";
    CURL *c = curl_easy_init();

    memset(&r, 0, sizeof(r));
    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "https://%s:%d%s", host, port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (o && o->host) {
        snprintf(res, sizeof(res), "%s:%d:127.0.0.1", o->host, port);
        resolve = curl_slist_append(NULL, res);
        curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    }
    snprintf(path_buf, sizeof(path_buf), "%s/%s", certs, o && o->ca ? o->ca : "ca.pem");
    curl_easy_setopt(c, CURLOPT_CAINFO, path_buf);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    if (o && o->cert) {
        snprintf(path_buf, sizeof(path_buf), "%s/%s", certs, o->cert);
        curl_easy_setopt(c, CURLOPT_SSLCERT, path_buf);
        snprintf(path_buf, sizeof(path_buf), "%s/%s", certs, o->key);
        curl_easy_setopt(c, CURLOPT_SSLKEY, path_buf);
    }
    if (o && o->old_tls) {
        curl_easy_setopt(c, CURLOPT_SSLVERSION,
                         (long)(CURL_SSLVERSION_TLSv1_0 | CURL_SSLVERSION_MAX_TLSv1_1));
        /* OpenSSL 3 speaks TLS 1.0/1.1 only at security level 0. */
        curl_easy_setopt(c, CURLOPT_SSL_CIPHER_LIST, "DEFAULT@SECLEVEL=0");
    }
    curl_easy_setopt(c, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    r.curl_code = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    cert_subject(c, &r);
    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
    if (!r.body)
        r.body = calloc(1, 1);
    return r;
}

static void
tls_resp_free(struct tls_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Run a shell command line; it must succeed. */
static void
sh(const char *cmd)
{
    ck_assert_msg(system(cmd) == 0, "command failed: %s", cmd);
}

/* Copy certs/from to certs/to (the files a running server was started with). */
static void
put_file(const char *from, const char *to)
{
    char a[400], b[400];
    char cmd[900];

    snprintf(a, sizeof(a), "%s/%s", certs, from);
    snprintf(b, sizeof(b), "%s/%s", certs, to);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", a, b);
    sh(cmd);
}

/* ------------------------------------------------------------------ */
/* The main server: plain and TLS, two certificates, optional client certificates */
/* ------------------------------------------------------------------ */

static struct hserver srv;
static int tls_port;

static void
main_setup(void)
{
    char cmd[600], cert[400], key[400], bcert[400], bkey[400], ca[400];

    h_init(&srv);
    h_add_plugin(&srv, "probe.so", NULL);
    snprintf(certs, sizeof(certs), "%s/certs", srv.dir);
    snprintf(cmd, sizeof(cmd), "'%s/tls_certs.sh' '%s'", getenv("CSGI_TLS_SCRIPTS"), certs);
    ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
    put_file("a.pem", "cur.pem");
    put_file("a.key", "cur.key");
    snprintf(cert, sizeof(cert), "%s/cur.pem", certs);
    snprintf(key, sizeof(key), "%s/cur.key", certs);
    snprintf(bcert, sizeof(bcert), "%s/b.pem", certs);
    snprintf(bkey, sizeof(bkey), "%s/b.key", certs);
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    /* Readable by its group: warned about. */
    ck_assert_int_eq(chmod(bkey, 0640), 0);
    h_start(&srv, 1,
            (const char *[]){"--workers", "1", "--bind", "https://127.0.0.1:0", "--tls-cert", cert,
                             "--tls-key", key, "--tls-cert", bcert, "--tls-key", bkey,
                             "--tls-client-ca", ca, "--tls-client-verify", "optional", NULL});
    tls_port = https_port(&srv);
}

static void
main_teardown(void)
{
    h_stop(&srv, SIGTERM, 10000);
    h_cleanup(&srv);
}

START_TEST(tls_environ)
{
    struct tls_resp r = tls_get(tls_port, "/probe/env", NULL);
    char port[32];

    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "url_scheme=https\n"), "%s", r.body);
    snprintf(port, sizeof(port), "server_port=%d\n", tls_port);
    ck_assert_msg(h_has(r.body, port), "%s", r.body);
    /* TLS 1.3 is what two current stacks agree on. */
    ck_assert_msg(h_has(r.body, "ssl_protocol=TLSv1.3\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "ssl_cipher=TLS_"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "ssl_client_verify=NONE\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "ssl_client_s_dn=\n"), "%s", r.body);
    /* An IP address is not sent as SNI. */
    ck_assert_msg(h_has(r.body, "ssl_tls_sni=\n"), "%s", r.body);
    ck_assert_msg(strstr(r.subject, "first") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);
}
END_TEST

START_TEST(tls_plain_beside)
{
    struct hresp r = h_get(&srv, "/probe/env");

    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "url_scheme=http\n"), "%s", r.body);
    ck_assert_msg(!h_has(r.body, "ssl_"), "%s", r.body);
    h_resp_free(&r);
}
END_TEST

START_TEST(tls_old_versions_refused)
{
    struct tls_opts o = {.old_tls = 1};
    struct tls_resp r = tls_get(tls_port, "/probe/env", &o);

    /* The same client connects to the strict server, which allows TLS 1.1 (tls_strict_old_allowed).
     */
    ck_assert_int_ne(r.curl_code, CURLE_OK);
    ck_assert_int_eq(r.status, 0);
    tls_resp_free(&r);
}
END_TEST

START_TEST(tls_sni_picks_certificate)
{
    struct tls_opts b = {.host = "b.test"}, a = {.host = "a.test"}, other = {.host = "localhost"};
    struct tls_resp r = tls_get(tls_port, "/probe/env", &b);

    /* libcurl checks the name: b.test verifies only with b's certificate. */
    ck_assert_msg(r.curl_code == CURLE_OK, "curl %d", r.curl_code);
    ck_assert_msg(h_has(r.body, "ssl_tls_sni=b.test\n"), "%s", r.body);
    ck_assert_msg(strstr(r.subject, "bee") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);
    r = tls_get(tls_port, "/probe/env", &a);
    ck_assert_msg(r.curl_code == CURLE_OK, "curl %d", r.curl_code);
    ck_assert_msg(h_has(r.body, "ssl_tls_sni=a.test\n"), "%s", r.body);
    ck_assert_msg(strstr(r.subject, "first") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);
    /* A name of the first certificate's other SAN entries. */
    r = tls_get(tls_port, "/probe/env", &other);
    ck_assert_msg(r.curl_code == CURLE_OK, "curl %d", r.curl_code);
    ck_assert_msg(strstr(r.subject, "first") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);
}
END_TEST

START_TEST(tls_client_certificate_optional)
{
    struct tls_opts good = {.cert = "client.pem", .key = "client.key"};
    struct tls_opts rogue = {.cert = "rogue-client.pem", .key = "rogue-client.key"};
    struct tls_resp r = tls_get(tls_port, "/probe/env", &good);

    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "ssl_client_verify=SUCCESS\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "ssl_client_s_dn=CN=alice,O=csgi tests\n"), "%s", r.body);
    ck_assert_msg(h_has(r.body, "ssl_client_i_dn=CN=csgi test ca\n"), "%s", r.body);
    tls_resp_free(&r);
    /* Optional: the request goes through, and the application is told it failed. */
    r = tls_get(tls_port, "/probe/env", &rogue);
    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "ssl_client_verify=FAILED:") &&
                      h_has(r.body, "issuer is unknown.\n"),
                  "%s", r.body);
    ck_assert_msg(h_has(r.body, "ssl_client_s_dn=CN=mallory\n"), "%s", r.body);
    tls_resp_free(&r);
}
END_TEST

START_TEST(tls_alpn_and_key_hygiene)
{
    char cmd[800], out[400], *text, *key, *line;
    FILE *p;
    size_t n;

    snprintf(out, sizeof(out), "%s/s_client.out", srv.dir);
    snprintf(cmd, sizeof(cmd),
             "timeout 10 openssl s_client -connect 127.0.0.1:%d -alpn http/1.1 -CAfile "
             "'%s/ca.pem' </dev/null >'%s' 2>&1",
             tls_port, certs, out);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    pclose(p);
    text = h_slurp(out, &n);
    ck_assert_msg(h_has(text, "ALPN protocol: http/1.1"), "%s", text);
    ck_assert_msg(h_has(text, "Verify return code: 0 (ok)"), "%s", text);
    free(text);
    /* The group-readable key was warned about; no key byte is in the log. */
    ck_assert_int_eq(h_log_count(&srv, "b.key\" is readable by its group (mode 0640)"), 1);
    snprintf(out, sizeof(out), "%s/cur.key", certs);
    key = h_slurp(out, NULL);
    line = strchr(key, '\n');
    ck_assert_ptr_nonnull(line);
    line[1 + 20] = '\0'; /* the first 20 base64 characters of the key */
    text = h_slurp(srv.log, NULL);
    ck_assert_msg(!h_has(text, line + 1), "key bytes in the log");
    ck_assert_msg(!h_has(text, "PRIVATE KEY"), "key in the log");
    free(text);
    free(key);
}
END_TEST

/*
 * Session tickets: a client that kept the first connection's ticket resumes
 * (python3's ssl module, OpenSSL), and the resumed connection still knows its
 * client certificate.
 */
START_TEST(tls_session_resumed)
{
    char cmd[2400], out[400], *text;
    const char *py =
        "import socket, ssl, sys\n"
        "d = sys.argv[1]\n"
        "ctx = ssl.create_default_context(cafile=d + '/ca.pem')\n"
        "ctx.load_cert_chain(d + '/client.pem', d + '/client.key')\n"
        "sess = None\n"
        "for i in range(2):\n"
        "    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[2]))),\n"
        "                        server_hostname='a.test', session=sess)\n"
        "    s.sendall(b'GET /probe/env HTTP/1.1\\r\\nHost: a.test\\r\\n"
        "Connection: close\\r\\n\\r\\n')\n"
        "    body = b''\n"
        "    while True:\n"
        "        b = s.recv(65536)\n"
        "        if not b: break\n"
        "        body += b\n"
        "    print('reused=%d' % s.session_reused)\n"
        "    print(body.decode())\n"
        "    sess = s.session\n"
        "    s.close()\n";

    snprintf(out, sizeof(out), "%s/resume.out", srv.dir);
    snprintf(cmd, sizeof(cmd), "timeout 20 python3 -c \"$PY\" '%s' %d >'%s' 2>&1", certs, tls_port,
             out);
    setenv("PY", py, 1);
    ck_assert_int_eq(system(cmd), 0);
    text = h_slurp(out, NULL);
    ck_assert_msg(h_has(text, "reused=0\n") && h_has(text, "reused=1\n"), "%s", text);
    /* Both connections: the client certificate verified, on the resumed one too. */
    ck_assert_msg(strstr(text, "ssl_client_verify=SUCCESS\n") &&
                      strstr(strstr(text, "reused=1\n"), "ssl_client_verify=SUCCESS\n"),
                  "%s", text);
    free(text);
}
END_TEST

/*
 * A handshake waiting for the client is no work for the server: a client
 * sends its ClientHello, reads the server's whole flight and then holds its
 * Finished for 2 s. The worker must sleep meanwhile (libmicrohttpd's epoll
 * loop spun on such a connection: recv() and epoll_wait(0) until the client
 * answered, a whole core's worth). Then the handshake completes and the
 * request is answered, so the server did wait for it.
 */
START_TEST(tls_handshake_wait_sleeps)
{
    char cmd[2400], out[400], *text;
    struct tls_resp r = tls_get(tls_port, "/probe/pid", NULL);
    int pid = atoi(r.body), ticks = -1;
    const char *py = "import socket, ssl, sys, time\n"
                     "d, port, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
                     "def cpu():\n"
                     "    st = open('/proc/%s/stat' % pid).read()\n"
                     "    v = st[st.rfind(')') + 2:].split()\n"
                     "    return int(v[11]) + int(v[12])\n"
                     "ctx = ssl.create_default_context(cafile=d + '/ca.pem')\n"
                     "inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()\n"
                     "tls = ctx.wrap_bio(inc, out, server_hostname='a.test')\n"
                     "s = socket.create_connection(('127.0.0.1', int(port)), timeout=10)\n"
                     "done = False\n"
                     "while not done:\n"
                     "    try:\n"
                     "        tls.do_handshake()\n"
                     "        done = True\n"
                     "    except ssl.SSLWantReadError:\n"
                     "        pass\n"
                     "    if out.pending and not done:\n"
                     "        s.sendall(out.read())\n"
                     "    if not done:\n"
                     "        data = s.recv(65536)\n"
                     "        if not data: sys.exit('closed during the handshake')\n"
                     "        inc.write(data)\n"
                     "c0 = cpu()\n"
                     "time.sleep(2)\n"
                     "print('ticks=%d' % (cpu() - c0))\n"
                     "tls.write(b'GET /probe/env HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: "
                     "close\\r\\n\\r\\n')\n"
                     "s.sendall(out.read())\n"
                     "body = b''\n"
                     "while True:\n"
                     "    data = s.recv(65536)\n"
                     "    if not data: break\n"
                     "    inc.write(data)\n"
                     "    try:\n"
                     "        body += tls.read(65536)\n"
                     "    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):\n"
                     "        pass\n"
                     "print(body.decode('latin-1').split('\\r\\n')[0])\n";

    ck_assert_int_eq(r.status, 200);
    ck_assert_int_gt(pid, 0);
    tls_resp_free(&r);
    snprintf(out, sizeof(out), "%s/hold.out", srv.dir);
    snprintf(cmd, sizeof(cmd), "timeout 30 python3 -c \"$PY\" '%s' %d %d >'%s' 2>&1", certs,
             tls_port, pid, out);
    setenv("PY", py, 1);
    ck_assert_int_eq(system(cmd), 0);
    text = h_slurp(out, NULL);
    ck_assert_msg(h_has(text, "HTTP/1.1 200 OK\n"), "%s", text);
    ck_assert_msg(h_has(text, "ticks="), "%s", text);
    ticks = atoi(strstr(text, "ticks=") + 6);
    /* Clock ticks are 10 ms: at most 50 ms of CPU in 2 s (the spin took 260 ms on a loaded
     * machine). */
    ck_assert_msg(ticks >= 0 && ticks <= 5, "worker CPU while the handshake waited: %s", text);
    free(text);
}
END_TEST

/* Last in its case: it changes the server's certificate files. */
START_TEST(tls_reload_swaps_certificate)
{
    struct tls_resp r;

    /* A renewal: new files at the same paths, then SIGHUP. */
    put_file("a2.pem", "cur.pem");
    put_file("a2.key", "cur.key");
    kill(srv.pid, SIGHUP);
    ck_assert(h_wait_log(&srv, "reload: generation 2 ready", 1, 20000));
    /* Until it stops, the old worker may still accept a connection on the shared socket. */
    ck_assert(h_wait_log(&srv, "(gen 1, pid", 1, 20000));
    r = tls_get(tls_port, "/probe/env", NULL);
    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_msg(strstr(r.subject, "second") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);

    /* A broken certificate: the reload is refused, the old one keeps serving. */
    {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "echo 'not a certificate' > '%s/cur.pem'", certs);
        sh(cmd);
    }
    kill(srv.pid, SIGHUP);
    ck_assert(
        h_wait_log(&srv, "reload refused, old workers keep serving: option --tls-cert", 1, 20000));
    ck_assert_int_eq(h_log_count(&srv, "cur.pem\": "), 1);
    r = tls_get(tls_port, "/probe/env", NULL);
    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_msg(strstr(r.subject, "second") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);

    /* A certificate with another certificate's key: refused too, and said why. */
    put_file("a.pem", "cur.pem");
    put_file("b.key", "cur.key");
    kill(srv.pid, SIGHUP);
    ck_assert(h_wait_log(&srv, "cur.key\" is not the key of --tls-cert", 1, 20000));
    r = tls_get(tls_port, "/probe/env", NULL);
    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_msg(strstr(r.subject, "second") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);
    ck_assert_int_eq(h_log_count(&srv, "reload: generation 3"), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The strict server: client certificates required, TLS 1.1 allowed   */
/* ------------------------------------------------------------------ */

START_TEST(tls_strict)
{
    struct hserver s2;
    struct tls_opts good = {.cert = "client.pem", .key = "client.key"};
    struct tls_opts rogue = {.cert = "rogue-client.pem", .key = "rogue-client.key"};
    struct tls_opts old = {.cert = "client.pem", .key = "client.key", .old_tls = 1};
    char cert[400], key[400], ca[400];
    struct tls_resp r;
    int port;

    snprintf(cert, sizeof(cert), "%s/a.pem", certs);
    snprintf(key, sizeof(key), "%s/a.key", certs);
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    h_init(&s2);
    h_add_plugin(&s2, "probe.so", NULL);
    h_start(&s2, 1,
            (const char *[]){"--workers", "1", "--bind", "https://127.0.0.1:0", "--tls-cert", cert,
                             "--tls-key", key, "--tls-client-ca", ca, "--tls-priorities",
                             "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+VERS-TLS1.1", NULL});
    port = https_port(&s2);

    r = tls_get(port, "/probe/env", NULL);
    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_int_eq(r.status, 403);
    ck_assert(!h_has(r.body, "url_scheme"));
    tls_resp_free(&r);
    ck_assert(h_wait_log(&s2, "no verified client certificate", 1, 5000));

    r = tls_get(port, "/probe/env", &rogue);
    ck_assert_int_eq(r.status, 403);
    tls_resp_free(&r);

    r = tls_get(port, "/probe/env", &good);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "ssl_client_verify=SUCCESS\n"), "%s", r.body);
    tls_resp_free(&r);

    /* The client main refuses connects where TLS 1.1 is allowed: the refusal was the server's. */
    r = tls_get(port, "/probe/env", &old);
    ck_assert_msg(r.curl_code == CURLE_OK, "curl %d", r.curl_code);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(h_has(r.body, "ssl_protocol=TLSv1.1\n"), "%s", r.body);
    tls_resp_free(&r);

    h_stop(&s2, SIGTERM, 10000);
    h_cleanup(&s2);
}
END_TEST

/*
 * As root with --user nobody: the master can no longer read a 0600 root key
 * in a 0700 root directory, yet a SIGHUP renewal must take the new pair (the
 * privileged helper opens the files given at start and hands them over).
 */
START_TEST(tls_reload_after_user)
{
    struct hserver s;
    struct passwd *pw = getpwnam("nobody");
    char keys[300], tmp[300], cert[320], key[320], cmd[2400];
    struct tls_resp r;
    int port;

    if (geteuid() != 0 || !pw) {
        fprintf(stderr, "tls_reload_after_user: skipped (needs root and a \"nobody\" user)\n");
        return;
    }
    h_init(&s);
    h_add_plugin(&s, "probe.so", NULL);
    ck_assert_int_eq(chmod(s.dir, 0755), 0);
    snprintf(keys, sizeof(keys), "%s/keys", s.dir);
    snprintf(tmp, sizeof(tmp), "%s/tmp", s.dir);
    ck_assert_int_eq(mkdir(keys, 0700), 0);
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    ck_assert_int_eq(chown(tmp, pw->pw_uid, pw->pw_gid), 0);
    snprintf(cert, sizeof(cert), "%s/cert.pem", keys);
    snprintf(key, sizeof(key), "%s/key.pem", keys);
    snprintf(cmd, sizeof(cmd), "cp '%s/a.pem' '%s' && cp '%s/a.key' '%s' && chmod 600 '%s' '%s'",
             certs, cert, certs, key, cert, key);
    sh(cmd);
    h_spawn(&s,
            (const char *[]){getenv("CSGI_SERVER"),
                             "--bind",
                             "127.0.0.1:0",
                             "--bind",
                             "https://127.0.0.1:0",
                             "--plugins",
                             s.plugins,
                             "--workers",
                             "1",
                             "--error-log",
                             s.log,
                             "--tmp-dir",
                             tmp,
                             "--tls-cert",
                             cert,
                             "--tls-key",
                             key,
                             "--user",
                             "nobody",
                             NULL},
            1);
    port = https_port(&s);
    r = tls_get(port, "/probe/env", NULL);
    ck_assert_msg(strstr(r.subject, "first") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);

    snprintf(cmd, sizeof(cmd), "cp '%s/a2.pem' '%s' && cp '%s/a2.key' '%s'", certs, cert, certs,
             key);
    sh(cmd);
    kill(s.pid, SIGHUP);
    ck_assert_msg(h_wait_log(&s, "reload: generation 2 ready", 1, 20000), "see %s", s.log);
    ck_assert(h_wait_log(&s, "(gen 1, pid", 1, 20000));
    r = tls_get(port, "/probe/env", NULL);
    ck_assert_int_eq(r.curl_code, CURLE_OK);
    ck_assert_msg(strstr(r.subject, "second") != NULL, "subject %s", r.subject);
    tls_resp_free(&r);
    h_stop(&s, SIGTERM, 10000);
    h_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* --check-config                                                      */
/* ------------------------------------------------------------------ */

/* Run csgi-server --check-config with cert and key; its stdout into out. Returns the exit status.
 */
static int
check_config(const char *cert, const char *key, char **out)
{
    char cmd[4096], file[400];

    snprintf(file, sizeof(file), "%s/check.out", srv.dir);
    snprintf(cmd, sizeof(cmd),
             "'%s' --check-config --plugins '%s' --bind https://127.0.0.1:0 --tls-cert '%s/%s' "
             "--tls-key '%s/%s' --error-log '%s/check.log' >'%s' 2>&1",
             getenv("CSGI_SERVER"), srv.plugins, certs, cert, certs, key, srv.dir, file);
    int st = system(cmd);
    *out = h_slurp(file, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(tls_check_config)
{
    char *out;

    ck_assert_int_eq(check_config("b.pem", "b.key", &out), 0);
    ck_assert_msg(h_has(out, "ok      tls"), "%s", out);
    free(out);
    ck_assert_int_eq(check_config("a.pem", "b.key", &out), 1);
    ck_assert_msg(h_has(out, "FAILED  tls"), "%s", out);
    ck_assert_msg(h_has(out, "b.key\" is not the key of --tls-cert"), "%s", out);
    free(out);
}
END_TEST

static Suite *
tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("main");

    tcase_add_unchecked_fixture(tc, main_setup, main_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, tls_environ);
    tcase_add_test(tc, tls_plain_beside);
    tcase_add_test(tc, tls_old_versions_refused);
    tcase_add_test(tc, tls_sni_picks_certificate);
    tcase_add_test(tc, tls_client_certificate_optional);
    tcase_add_test(tc, tls_alpn_and_key_hygiene);
    tcase_add_test(tc, tls_session_resumed);
    tcase_add_test(tc, tls_handshake_wait_sleeps);
    tcase_add_test(tc, tls_strict);
    tcase_add_test(tc, tls_reload_after_user);
    tcase_add_test(tc, tls_check_config);
    tcase_add_test(tc, tls_reload_swaps_certificate);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    int failed;

    curl_global_init(CURL_GLOBAL_ALL);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
