"""Validate SBOMs with the official tools: spdx-tools (SPDX 2.3) and cyclonedx-python-lib's
strict JSON schema validator (CycloneDX 1.6). Usage: validate.py spdx|cyclonedx FILE...
Prints every problem and exits 1 if any file is invalid."""
import sys

kind, files = sys.argv[1], sys.argv[2:]
bad = False
for f in files:
    if kind == "spdx":
        from spdx_tools.spdx.parser.parse_anything import parse_file
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

        msgs = validate_full_spdx_document(parse_file(f))
        for m in msgs:
            print(f"{f}: {m.validation_message}")
        bad |= bool(msgs)
    elif kind == "cyclonedx":
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator

        import json
        from packageurl import PackageURL

        text = open(f).read()
        err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
        if err:
            data = getattr(err, "data", None)
            where = "/".join(str(x) for x in getattr(data, "absolute_path", []))
            print(f"{f}: {getattr(data, 'message', err)} (at /{where})")
            bad = True
        # The reference purl implementation must decode each package's purl to its name
        # and version.
        for c in json.loads(text).get("components", []):
            if "purl" not in c:
                continue
            p = PackageURL.from_string(c["purl"])
            if (p.type, p.namespace, p.name, p.version) != ("alpm", "arch", c["name"].lower(), c["version"]):
                print(f"{f}: purl {c['purl']} decodes to {p.to_dict()}")
                bad = True
    else:
        sys.exit(f"unknown kind {kind}")
sys.exit(1 if bad else 0)
