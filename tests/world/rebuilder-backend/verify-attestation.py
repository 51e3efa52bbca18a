#!/usr/bin/python3
"""Verify a rebuilderd in-toto link attestation against Ed25519 public keys.

usage: verify-attestation.py LINK.json PUBKEY.pem... [--artifact FILE] [--require N]

The signed bytes are the in-toto canonical JSON of the "signed" object (keys sorted,
no whitespace, serde_json string escaping), as in-toto-rs 0.4 signs them. A key's
keyid is sha256 of the canonical JSON of {"keyid_hash_algorithms":["sha256","sha512"],
"keytype":"ed25519","keyval":{"public":HEX},"scheme":"ed25519"} (securesystemslib
compatible, what PublicKey::from_spki computes).

Prints one line per key; exit 0 when at least --require (default 1) of the given keys
signed the link validly (and the product hash matches --artifact), 1 otherwise.
"""
import hashlib
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
import base64


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def keyid(raw):
    shim = {"keyid_hash_algorithms": ["sha256", "sha512"], "keytype": "ed25519",
            "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
    return hashlib.sha256(canonical(shim)).hexdigest()


def ed25519_raw_from_pem(pem):
    """Raw 32-byte key from a PUBLIC KEY PEM. rebuilderd (in-toto-rs) writes the SPKI
    with an explicit NULL algorithm parameter (30 2c 30 07 06 03 2b6570 0500 03 21 00 ..),
    which OpenSSL's PEM loader rejects, so the DER is taken apart by hand."""
    text = pem.decode("ascii", "replace")
    m = re.search(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", text, re.S)
    if not m:
        return None
    der = base64.b64decode("".join(m.group(1).split()))
    if b"\x06\x03\x2b\x65\x70" not in der or der[-35:-32] != b"\x03\x21\x00":
        return None
    return der[-32:]


def main(argv):
    args, artifact, require = [], None, 1
    it = iter(argv)
    for a in it:
        if a == "--artifact":
            artifact = next(it)
        elif a == "--require":
            require = int(next(it))
        else:
            args.append(a)
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0], "rb") as f:
        link = json.load(f)
    signed = canonical(link["signed"])
    sigs = {s["keyid"]: bytes.fromhex(s["sig"]) for s in link["signatures"]}
    valid = 0
    for path in args[1:]:
        with open(path, "rb") as f:
            pems = f.read()
        raw = ed25519_raw_from_pem(pems)
        if raw is None:
            print(f"{path}: not an Ed25519 SPKI public key")
            continue
        key = Ed25519PublicKey.from_public_bytes(raw)
        kid = keyid(raw)
        if kid not in sigs:
            print(f"{path}: keyid {kid} did not sign")
            continue
        try:
            key.verify(sigs[kid], signed)
        except InvalidSignature:
            print(f"{path}: keyid {kid} signature INVALID")
            continue
        print(f"{path}: keyid {kid} signature valid")
        valid += 1
    ok = valid >= require
    if artifact is not None:
        import os
        name = os.path.basename(artifact)
        prod = link["signed"].get("products", {}).get(name)
        with open(artifact, "rb") as f:
            data = f.read()
        if prod is None:
            print(f"product {name} not in link")
            ok = False
        else:
            for alg, want in prod.items():
                got = hashlib.new(alg, data).hexdigest()
                if got != want:
                    print(f"product {name} {alg} mismatch: link {want} file {got}")
                    ok = False
                else:
                    print(f"product {name} {alg} matches")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
