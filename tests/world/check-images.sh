#!/usr/bin/env bash
# Checks the world's reference images (tests/world/images.sh) and the recipe that made them:
#   1. two more builds from scratch give bit-identical repro.tar and repro.tar.zst, and the
#      same image config digest and diff_ids, both between themselves and with the reference;
#   2. the reference rootfs shows what DESIGN.md says the real pipeline does (recipe/check-rootfs.py:
#      owners 0, mtimes SDE, pax naming, modes vs mtrees with 0555 dirs -> 0755, NoExtract,
#      no ld.so.cache but one in the RUN layer, %INSTALLDATE% == SDE; the base rootfs has the wall clock);
#   3. `pacman -Q --root` on the extracted rootfs lists base and its dependency closure;
#   4. `skopeo inspect` reads the reference image from the local registry, at the recorded digest;
#   5. the three oci: layouts (gzip, zstd, uncompressed) carry the same config and diff_ids with
#      the expected layer media types; the image config has created = SDE, the labels, ENV, CMD;
#      the tampered image differs from the reference in exactly its first layer; the base image
#      does not have created = SDE.
# Exits 1 on any failure. Run after `world up` (needs $WORLD_DIR/env with the WORLD_IMAGE_* keys).
#   check-images.sh [--quick]     --quick skips the two from-scratch builds
set -euo pipefail
source "$(dirname "$(realpath "$0")")/lib.sh"
quick=0
[[ ${1:-} == --quick ]] && quick=1

env_get() { sed -n "s/^$1=//p" "$WORLD_DIR/env" 2>/dev/null | tail -n1; }
need() { local v; v=$(env_get "$1"); [[ -n $v ]] || die "check-images: $1 missing from $WORLD_DIR/env (run world up)"; printf '%s' "$v"; }
sde=$(need WORLD_IMAGE_SDE)
snapshot=$(need WORLD_IMAGE_SNAPSHOT)
archive_url=$(need WORLD_ARCHIVE_URL)
registry=$(need WORLD_REGISTRY)
ref_tar=$(need WORLD_ROOTFS_REPRO_TAR)
ref_zst=$(need WORLD_ROOTFS_REPRO_TAR_ZST)
recipe=$WORLD_SRC/recipe

failures=0
ok() { printf 'check-images: ok:   %s\n' "$*"; }
fail() { printf 'check-images: FAIL: %s\n' "$*"; failures=$((failures + 1)); }
expect_eq() { if [[ $2 == "$3" ]]; then ok "$1"; else fail "$1: '$2' != '$3'"; fi; }
cfg() { skopeo inspect --config "$1" | python3 -c "import json,sys; c=json.load(sys.stdin); print(eval(sys.argv[1]))" "$2"; }

