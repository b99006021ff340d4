"""Write the PrometheusRule of ``deploy/kubernetes/components/prometheus-rule`` from
``dli-monitor.rules.yml``, so the Operator object and the plain rules file never drift apart.

Run ``python deploy/prometheus/sync.py`` after editing the rules file; ``--check`` exits 1 if
the object is out of date (a test runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "dli-monitor.rules.yml"
TARGET = HERE.parent / "kubernetes" / "components" / "prometheus-rule" / "prometheusrule.yaml"
HEADER = (
    "# Generated from deploy/prometheus/dli-monitor.rules.yml by deploy/prometheus/sync.py:\n"
    "# edit the rules file, then run the script. `release` is the label kube-prometheus-stack's\n"
    "# default ruleSelector matches: set it to your Helm release name.\n"
)


class _BlockDumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML is untyped here
    """Multi-line strings (PromQL) as literal blocks, as they are written in the rules file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def render() -> str:
    """The PrometheusRule object, as text."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "dli-monitor", "labels": {"release": "kube-prometheus-stack"}},
        "spec": {"groups": rules["groups"]},
    }
    body: str = yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=1000)
    return HEADER + body


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
