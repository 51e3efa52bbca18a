#!/usr/bin/env bash
# Development stand-in for the world's archive, used only while $WORLD_DIR/archive is not there
# : a tiny Arch-Archive-shaped repo of a few trivial packages made
# with makepkg (as `nobody`; makepkg refuses root) and repo-add. Unsigned.
#
#   dev-repo.sh OUTDIR      -> OUTDIR/repos/2026/11/01/{core,extra}/os/x86_64/
set -euo pipefail
out=$(realpath -m "$1")
sde=1793491200   # 2026-11-01T00:00:00Z, packages' SOURCE_DATE_EPOCH
work=$(mktemp -d /tmp/devrepo.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

mk() { # name version body-of-package()  [extra PKGBUILD lines]
    local name=$1 ver=$2 body=$3 extra=${4:-}
    mkdir -p "$work/$name"
    cat >"$work/$name/PKGBUILD" <<PKG
pkgname=$name
pkgver=$ver
pkgrel=1
pkgdesc="dev-repo $name"
arch=(x86_64)
license=(GPL)
options=(!strip !debug emptydirs)
$extra
package() {
$body
}
PKG
}

# filesystem: the Arch layout plus bash, its libs and ldconfig from this Debian host.
mk filesystem 2026.11.01 '
  cd "$pkgdir"
  install -d -m0755 usr/bin usr/lib etc/pacman.d var/lib/pacman var/cache/pacman/pkg var/tmp home dev run usr/share
  install -d -m0555 proc sys
  install -d -m0750 root
  install -d -m1777 tmp
  chmod 1777 var/tmp
  ln -s usr/bin bin; ln -s usr/bin sbin; ln -s usr/lib lib; ln -s usr/lib lib64; ln -s . usr/sbin; ln -s lib usr/lib64
  printf "root:x:0:0::/root:/usr/bin/bash\n" >etc/passwd
  printf "root:x:0:root\n" >etc/group
  printf "root::14871::::::\n" >etc/shadow; chmod 0600 etc/shadow
  printf "include /etc/ld.so.conf.d/*.conf\n" >etc/ld.so.conf
  install -d etc/ld.so.conf.d
  printf "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n" >usr/lib/os-release
  install -m0755 /usr/bin/bash /sbin/ldconfig usr/bin/
  install -m0755 /lib/x86_64-linux-gnu/libtinfo.so.6 /lib/x86_64-linux-gnu/libc.so.6 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 usr/lib/
  ln -s bash usr/bin/sh
' 'backup=(etc/passwd etc/group etc/shadow)'

# stand-ins for the tools of the chroot steps, bash builtins only
mk tools 1.0 '
  cd "$pkgdir"; install -d usr/bin usr/share/pacman/keyrings etc/ca-certificates/extracted usr/lib/sysusers.d
  printf "%s\n" "#!/usr/bin/bash" "echo \"# ca bundle of \$(< /etc/os-release)\" >/etc/ca-certificates/extracted/tls-ca-bundle.pem" >usr/bin/update-ca-trust
  printf "%s\n" "#!/usr/bin/bash" "d=/etc/pacman.d/gnupg" "[[ -d \$d ]] || { builtin echo mkdir needed; exit 1; }" "case \$1 in --init) echo \"random \$RANDOM\" >\$d/pubring.gpg; echo key >\$d/private-keys-v1.d.key; >\$d/S.gpg-agent;; --populate) echo populated >>\$d/trustdb.gpg;; esac" >usr/bin/pacman-key
  printf "%s\n" "#!/usr/bin/bash" "[[ \$1 == --root ]] || exit 2" "r=\$2" "echo \"alpm:x:946:946:Arch Linux Package Management:/:/usr/bin/nologin\" >>\$r/etc/passwd" "echo \"alpm:x:946:\" >>\$r/etc/group" "echo \"alpm:!*:\$(( \${SOURCE_DATE_EPOCH:-0} / 86400 ))::::::\" >>\$r/etc/shadow" >usr/bin/systemd-sysusers
  install -m0755 /usr/bin/busybox usr/bin/busybox
  for a in sed rm cat ls; do ln -s busybox usr/bin/$a; done
  chmod 0755 usr/bin/*
  install -d -m0700 etc/pacman.d/gnupg
'

# edge cases
mk edge 1.0 '
  cd "$pkgdir"; install -d -m0555 usr/share/edge/ro-dir
  echo ro >usr/share/edge/ro-dir/file; chmod 0444 usr/share/edge/ro-dir/file
  echo secret >usr/share/edge/secret; chmod 0400 usr/share/edge/secret
  install -d usr/bin; install -m4755 /dev/null usr/bin/suid-tool; install -m2755 /dev/null usr/bin/sgid-tool
  install -d -m1777 usr/share/edge/sticky
  echo hl >usr/share/edge/hard1; ln usr/share/edge/hard1 usr/share/edge/hard2
  long=$(printf "d%.0s" {1..90})/$(printf "e%.0s" {1..90})/$(printf "f%.0s" {1..90})
  install -d usr/share/edge/$long; echo long >usr/share/edge/$long/file-with-a-long-path
  echo x >"usr/share/edge/non-ascii-é ü.txt"; ln -s "/usr/share/edge/$long/file-with-a-long-path" usr/share/edge/longlink
  install -d -o 946 -g 946 usr/share/edge/owned; echo o >usr/share/edge/owned/f; chown 946:946 usr/share/edge/owned/f
  install -d usr/share/edge/empty usr/share/man/man1 usr/share/locale/de/LC_MESSAGES usr/share/locale/en_GB/LC_MESSAGES usr/share/doc/edge
  echo man >usr/share/man/man1/edge.1; echo de >usr/share/locale/de/LC_MESSAGES/edge.mo; echo en >usr/share/locale/en_GB/LC_MESSAGES/edge.mo; echo doc >usr/share/doc/edge/README
  install -d usr/lib; cp /lib/x86_64-linux-gnu/libzstd.so.1.5.4 usr/lib/; ln -s libzstd.so.1.5.4 usr/lib/libzstd.so.1
'

mk base 3 ':' 'depends=(filesystem tools edge)'

chown -R nobody:nogroup "$work"
for p in filesystem tools edge base; do
    runuser -u nobody -- env -i PATH=/usr/bin:/bin HOME="$work" SOURCE_DATE_EPOCH=$sde \
        PKGEXT=.pkg.tar.zst BUILDDIR="$work/build" PKGDEST="$work/pkgs" SRCDEST="$work/src" \
        bash -c "mkdir -p '$work/build' '$work/pkgs' '$work/src' && cd '$work/$p' && makepkg -d -f --noconfirm >'$work/$p.log' 2>&1" \
        || { cat "$work/$p.log"; exit 1; }
done
repo=$out/repos/2026/11/01/core/os/x86_64
rm -rf "$out"; mkdir -p "$repo" "$out/repos/2026/11/01/extra/os/x86_64"
cp "$work"/pkgs/*.pkg.tar.zst "$repo/"
# Signed with the world's test packager key when its secret half is there (as the world signs).
key=$(dirname "$(realpath "$0")")/../keys/packager.secret.asc
if [[ -f $key ]]; then
    export GNUPGHOME=$work/gnupg
    mkdir -m700 "$GNUPGHOME"
    gpg --batch -q --import "$key"
    for p in "$repo"/*.pkg.tar.zst; do
        gpg --batch -q --faked-system-time "$(date -u -d @$sde +%Y%m%dT%H%M%S)!" --detach-sign --no-armor "$p" 2>/dev/null
    done
    gpgconf --kill all
fi
repo-add -q "$repo/core.db.tar.gz" "$repo"/*.pkg.tar.zst
repo-add -q "$out/repos/2026/11/01/extra/os/x86_64/extra.db.tar.gz"
ls -la "$repo"
