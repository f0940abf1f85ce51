#!/usr/bin/python3
"""Renders the lbcsi Helm chart without Helm, for the template subset the chart uses.

Helm is not packaged for Debian 12, so this script keeps the chart and the plain manifests
in deploy/manifests/ in step: `render-chart.py --write` regenerates them, and the test
deploy_chart_in_step checks that the committed manifests equal a fresh rendering.

The subset (anything else is an error, so the chart cannot drift into syntax this script
does not understand; each construct means exactly what it means to Helm):
  {{ .Values.a.b }}  {{ .Release.Namespace }}  {{ .Release.Name }}
  {{ .Chart.Name }}  {{ .Chart.Version }}  {{ .Chart.AppVersion }}
  {{- if COND }} ... {{- else }} ... {{- end }}
      COND: a value path, `not PATH`, or `eq PATH "literal"`
  {{- toYaml PATH | nindent N }}
  {{/* comment */}}
  "{{-" trims the whitespace before the action, "-}}" the whitespace after it.
Truthiness follows Go templates: false, 0, "", empty list/map and missing are false.
A value path that does not exist is an error (Helm would print "<no value>").
"""

import argparse
import difflib
import pathlib
import re
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
CHART = HERE / "helm" / "lbcsi"
MANIFESTS = HERE / "manifests"
# Renderings committed to deploy/manifests/: file name -> value overrides.
VARIANTS = {
    "lbcsi-host-mode.yaml": {"helper.mode": "host"},
    "lbcsi-container-mode.yaml": {"helper.mode": "container"},
}
DEFAULT_NAMESPACE = "kube-system"
DEFAULT_RELEASE = "lbcsi"

ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
PATH = r"\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
STRING = r'"(?:[^"\\]|\\.)*"'


class TemplateError(Exception):
    pass


def tokenize(text, name):
    """Splits a template into ('text', s) and ('action', s) tokens, applying trim markers."""
    tokens = []
    pos = 0
    for m in ACTION.finditer(text):
        tokens.append(["text", text[pos:m.start()]])
        if m.group(1) == "-":
            tokens[-1][1] = tokens[-1][1].rstrip(" \t\r\n")
        body = m.group(2)
        if (m.group(1) == "-" and not body.startswith(" ")) or (
                m.group(3) == "-" and not body.endswith(" ")):
            raise TemplateError(f"{name}: trim marker needs a space: {m.group(0)!r}")
        tokens.append(["action", body.strip(), m.group(3) == "-"])
        pos = m.end()
    tokens.append(["text", text[pos:]])
    # "-}}" trims the whitespace that follows.
    for i, tok in enumerate(tokens):
        if tok[0] == "action" and tok[2] and i + 1 < len(tokens):
            tokens[i + 1][1] = tokens[i + 1][1].lstrip(" \t\r\n")
    return [(t[0], t[1]) for t in tokens]


def parse(tokens, name):
    """Builds a tree: list of str | ('expr', s) | ('if', cond, then, else)."""
    stack = [{"body": [], "kind": "root"}]
    for kind, value in tokens:
        top = stack[-1]
        if kind == "text":
            if value:
                top["body"].append(value)
            continue
        if value.startswith("/*") and value.endswith("*/"):
            continue
        if value.startswith("if "):
            stack.append({"kind": "if", "cond": value[3:].strip(), "then": [], "else": None,
                          "body": None})
            stack[-1]["body"] = stack[-1]["then"]
        elif value == "else":
            if top["kind"] != "if" or top["else"] is not None:
                raise TemplateError(f"{name}: stray else")
            top["else"] = []
            top["body"] = top["else"]
        elif value == "end":
            if top["kind"] != "if":
                raise TemplateError(f"{name}: stray end")
            stack.pop()
            stack[-1]["body"].append(("if", top["cond"], top["then"], top["else"] or []))
        else:
            top["body"].append(("expr", value))
    if len(stack) != 1:
        raise TemplateError(f"{name}: unclosed if")
    return stack[0]["body"]


def lookup(ctx, path, name):
    node = ctx
    for part in path.lstrip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            raise TemplateError(f"{name}: no value at {path}")
        node = node[part]
    return node


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "" or v == [] or v == {})


def go_format(v, name, path):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    raise TemplateError(f"{name}: {path} is a {type(v).__name__}; use toYaml")


