#!/usr/bin/env bash
# The image as archlinux-docker builds it from a rootfs tarball: podman build (Debian's 4.3,
# offline: vfs storage in a private root, chroot isolation, --timestamp SOURCE_DATE_EPOCH),
# then skopeo copies into oci: layouts (gzip, zstd, uncompressed) and optionally a registry.
#
#   build-image.sh ROOTFS_TAR OUTDIR
#
# Environment:
#   IMAGE_TITLE       title label word ("Repro", "Base"; default Repro)
#   IMAGE_VERSION     VERSION_ID and version label (required)
#   IMAGE_REVISION    revision label (default: 40 zeros)
#   IMAGE_SDE         SOURCE_DATE_EPOCH: podman build --timestamp, created label = its date.
#                     Unset: a `base`-style build: real build time in created, no --timestamp.
#   IMAGE_TAMPER=1    change one package-owned file of the rootfs before building
#                     (IMAGE_TAMPER_FILE, default usr/bin/update-ca-trust or usr/lib/os-release)
#   IMAGE_REGISTRY_REFS  space-separated docker:// references to push to (gzip layers, plain HTTP)
#   IMAGE_OCI_TAG     tag used in the oci: layouts (default latest)
#
# Writes OUTDIR/oci-gzip, OUTDIR/oci-zstd, OUTDIR/oci-none (oci layouts), OUTDIR/image.env
# (config digest, diff_ids, manifest digests) and OUTDIR/build.log. Storage is OUTDIR/storage,
# created fresh and removed at the end, so no build reuses another's cached layers.
set -euo pipefail
if [[ -z ${IMAGE_CLEAN_ENV:-} ]]; then
    keep=()
    for v in IMAGE_TITLE IMAGE_VERSION IMAGE_REVISION IMAGE_SDE IMAGE_TAMPER IMAGE_TAMPER_FILE IMAGE_REGISTRY_REFS IMAGE_OCI_TAG; do
        [[ -n ${!v:-} ]] && keep+=("$v=${!v}")
    done
    exec env -i IMAGE_CLEAN_ENV=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin TZ=UTC LANG=C.UTF-8 HOME=/root \
        "${keep[@]}" bash "$(realpath "$0")" "$@"
