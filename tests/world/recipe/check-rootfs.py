#!/usr/bin/env python3
"""Checks a repro rootfs tarball against the facts DESIGN.md states about the real pipeline.

    check-rootfs.py REPRO_TAR SDE [--base BASE_TAR] [--sync-db DB ...] [--run-layer TAR]

Prints one line per fact (ok/FAIL) and exits 1 if any fails. Facts:
  - every entry uid/gid 0 with empty names (owners set by pacman are lost; --numeric-owner);
  - every mtime == SDE (touch + --clamp-mtime); no atime/ctime pax records;
  - pax extended headers only where needed, named <dir>/PaxHeaders/<name> (%d/PaxHeaders/%f);
  - the archive is a whole number of 10240-byte records; hardlinks are type-1 entries;
  - every entry of every package's local-db mtree that is in the tar has the mtree's mode,
    except directories, which come out with the owner's rwx added (0555 -> 0755);
  - every %INSTALLDATE% == SDE (and, with --base, != SDE there);
  - NoExtract: nothing under usr/share/{man,info,doc}/, only en*/C/POSIX locales;
  - no etc/ld.so.cache in the rootfs (libalpm's ldconfig does not write it); with --run-layer,
    the image's RUN layer has it;
  - with --sync-db: the local db holds base and the closure of its dependencies.
"""
import argparse, gzip, io, re, sys, tarfile

fails = 0
def check(cond, msg):
    global fails
    print(("ok:   " if cond else "FAIL: ") + msg)
    if not cond:
        fails += 1

def raw_headers(path):
    """(typeflag, name) of every header block, pax headers included, in archive order."""
    out = []
    with open(path, 'rb') as f:
        data = f.read()
    off = 0
    while off + 512 <= len(data):
        h = data[off:off + 512]
        if h == b'\0' * 512:
            break
        name = h[0:100].split(b'\0')[0]
        prefix = h[345:500].split(b'\0')[0] if h[257:263] == b'ustar\x00' else b''
        if prefix:
            name = prefix + b'/' + name
        size = int(h[124:136].split(b'\0')[0].strip() or b'0', 8)
        typ = chr(h[156]) if h[156] else '0'
        body = data[off + 512: off + 512 + size]
        out.append((typ, name.decode('utf-8', 'replace'), body))
        off += 512 + (size + 511) // 512 * 512
    return out, len(data)

def mtree_entries(raw):
    text = gzip.decompress(raw).decode('utf-8', 'replace')
    defaults = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        parts = line.split()
        if parts[0] == '/set':
            for kv in parts[1:]:
                k, _, v = kv.partition('=')
                defaults[k] = v
            continue
        if parts[0] == '/unset':
            continue
        name = re.sub(rb'\\([0-7]{3})', lambda m: bytes([int(m.group(1), 8)]), parts[0].encode()).decode('utf-8')
        kv = dict(defaults)
        for p in parts[1:]:
            k, _, v = p.partition('=')
            kv[k] = v
        if name.startswith('./.') and '/' not in name[2:]:
            continue  # .PKGINFO, .BUILDINFO, .INSTALL
        yield name, kv

