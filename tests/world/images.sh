#!/usr/bin/env bash
# The reference images of the test world (issue 3, part 4), called by `world up` after the
# packages, the archive and the rebuilders:
#   - repro: tests/world/recipe/build-rootfs.sh (archlinux-docker's `repro` recipe with the real
#     tools) on the archive snapshot of the day before WORLD_IMAGE_SDE, then build-image.sh
#     (podman build --timestamp SDE);
#   - base: the same packages without the normalisations (wall-clock install date and mtimes,
#     created = build time), for contrast;
#   - tampered: the repro rootfs with one package-owned file changed, image rebuilt.
# Each goes into oci: layouts (gzip, zstd, uncompressed) under $WORLD_DIR/images/<key>/ and into
# the world's docker-registry (started here if not running). Cached: <key> hashes the snapshot's
# repo databases, the recipe, this script, the SDE and the tool versions.
#
#   images.sh            build what is missing, (re)start the registry, push, write env keys
#   images.sh --force    rebuild even when the cache key matches
#   images.sh down       stop the registry this script started (by the pid in its pid file)
# The registry's pid file, $WORLD_DIR/run/registry.pid, has the pid on line 1 and on line 2 a
# string its command line contains (the config path), as tests/world/world expects.
set -euo pipefail
source "$(dirname "$(realpath "$0")")/lib.sh"

pidfile=$WORLD_DIR/run/registry.pid
registry_conf=$WORLD_DIR/registry/config.yml
# registry_pid: prints the pid of the running registry started here, if there is one
registry_pid() {
    local pid
    pid=$(sed -n 1p "$pidfile" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)" == *"$registry_conf"* ]] || return 1
    echo "$pid"
}
if [[ ${1:-} == down ]]; then
    if pid=$(registry_pid); then
        kill "$pid"
        for _ in $(seq 50); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
        log "images: docker-registry stopped (pid $pid)"
    fi
    rm -f "$pidfile"
    exit 0
fi

force=0
[[ ${1:-} == --force ]] && force=1

recipe=$WORLD_SRC/recipe
sde=${WORLD_IMAGE_SDE:-1793664000}           # 2026-11-03T00:00:00Z: snapshot 2026/11/02
snapshot=$(date -u -d "@$((sde - 86400))" +%Y/%m/%d)
version=$(date -u -d "@$sde" +%Y%m%d).0.1
archive=$WORLD_DIR/archive
[[ -d $archive/repos/$snapshot ]] || die "images: no archive snapshot $archive/repos/$snapshot (run the archive step first)"
env_get() { sed -n "s/^$1=//p" "$WORLD_DIR/env" 2>/dev/null | tail -n1; }
archive_url=$(env_get WORLD_ARCHIVE_URL)
[[ -n $archive_url ]] || die "images: WORLD_ARCHIVE_URL missing from $WORLD_DIR/env"

IMAGE_TOOLS=(pacman-package-manager fakechroot libfakechroot fakeroot libfakeroot faketime libfaketime
    tar zstd libzstd1 gnupg gpg podman buildah skopeo golang-github-containers-common)
