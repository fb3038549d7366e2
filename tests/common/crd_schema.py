"""Validates Kubernetes objects against a CustomResourceDefinition's openAPIV3Schema the way
the API server's structural schema treats them, unknown fields included.

Usage: crd_schema.py CRD.yaml VERSION < objects.json
objects.json is a JSON list of [name, object]. Prints a JSON list of [name, error] for every
object that does not validate (empty when all do); exits 0 unless the input itself is unusable.

The API server prunes (or, with strict field validation, refuses) fields a structural schema
does not declare: every object schema gets `additionalProperties: false` unless it declares
`additionalProperties` itself or `x-kubernetes-preserve-unknown-fields: true`. The root also
accepts `apiVersion`, `kind` and `metadata` (ObjectMeta: name, labels, annotations here).
"""

import json
import sys

import jsonschema
import yaml

try:
    Loader = yaml.CSafeLoader
except AttributeError:
    Loader = yaml.SafeLoader


def structural(schema):
    """A copy of `schema` where undeclared properties are errors."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items()}
    is_object = out.get("type") == "object" or "properties" in out
    if (
        is_object
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
    "required": ["name"],
}


def root_schema(crd, version):
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = structural(v["schema"]["openAPIV3Schema"])
            props = schema.setdefault("properties", {})
            group = crd["spec"]["group"]
            props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version}"]}
            props["kind"] = {"type": "string", "enum": [crd["spec"]["names"]["kind"]]}
            props["metadata"] = OBJECT_META
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
            return schema
    raise SystemExit(f"no version {version} in the CRD")


def main():
    crd_path, version = sys.argv[1], sys.argv[2]
    with open(crd_path, encoding="utf-8") as f:
        crds = [d for d in yaml.load_all(f, Loader=Loader) if d and d.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise SystemExit(f"{crd_path}: expected one CustomResourceDefinition, found {len(crds)}")
    validator = jsonschema.Draft7Validator(root_schema(crds[0], version))
    errors = []
    for name, obj in json.load(sys.stdin):
        problems = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if problems:
            errors.append([name, "; ".join(
                f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in problems
            )])
    json.dump(errors, sys.stdout)


main()
