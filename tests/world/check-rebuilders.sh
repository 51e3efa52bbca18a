#!/bin/bash
# Check the test world's three rebuilderd instances against the arranged statuses, through
# both APIs, and verify their signed attestations. Exit 0 = all hold, 1 = a mismatch,
# 2 = the world is not up. See tests/world/rebuilders.md.
#
#   tests/world/check-rebuilders.sh        (reads $WORLD_DIR/env)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
WORLD_DIR=${WORLD_DIR:-$(cd "$here/../.." && pwd)/target/world}
[[ -f $WORLD_DIR/env ]] || { echo "no $WORLD_DIR/env: world not up" >&2; exit 2; }
exec /usr/bin/python3 - "$WORLD_DIR" "$here/rebuilder-backend/verify-attestation.py" <<'EOF'
import io, json, os, subprocess, sys, tarfile, tempfile, urllib.error, urllib.request

world_dir, verifier = sys.argv[1:]
env = {}
for line in open(os.path.join(world_dir, "env")):
    line = line.strip()
    if line and not line.startswith("#") and "=" in line:
        k, v = line.split("=", 1)
        env[k] = v.strip().strip("'\"")

failures = []
def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond

def get(url, raw=False):
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return body if raw else json.loads(body)

try:
    rbs = []
    for i in (1, 2, 3):
        rbs.append({"name": env[f"WORLD_REBUILDER_{i}_NAME"], "url": env[f"WORLD_REBUILDER_{i}_URL"],
                    "pubkey": env[f"WORLD_REBUILDER_{i}_PUBKEY"]})
    snap_old, snap_new = env["WORLD_REBUILDER_SNAPSHOT_OLD"], env["WORLD_REBUILDER_SNAPSHOT_NEW"]
    disputed, unknown = env["WORLD_REBUILDER_DISPUTED"], env["WORLD_REBUILDER_UNKNOWN_ON_2"]
    archive_dir = env.get("WORLD_ARCHIVE_DIR", os.path.join(world_dir, "archive"))
except KeyError as e:
    print(f"missing {e} in {world_dir}/env: rebuilders not up", file=sys.stderr)
    sys.exit(2)

def snapshot(snap):
    """{(name, version, arch): filename} from the snapshot's sync dbs."""
    out = {}
    base = os.path.join(archive_dir, "repos", snap)
    for repo in sorted(os.listdir(base)):
        db = os.path.join(base, repo, "os", "x86_64", f"{repo}.db")
        with tarfile.open(db) as t:
            for m in t.getmembers():
                if not m.name.endswith("/desc"):
                    continue
                f, key, vals = {}, None, []
                for l in t.extractfile(m).read().decode().split("\n") + [""]:
                    if l.startswith("%") and l.endswith("%"):
                        key, vals = l.strip("%"), []
                    elif l == "":
                        if key:
                            f[key] = vals
                        key = None
                    else:
                        vals.append(l)
                out[(f["NAME"][0], f["VERSION"][0], f["ARCH"][0])] = (repo, f["FILENAME"][0])
    return out

old, new = snapshot(snap_old), snapshot(snap_new)
expected = {"rb1": new, "rb2": {k: v for k, v in new.items() if k[0] != unknown}, "rb3": old}

def expected_status(rb, name):
    if name == "randomized":
        return "BAD"
    if name == disputed and rb == "rb2":
        return "BAD"
    return "GOOD"

records = {}
for rb in rbs:
    n, url = rb["name"], rb["url"]
    v1 = get(f"{url}/api/v1/packages/binary")
    check(v1["total"] == len(v1["records"]), f"{n}: v1 total {v1['total']} = records")
    v1set = {(r["name"], r["version"], r["architecture"]): r for r in v1["records"]}
    v0 = get(f"{url}/api/v0/pkgs/list")
    v0set = {(r["name"], r["version"], r["architecture"]): r for r in v0}
    records[n] = v1set
    exp = expected[n]
    check(set(v1set) == set(exp), f"{n}: v1 /api/v1/packages/binary lists exactly its snapshot's "
          f"{len(exp)} packages (got {len(v1set)})")
    check(set(v0set) == set(v1set), f"{n}: v0 /api/v0/pkgs/list lists the same packages as v1")
    for key, r in sorted(v1set.items()):
        want = expected_status(n, key[0])
        check(r["status"] == want, f"{n}: {key[0]} {key[1]} {key[2]} v1 status {r['status']} (want {want})")
        if key in v0set:
            check(v0set[key]["status"] == r["status"],
                  f"{n}: {key[0]} v0 status {v0set[key]['status']} = v1")
            if key in exp:
                check(v0set[key]["artifact_url"].endswith("/" + exp[key][1]),
                      f"{n}: {key[0]} artifact_url names {exp[key][1]}")

def status_of(rb, name):
    rs = [(k[1], r["status"]) for k, r in records[rb].items() if k[0] == name]
    return rs

# the arranged cases, stated once more by package
print("-- arranged cases")
for rb in ("rb1", "rb2", "rb3"):
    check([s for _, s in status_of(rb, "filesystem")] == ["GOOD"], f"filesystem GOOD on {rb}")
    check([s for _, s in status_of(rb, "randomized")] == ["BAD"], f"randomized BAD on {rb}")
