#!/usr/bin/env bash
# Checks the packages and the archive of the test world (run as root after `world up`):
#
#   1. two builds from scratch (empty caches, in temporary WORLD_DIRs) give bit-identical
#      .pkg.tar.zst and .sig files, also identical to the live world's; `randomized` differs
#   2. archive.sh run twice over the same packages gives bit-identical databases
#   3. every .sig in the archive verifies with the test key (gpgv)
#   4. `pacman -Sy` with `SigLevel = Required` works against the served archive for both
#      snapshot dates, and each date carries its own versions (mirror drift)
#   5. `fakechroot -- fakeroot -- pacman -Sy -r ROOT ... --noscriptlet base` installs base;
#      bash, sed, touch, ls run in `fakechroot chroot ROOT`; `pacman -Q` lists the base set;
#      the stand-ins (update-ca-trust, pacman-key, systemd-sysusers) work in the chroot
#   6. the edge cases are in the edgecases package as intended; bulk is big enough (if built)
#
#   check-packages.sh [--no-rebuild]     --no-rebuild skips 1 (the slow part, ~2 min)
# Exits non-zero when a check fails.
set -euo pipefail
# shellcheck source=tests/world/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rebuild=1
for a in "$@"; do
    case "$a" in
        --no-rebuild) rebuild=0 ;;
        *) die "unknown argument $a" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "check-packages.sh must run as root"
[ -f "$WORLD_DIR/env" ] || die "no $WORLD_DIR/env: run tests/world/world up first"
set -a
# shellcheck disable=SC1091
. "$WORLD_DIR/env"
set +a
curl -fsS -o /dev/null "$WORLD_ARCHIVE_URL/repos/$SNAPSHOT_OLD/core/os/x86_64/core.db" ||
    die "archive not served at $WORLD_ARCHIVE_URL (world up?)"

failures=0
pass() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/world-check.XXXXXXXX")
chmod 0755 "$tmp"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

live_index=$WORLD_DIR/packages/index.tsv
rows() { grep -v '^#' "$1"; }