# The bulk image (issue 3: a separate image so the default world stays quick): with WORLD_BULK=1
# (environment or env file), the repro recipe over "base bulk".
bulk=${WORLD_BULK:-$(env_get WORLD_BULK)}
[[ $bulk == 1 ]] || bulk=0
bulk_group=${WORLD_IMAGE_BULK_GROUP:-base bulk}
recipe_key=$( { hash_dir "$recipe"; sha256sum <"$0"; sha256sum <"$WORLD_SRC/keys/packager.pub.asc"; deb_versions "${IMAGE_TOOLS[@]}"; } | sha256sum | cut -c1-40)
db_key=$(cd "$archive/repos/$snapshot" && find . -name '*.db.tar.*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
key=$(printf '%s %s %s %s %s\n' "$recipe_key" "$db_key" "$sde" "$bulk" "$bulk_group" | sha256sum | cut -c1-16)
out=$WORLD_DIR/images/$key

# --- the registry -------------------------------------------------------------------------
registry_up() {
    local port pid
    port=$(env_get WORLD_REGISTRY | sed -n 's/^127\.0\.0\.1://p')
    if pid=$(registry_pid); then
        if [[ -n $port ]] && curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/"; then
            return 0
        fi
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$WORLD_DIR/registry/data" "$WORLD_DIR/run"
    cat >"$registry_conf" <<CONF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORLD_DIR/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
CONF
    setsid docker-registry serve "$registry_conf" \
        >"$WORLD_DIR/registry/registry.log" 2>&1 </dev/null &
    printf '%s\n%s\n' "$!" "$registry_conf" >"$pidfile"
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" || die "images: docker-registry did not come up (see $WORLD_DIR/registry/registry.log)"
    env_set WORLD_REGISTRY "127.0.0.1:$port"
    log "images: docker-registry on 127.0.0.1:$port (pid $(sed -n 1p "$pidfile"))"
}
registry_up
registry=$(env_get WORLD_REGISTRY)

# --- build (cached) -------------------------------------------------------------------------
# variant: rootfs (the build-rootfs.sh output it uses), title, SDE or "" (base style), tamper,
# registry references
variants=(repro base tampered)
[[ $bulk == 1 ]] && variants+=(bulk)
rootfs_of() { case $1 in repro | tampered) echo repro ;; base) echo base ;; bulk) echo bulk ;; esac; }
refs_of() {
    case $1 in
        repro) echo "archlinux:repro archlinux:repro-$version" ;;
        base) echo "archlinux:base archlinux:base-$version" ;;
        tampered) echo "archlinux-tampered:repro" ;;
        bulk) echo "archlinux:bulk" ;;
    esac
}
if [[ $force == 1 || ! -f $out/done ]]; then
    log "images: building the reference images ${variants[*]} (key $key, SDE $sde, snapshot $snapshot)"
    tmp=$WORLD_DIR/images/.build-$key
    rm -rf "$tmp"
    mkdir -p "$tmp"
    t0=$(date +%s)
    keyring=$(env_get WORLD_KEYRING)
    export RECIPE_KEYRING=${keyring:-$WORLD_SRC/keys/packager.pub.asc}
    RECIPE_MODE=repro bash "$recipe/build-rootfs.sh" "$archive_url" "$sde" "$tmp/rootfs-repro" >/dev/null ||
        die "images: repro rootfs failed, see $tmp/rootfs-repro/build.log"
    RECIPE_MODE=base bash "$recipe/build-rootfs.sh" "$archive_url" "$sde" "$tmp/rootfs-base" >/dev/null ||
        die "images: base rootfs failed, see $tmp/rootfs-base/build.log"
    if [[ $bulk == 1 ]]; then
        RECIPE_MODE=repro RECIPE_GROUP=$bulk_group bash "$recipe/build-rootfs.sh" "$archive_url" "$sde" "$tmp/rootfs-bulk" >/dev/null ||
            die "images: bulk rootfs failed, see $tmp/rootfs-bulk/build.log"
        mv "$tmp/rootfs-bulk/repro.tar" "$tmp/rootfs-bulk/bulk.tar"
        mv "$tmp/rootfs-bulk/repro.tar.zst" "$tmp/rootfs-bulk/bulk.tar.zst"
        sed 's/repro\.tar/bulk.tar/' "$tmp/rootfs-bulk/repro.tar.zst.SHA256" >"$tmp/rootfs-bulk/bulk.tar.zst.SHA256"
        rm "$tmp/rootfs-bulk/repro.tar.zst.SHA256"
    fi
    t1=$(date +%s)
    for v in "${variants[@]}"; do
        args=(IMAGE_TITLE=Repro IMAGE_SDE="$sde")
        case $v in
            base) args=(IMAGE_TITLE=Base) ;;
            tampered) args+=(IMAGE_TAMPER=1) ;;
            bulk) args=(IMAGE_TITLE=Bulk IMAGE_SDE="$sde") ;;
        esac
        r=$(rootfs_of "$v")
        env "${args[@]}" IMAGE_VERSION="$version" IMAGE_REVISION="$recipe_key" IMAGE_OCI_TAG="$v" \
            bash "$recipe/build-image.sh" "$tmp/rootfs-$r/$r.tar" "$tmp/image-$v" >/dev/null ||
            die "images: $v image failed, see $tmp/image-$v/build.log"
    done
    t2=$(date +%s)
    printf 'rootfs %ss images %ss\n' $((t1 - t0)) $((t2 - t1)) >"$tmp/times"
    touch "$tmp/done"
    rm -rf "$out"
    mv "$tmp" "$out"
    # Older keys are stale: keep only this one.
    find "$WORLD_DIR/images" -mindepth 1 -maxdepth 1 -not -name "$key" -exec rm -rf {} +
    log "images: built in $(cat "$out/times")"
else
    log "images: cached ($key)"
fi

# --- registry push and env ------------------------------------------------------------------
# Pushed from the gzip layout, so the registry holds the very manifest of that layout.
imgval() { sed -n "s/^$2=//p" "$out/image-$1/image.env"; }
if [[ $bulk == 0 && -f $WORLD_DIR/env ]]; then
    # no stale keys of an earlier bulk build
    sed -i -e '/^WORLD_IMAGE_BULK/d' -e '/^WORLD_OCI_BULK_/d' -e '/^WORLD_ROOTFS_BULK_/d' "$WORLD_DIR/env"
fi
env_set WORLD_IMAGE_SDE "$sde"
env_set WORLD_IMAGE_SNAPSHOT "$snapshot"
env_set WORLD_IMAGE_VERSION "$version"
env_set WORLD_IMAGES_DIR "$out"
for v in "${variants[@]}"; do
    V=${v^^}
    refs=$(refs_of "$v")
    for ref in $refs; do
        skopeo copy -q --dest-tls-verify=false "oci:$out/image-$v/oci-gzip:$v" "docker://$registry/$ref"
    done
    env_set "WORLD_IMAGE_$V" "docker://$registry/${refs%% *}"
    env_set "WORLD_IMAGE_${V}_DIGEST" "$(imgval "$v" IMAGE_MANIFEST_DIGEST_GZIP)"
    env_set "WORLD_IMAGE_${V}_CONFIG_DIGEST" "$(imgval "$v" IMAGE_CONFIG_DIGEST)"
    env_set "WORLD_IMAGE_${V}_DIFF_IDS" "$(imgval "$v" IMAGE_DIFF_IDS)"
    for c in gzip zstd none; do
        env_set "WORLD_OCI_${V}_${c^^}" "oci:$out/image-$v/oci-$c:$v"
    done
done
env_set WORLD_IMAGE_TAMPERED_FILE "$(sed -n 's/^IMAGE_TAMPERED_FILE=//p' "$out/image-tampered/tamper.env")"
for r in repro base $([[ $bulk == 1 ]] && echo bulk); do
    R=${r^^}
    env_set "WORLD_ROOTFS_${R}_TAR" "$out/rootfs-$r/$r.tar"
    env_set "WORLD_ROOTFS_${R}_TAR_ZST" "$out/rootfs-$r/$r.tar.zst"
done
log "images: $registry/archlinux:repro = $(imgval repro IMAGE_MANIFEST_DIGEST_GZIP)"