tmp=$(mktemp -d "$WORLD_DIR/tmp/check-images.XXXXXX" 2>/dev/null || { mkdir -p "$WORLD_DIR/tmp"; mktemp -d "$WORLD_DIR/tmp/check-images.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT

# 0. the rootfs names the published Archive, not this world's server (whose port changes from
#    world to world), so the reference images are the same in every world
first=$(tar -xOf "$ref_tar" ./etc/pacman.d/mirrorlist | head -n1)
expect_eq "mirrorlist names the published Archive" "$first" "Server = https://archive.archlinux.org/repos/$snapshot/\$repo/os/\$arch"
if tar -xOf "$ref_tar" ./etc/pacman.d/mirrorlist | grep -qF "$archive_url"; then
    fail "the rootfs mentions this world's archive server $archive_url"
else
    ok "no trace of this world's archive server in the mirrorlist"
fi

ref_oci=$(need WORLD_OCI_REPRO_NONE)
version=$(cfg "$ref_oci" 'c["config"]["Labels"]["org.opencontainers.image.version"]')
revision=$(cfg "$ref_oci" 'c["config"]["Labels"]["org.opencontainers.image.revision"]')

# 1. two builds from scratch
if [[ $quick == 0 ]]; then
    keyring=$(env_get WORLD_KEYRING)
    for i in 1 2; do
        t0=$(date +%s)
        RECIPE_KEYRING=${keyring:-$WORLD_SRC/keys/packager.pub.asc} RECIPE_MODE=repro \
            bash "$recipe/build-rootfs.sh" "$archive_url" "$sde" "$tmp/rootfs$i" >/dev/null ||
            { fail "build $i: build-rootfs.sh (log: $tmp/rootfs$i/build.log)"; cat "$tmp/rootfs$i/build.log"; exit 1; }
        t1=$(date +%s)
        IMAGE_TITLE=Repro IMAGE_SDE=$sde IMAGE_VERSION=$version IMAGE_REVISION=$revision IMAGE_OCI_TAG=repro \
            bash "$recipe/build-image.sh" "$tmp/rootfs$i/repro.tar" "$tmp/image$i" >/dev/null ||
            { fail "build $i: build-image.sh"; cat "$tmp/image$i/build.log"; exit 1; }
        t2=$(date +%s)
        echo "check-images: build $i: rootfs $((t1 - t0))s, image $((t2 - t1))s"
    done
    for f in repro.tar repro.tar.zst repro.tar.zst.SHA256; do
        if cmp -s "$tmp/rootfs1/$f" "$tmp/rootfs2/$f"; then ok "two builds: $f bit-identical ($(sha256sum <"$tmp/rootfs1/$f" | cut -c1-16)…)"; else fail "two builds: $f differs"; fi
    done
    cmp -s "$tmp/rootfs1/repro.tar" "$ref_tar" && ok "rebuild: repro.tar identical to the world's reference" || fail "rebuild: repro.tar differs from $ref_tar"
    cmp -s "$tmp/rootfs1/repro.tar.zst" "$ref_zst" && ok "rebuild: repro.tar.zst identical to the world's reference" || fail "rebuild: repro.tar.zst differs from $ref_zst"
    for k in IMAGE_CONFIG_DIGEST IMAGE_DIFF_IDS IMAGE_MANIFEST_DIGEST_GZIP IMAGE_MANIFEST_DIGEST_ZSTD IMAGE_MANIFEST_DIGEST_NONE; do
        a=$(sed -n "s/^$k=//p" "$tmp/image1/image.env"); b=$(sed -n "s/^$k=//p" "$tmp/image2/image.env")
        expect_eq "two builds: $k" "$a" "$b"
    done
    expect_eq "rebuild: config digest == the reference's" "$(sed -n 's/^IMAGE_CONFIG_DIGEST=//p' "$tmp/image1/image.env")" "$(env_get WORLD_IMAGE_REPRO_CONFIG_DIGEST)"
    expect_eq "rebuild: diff_ids == the reference's" "$(sed -n 's/^IMAGE_DIFF_IDS=//p' "$tmp/image1/image.env")" "$(env_get WORLD_IMAGE_REPRO_DIFF_IDS)"
    rm -rf "$tmp"/rootfs? "$tmp"/image?
fi

# 2. the reference rootfs against DESIGN.md's observed facts
dbs=()
for r in core extra; do
    d=$WORLD_DIR/archive/repos/$snapshot/$r/os/x86_64/$r.db.tar.gz
    [[ -f $d ]] && dbs+=(--sync-db "$d")
done
run_layer=$tmp/run-layer.tar
oci_dir=${ref_oci#oci:}; oci_dir=${oci_dir%:*}
last_layer=$(skopeo inspect --raw "$ref_oci" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["digest"].split(":")[1])')
cp "$oci_dir/blobs/sha256/$last_layer" "$run_layer"
if python3 "$recipe/check-rootfs.py" "$ref_tar" "$sde" --base "$(need WORLD_ROOTFS_BASE_TAR)" --run-layer "$run_layer" "${dbs[@]}" >"$tmp/facts"; then
    sed 's/^/check-images: facts: /' "$tmp/facts"; ok "the rootfs shows the real pipeline's observed facts"
else
    sed 's/^/check-images: facts: /' "$tmp/facts"; fail "the rootfs does not show the observed facts (see above)"
fi

# 3. pacman -Q --root
mkdir "$tmp/rootfs"
tar -C "$tmp/rootfs" --numeric-owner -xpf "$ref_tar"
if pacman -Q --root "$tmp/rootfs" >"$tmp/q"; then
    n=$(wc -l <"$tmp/q")
    grep -q '^base ' "$tmp/q" && ok "pacman -Q --root lists $n packages incl. base: $(tr '\n' ' ' <"$tmp/q" | cut -c1-200)" || fail "pacman -Q --root does not list base"
else
    fail "pacman -Q --root failed"
fi

# 4. the registry
for v in REPRO BASE TAMPERED; do
    ref=$(need "WORLD_IMAGE_$v")
    if d=$(skopeo inspect --tls-verify=false "$ref" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])'); then
        expect_eq "skopeo inspect $ref: digest" "$d" "$(env_get "WORLD_IMAGE_${v}_DIGEST")"
    else
        fail "skopeo inspect $ref"
    fi
done

# 5. layouts and configs
for v in REPRO BASE TAMPERED; do
    for c in GZIP ZSTD NONE; do
        o=$(need "WORLD_OCI_${v}_$c")
        m=$(skopeo inspect --raw "$o")
        want=$(case $c in GZIP) echo tar+gzip;; ZSTD) echo tar+zstd;; NONE) echo tar;; esac)
        types=$(printf '%s' "$m" | python3 -c 'import json,sys; print(" ".join(sorted({l["mediaType"].rsplit(".",1)[1] for l in json.load(sys.stdin)["layers"]})))')
        expect_eq "$v $c layout: layer media types" "$types" "$want"
        expect_eq "$v $c layout: config digest" "$(printf '%s' "$m" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')" "$(env_get "WORLD_IMAGE_${v}_CONFIG_DIGEST")"
        expect_eq "$v $c layout: diff_ids" "$(cfg "$o" '",".join(c["rootfs"]["diff_ids"])')" "$(env_get "WORLD_IMAGE_${v}_DIFF_IDS")"
    done
