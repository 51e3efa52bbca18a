#!/bin/bash
# Three real rebuilderd instances (rb1, rb2, rb3) on 127.0.0.1, each with one real
# rebuilderd-worker whose backend (rebuilder-backend/rebuild-makepkg) rebuilds the world's
# packages from their PKGBUILDs with makepkg. See tests/world/rebuilders.md.
#
# Called by `world up` after the packages and the archive exist; usable alone:
#   tests/world/rebuilders.sh          bring up (idempotent; quick when already up and done)
#   tests/world/rebuilders.sh down     stop the daemons and workers this script started
#   tests/world/rebuilders.sh status   print each instance's package statuses
#
# Arranged outcome (all from real rebuilds; only the inputs differ):
#   rb1, rb2 import the newest archive snapshot, rb3 the oldest (so rb3 has only the older
#   version of what changed between the snapshots, e.g. bash 5.2.15-1 vs -2);
#   rb2 does not import $RB_UNKNOWN_ON_RB2 (a package unknown to one rebuilder);
#   rb2's worker builds $RB_DISPUTED (default sed, same version in both snapshots) with
#   SOURCE_DATE_EPOCH one day off (a build environment that differs: GOOD on rb1 and rb3,
#   BAD on rb2); `randomized` embeds random bytes: BAD on all three.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORLD_DIR=${WORLD_DIR:-$repo/target/world}
TOOLS_ROOT=${REBUILDERD_TOOLS_ROOT:-$repo/target/tools}
REBUILDERD_VERSION=0.28.0
BACKEND=$here/rebuilder-backend/rebuild-makepkg
STATE=$WORLD_DIR/rebuilders
RUN=$WORLD_DIR/run
ENV_FILE=$WORLD_DIR/env
CACHE=${RB_CACHE_DIR:-$repo/target/world-cache/rebuilders}
TIMEOUT=${RB_TIMEOUT:-1800}
RB_DISPUTED=${RB_DISPUTED:-sed}
RB_UNKNOWN_ON_RB2=${RB_UNKNOWN_ON_RB2:-busybox}
NAMES=(rb1 rb2 rb3)

