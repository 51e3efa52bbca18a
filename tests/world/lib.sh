# Shared helpers of the test world scripts (sourced, not run).
# shellcheck shell=bash

WORLD_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(git -C "$WORLD_SRC" rev-parse --show-toplevel 2>/dev/null || (cd "$WORLD_SRC/../.." && pwd))
WORLD_DIR=${WORLD_DIR:-$REPO_ROOT/target/world}
export WORLD_DIR

SNAPSHOT_OLD=2026/11/01
SNAPSHOT_NEW=2026/11/02
# repo-add runs under faketime at midnight UTC of the snapshot day
WORLD_ARCH=x86_64

# Debian packages whose versions go into every package's cache key (the build tools).
WORLD_TOOL_PACKAGES=(makepkg pacman-package-manager fakeroot libarchive-tools libarchive13 zstd libzstd1 gzip gnupg gpg libgcrypt20 bash coreutils findutils sed util-linux libcap2-bin)

log() { printf 'world: %s\n' "$*" >&2; }
die() { printf 'world: error: %s\n' "$*" >&2; exit 1; }

# Versions of the given Debian packages, one "name version" line each (absent ones too).
deb_versions() {
    local p
    for p in "$@"; do
        printf '%s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo absent)"
    done
}

# sha256 of a directory's file names, modes and contents, in name order.
hash_dir() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z |
        xargs -0 -r sha256sum && find . -print0 | LC_ALL=C sort -z | xargs -0 -r stat -c '%n %a %F') |
        sha256sum | cut -d' ' -f1
}

# Append or replace KEY=value in the env file.
env_set() {
    local file=$WORLD_DIR/env key=$1 value=$2
    touch "$file"
    grep -v "^$key=" "$file" > "$file.tmp" || true
    printf '%s=%s\n' "$key" "$value" >> "$file.tmp"
    mv -f "$file.tmp" "$file"
}

# Prints the rows of packages.tsv: dir repo snapshots flags.
manifest_rows() {
    grep -v -e '^#' -e '^[[:space:]]*$' "$WORLD_SRC/packages.tsv"
}