done
sde_iso=$(date -u -d "@$sde" +%Y-%m-%dT%H:%M:%SZ)
expect_eq "repro config: created" "$(cfg "$ref_oci" 'c["created"]')" "$sde_iso"
expect_eq "repro config: created label" "$(cfg "$ref_oci" 'c["config"]["Labels"]["org.opencontainers.image.created"]')" "$(date -u -d "@$sde" +%Y-%m-%dT%H:%M:%S+00:00)"
expect_eq "repro config: Env has LANG=C.UTF-8" "$(cfg "$ref_oci" '"LANG=C.UTF-8" in c["config"]["Env"]')" True
expect_eq "repro config: Cmd" "$(cfg "$ref_oci" 'c["config"]["Cmd"]')" "['/usr/bin/bash']"
expect_eq "repro config: labels" "$(cfg "$ref_oci" '" ".join(sorted(k.rsplit(".",1)[1] for k in c["config"]["Labels"] if k.startswith("org.opencontainers.image.")))')" "authors created description documentation licenses revision source title url version"
expect_eq "repro config: 2 layers (COPY --from, RUN)" "$(cfg "$ref_oci" 'len(c["rootfs"]["diff_ids"])')" 2
repro_ids=$(env_get WORLD_IMAGE_REPRO_DIFF_IDS); tampered_ids=$(env_get WORLD_IMAGE_TAMPERED_DIFF_IDS)
if [[ ${repro_ids%%,*} != "${tampered_ids%%,*}" && ${repro_ids#*,} == "${tampered_ids#*,}" ]]; then
    ok "tampered image: first layer differs, RUN layer identical ($(env_get WORLD_IMAGE_TAMPERED_FILE) changed)"
else
    fail "tampered image: diff_ids $tampered_ids vs $repro_ids"
fi
base_created=$(cfg "$(need WORLD_OCI_BASE_NONE)" 'c["created"]')
[[ $base_created != "$sde_iso" ]] && ok "base config: created is the build time ($base_created)" || fail "base config: created == SDE"

if [[ $failures -gt 0 ]]; then
    echo "check-images: $failures failure(s)"
    exit 1
fi
echo "check-images: all checks passed"
