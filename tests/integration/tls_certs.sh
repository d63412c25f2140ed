#!/bin/sh
# Make the TLS test's certificates in DIR with openssl (EC P-256: fast to make and to use).
#   ca.pem            the test CA, which signs everything below but rogue-*
#   a.pem  a.key      a.test, localhost, 127.0.0.1 (the default certificate), O=first
#   a2.pem a2.key     the same names, O=second (the renewal a SIGHUP picks up)
#   b.pem  b.key      b.test only (chosen by SNI)
#   client.pem .key   a client certificate, CN=alice
#   rogue-client.*    a client certificate from another CA (rogue-ca.pem)
# Usage: tls_certs.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# cert NAME SUBJECT CA EXT: NAME.key and NAME.pem signed by CA (CA.pem, CA.key).
cert() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
        -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

for ca in ca rogue-ca; do
    key "$ca.key"
    openssl req -x509 -new -key "$ca.key" -subj "/CN=csgi test $ca" -days 2 -out "$ca.pem" 2>/dev/null
done
server_ext='subjectAltName=DNS:a.test,DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth'
cert a "/O=first/CN=a.test" ca "$server_ext"
cert a2 "/O=second/CN=a.test" ca "$server_ext"
cert b "/O=bee/CN=b.test" ca 'subjectAltName=DNS:b.test
extendedKeyUsage=serverAuth'
cert client "/O=csgi tests/CN=alice" ca 'extendedKeyUsage=clientAuth'
cert rogue-client "/CN=mallory" rogue-ca 'extendedKeyUsage=clientAuth'
