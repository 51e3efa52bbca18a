#!/usr/bin/env bash
# Detached-signs files with the test packager key (tests/world/keys), deterministically:
# Ed25519 signatures are deterministic and the signature time is fixed with
# --faked-system-time, so the same file always gets the same FILE.sig bytes.
#
#   sign-package.sh SIGNATURE_EPOCH FILE...
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$#" -lt 2 ]; then
    echo "usage: $0 SIGNATURE_EPOCH FILE..." >&2
    exit 2
fi
epoch=$1
shift
gnupghome=$(mktemp -d "${TMPDIR:-/tmp}/world-gpg.XXXXXXXX")
cleanup() {
    gpgconf --homedir "$gnupghome" --kill all >/dev/null 2>&1 || true
    rm -rf "$gnupghome"
}
trap cleanup EXIT
export GNUPGHOME=$gnupghome
gpg --batch --quiet --faked-system-time "$epoch!" --import "$here/keys/packager.secret.asc" 2>/dev/null
fpr=$(cat "$here/keys/packager.fingerprint")
for f in "$@"; do
    rm -f "$f.sig"
    gpg --batch --quiet --faked-system-time "$epoch!" --local-user "$fpr" \
        --detach-sign --no-armor --output "$f.sig" "$f" 2>/dev/null
done