log() { printf '[rebuilders] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- tools ------------------------------------------------------------------------------
ensure_tools() {
    local b ok=1
    for b in rebuilderd rebuilderd-worker rebuildctl; do
        [[ -x $TOOLS_ROOT/bin/$b ]] || ok=0
    done
    if [[ $ok == 0 ]]; then
        log "building rebuilderd $REBUILDERD_VERSION from crates.io into $TOOLS_ROOT (slow, once)"
        cargo install --locked --root "$TOOLS_ROOT" --version "$REBUILDERD_VERSION" \
            rebuilderd rebuilderd-worker rebuildctl >&2
    fi
    for b in bsdtar makepkg runuser unshare curl jq python3 sqlite3; do
        command -v "$b" >/dev/null || die "$b not found (see tests/world/rebuilders.md for the Debian packages)"
    done
}

# --- processes --------------------------------------------------------------------------
pidfile() { echo "$RUN/rebuilder-$1.pid"; }           # $1 = rb1 | rb1-worker
alive() {  # pid file names a live process whose cmdline contains $2
    local f; f=$(pidfile "$1")
    [[ -f $f ]] || return 1
    local pid; pid=$(cat "$f")
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}
stop_one() {
    local f pid; f=$(pidfile "$1")
    [[ -f $f ]] || return 0
    pid=$(cat "$f")
    if alive "$1" "$2"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
        [[ -e /proc/$pid ]] && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
stop_all() {
    local n
    for n in "${NAMES[@]}"; do
        stop_one "$n-worker" rebuilderd-worker
        stop_one "$n" "bin/rebuilderd "
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_free() {
    python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

# --- world inputs -----------------------------------------------------------------------
load_world_env() {
    [[ -f $ENV_FILE ]] || die "$ENV_FILE not found: bring the packages and archive up first"
    # shellcheck disable=SC1090
    set -a; source "$ENV_FILE"; set +a
    ARCHIVE_URL=${WORLD_ARCHIVE_URL:?WORLD_ARCHIVE_URL not in $ENV_FILE}
    ARCHIVE_URL=${ARCHIVE_URL%/}
    ARCHIVE_DIR=${WORLD_ARCHIVE_DIR:-$WORLD_DIR/archive}
    [[ -d $ARCHIVE_DIR/repos ]] || die "no archive at $ARCHIVE_DIR"
    mapfile -t SNAPSHOTS < <(cd "$ARCHIVE_DIR/repos" && find . -mindepth 3 -maxdepth 3 -type d | sed 's|^\./||' | sort)
    [[ ${#SNAPSHOTS[@]} -ge 1 ]] || die "no snapshots under $ARCHIVE_DIR/repos"
    SNAP_OLD=${RB_SNAPSHOT_OLD:-${SNAPSHOTS[0]}}
    SNAP_NEW=${RB_SNAPSHOT_NEW:-${SNAPSHOTS[-1]}}
    [[ $SNAP_OLD != "$SNAP_NEW" ]] || log "WARNING: one snapshot only; the older-version case cannot be arranged"
    mapfile -t REPOS < <(cd "$ARCHIVE_DIR/repos/$SNAP_NEW" && ls -d */ | tr -d /)
    curl -fsS -o /dev/null "$ARCHIVE_URL/repos/$SNAP_NEW/${REPOS[0]}/os/x86_64/${REPOS[0]}.db" ||
        die "archive not served at $ARCHIVE_URL"
}

# Key of everything the rebuild results depend on: the sync dbs of the snapshots (they
# carry every package's sha256), the backend, this script, the PKGBUILDs and makepkg.conf.
cache_key() {
    {
        echo "rebuilderd $REBUILDERD_VERSION old=$SNAP_OLD new=$SNAP_NEW disputed=$RB_DISPUTED unknown=$RB_UNKNOWN_ON_RB2"
        local s r
        for s in "$SNAP_OLD" "$SNAP_NEW"; do
            for r in "${REPOS[@]}"; do
                sha256sum <"$ARCHIVE_DIR/repos/$s/$r/os/x86_64/$r.db"
            done
        done
        sha256sum <"$here/rebuilders.sh"
        sha256sum <"$BACKEND"
        local f
        for f in "$here/makepkg.conf" "$here/build-package.sh"; do
            [[ -f $f ]] && sha256sum <"$f"
        done
        (cd "${REBUILDER_PKGBUILDS:-$here/pkgbuilds}" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-16
}

# --- one instance -----------------------------------------------------------------------
setup_instance() {  # $1 name, $2 port, $3 signup secret
    local n=$1 port=$2 secret=$3 d=$STATE/$1
    mkdir -p "$d/daemon" "$d/worker" "$d/home"
    cat >"$d/rebuilderd.conf" <<EOF
# rebuilderd $REBUILDERD_VERSION daemon config for the test world (instance $n)
[http]
bind_addr = "127.0.0.1:$port"

[worker]
signup_secret = "$secret"

[schedule]
# a BAD/FAIL result is final: no retry 24h later, so the queue drains
max_retries = 1
EOF
    local differs=""
    [[ $n == rb2 ]] && differs=$RB_DISPUTED
    local diffo=false
    command -v diffoscope >/dev/null && diffo=true
    cat >"$d/worker.conf" <<EOF
# rebuilderd-worker $REBUILDERD_VERSION config for the test world (instance $n)
endpoint = "http://127.0.0.1:$port"
signup_secret = "$secret"
idle_delay = 5

[build]
timeout = 1800

[diffoscope]
enabled = $diffo

[backend."archlinux"]
path = "$BACKEND"
EOF
    printf '%s\n' "$differs" >"$d/worker.env-differs"
}

start_instance() {  # $1 name
    local n=$1 d=$STATE/$1 port
    port=$(sed -n 's/^bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$d/rebuilderd.conf")
    local common=(env -i PATH="$PATH" HOME="$d/home" XDG_CONFIG_HOME="$d/home/.config"
        XDG_DATA_HOME="$d/home/.local/share" RUST_LOG=info)
    if ! alive "$n" "bin/rebuilderd "; then
        (cd "$d/daemon" && exec setsid "${common[@]}" REBUILDERD_COOKIE_PATH="$d/auth-cookie" \
            "$TOOLS_ROOT/bin/rebuilderd" -c "$d/rebuilderd.conf" \
            </dev/null >>"$d/rebuilderd.log" 2>&1 9>&-) &
        echo $! >"$(pidfile "$n")"
    fi
    local url=http://127.0.0.1:$port i
    for i in $(seq 100); do
        curl -fsS -o "$d/public-keys.json" "$url/api/v1/meta/public-keys" 2>/dev/null && break
        # kill -0, not the cmdline: right after the fork the child may not have exec'd yet.
        kill -0 "$(cat "$(pidfile "$n")")" 2>/dev/null ||
            { tail -20 "$d/rebuilderd.log" >&2; die "$n: rebuilderd exited"; }
        sleep 0.2
    done
    [[ -s $d/public-keys.json ]] || die "$n: no answer on $url"
    jq -r '.current[0]' "$d/public-keys.json" >"$d/public-key.pem"
    if ! alive "$n-worker" rebuilderd-worker; then
        (cd "$d/worker" && exec setsid "${common[@]}" \
            REBUILDER_ENV_DIFFERS="$(cat "$d/worker.env-differs")" \
            REBUILDER_PKGBUILDS="${REBUILDER_PKGBUILDS:-$here/pkgbuilds}" \
            "$TOOLS_ROOT/bin/rebuilderd-worker" -c "$d/worker.conf" connect \
            </dev/null >>"$d/worker.log" 2>&1 9>&-) &
        echo $! >"$(pidfile "$n-worker")"
    fi
}

import_instance() {  # $1 name, $2 snapshot, $3.. rebuildctl sync extra args
    local n=$1 snap=$2 d=$STATE/$1; shift 2
    local url port comps=() r
    port=$(sed -n 's/^bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$d/rebuilderd.conf")
    url=http://127.0.0.1:$port
    for r in "${REPOS[@]}"; do comps+=(--component "$r"); done
    local mirror="$ARCHIVE_URL/repos/$snap/\$repo/os/\$arch"
    log "$n: importing $snap (${REPOS[*]}) $*"
    # rebuildctl's archlinux sync takes artifact URLs as <mirror>/<filename>; the Archive
    # keeps the files next to the dbs, else point them at packages/<l>/<name>/<file>.
    REBUILDERD_COOKIE_PATH=$d/auth-cookie HOME=$d/home XDG_CONFIG_HOME=$d/home/.config \
        "$TOOLS_ROOT/bin/rebuildctl" -H "$url" pkgs sync archlinux "$mirror" \
        "${comps[@]}" --architecture x86_64 "$@" --print-json >"$d/import.json"
    python3 - "$d/import.json" "$ARCHIVE_DIR" "$ARCHIVE_URL" "$snap" <<'EOF'
import json, os, sys
path, adir, aurl, snap = sys.argv[1:]
reports = json.load(open(path))
for rep in reports:
    for src in rep["packages"]:
        for art in src["artifacts"]:
            fn = art["url"].rsplit("/", 1)[1]
            if not os.path.exists(os.path.join(adir, "repos", snap, art["component"], "os", "x86_64", fn)):
                art["url"] = f"{aurl}/packages/{art['name'][0]}/{art['name']}/{fn}"
        src["url"] = src["artifacts"][0]["url"]
json.dump(reports, open(path, "w"), indent=1)
EOF
    local k count
    count=$(jq length "$d/import.json")
    for ((k = 0; k < count; k++)); do
        jq ".[$k]" "$d/import.json" | REBUILDERD_COOKIE_PATH=$d/auth-cookie HOME=$d/home \
            XDG_CONFIG_HOME=$d/home/.config "$TOOLS_ROOT/bin/rebuildctl" -H "$url" pkgs sync-stdin
    done
}

instance_url() {
    local port
    port=$(sed -n 's/^bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$STATE/$1/rebuilderd.conf")
    echo "http://127.0.0.1:$port"
}

# done = nothing queued and every imported binary package has a result
instance_done() {  # $1 name -> prints "queued unknown total"
    local url; url=$(instance_url "$1")
    local q b
    q=$(curl -fsS "$url/api/v1/queue" | jq '.total // (.records | length)') || return 1
    b=$(curl -fsS "$url/api/v1/packages/binary") || return 1
    echo "$q $(jq '[.records[] | select(.status == null or .status == "UNKWN")] | length' <<<"$b") $(jq .total <<<"$b")"
}

wait_done() {
    local start=$SECONDS n s pending
    while :; do
        pending=0
        for n in "${NAMES[@]}"; do
            alive "$n" "bin/rebuilderd " || { tail -20 "$STATE/$n/rebuilderd.log" >&2; die "$n: rebuilderd died"; }
            alive "$n-worker" rebuilderd-worker || { tail -30 "$STATE/$n/worker.log" >&2; die "$n: worker died"; }
            s=$(instance_done "$n") || die "$n: API not answering"
            read -r q u t <<<"$s"
            [[ $t -gt 0 ]] || die "$n: no packages imported"
            if [[ $q -gt 0 || $u -gt 0 ]]; then pending=1; fi
            STATUS_LINE[$n]="$n: $t pkgs, $q queued, $u without result"
        done
        [[ $pending == 0 ]] && break
        if ((SECONDS - start > TIMEOUT)); then
            for n in "${NAMES[@]}"; do log "${STATUS_LINE[$n]}"; tail -15 "$STATE/$n/worker.log" >&2; done
            die "rebuilds not finished after ${TIMEOUT}s"
        fi
        if ((SECONDS % 30 < 3)); then log "waiting: ${STATUS_LINE[rb1]}; ${STATUS_LINE[rb2]}; ${STATUS_LINE[rb3]}"; fi
        sleep 3
    done
    log "all rebuilds finished in $((SECONDS - start))s"
}

write_env() {
    local tmp=$ENV_FILE.rebuilders.$$ i=0 n urls=()
    grep -v '^WORLD_REBUILDER' "$ENV_FILE" >"$tmp" || true
    for n in "${NAMES[@]}"; do
        i=$((i + 1))
        urls+=("$(instance_url "$n")")
        {
            echo "WORLD_REBUILDER_${i}_NAME=$n"
            echo "WORLD_REBUILDER_${i}_URL=$(instance_url "$n")"
            echo "WORLD_REBUILDER_${i}_PUBKEY=$STATE/$n/public-key.pem"
        } >>"$tmp"
    done
    echo "WORLD_REBUILDERS=$(IFS=,; echo "${urls[*]}")" >>"$tmp"
    echo "WORLD_REBUILDER_SNAPSHOT_NEW=$SNAP_NEW" >>"$tmp"
    echo "WORLD_REBUILDER_SNAPSHOT_OLD=$SNAP_OLD" >>"$tmp"
    echo "WORLD_REBUILDER_DISPUTED=$RB_DISPUTED" >>"$tmp"
    echo "WORLD_REBUILDER_UNKNOWN_ON_2=$RB_UNKNOWN_ON_RB2" >>"$tmp"
    mv "$tmp" "$ENV_FILE"
}

# Save the finished state (consistent sqlite copies, keys) under the cache key.
save_cache() {
    local key=$1 n c
    for n in "${NAMES[@]}"; do
        c=$CACHE/$key/$n
        mkdir -p "$c"
        sqlite3 "$STATE/$n/daemon/rebuilderd.db" ".backup '$c/rebuilderd.db.tmp'"
        mv "$c/rebuilderd.db.tmp" "$c/rebuilderd.db"
        cp "$STATE/$n/daemon/rebuilderd.sign.key" "$STATE/$n/auth-cookie" "$c/"
        cp "$STATE/$n/worker/rebuilder.v2.key" "$c/"
        echo "$ARCHIVE_URL" >"$c/archive-url"
    done
    # one cached state is enough: drop those of other inputs
    find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
    log "saved rebuilder state to $CACHE/$key"
}

# Restore a cached state; artifact URLs name the archive server, whose port may differ.
restore_cache() {
    local key=$1 n c old
    for n in "${NAMES[@]}"; do
        c=$CACHE/$key/$n
        cp "$c/rebuilderd.db" "$STATE/$n/daemon/rebuilderd.db"
        cp "$c/rebuilderd.sign.key" "$STATE/$n/daemon/"
        cp "$c/auth-cookie" "$STATE/$n/"
        cp "$c/rebuilder.v2.key" "$STATE/$n/worker/"
        old=$(cat "$c/archive-url")
        if [[ $old != "$ARCHIVE_URL" ]]; then
            sqlite3 "$STATE/$n/daemon/rebuilderd.db" \
                "UPDATE build_inputs SET url = replace(url, '$old/', '$ARCHIVE_URL/');
                 UPDATE binary_packages SET artifact_url = replace(artifact_url, '$old/', '$ARCHIVE_URL/');"
        fi
    done
    log "restored rebuilder state from $CACHE/$key"
}

# --- commands ---------------------------------------------------------------------------
declare -A STATUS_LINE

cmd_status() {
    local n
    for n in "${NAMES[@]}"; do
        [[ -f $STATE/$n/rebuilderd.conf ]] || continue
        echo "== $n $(instance_url "$n")"
        curl -fsS "$(instance_url "$n")/api/v1/packages/binary" |
            jq -r '.records[] | "\(.name) \(.version) \(.architecture) \(.status // "UNKWN")"' || true
    done
}

cmd_up() {
    local t0=$SECONDS
    ensure_tools
    load_world_env
    mkdir -p "$STATE" "$RUN" "$CACHE"
    local key; key=$(cache_key)

    # fast path: same inputs, everything running, nothing pending
    if [[ -f $STATE/key && $(cat "$STATE/key") == "$key" &&
        $(cat "$STATE/archive-url" 2>/dev/null) == "$ARCHIVE_URL" ]]; then
        local up=1 n
        for n in "${NAMES[@]}"; do
            alive "$n" "bin/rebuilderd " && alive "$n-worker" rebuilderd-worker || up=0
        done
        if [[ $up == 1 ]]; then
            local s q u t ok=1
            for n in "${NAMES[@]}"; do
                s=$(instance_done "$n") || { ok=0; break; }
                read -r q u t <<<"$s"
                [[ $q == 0 && $u == 0 && $t -gt 0 ]] || ok=0
            done
            if [[ $ok == 1 ]]; then
                write_env
                log "already up and done (key $key)"
                return 0
            fi
        fi
    fi

    stop_all
    # inputs changed or a fresh start: new state dirs, from the cache when it has this key;
    # the signing keys of daemon and worker outlive the state (stable public keys)
    local n secret port
    for n in "${NAMES[@]}"; do
        mkdir -p "$STATE/keys/$n"
        [[ -f $STATE/$n/daemon/rebuilderd.sign.key ]] && cp "$STATE/$n/daemon/rebuilderd.sign.key" "$STATE/keys/$n/"
        [[ -f $STATE/$n/worker/rebuilder.v2.key ]] && cp "$STATE/$n/worker/rebuilder.v2.key" "$STATE/keys/$n/"
    done
    rm -rf "${STATE:?}"/rb?
    declare -A used=()
    for n in "${NAMES[@]}"; do
        # keep a port across restarts when it is still free (stable URLs for hand use)
        port=""
        [[ -f $STATE/ports/$n ]] && port=$(cat "$STATE/ports/$n")
        if [[ -z $port ]] || ! port_free "$port" || [[ -n ${used[$port]:-} ]]; then
            port=$(free_port)
        fi
        used[$port]=1
        mkdir -p "$STATE/ports"; echo "$port" >"$STATE/ports/$n"
        secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
        setup_instance "$n" "$port" "$secret"
        [[ -f $STATE/keys/$n/rebuilderd.sign.key ]] && cp "$STATE/keys/$n/rebuilderd.sign.key" "$STATE/$n/daemon/"
        [[ -f $STATE/keys/$n/rebuilder.v2.key ]] && cp "$STATE/keys/$n/rebuilder.v2.key" "$STATE/$n/worker/"
    done

    local cached=0
    if [[ -f $CACHE/$key/rb3/rebuilderd.db ]]; then
        restore_cache "$key"
        cached=1
    fi
    for n in "${NAMES[@]}"; do start_instance "$n"; done
    if [[ $cached == 0 ]]; then
        import_instance rb1 "$SNAP_NEW"
        import_instance rb2 "$SNAP_NEW" --exclude "$RB_UNKNOWN_ON_RB2"
        import_instance rb3 "$SNAP_OLD"
    fi
    wait_done
    echo "$key" >"$STATE/key"
    echo "$ARCHIVE_URL" >"$STATE/archive-url"
    [[ $cached == 1 ]] || save_cache "$key"
    write_env
    log "up in $((SECONDS - t0))s: $(for n in "${NAMES[@]}"; do printf '%s=%s ' "$n" "$(instance_url "$n")"; done)"
}

# one up/down at a time per world (tests may run `world up` concurrently); the daemons and
# workers are started with fd 9 closed, so they do not hold the lock
if [[ ${1:-up} == up || ${1:-up} == down ]]; then
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w "$((TIMEOUT + 300))" 9 || die "another rebuilders.sh holds $STATE/.lock"
fi

case ${1:-up} in
    up) cmd_up ;;
    down) stop_all; log "stopped" ;;
    status) cmd_status ;;
    *) die "usage: $0 [up|down|status]" ;;
esac