d1, d2, d3 = status_of("rb1", disputed), status_of("rb2", disputed), status_of("rb3", disputed)
check(len(d1) == len(d2) == len(d3) == 1 and d1[0][0] == d2[0][0] == d3[0][0] and
      (d1[0][1], d2[0][1], d3[0][1]) == ("GOOD", "BAD", "GOOD"),
      f"{disputed} disputed: the same version GOOD on rb1 and rb3, BAD on rb2 ({d1} {d2} {d3})")
check(status_of("rb2", unknown) == [] and status_of("rb1", unknown) and status_of("rb3", unknown),
      f"{unknown} unknown to rb2, known to rb1 and rb3")
changed = [n for n in sorted({k[0] for k in new} & {k[0] for k in old})
           if {k[1] for k in new if k[0] == n} != {k[1] for k in old if k[0] == n}]
check(len(changed) > 0, f"snapshots {snap_old} and {snap_new} differ in versions of: {', '.join(changed)}")
for name in changed:
    v1_, v3_ = status_of("rb1", name), status_of("rb3", name)
    check(v1_ and v3_ and {v for v, _ in v1_}.isdisjoint({v for v, _ in v3_}),
          f"{name}: rb3 has only {[v for v, _ in v3_]}, rb1 has {[v for v, _ in v1_]}")

# attestations and keys
print("-- attestations")
tmp = tempfile.mkdtemp(prefix="check-rebuilders.")
for rb in rbs:
    n, url = rb["name"], rb["url"]
    keys1 = get(f"{url}/api/v1/meta/public-keys")["current"]
    keys0 = get(f"{url}/api/v0/public-keys")["current"]
    pinned = open(rb["pubkey"]).read()
    check(keys1 == keys0 and len(keys1) == 1, f"{n}: v0 and v1 public-keys agree (one key)")
    check(keys1[0].replace("\r\n", "\n").strip() == pinned.replace("\r\n", "\n").strip(),
          f"{n}: public key = the one recorded at bring-up ({rb['pubkey']})")
    fs = [r for k, r in records[n].items() if k[0] == "filesystem"]
    if not check(len(fs) == 1 and fs[0]["attestation_log_id"] is not None, f"{n}: filesystem has an attestation"):
        continue
    r = fs[0]
    link = get(f"{url}/api/v1/builds/{r['build_id']}/artifacts/{r['artifact_id']}/attestation", raw=True)
    lp = os.path.join(tmp, f"{n}.link")
    open(lp, "wb").write(link)
    key = (r["name"], r["version"], r["architecture"])
    repo, fn = expected[n][key]
    art = os.path.join(tmp, fn)
    with open(os.path.join(archive_dir, "repos", snap_new if n != "rb3" else snap_old, repo, "os", "x86_64", fn)
              if os.path.exists(os.path.join(archive_dir, "repos", snap_new if n != "rb3" else snap_old, repo, "os", "x86_64", fn))
              else os.path.join(archive_dir, "packages", r["name"][0], r["name"], fn), "rb") as f:
        open(art, "wb").write(f.read())
    doc = json.loads(link)
    check(doc["signed"]["_type"] == "link" and doc["signed"]["name"] == f"rebuild {fn}",
          f"{n}: attestation is an in-toto link named 'rebuild {fn}'")
    check(len(doc["signatures"]) == 2, f"{n}: link signed by the worker and by rebuilderd ({len(doc['signatures'])} signatures)")
    p = subprocess.run([verifier, lp, rb["pubkey"], "--artifact", art], capture_output=True, text=True)
    print(p.stdout, end="")
    check(p.returncode == 0, f"{n}: attestation signature valid with {n}'s key, product sha256/sha512 = {fn}")
    other = rbs[(rbs.index(rb) + 1) % 3]
    p = subprocess.run([verifier, lp, other["pubkey"]], capture_output=True, text=True)
    check(p.returncode == 1, f"{n}: attestation does NOT verify with {other['name']}'s key")
    v0link = get(f"{url}/api/v0/builds/{r['build_id']}/attestation")
    check(v0link["signed"] == doc["signed"], f"{n}: v0 /api/v0/builds/{{id}}/attestation gives the same link")
    # a BAD build has a log and a diffoscope (diffoscope-minimal is installed by
    # scripts/install-test-deps, so its absence is a failure, not a skip)
    bad = [r for k, r in records[n].items() if k[0] == "randomized"]
    check(bool(bad) and bad[0]["build_id"] is not None, f"{n}: randomized has a build")
    if bad and bad[0]["build_id"] is not None:
        b = bad[0]
        logtxt = get(f"{url}/api/v1/builds/{b['build_id']}/log", raw=True)
        check(b"rebuild-makepkg" in logtxt, f"{n}: randomized build log available ({len(logtxt)} bytes)")
        check(b["attestation_log_id"] is None, f"{n}: no attestation for the BAD randomized build")
        check(b["diffoscope_log_id"] is not None, f"{n}: randomized has a diffoscope")
        if b["diffoscope_log_id"] is not None:
            d = get(f"{url}/api/v1/builds/{b['build_id']}/artifacts/{b['artifact_id']}/diffoscope", raw=True)
            check(len(d) > 0, f"{n}: randomized diffoscope available ({len(d)} bytes)")

print()
if failures:
    print(f"{len(failures)} check(s) FAILED")
    sys.exit(1)
print("all rebuilder checks hold")
EOF
