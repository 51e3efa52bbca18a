#!/usr/bin/env bash
# Lays out $WORLD_DIR/archive like the Arch Linux Archive from $WORLD_DIR/packages/index.tsv:
#
#   archive/packages/<first letter>/<name>/<file>{,.sig}     every package ever published
#   archive/repos/YYYY/MM/DD/{core,extra}/os/x86_64/          one directory per snapshot:
#       <file>{,.sig} (hard links into packages/), core.db -> core.db.tar.gz,
#       core.files -> core.files.tar.gz (made by repo-add; %SHA256SUM%, %PGPSIG%)
#
# repo-add tars the desc/files entries it has just written, with the kernel's file times
# (faketime cannot change those), so it runs with a `bsdtar` shim first on PATH that, for
# `bsdtar -c...` only, sets every file's mtime in the current directory to midnight UTC of
# the snapshot day before running the real bsdtar: the databases are then bit-identical
# across runs (gzip runs with -n already). The archive is rebuilt only when its inputs changed (index, this script,
# tool versions); it is written next to the live one and swapped in with a rename.
set -euo pipefail
# shellcheck source=tests/world/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

index=$WORLD_DIR/packages/index.tsv
[ -f "$index" ] || die "no $index: run packages.sh first"

archive=$WORLD_DIR/archive
key=$({
    cut -f1-8 "$index"
    awk -F'\t' '!/^#/ {print $9}' "$index" | xargs -r sha256sum | cut -d' ' -f1
    sha256sum "${BASH_SOURCE[0]}" "$WORLD_SRC/lib.sh" | cut -d' ' -f1
    deb_versions pacman-package-manager libarchive-tools libarchive13 gzip
} | sha256sum | cut -d' ' -f1)
if [ -f "$archive/.key" ] && [ "$(cat "$archive/.key")" = "$key" ]; then
    log "archive: up to date ($archive)"
    exit 0
fi

new=$WORLD_DIR/archive.new
rm -rf "$new"
mkdir -p "$new/packages" "$new/repos"
declare -A snapshot_set=()
while IFS=$'\t' read -r dir pkgname version file repo snapshots flags sde path; do
    [[ "$dir" == \#* ]] && continue
    pool=$new/packages/${pkgname:0:1}/$pkgname
    mkdir -p "$pool"
    cp "$path" "$path.sig" "$pool/"
    IFS=, read -r -a snaps <<< "$snapshots"
    for s in "${snaps[@]}"; do
        snapshot_set[$s]=1
        d=$new/repos/$s/$repo/os/$WORLD_ARCH
        mkdir -p "$d"
        ln "$pool/$file" "$pool/$file.sig" "$d/"
    done
done < "$index"

shim=$WORLD_DIR/tmp/repo-add-shim
mkdir -p "$shim"
cat > "$shim/bsdtar" <<'SHIM'
#!/usr/bin/env bash
# bsdtar shim of archive.sh: normalise file times before repo-add creates a database
case "${1:-}" in
    -c*) find . -exec touch -h -d "@$WORLD_DB_EPOCH" {} + ;;
esac
exec /usr/bin/bsdtar "$@"
SHIM
chmod 0755 "$shim/bsdtar"

for s in $(printf '%s\n' "${!snapshot_set[@]}" | sort); do
    for repo in core extra; do
        d=$new/repos/$s/$repo/os/$WORLD_ARCH
        mkdir -p "$d"
        epoch=$(date -u -d "${s//\//-} 00:00:00" +%s)
        (
            cd "$d"
            shopt -s nullglob
            pkgs=(*.pkg.tar.zst)
            export LC_ALL=C TZ=UTC WORLD_DB_EPOCH=$epoch PATH=$shim:$PATH
            if [ "${#pkgs[@]}" -eq 0 ]; then
                repo-add -q "$repo.db.tar.gz" >/dev/null 2>&1
            else
                repo-add -q "$repo.db.tar.gz" "${pkgs[@]}" >&2
            fi
        )
    done
    log "archive: snapshot $s: $(find "$new/repos/$s" -name '*.pkg.tar.zst' | wc -l) packages"
done
printf '%s\n' "$key" > "$new/.key"

if [ -d "$archive" ]; then
    rm -rf "$archive.old"
    mv "$archive" "$archive.old"
fi
mv "$new" "$archive"
rm -rf "$archive.old"
log "archive: $archive"