def condition(ctx, cond, name):
    m = re.fullmatch(rf"({PATH})", cond)
    if m:
        return truthy(lookup(ctx, m.group(1), name))
    m = re.fullmatch(rf"not\s+({PATH})", cond)
    if m:
        return not truthy(lookup(ctx, m.group(1), name))
    m = re.fullmatch(rf"eq\s+({PATH})\s+({STRING})", cond)
    if m:
        return lookup(ctx, m.group(1), name) == yaml.safe_load(m.group(2))
    raise TemplateError(f"{name}: unsupported condition {cond!r}")


def expression(ctx, expr, name):
    m = re.fullmatch(rf"({PATH})", expr)
    if m:
        return go_format(lookup(ctx, m.group(1), name), name, m.group(1))
    m = re.fullmatch(rf"toYaml\s+({PATH})\s*\|\s*nindent\s+(\d+)", expr)
    if m:
        value = lookup(ctx, m.group(1), name)
        dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")
        pad = " " * int(m.group(2))
        return "\n" + "\n".join(pad + line if line else line for line in dumped.split("\n"))
    raise TemplateError(f"{name}: unsupported action {{{{ {expr} }}}}")


def evaluate(ctx, tree, name):
    out = []
    for node in tree:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "expr":
            out.append(expression(ctx, node[1], name))
        else:
            _, cond, then, other = node
            out.append(evaluate(ctx, then if condition(ctx, cond, name) else other, name))
    return "".join(out)


def set_value(values, dotted, raw):
    keys = dotted.split(".")
    node = values
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if keys[-1] not in node:
        raise TemplateError(f"--set {dotted}: no such value in values.yaml")
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""


def render(chart=CHART, overrides=None, namespace=DEFAULT_NAMESPACE, release=DEFAULT_RELEASE):
    """Returns the rendered manifest text for the chart with overrides {path: value}."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    for k, v in (overrides or {}).items():
        set_value(values, k, v if isinstance(v, str) else yaml.safe_dump(v))
    ctx = {
        "Values": values,
        "Release": {"Namespace": namespace, "Name": release, "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"],
                  "AppVersion": meta.get("appVersion", "")},
    }
    parts = [f"# Generated by deploy/render-chart.py from deploy/helm/{meta['name']}; "
             "do not edit by hand.\n"]
    if overrides:
        parts.append("# Values: " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
                     + "\n")
    for path in sorted((chart / "templates").glob("*.yaml")):
        name = f"templates/{path.name}"
        text = evaluate(ctx, parse(tokenize(path.read_text(), name), name), name)
        docs = [d for d in re.split(r"^---[ \t]*$", text, flags=re.M)]
        for doc in docs:
            if yaml.safe_load(doc) is None:
                continue  # comment-only or empty (e.g. a disabled template)
            parts.append(f"---\n# Source: {meta['name']}/{name}\n{doc.strip(chr(10))}\n")
    rendered = "".join(parts)
    for doc in yaml.safe_load_all(rendered):  # the output must be valid YAML
        if doc is not None and not isinstance(doc, dict):
            raise TemplateError(f"rendered document is not a mapping: {doc!r}")
    return rendered


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chart", type=pathlib.Path, default=CHART)
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                    help="override a value (YAML scalar), e.g. helper.mode=container")
    ap.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    ap.add_argument("--release", default=DEFAULT_RELEASE)
    ap.add_argument("--write", action="store_true",
                    help="regenerate every committed rendering in deploy/manifests/")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a committed rendering differs from a fresh one")
    ap.add_argument("--manifests", type=pathlib.Path, default=MANIFESTS)
    args = ap.parse_args(argv)
    try:
        if args.write or args.check:
            failed = False
            for fname, overrides in VARIANTS.items():
                fresh = render(args.chart, overrides, args.namespace, args.release)
                target = args.manifests / fname
                if args.write:
                    target.write_text(fresh)
                    print(f"wrote {target}")
                    continue
                old = target.read_text() if target.exists() else ""
                if old != fresh:
                    failed = True
                    sys.stdout.writelines(difflib.unified_diff(
                        old.splitlines(True), fresh.splitlines(True), str(target), "rendered"))
                    print(f"{target} is out of step with the chart; run "
                          "deploy/render-chart.py --write")
                else:
                    print(f"{target}: in step")
            return 1 if failed else 0
        overrides = {}
        for item in args.set:
            k, sep, v = item.partition("=")
            if not sep:
                ap.error(f"--set {item}: want PATH=VALUE")
            overrides[k] = v
        sys.stdout.write(render(args.chart, overrides, args.namespace, args.release))
        return 0
    except TemplateError as e:
        print(f"render-chart: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