fi
umask 0022
[[ $# -eq 2 ]] || { echo "usage: build-image.sh ROOTFS_TAR OUTDIR" >&2; exit 2; }
rootfs_tar=$(realpath "$1")
outdir=$(realpath -m "$2")
recipe=$(dirname "$(realpath "$0")")
: "${IMAGE_VERSION:?IMAGE_VERSION is required}"
title=${IMAGE_TITLE:-Repro}
revision=${IMAGE_REVISION:-0000000000000000000000000000000000000000}
oci_tag=${IMAGE_OCI_TAG:-latest}

rm -rf "$outdir"
mkdir -p "$outdir/context"
exec > >(tee "$outdir/build.log") 2>&1
echo "build-image: $(podman --version), $(skopeo --version)"

# As upstream's verify stage: the published repro.tar.zst must match its .SHA256 file (when
# they lie next to the tarball) and decompress to exactly the tarball used.
zst=$rootfs_tar.zst
if [[ -f $zst && -f $zst.SHA256 ]]; then
    (cd "$(dirname "$zst")" && sha256sum --quiet -c "$(basename "$zst").SHA256")
    zstd -dc --long=27 "$zst" | cmp -s - "$rootfs_tar" || { echo "build-image: $zst does not decompress to $rootfs_tar" >&2; exit 1; }
    echo "build-image: $(basename "$zst") verified against its SHA256 file"
fi

# The rootfs tarball goes into the context as it is, unless tampered with: then it is
# extracted (as root: owners, modes, xattrs, ACLs kept), one package-owned file gets a line
# appended (mtime kept), and it is packed again the recipe's way.
if [[ -n ${IMAGE_TAMPER:-} ]]; then
    x=$outdir/context/x
    mkdir -p "$x"
    tar -C "$x" --numeric-owner --same-owner --xattrs --xattrs-include='*' --acls -xpf "$rootfs_tar"
    f=${IMAGE_TAMPER_FILE:-}
    if [[ -z $f ]]; then
        for c in usr/bin/update-ca-trust usr/lib/os-release; do
            if [[ -f $x/$c && ! -L $x/$c ]]; then f=$c; break; fi
        done
    fi
    t=$x/$f
    m=$(stat -c %Y "$t")
    printf '# tampered: this line is not in the package\n' >>"$t"
    touch --date="@$m" "$t"
    echo "build-image: tampered with /$f"
    echo "IMAGE_TAMPERED_FILE=/$f" >"$outdir/tamper.env"
    tar --numeric-owner --xattrs --acls --sort=name --pax-option=delete=atime,delete=ctime \
        -C "$x" -c . -f "$outdir/context/rootfs.tar"
    rm -rf "$x"
else
    cp "$rootfs_tar" "$outdir/context/rootfs.tar"
fi

if [[ -n ${IMAGE_SDE:-} ]]; then
    created=$(date -u -d "@$IMAGE_SDE" +%Y-%m-%dT%H:%M:%S+00:00)
    timestamp=(--timestamp "$IMAGE_SDE")
else
    created=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
    timestamp=()
fi
sed -e "s/TEMPLATE_TITLE/$title/" -e "s/TEMPLATE_VERSION_ID/$IMAGE_VERSION/g" \
    -e "s/TEMPLATE_REVISION/$revision/" -e "s/TEMPLATE_CREATED/$created/" \
    -e "s/TEMPLATE_ROOTFS_FILE/rootfs.tar/" \
    "$recipe/Dockerfile.template" >"$outdir/context/Dockerfile"

storage=$outdir/storage
# podman refuses a runroot path longer than 50 characters: that one (locks, state) lives in /tmp.
runroot=$(mktemp -d /tmp/repro-podman.XXXXXX)
podman=(podman --root "$storage/root" --runroot "$runroot" --storage-driver vfs
    --cgroup-manager cgroupfs --events-backend file --tmpdir "$storage/tmp")
mkdir -p "$storage/tmp"
cleanup() {
    # vfs layers are plain directories; podman's own cleanup first, then the tree.
    "${podman[@]}" rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$storage" "$runroot" "$outdir/context/rootfs.tar"
}
trap cleanup EXIT
tag=localhost/archlinux-world:build
"${podman[@]}" build --isolation chroot --network host --pull=never \
    --format oci "${timestamp[@]}" -t "$tag" "$outdir/context"

src="containers-storage:[vfs@$storage/root+$runroot]$tag"
export TMPDIR=$storage/tmp
skopeo copy -q --dest-compress --dest-compress-format gzip "$src" "oci:$outdir/oci-gzip:$oci_tag"
skopeo copy -q --dest-compress --dest-compress-format zstd "$src" "oci:$outdir/oci-zstd:$oci_tag"
# skopeo 1.9's --dest-decompress acts on dir: only; an oci: layout keeps the storage's
# uncompressed layers with --dest-oci-accept-uncompressed-layers.
skopeo copy -q --dest-oci-accept-uncompressed-layers "$src" "oci:$outdir/oci-none:$oci_tag"
for ref in ${IMAGE_REGISTRY_REFS:-}; do
    skopeo copy -q --dest-tls-verify=false --dest-compress --dest-compress-format gzip "$src" "$ref"
done

digest_of() { skopeo inspect --raw "$1" | sha256sum | sed 's/^/sha256:/; s/ .*//'; }
{
    echo "IMAGE_CREATED=$created"
    echo "IMAGE_CONFIG_DIGEST=$(skopeo inspect --raw "oci:$outdir/oci-none:$oci_tag" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')"
    echo "IMAGE_DIFF_IDS=$(skopeo inspect --config "oci:$outdir/oci-none:$oci_tag" | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["rootfs"]["diff_ids"]))')"
    for c in gzip zstd none; do
        echo "IMAGE_MANIFEST_DIGEST_${c^^}=$(digest_of "oci:$outdir/oci-$c:$oci_tag")"
    done
    for ref in ${IMAGE_REGISTRY_REFS:-}; do
        echo "# $ref"
        echo "IMAGE_REGISTRY_DIGEST=$(skopeo inspect --tls-verify=false --raw "$ref" | sha256sum | sed 's/^/sha256:/; s/ .*//')"
        break
    done
} >"$outdir/image.env"
cat "$outdir/image.env"
