"""--tls: the certificate and the TLS settings that csgi-server and nginx share, so that
their handshakes and records cost the same work: one ECDSA P-256 certificate, TLS 1.3 only,
the cipher suite TLS_AES_128_GCM_SHA256 and the key exchange group X25519."""

import os
import ssl
import subprocess

from .common import die

CIPHER = "TLS_AES_128_GCM_SHA256"
GROUP = "X25519"
# csgi-server's --tls-priorities (GnuTLS) and nginx's ssl_* lines (OpenSSL) for the same set.
GNUTLS_PRIORITIES = ("NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
                     "-GROUP-ALL:+GROUP-X25519")
NGINX_SSL = """\
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve X25519;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
"""


def make_cert(workdir):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 in workdir; (cert, key) paths."""
    cert = os.path.join(workdir, "tls-cert.pem")
    key = os.path.join(workdir, "tls-key.pem")
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1"]
    try:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        die("--tls: openssl could not make a certificate: %s" % e)
    os.chmod(key, 0o600)
    return cert, key


def client_context(cafile):
    """The precheck's client: verifies the certificate, offers what the servers accept."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx
