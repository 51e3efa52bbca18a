#!/usr/bin/env bash
# An independent implementation of archlinux-docker's `repro` rootfs recipe (see
# ../shared/DESIGN.md, "The archlinux-docker repro recipe"), run with the real tools: Debian's
# pacman 6.0.2, fakechroot, fakeroot, GNU tar, zstd; faketime so that %INSTALLDATE% is
# SOURCE_DATE_EPOCH as pacman >= 7.1 writes it.
#
#   build-rootfs.sh ARCHIVE_URL SOURCE_DATE_EPOCH OUTDIR
#
#   ARCHIVE_URL   base URL of an Arch Linux Archive (…/repos/YYYY/MM/DD/$repo/os/$arch below it)
#   OUTDIR        gets repro.tar, repro.tar.zst, repro.tar.zst.SHA256 (RECIPE_MODE=base: base.*)
#                 and build.log; the rootfs is built in OUTDIR/build (removed at the end unless
#                 RECIPE_KEEP_BUILDDIR=1).
#
# Environment (everything else is cleared):
#   RECIPE_MODE=repro|base   repro (default): the reproducible recipe. base: the same packages the
#                            way the `base` image is made: wall-clock install date, no touch
#                            normalisation, no keyring removal, tar without --mtime/--clamp-mtime/
#                            --sort/--pax-option.
#   RECIPE_KEYRING=FILE      armored public key(s) trusted for package signatures (default: the
#                            world's tests/world/keys/packager.pub.asc; "none": SigLevel = Never).
#   RECIPE_GROUP=base        the package(s)/group(s) to install, space-separated ("base bulk").
set -euo pipefail

if [[ -z ${RECIPE_CLEAN_ENV:-} ]]; then
    exec env -i RECIPE_CLEAN_ENV=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin TZ=UTC LANG=C.UTF-8 \
        HOME=/root \
        ${RECIPE_MODE:+RECIPE_MODE="$RECIPE_MODE"} \
        ${RECIPE_KEYRING:+RECIPE_KEYRING="$RECIPE_KEYRING"} \
        ${RECIPE_GROUP:+RECIPE_GROUP="$RECIPE_GROUP"} \
        ${RECIPE_KEEP_BUILDDIR:+RECIPE_KEEP_BUILDDIR="$RECIPE_KEEP_BUILDDIR"} \
        bash "$(realpath "$0")" "$@"
fi
umask 0022

if [[ $# -ne 3 ]]; then
    echo "usage: build-rootfs.sh ARCHIVE_URL SOURCE_DATE_EPOCH OUTDIR" >&2
    exit 2
fi
archive_url=${1%/}
SOURCE_DATE_EPOCH=$2
outdir=$(realpath -m "$3")
export SOURCE_DATE_EPOCH
[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || { echo "build-rootfs: bad SOURCE_DATE_EPOCH" >&2; exit 2; }

recipe=$(dirname "$(realpath "$0")")
mode=${RECIPE_MODE:-repro}
group=${RECIPE_GROUP:-base}
keyring=${RECIPE_KEYRING:-$recipe/../keys/packager.pub.asc}
case $mode in repro|base) ;; *) echo "build-rootfs: RECIPE_MODE must be repro or base" >&2; exit 2;; esac
name=$mode    # output file stem, as archlinux-docker names it after the image (repro.tar, base.tar)

# The archive snapshot is the day before SOURCE_DATE_EPOCH (midnight UTC of the build day).
snapshot=$(date -u -d "@$((SOURCE_DATE_EPOCH - 86400))" +%Y/%m/%d)

BUILDDIR=$outdir/build
work=$outdir/work          # build-time only: the pacman.conf with rewritten Includes, overlay, caches
rm -rf "$BUILDDIR" "$work" "$outdir/$name.tar" "$outdir/$name.tar.zst" "$outdir/$name.tar.zst.SHA256"
mkdir -p "$outdir" "$work"
exec > >(tee "$outdir/build.log") 2>&1
echo "build-rootfs: mode=$mode group=$group SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH snapshot=$snapshot"
echo "build-rootfs: pacman $(pacman --version | sed -n 's/.*Pacman v\([^ ]*\).*/\1/p'), $(fakechroot --version), $(fakeroot --version), $(tar --version | head -1), $(zstd --version)"

# The rootfs overlay, with the archive snapshot prepended to its mirrorlist. The image gets the
# published Archive's URL, as upstream writes it (so the rootfs does not depend on where this
# world's archive happens to be served: its port changes from world to world); the build
# itself downloads from ARCHIVE_URL through a build-time copy of the mirrorlist.
published_url=${ARCHIVE_PUBLISHED_URL:-https://archive.archlinux.org}
cp -r --preserve=timestamps "$recipe/rootfs" "$work/rootfs"
cp --preserve=timestamps "$work/rootfs/etc/pacman.d/mirrorlist" "$work/mirrorlist.build"
sed -i "1iServer = $published_url/repos/$snapshot/\$repo/os/\$arch" "$work/rootfs/etc/pacman.d/mirrorlist"
sed -i "1iServer = $archive_url/repos/$snapshot/\$repo/os/\$arch" "$work/mirrorlist.build"

# Host hooks masked: each file of the host's /usr/share/libalpm/hooks is linked to /dev/null in
# a hook dir that pacman reads after the rootfs's own usr/share/libalpm/hooks, so a package hook
# of the same name is masked. Upstream's build host is Arch with (at least) the base set
# installed, so every hook of the packages going into the rootfs is masked there. This Debian
# host has no such hooks: the Arch host is emulated by taking the hook names as well from the
# snapshot's files databases (every usr/share/libalpm/hooks/* that any of its packages ships).
mkdir -p "$BUILDDIR/alpm-hooks/usr/share/libalpm/hooks"
hooks=$(
    if [[ -d /usr/share/libalpm/hooks ]]; then
        find /usr/share/libalpm/hooks -mindepth 1 -maxdepth 1 -printf '%f\n'
    fi
    for repo in core extra; do
        curl -fsS "$archive_url/repos/$snapshot/$repo/os/x86_64/$repo.files" |
            bsdtar -xOf - '*/files' | sed -n 's|^usr/share/libalpm/hooks/\(..*\)$|\1|p'
    done
)
for h in $(printf '%s\n' "$hooks" | LC_ALL=C sort -u); do
    ln -sf /dev/null "$BUILDDIR/alpm-hooks/usr/share/libalpm/hooks/$h"
    echo "build-rootfs: hook masked: $h"
done

# pacman.conf: devtools' extra.conf + the NoExtract list goes into the rootfs; the build uses a
# copy with the Include paths rewritten into the overlay.
mkdir -p "$BUILDDIR/var/lib/pacman/"
install -Dm644 "$recipe/pacman-extra.conf" "$BUILDDIR/etc/pacman.conf"
cat "$recipe/pacman-conf.d-noextract.conf" >>"$BUILDDIR/etc/pacman.conf"
sed -e "s|Include = |&$work/rootfs|g" \
    -e "s|Include = $work/rootfs/etc/pacman.d/mirrorlist\$|Include = $work/mirrorlist.build|" \
    <"$BUILDDIR/etc/pacman.conf" >"$work/pacman.conf"
# Build-time only, not in the image: a private package cache (pacman's default is the host's
# /var/cache/pacman/pkg even with -r) and the keyring that trusts the packager.
buildopts="CacheDir = $work/pkgcache/"
if [[ $keyring == none ]]; then
    buildopts+=$'\n'"SigLevel = Never"
else
    gpgdir=$work/gnupg
    mkdir -m700 "$gpgdir"
    # as pacman-key --init: an existing (empty) pubring.gpg keeps gpg on the keyring file pacman
    # checks for
    touch "$gpgdir/pubring.gpg" "$gpgdir/trustdb.gpg"
    gpg --homedir "$gpgdir" --batch --quiet --import "$keyring"
    gpg --homedir "$gpgdir" --batch --with-colons --import-options show-only --import "$keyring" |
        awk -F: '$1 == "fpr" { print $10 ":6:" }' | gpg --homedir "$gpgdir" --batch --quiet --import-ownertrust
    gpgconf --homedir "$gpgdir" --kill all 2>/dev/null || true
    buildopts+=$'\n'"GPGDir = $gpgdir/"
fi
awk -v opts="$buildopts" '{ print } /^\[options\]$/ { print opts }' "$work/pacman.conf" >"$work/pacman.conf.new"
mv "$work/pacman.conf.new" "$work/pacman.conf"
mkdir -p "$work/pkgcache"

cp -r --preserve=timestamps "$work/rootfs/." "$BUILDDIR/"
ln -fs /usr/lib/os-release "$BUILDDIR/etc/os-release"

# pacman. Debian's 6.0.2 writes time(NULL) into %INSTALLDATE%; pacman >= 7.1 writes
# SOURCE_DATE_EPOCH. libfaketime gives 6.0.2 a clock frozen at SOURCE_DATE_EPOCH (monotonic
# clocks left real so curl's timeouts work). It is preloaded after libfakechroot and
# libfakeroot, inside their sessions: each interposes with RTLD_NEXT, so the three chain.
faketime_lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [[ $mode == repro ]]; then
    pacman_wrap=(env FAKETIME="$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')"
        FAKETIME_DONT_FAKE_MONOTONIC=1 DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1
        FAKETIME_NO_CACHE=1 RECIPE_PRELOAD_ADD="$faketime_lib")
else
    pacman_wrap=(env RECIPE_PRELOAD_ADD=)
fi
# libalpm runs /sbin/ldconfig "in the chroot" after the transaction. Under fakechroot that
# chroot is only path translation, and glibc's ldconfig is a static binary that fakechroot
# cannot see into: it would rebuild the *host's* /etc/ld.so.cache and leave the rootfs without
# one (which is why the image has `RUN ldconfig`). Same rootfs, no host side effect: substitute
# a probe that only reports the call (fakechroot's FAKECHROOT_CMD_SUBST, as its chroot.env does).
printf '#!/bin/sh\necho "build-rootfs: libalpm ran ldconfig ($0 $*) in the chroot (probe, host untouched)" >&2\n' >"$work/ldconfig-probe"
chmod 0755 "$work/ldconfig-probe"
export FAKECHROOT_CMD_SUBST="/sbin/ldconfig=$work/ldconfig-probe:/usr/sbin/ldconfig=$work/ldconfig-probe:/usr/bin/ldconfig=$work/ldconfig-probe"
echo "build-rootfs: pacman -Sy $group"
"${pacman_wrap[@]}" fakechroot -- fakeroot -- sh -c '
    LD_PRELOAD="${LD_PRELOAD}${RECIPE_PRELOAD_ADD:+:$RECIPE_PRELOAD_ADD}" exec "$@"' sh \
    pacman -Sy -r "$BUILDDIR" \
        --noconfirm --dbpath "$BUILDDIR/var/lib/pacman" \
        --config "$work/pacman.conf" \
        --noscriptlet \
        --logfile /dev/null \
        --hookdir "$BUILDDIR/alpm-hooks/usr/share/libalpm/hooks/" $group

unset FAKECHROOT_CMD_SUBST
# The chroot steps, each in its own fakechroot + fakeroot session as the recipe runs them.
echo "build-rootfs: chroot steps"
fakechroot -- fakeroot -- chroot "$BUILDDIR" update-ca-trust
fakechroot -- fakeroot -- chroot "$BUILDDIR" pacman-key --init
fakechroot -- fakeroot -- chroot "$BUILDDIR" pacman-key --populate

if [[ $mode == repro ]]; then
    # The keyring differs on every run (pacman-key --init makes a new key): none of it ships.
    rm -rf "$BUILDDIR"/etc/pacman.d/gnupg/*
    find "$BUILDDIR" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
fi

# System users; then no passwordless root (CVE-2019-5021).
fakechroot -- fakeroot -- chroot "$BUILDDIR" /usr/bin/systemd-sysusers --root "/"
sed -i -e 's/^root::/root:!:/' "$BUILDDIR/etc/shadow"

# The tarball, in a fakeroot session of its own (owners set by pacman's session are gone).
echo "build-rootfs: tar"
if [[ $mode == repro ]]; then
    tar_repro=(--mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --sort=name
        --pax-option=delete=atime,delete=ctime)
else
    tar_repro=()
fi
fakeroot -- \
    tar \
        --numeric-owner \
        --xattrs \
        --acls \
        "${tar_repro[@]}" \
        --exclude-from="$recipe/exclude" \
        -C "$BUILDDIR" \
        -c . \
        -f "$outdir/$name.tar"

cd "$outdir"
zstd -q --long -T0 -8 "$name.tar"
sha256sum "$name.tar.zst" >"$name.tar.zst.SHA256"
if [[ -z ${RECIPE_KEEP_BUILDDIR:-} ]]; then
    rm -rf "$BUILDDIR"
fi
rm -rf "$work"
sha256sum "$name.tar"
cat "$name.tar.zst.SHA256"
