#!/usr/bin/env bash
# Makes a pacman keyring (a pacman-key gpgdir) that trusts the test packager key, for
# pacman.conf `SigLevel = Required` against the world's archive:
#
#   pacman-keyring.sh GPGDIR
#
# Uses Debian's pacman-key (--init, --add, --lsign-key). Kept when the key has not changed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$#" -eq 1 ] || { echo "usage: $0 GPGDIR" >&2; exit 2; }
dir=$1
fpr=$(cat "$here/keys/packager.fingerprint")
want=$(sha256sum < "$here/keys/packager.pub.asc" | cut -d' ' -f1)
if [ -f "$dir/.world-key" ] && [ "$(cat "$dir/.world-key")" = "$want" ]; then
    exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
cleanup() { gpgconf --homedir "$dir" --kill all >/dev/null 2>&1 || true; }
trap cleanup EXIT
pacman-key --gpgdir "$dir" --init >/dev/null 2>&1
pacman-key --gpgdir "$dir" --add "$here/keys/packager.pub.asc" >/dev/null 2>&1
pacman-key --gpgdir "$dir" --lsign-key "$fpr" >/dev/null 2>&1
printf '%s\n' "$want" > "$dir/.world-key"
echo "pacman keyring trusting $fpr: $dir"
