#!/usr/bin/env bash
# Builds one pacman package of the test world from its PKGBUILD directory, bit-reproducibly:
#
#   build-package.sh PKGBUILD_DIR OUT_DIR [SOURCE_DATE_EPOCH]
#
# Writes OUT_DIR/<pkgname>-<pkgver>-<pkgrel>-<arch>.pkg.tar.zst (unsigned; see sign-package.sh)
# and prints its file name. Must run as root: makepkg itself runs as `nobody` (it refuses
# root), inside a private mount namespace where
#   /build     = a fresh, empty BUILDDIR           (.BUILDINFO: builddir = /build)
#   /startdir  = a fresh copy of PKGBUILD_DIR      (.BUILDINFO: startdir = /startdir)
#   /etc/passwd, /etc/group = the fixed files below (user/group names in the package tar
#                             headers do not depend on the host's users)
# with env -i, TZ=UTC, LC_ALL=C, umask 022 and tests/world/makepkg.conf. SOURCE_DATE_EPOCH
# defaults to $SOURCE_DATE_EPOCH, else to the `# source-date-epoch:` line of the PKGBUILD.
# Rebuilders use this same script to rebuild a package.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then
    echo "usage: $0 PKGBUILD_DIR OUT_DIR [SOURCE_DATE_EPOCH]" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: must run as root (makepkg runs as nobody in a private mount namespace)" >&2
    exit 2
fi
pkgbuild_dir=$(cd "$1" && pwd)
mkdir -p "$2"
out_dir=$(cd "$2" && pwd)
sde=${3:-${SOURCE_DATE_EPOCH:-}}
if [ -z "$sde" ]; then
    sde=$(sed -n 's/^# source-date-epoch: *\([0-9]*\)$/\1/p' "$pkgbuild_dir/PKGBUILD" | head -n1)
fi
if ! [[ "$sde" =~ ^[0-9]+$ ]]; then
    echo "$0: no SOURCE_DATE_EPOCH (argument, environment or '# source-date-epoch:' line)" >&2
    exit 2
fi

# Mount points (empty directories on the host; only ever mounted over in private namespaces).
mkdir -p /build /startdir

tmp=$(mktemp -d "${TMPDIR:-/tmp}/world-build.XXXXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
chmod 0755 "$tmp"
mkdir "$tmp/build" "$tmp/startdir"
cp -r "$pkgbuild_dir/." "$tmp/startdir/"
chown -R nobody "$tmp/build" "$tmp/startdir"
install -m 0644 "$here/makepkg.conf" "$tmp/makepkg.conf"
cat > "$tmp/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/bash
bin:x:1:1::/:/usr/bin/nologin
daemon:x:2:2::/:/usr/bin/nologin
alice:x:1000:1000:Test user:/home/alice:/bin/bash
nobody:x:65534:65534:Nobody:/:/usr/bin/nologin
PASSWD
cat > "$tmp/group" <<'GROUP'
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
alice:x:1000:
nobody:x:65534:
GROUP
chmod 0644 "$tmp/passwd" "$tmp/group"

unshare --mount --propagation private -- bash -euo pipefail -c '
    tmp=$1 sde=$2
    mount --bind "$tmp/build" /build
    mount --bind "$tmp/startdir" /startdir
    mount --bind "$tmp/passwd" /etc/passwd
    mount --bind "$tmp/group" /etc/group
    cd /startdir
    umask 022
    exec runuser -u nobody -- env -i \
        PATH=/usr/bin:/bin HOME=/build TZ=UTC LC_ALL=C LANG=C \
        SOURCE_DATE_EPOCH="$sde" \
        makepkg --config "$tmp/makepkg.conf" --force --nodeps --noconfirm --noprogressbar >&2
' world-build "$tmp" "$sde"

shopt -s nullglob
pkgs=("$tmp"/startdir/*.pkg.tar.zst)
if [ "${#pkgs[@]}" -ne 1 ]; then
    echo "$0: expected exactly one package from $pkgbuild_dir, got ${#pkgs[@]}" >&2
    exit 1
fi
install -m 0644 "${pkgs[0]}" "$out_dir/"
basename "${pkgs[0]}"
