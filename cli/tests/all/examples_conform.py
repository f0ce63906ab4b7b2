"""Checks every example in an OpenAPI 3.0 document against its schema.

Usage: python examples_conform.py DOCUMENT.json
Prints one line per example that does not conform and exits 1 if any.
"""

import json
import sys

from jsonschema_rs import Draft4Validator


def resolve(node, doc, seen=()):
    """The schema with its `$ref`s inlined and OpenAPI's `nullable` as
    JSON Schema's null type."""
    if isinstance(node, list):
        return [resolve(n, doc, seen) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise ValueError(f"recursive schema {ref}")
        target = doc
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        return resolve(target, doc, seen + (ref,))
    schema = {k: resolve(v, doc, seen) for k, v in node.items() if k not in ("nullable", "example", "examples")}
    # OpenAPI keywords JSON Schema does not know.
    for k in ("discriminator", "xml", "externalDocs", "deprecated", "readOnly", "writeOnly"):
        schema.pop(k, None)
    if node.get("nullable"):
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def examples_of(media):
    if "example" in media:
        yield "example", media["example"]
    for name, ex in media.get("examples", {}).items():
        yield name, ex["value"]


def main():
    doc = json.load(open(sys.argv[1]))
    checked, bad = 0, []
    methods = ("get", "put", "post", "delete", "patch")
    for path, item in doc["paths"].items():
        params = list(item.get("parameters", []))
        for method, op in item.items():
            if method not in methods:
                continue
            where = f"{method.upper()} {path}"
            places = []
            for p in params + op.get("parameters", []):
                if "example" in p:
                    places.append((f"{where} parameter {p['name']}", p["schema"], p["example"]))
            for media_type, media in op.get("requestBody", {}).get("content", {}).items():
                for name, value in examples_of(media):
                    places.append((f"{where} request {media_type} {name}", media.get("schema", {}), value))
            for status, response in op["responses"].items():
                for media_type, media in response.get("content", {}).items():
                    for name, value in examples_of(media):
                        places.append((f"{where} {status} {media_type} {name}", media.get("schema", {}), value))
            for place, schema, value in places:
                checked += 1
                schema = resolve(schema, doc)
                if schema.get("format") == "binary":
                    continue
                for error in Draft4Validator(schema).iter_errors(value):
                    bad.append(f"{place}: {error.message} at {list(error.instance_path)}")
    for line in bad:
        print(line)
    print(f"checked {checked} examples, {len(bad)} do not conform")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