# --- 1. reproducible builds -----------------------------------------------------------------
if [ "$rebuild" -eq 1 ]; then
    bulk=()
    grep -q $'\tbulk\t' "$live_index" && bulk=(--bulk)
    for i in 1 2; do
        t=$SECONDS
        WORLD_DIR=$tmp/w$i "$WORLD_SRC/packages.sh" "${bulk[@]}" 2> "$tmp/build$i.log" ||
            { cat "$tmp/build$i.log"; die "build $i failed"; }
        echo "     build $i from scratch: $((SECONDS - t))s"
    done
    while IFS=$'\t' read -r dir pkgname version file repo snapshots flags sde path; do
        p1=$tmp/w1/cache/packages/${path#"$WORLD_DIR"/cache/packages/}
        a=$(awk -F'\t' -v d="$dir" '$1 == d {print $9}' "$tmp/w1/packages/index.tsv")
        b=$(awk -F'\t' -v d="$dir" '$1 == d {print $9}' "$tmp/w2/packages/index.tsv")
        if [ "$flags" = unreproducible ]; then
            if cmp -s "$a" "$b"; then fail "$file: the unreproducible package came out identical twice"
            else pass "$file: differs between builds, as intended"; fi
            continue
        fi
        if cmp -s "$a" "$b" && cmp -s "$a.sig" "$b.sig" && cmp -s "$a" "$path" && cmp -s "$a.sig" "$path.sig"; then
            pass "$file{,.sig}: bit-identical in two builds from scratch and the live world"
        else
            fail "$file: builds differ ($a $b $path)"
        fi
        : "$p1"
    done < <(rows "$live_index")

    # --- 2. reproducible databases ------------------------------------------------------
    WORLD_DIR=$tmp/w1 "$WORLD_SRC/archive.sh" 2> /dev/null
    (cd "$tmp/w1/archive/repos" && find . -name '*.tar.gz' -print0 | sort -z | xargs -0 sha256sum) > "$tmp/db1.sums"
    rm -f "$tmp/w1/archive/.key"
    WORLD_DIR=$tmp/w1 "$WORLD_SRC/archive.sh" 2> /dev/null
    if (cd "$tmp/w1/archive/repos" && sha256sum --quiet -c "$tmp/db1.sums"); then
        pass "repo-add databases: bit-identical when the archive is made twice ($(wc -l < "$tmp/db1.sums") files)"
    else
        fail "repo-add databases differ between two runs of archive.sh"
    fi
    rm -rf "$tmp/w1" "$tmp/w2"
fi

# --- 3. signatures --------------------------------------------------------------------------
gpg --batch --quiet --dearmor < "$WORLD_KEYRING" > "$tmp/keyring.gpg"
nsig=0 badsig=0
while IFS= read -r -d '' sig; do
    nsig=$((nsig + 1))
    gpgv --quiet --keyring "$tmp/keyring.gpg" "$sig" "${sig%.sig}" 2> /dev/null || { badsig=$((badsig + 1)); echo "     bad: $sig"; }
done < <(find "$WORLD_DIR/archive/packages" -name '*.sig' -print0)
if [ "$badsig" -eq 0 ] && [ "$nsig" -gt 0 ]; then pass "$nsig package signatures verify with the test key"
else fail "$badsig of $nsig signatures do not verify"; fi

# --- 4./5. pacman against the archive, for both dates ---------------------------------------
base_set="acl attr base bash busybox ca-certificates-utils coreutils edgecases filesystem findutils glibc gmp grep libselinux ncurses pacman pcre2 sed systemd"
for date in "$SNAPSHOT_OLD" "$SNAPSHOT_NEW"; do
    d=$tmp/${date//\//-}
    mkdir -p "$d/db" "$d/cache" "$d/plain" "$d/root/var/lib/pacman"
    cat > "$d/pacman.conf" <<CONF
[options]
Architecture = x86_64
SigLevel = Required DatabaseOptional
LocalFileSigLevel = Optional
GPGDir = $WORLD_PACMAN_GPGDIR
[core]
Server = $WORLD_ARCHIVE_URL/repos/$date/\$repo/os/\$arch
[extra]
Server = $WORLD_ARCHIVE_URL/repos/$date/\$repo/os/\$arch
CONF
    pm=(pacman --config "$d/pacman.conf" --root "$d/plain" --dbpath "$d/db" --cachedir "$d/cache" --logfile /dev/null --noconfirm)
    if "${pm[@]}" -Sy > "$d/sy.log" 2>&1; then pass "$date: pacman -Sy"; else cat "$d/sy.log"; fail "$date: pacman -Sy"; continue; fi
    "${pm[@]}" -Sl > "$d/sl"
    if [ "$date" = "$SNAPSHOT_OLD" ]; then
        want=("core bash 5.2.15-1" "core edgecases 1-1" "extra randomized 1.0-1")
        unwanted="hello"
    else
        want=("core bash 5.2.15-2" "core edgecases 1-2" "extra hello 2.12.1-1" "extra randomized 1.0-1")
        unwanted="-"
    fi
    for w in "${want[@]}"; do
        if grep -qx "$w" "$d/sl"; then pass "$date: -Sl has $w"; else fail "$date: -Sl lacks $w"; fi
    done
    if [ "$unwanted" != - ]; then
        if grep -q " $unwanted " "$d/sl"; then fail "$date: -Sl has $unwanted"; else pass "$date: no $unwanted yet"; fi
    fi
    # download everything: pacman checks every package signature (SigLevel = Required)
    mapfile -t all < <(awk '{print $2}' "$d/sl")
    if "${pm[@]}" -Sw "${all[@]}" > "$d/sw.log" 2>&1; then pass "$date: pacman -Sw of all ${#all[@]} packages (signatures required)"
    else tail -5 "$d/sw.log"; fail "$date: pacman -Sw"; fi

    # base into a directory, as the archlinux-docker recipe does it. libalpm runs
    # /sbin/ldconfig after the transaction: Debian's is static, would escape the fakechroot
    # and rewrite the host's /etc/ld.so.cache; the substitution keeps this check off the host.
    r=$d/root
    # Hooks masked as the recipe does: every hook name linked to /dev/null in the extra hook
    # dir (the recipe masks the host's hooks; on an Arch host those are the same names as
    # the root's; this Debian host has none, so the names of the world's hooks are used).
    mkdir -p "$d/no-hooks"
    ln -sf /dev/null "$d/no-hooks/edgecases.hook"
    export FAKECHROOT_CMD_SUBST=/sbin/ldconfig=/bin/true
    if (cd "$d" && fakechroot -- fakeroot -- pacman -Sy -r "$r" --noconfirm --dbpath "$r/var/lib/pacman" \
            --config "$d/pacman.conf" --cachedir "$d/cache" --noscriptlet --logfile /dev/null \
            --hookdir "$d/no-hooks" base) > "$d/install.log" 2>&1; then
        pass "$date: fakechroot -- fakeroot -- pacman -Sy -r ROOT --noscriptlet base"
    else
        tail -20 "$d/install.log"; fail "$date: installing base"; continue
    fi
    out=$(cd "$d" && fakechroot chroot "$r" /usr/bin/bash -c 'sed --version | head -n1; touch --version | head -n1; ls /; ls /usr/share/edgecases/version' 2>&1) || true
    if grep -q '^sed (GNU sed)' <<< "$out" && grep -q '^touch (GNU coreutils)' <<< "$out" &&
        grep -qx 'usr' <<< "$out" && grep -qx '/usr/share/edgecases/version' <<< "$out"; then
        pass "$date: fakechroot chroot ROOT /usr/bin/bash -c 'sed --version; touch --version; ls /'"
    else
        printf '%s\n' "$out"; fail "$date: commands in the chroot"
    fi
    q=$(pacman -Q --root "$r" --dbpath "$r/var/lib/pacman" | awk '{print $1}' | sort | tr '\n' ' ')
    if [ "$q" = "$base_set " ]; then pass "$date: pacman -Q --root lists the base set"
    else fail "$date: pacman -Q --root: $q"; fi
    [ -e "$r/var/lib/edgecases-scriptlet-ran" ] && fail "$date: the install scriptlet ran despite --noscriptlet"
    [ -e "$r/var/lib/edgecases-hook-ran" ] && fail "$date: the alpm hook ran despite the masked hook dir"

    # the stand-ins, in the chroot, as the recipe runs them
    if (cd "$d" && fakechroot -- fakeroot -- chroot "$r" update-ca-trust &&
        fakechroot -- fakeroot -- chroot "$r" pacman-key --init &&
        fakechroot -- fakeroot -- chroot "$r" pacman-key --populate) > "$d/standins.log" 2>&1 &&
        [ -s "$r/etc/ca-certificates/extracted/tls-ca-bundle.pem" ] && [ -s "$r/etc/pacman.d/gnupg/populated" ] &&
        ls "$r"/etc/pacman.d/gnupg/private-keys-v1.d/*.key > /dev/null 2>&1; then
        pass "$date: update-ca-trust, pacman-key --init, pacman-key --populate in the chroot"
    else
        cat "$d/standins.log"; fail "$date: update-ca-trust / pacman-key in the chroot"
    fi
    cp -a "$r/etc" "$d/etc-before"
    sde=1793577600
    for i in 1 2; do
        rm -rf "$r/etc" && cp -a "$d/etc-before" "$r/etc"
        (cd "$d" && SOURCE_DATE_EPOCH=$sde fakechroot -- fakeroot -- chroot "$r" /usr/bin/systemd-sysusers --root /) > "$d/sysusers.log" 2>&1 ||
            { cat "$d/sysusers.log"; fail "$date: systemd-sysusers"; }
        cat "$r/etc/passwd" "$r/etc/group" "$r/etc/shadow" "$r/etc/gshadow" > "$d/users$i"
    done
    if cmp -s "$d/users1" "$d/users2" && grep -q "^systemd-network:x:192:192:" "$r/etc/passwd" &&
        grep -q "^alpm:!\*:$((sde / 86400)):" "$r/etc/shadow" && grep -q '^root::' "$r/etc/shadow"; then
        pass "$date: systemd-sysusers --root / adds users deterministically, lastchg = SOURCE_DATE_EPOCH/86400"
    else
        fail "$date: systemd-sysusers output"
    fi
done

# --- 6. contents ----------------------------------------------------------------------------
edge=$(awk -F'\t' '$1 == "edgecases" {print $9}' "$live_index")
listing=$(bsdtar -tvf "$edge")
raw=$(zstd -dc "$edge" | tr '\0' '\n')
check_edge() { if eval "$2"; then pass "edgecases: $1"; else fail "edgecases: $1"; fi; }
check_edge "path > 255 bytes" "awk '{print \$NF}' <<< \"\$listing\" | awk 'length > 255' | grep -q ."
check_edge "symlink target > 100 bytes" "grep -- '-> ' <<< \"\$listing\" | awk 'length(\$NF) > 100' | grep -q ."
check_edge "hardlinks" "grep -q 'hardlink-2 link to usr/share/edgecases/hardlink-1' <<< \"\$listing\""
check_edge "setuid, setgid, sticky" "grep -q '^-rwsr-xr-x .*edgecases-setuid' <<< \"\$listing\" && grep -q '^drwxrwsr-x .*setgid-dir' <<< \"\$listing\" && grep -q '^drwxrwxrwt .*sticky-dir' <<< \"\$listing\""
check_edge "0555 dir, 0400 file" "grep -q '^dr-xr-xr-x .*mode-0555-dir/\$' <<< \"\$listing\" && grep -q '^-r-------- .*mode-0400' <<< \"\$listing\""
check_edge "owners uid/gid 1000" "grep -q ' alice  *alice .*home/alice/file' <<< \"\$listing\""
check_edge "xattr security.capability (pax record)" "grep -q 'SCHILY.xattr.security.capability' <<< \"\$raw\""
check_edge "install scriptlet, hook, backup" "grep -q '^-.* .INSTALL\$' <<< \"\$listing\" && grep -q 'usr/share/libalpm/hooks/edgecases.hook' <<< \"\$listing\" && bsdtar -xOf \"\$edge\" .PKGINFO | grep -q '^backup = etc/edgecases.conf'"
check_edge "non-ASCII and space names" "grep -q 'ünïcödé' <<< \"\$listing\" && grep -q 'name with spaces.txt' <<< \"\$listing\""

bulkpath=$(awk -F'\t' '$1 == "bulk" {print $9}' "$live_index")
if [ -n "$bulkpath" ]; then
    isize=$(bsdtar -xOf "$bulkpath" .PKGINFO | sed -n 's/^size = //p')
    nfiles=$(bsdtar -tf "$bulkpath" | grep -vc '/$')
    if [ "$isize" -ge 100000000 ] && [ "$nfiles" -ge 20000 ]; then pass "bulk: $isize bytes, $nfiles files"
    else fail "bulk: only $isize bytes, $nfiles files"; fi
fi

if [ "$failures" -gt 0 ]; then
    echo "check-packages: $failures check(s) failed"
    exit 1
fi
echo "check-packages: all checks passed"