def parse_desc(text):
    out, key = {}, None
    for line in text.splitlines():
        if line.startswith('%') and line.endswith('%'):
            key = line.strip('%'); out[key] = []
        elif line and key:
            out[key].append(line)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('tar'); ap.add_argument('sde', type=int)
    ap.add_argument('--base'); ap.add_argument('--sync-db', action='append', default=[])
    ap.add_argument('--run-layer')
    a = ap.parse_args()

    hdrs, size = raw_headers(a.tar)
    check(size % 10240 == 0, f"archive size {size} is a multiple of 10240 (GNU tar records)")
    pax = [(n, b) for t, n, b in hdrs if t == 'x']
    # GNU tar names a pax header "%d/PaxHeaders/%f" (dirname, basename of the member), cut to
    # the 100 bytes of the ustar name field.
    badpax = []
    for i, (t, n, b) in enumerate(hdrs):
        if t != 'x':
            continue
        recs_ = dict(r.split('=', 1) for r in re.findall(r'\d+ ([^\n]*)\n', b.decode('utf-8', 'replace')))
        member = recs_.get('path') or hdrs[i + 1][1]
        m = member.rstrip('/')
        d, _, f = m.rpartition('/')
        want = (d + '/PaxHeaders/' + f).encode()[:100].decode('utf-8', 'ignore')
        if n != want and n.encode()[:100] != (d + '/PaxHeaders/' + f).encode()[:100]:
            badpax.append(f"{n!r} for {member!r}")
    check(not badpax, f"{len(pax)} pax headers, each named <dir>/PaxHeaders/<name> (cut to 100 bytes)" + ("" if not badpax else ": " + "; ".join(badpax[:5])))
    recs = b''.join(b for _, b in pax)
    check(b' atime=' not in recs and b' ctime=' not in recs, "no atime/ctime pax records")
    check(not any(t == 'g' for t, _, _ in hdrs), "no global pax header")

    tf = tarfile.open(a.tar)
    members = tf.getmembers()
    by = {m.name[2:] if m.name.startswith('./') else m.name: m for m in members}
    check(all(m.uid == 0 and m.gid == 0 and m.uname == '' and m.gname == '' for m in members),
          f"all {len(members)} entries uid/gid 0, no owner names")
    check(all(m.mtime == a.sde for m in members), f"all mtimes == SDE {a.sde}")
    hl = [m for m in members if m.islnk()]
    check(True, f"{len(hl)} hardlink (type-1) entries")
    check(all(m.mode & 0o7777 != 0o555 for m in members if m.isdir()), "no 0555 directory")

    locals_ = sorted({n.split('/')[4] for n in by if n.startswith('var/lib/pacman/local/') and n.count('/') >= 5})
    check(len(locals_) > 0, f"{len(locals_)} packages in the local db")
    dates = {}
    for p in locals_:
        d = parse_desc(tf.extractfile(by[f'var/lib/pacman/local/{p}/desc']).read().decode())
        dates[p] = int(d['INSTALLDATE'][0])
    check(all(v == a.sde for v in dates.values()), f"%INSTALLDATE% == SDE in all {len(dates)} desc files")

    # modes against the packages' mtrees
    seen = {'dir0555': 0, 'file0444': 0, 'file0400': 0, 'setid': 0, 'sticky': 0, 'nonroot': 0}
    bad = []
    for p in locals_:
        mt = f'var/lib/pacman/local/{p}/mtree'
        if mt not in by:
            continue
        for name, kv in mtree_entries(tf.extractfile(by[mt]).read()):
            path = name[2:]
            m = by.get(path) or by.get(path + '/')
            if m is None or 'mode' not in kv:
                continue
            want = int(kv['mode'], 8)
            if kv.get('uid', '0') != '0' or kv.get('gid', '0') != '0':
                seen['nonroot'] += 1
            if kv.get('type') == 'dir':
                if want & 0o777 == 0o555: seen['dir0555'] += 1
                want |= 0o700
            elif kv.get('type') == 'file':
                if want & 0o777 == 0o444: seen['file0444'] += 1
                if want & 0o777 == 0o400: seen['file0400'] += 1
                if want & 0o6000: seen['setid'] += 1
            if want & 0o1000: seen['sticky'] += 1
            if kv.get('type') == 'link':
                continue
            if (m.mode & 0o7777) != want:
                bad.append(f"{path}: tar {m.mode:04o} want {want:04o}")
    check(not bad, "modes match the mtrees (dirs with u+rwx added)" + ("" if not bad else ": " + "; ".join(bad[:10])))
    print("info: mtree entries seen: " + ", ".join(f"{k}={v}" for k, v in seen.items()))

    names = list(by)
    check(not any(re.match(r'usr/share/(man|info|doc)/.', n) for n in names), "NoExtract: no files under usr/share/{man,info,doc}/")
    loc = sorted({n.split('/')[3] for n in names if n.startswith('usr/share/locale/') and n.count('/') >= 4 and by[n].isdir()})
    check(all(re.match(r'^(en.*|C|POSIX|locale\.alias)$', l) for l in loc), f"NoExtract: locales kept: {loc}")
    check('etc/ld.so.cache' not in by, "no etc/ld.so.cache in the rootfs")
    check(by.get('etc/shadow') is not None and not tf.extractfile(by['etc/shadow']).read().startswith(b'root::'), "etc/shadow: root has no empty password")
    check(not any(n.startswith('etc/pacman.d/gnupg/') and len(n) > len('etc/pacman.d/gnupg/') for n in names), "etc/pacman.d/gnupg/ is empty")

    if a.run_layer:
        rl = tarfile.open(a.run_layer)
        check('etc/ld.so.cache' in rl.getnames(), "the image's RUN layer has etc/ld.so.cache")

    if a.base:
        bt = tarfile.open(a.base)
        bdates = []
        for m in bt.getmembers():
            if re.match(r'^(\./)?var/lib/pacman/local/[^/]+/desc$', m.name):
                bdates.append(int(parse_desc(bt.extractfile(m).read().decode())['INSTALLDATE'][0]))
        check(bdates and all(d != a.sde for d in bdates), f"base rootfs: %INSTALLDATE% is the wall clock ({sorted(set(bdates))[:3]}), not SDE")

    if a.sync_db:
        pkgs, provides = {}, {}
        for db in a.sync_db:
            with tarfile.open(db) as t:
                for m in t.getmembers():
                    if m.name.endswith('/desc'):
                        d = parse_desc(t.extractfile(m).read().decode())
                        n = d['NAME'][0]
                        pkgs[n] = d
                        for pr in d.get('PROVIDES', []):
                            provides.setdefault(re.split(r'[<>=]', pr)[0], n)
        want, todo = set(), ['base']
        while todo:
            n = todo.pop()
            n = n if n in pkgs else provides.get(n, n)
            if n in want: continue
            want.add(n)
            todo += [re.split(r'[<>=]', d)[0] for d in pkgs.get(n, {}).get('DEPENDS', [])]
        have = {p.rsplit('-', 2)[0] for p in locals_}
        check(want == have, f"local db == base + its dependency closure ({len(want)} packages)" +
              ("" if want == have else f": missing {sorted(want - have)}, extra {sorted(have - want)}"))
    return 1 if fails else 0

sys.exit(main())
