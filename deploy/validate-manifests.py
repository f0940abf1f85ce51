#!/usr/bin/python3
"""Validates Kubernetes manifests offline against deploy/schemas/k8s-api-subset.yaml.

Every object must be of a kind the subset knows, and every field must be one the API
defines for that place: unknown fields are errors, as with `kubectl --validate=strict`.
Usage: validate-manifests.py FILE.yaml... (multi-document files are fine; "-" reads stdin).
Exit status 0 when every object validates, 1 otherwise.
"""

import pathlib
import sys

import jsonschema
import yaml

SCHEMA_FILE = pathlib.Path(__file__).resolve().parent / "schemas" / "k8s-api-subset.yaml"


def load_schema(path=SCHEMA_FILE):
    doc = yaml.safe_load(path.read_text())
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["$defs"]})
    return doc


def validate_object(schema_doc, obj):
    """Returns a list of error strings for one object (empty when valid)."""
    if not isinstance(obj, dict):
        return [f"not a mapping: {type(obj).__name__}"]
    key = f"{obj.get('apiVersion')}/{obj.get('kind')}"
    kind_def = schema_doc["kinds"].get(key)
    if kind_def is None:
        return [f"unknown apiVersion/kind {key!r}"]
    schema = {"$defs": schema_doc["$defs"], "$ref": f"#/$defs/{kind_def}"}
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(object)"
        errors.append(f"{where}: {err.message}")
    return errors


def validate_text(schema_doc, text, label):
    failures = []
    count = 0
    for i, obj in enumerate(yaml.safe_load_all(text)):
        if obj is None:
            continue
        count += 1
        name = obj.get("metadata", {}).get("name", "?") if isinstance(obj, dict) else "?"
        kind = obj.get("kind", "?") if isinstance(obj, dict) else "?"
        for e in validate_object(schema_doc, obj):
            failures.append(f"{label}: document {i} ({kind} {name}): {e}")
    return count, failures


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    schema_doc = load_schema()
    total = 0
    failures = []
    for arg in argv:
        text = sys.stdin.read() if arg == "-" else pathlib.Path(arg).read_text()
        n, f = validate_text(schema_doc, text, arg)
        total += n
        failures += f
    for f in failures:
        print(f)
    print(f"validate-manifests: {total} objects, {len(failures)} errors")
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
