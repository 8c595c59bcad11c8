#!/usr/bin/env bash
# Creates a local certificate authority and the certificates an atomlens federation needs:
#   ca.pem / ca-key.pem            the CA (keep ca-key.pem offline in a real deployment)
#   server.pem / server-key.pem    the coordinator (SAN: localhost, 127.0.0.1, ::1, plus $EXTRA_SAN)
#   client-<ID>.pem / -key.pem     one per client id given; CN = the client id (checked under mTLS)
#   operator.pem / operator-key.pem  an operator/tool identity (CN = operator)
#
# Usage: scripts/make-certs.sh OUT_DIR [CLIENT_ID ...]
#   EXTRA_SAN="DNS:coordinator.example.org,IP:10.0.0.5"  adds names to the server certificate
#   DAYS=825                                            validity of the leaf certificates
#   FORCE=1                                             overwrite an existing CA in OUT_DIR
# OUT_DIR gets a .gitignore of '*', so nothing in it is ever committed by accident.
# Keys are ECDSA P-256 (fast to generate, supported by every gRPC and TLS stack we use).
# Running it again on the same OUT_DIR reuses the CA and adds/refreshes leaf certificates.
set -euo pipefail

usage() {
  echo "usage: $0 OUT_DIR [CLIENT_ID ...]" >&2
  echo "  client ids: 1-64 characters of [A-Za-z0-9._-]" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
case "$1" in -h | --help) usage ;; esac
command -v openssl >/dev/null || {
  echo "$0: openssl is not installed (apt-get install openssl)" >&2
  exit 1
}

out="$1"
shift
days="${DAYS:-825}"
mkdir -p "$out"
umask 077
# Private keys must never reach a repository, wherever OUT_DIR is: git ignores everything in it.
[[ -f "$out/.gitignore" ]] || printf '# written by make-certs.sh: private keys, never commit\n*\n' >"$out/.gitignore"

for id in "$@"; do
  if [[ ! "$id" =~ ^[A-Za-z0-9._-]{1,64}$ ]]; then
    echo "$0: '$id' is not a valid client id (1-64 characters of [A-Za-z0-9._-])" >&2
    exit 2
  fi
  if [[ "$id" == "operator" || "$id" == "server" || "$id" == "ca" ]]; then
    echo "$0: '$id' is reserved for the $id certificate; pick another client id" >&2
    exit 2
  fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [[ ! -f "$out/ca.pem" || -n "${FORCE:-}" ]]; then
  newkey "$out/ca-key.pem"
  openssl req -x509 -new -key "$out/ca-key.pem" -sha256 -days 3650 \
    -subj "/O=atomlens/CN=atomlens local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.pem"
fi

# sign NAME CN EXTENSIONS: key NAME-key.pem, certificate NAME.pem, signed by the CA.
sign() {
  local name="$1" cn="$2" ext="$3"
  newkey "$out/$name-key.pem"
  openssl req -new -key "$out/$name-key.pem" -subj "/O=atomlens/CN=$cn" -out "$tmp/$name.csr"
  printf '%s\n' "$ext" >"$tmp/$name.ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 \
    -extfile "$tmp/$name.ext" -out "$out/$name.pem" 2>/dev/null
}

san="DNS:localhost,IP:127.0.0.1,IP:::1${EXTRA_SAN:+,$EXTRA_SAN}"
sign server localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"

client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
sign operator operator "$client_ext"
for id in "$@"; do
  sign "client-$id" "$id" "$client_ext"
done

# Certificates are public; keys stay owner-only (umask 077 above).
chmod 644 "$out"/*.pem
chmod 600 "$out"/*-key.pem
echo "certificates in $out: ca.pem server.pem operator.pem${*:+ $(printf 'client-%s.pem ' "$@")}"
