#!/usr/bin/env bash
# Builds (or takes from the cache) every package of tests/world/packages.tsv and writes
# $WORLD_DIR/packages/index.tsv. Each package is cached under
# $WORLD_DIR/cache/packages/<key>/, where key = sha256 of the PKGBUILD directory, the build
# and signing scripts, makepkg.conf, the test key and the Debian versions of the build tools
# and of the host packages the PKGBUILD copies files from (its `# host-packages:` line).
#
#   packages.sh [--bulk]
set -euo pipefail
# shellcheck source=tests/world/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bulk=0
for a in "$@"; do
    case "$a" in
        --bulk) bulk=1 ;;
        *) die "packages.sh: unknown argument $a" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "packages.sh must run as root (makepkg runs as nobody via runuser)"

cache=$WORLD_DIR/cache/packages
mkdir -p "$cache" "$WORLD_DIR/packages" "$WORLD_DIR/tmp"
export TMPDIR=$WORLD_DIR/tmp

tools_hash=$({
    deb_versions "${WORLD_TOOL_PACKAGES[@]}"
    sha256sum "$WORLD_SRC/build-package.sh" "$WORLD_SRC/sign-package.sh" "$WORLD_SRC/makepkg.conf" \
        "$WORLD_SRC/keys/packager.secret.asc" "$WORLD_SRC/keys/packager.fingerprint" | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1)

index=$WORLD_DIR/packages/index.tsv
printf '#dir\tpkgname\tversion\tfilename\trepo\tsnapshots\tflags\tsource_date_epoch\tpath\n' > "$index.tmp"
built=0 cached=0
while read -r dir repo snapshots flags; do
    if [ "$flags" = bulk ] && [ "$bulk" -eq 0 ]; then
        continue
    fi
    pdir=$WORLD_SRC/pkgbuilds/$dir
    [ -f "$pdir/PKGBUILD" ] || die "no $pdir/PKGBUILD"
    sde=$(sed -n 's/^# source-date-epoch: *\([0-9]*\)$/\1/p' "$pdir/PKGBUILD" | head -n1)
    [ -n "$sde" ] || die "$pdir/PKGBUILD has no '# source-date-epoch:' line"
    read -r -a host_pkgs <<< "$(sed -n 's/^# host-packages: *//p' "$pdir/PKGBUILD" | head -n1)"
    key=$({
        echo "$tools_hash"
        hash_dir "$pdir"
        deb_versions "${host_pkgs[@]}"
    } | sha256sum | cut -d' ' -f1)
    c=$cache/$key
    if [ ! -f "$c/done" ]; then
        log "building $dir (SOURCE_DATE_EPOCH=$sde)"
        start=$SECONDS
        rm -rf "$c.tmp"
        mkdir -p "$c.tmp"
        file=$("$WORLD_SRC/build-package.sh" "$pdir" "$c.tmp" "$sde" 2> "$c.tmp/build.log") || {
            cat "$c.tmp/build.log" >&2
            die "building $dir failed (log: $c.tmp/build.log)"
        }
        "$WORLD_SRC/sign-package.sh" "$sde" "$c.tmp/$file"
        pkginfo=$(bsdtar -xOf "$c.tmp/$file" .PKGINFO)
        pkgname=$(sed -n 's/^pkgname = //p' <<< "$pkginfo")
        version=$(sed -n 's/^pkgver = //p' <<< "$pkginfo")
        printf '%s\t%s\t%s\n' "$pkgname" "$version" "$file" > "$c.tmp/meta"
        touch "$c.tmp/done"
        rm -rf "$c"
        mv "$c.tmp" "$c"
        built=$((built + 1))
        log "built $file in $((SECONDS - start))s"
    else
        cached=$((cached + 1))
    fi
    IFS=$'\t' read -r pkgname version file < "$c/meta"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dir" "$pkgname" "$version" "$file" "$repo" \
        "$snapshots" "$flags" "$sde" "$c/$file" >> "$index.tmp"
done < <(manifest_rows)
mv -f "$index.tmp" "$index"
log "packages: $built built, $cached from cache; index: $index"
