"""JUnit XML for CI systems (GitLab, Jenkins, GitHub test reporters): one test case per comparison.

Written with the standard library's ElementTree: the format is five elements, not worth a dependency.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from seadeploy.fileio import write_text


def junit_xml(cases: Iterable[tuple[str, str, list[str], str]], suite: str = "seadeploy.validate") -> str:
    """XML text for ``(classname, name, failures, details)`` cases; a case with failures is a failed test."""
    cases = list(cases)
    root = ET.Element("testsuites")
    failed = sum(1 for c in cases if c[2])
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failed), errors="0",
                       skipped="0")
    for classname, name, failures, details in cases:
        tc = ET.SubElement(ts, "testcase", classname=classname, name=name, time="0")
        if failures:
            node = ET.SubElement(tc, "failure", message=failures[0], type="ParityFailure")
            node.text = "\n".join(failures) + ("\n\n" + details if details else "")
        elif details:
            ET.SubElement(tc, "system-out").text = details
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | os.PathLike, report) -> Path:
    """Atomically write the JUnit XML of a :class:`~seadeploy.validate.report.ParityReport` (or MatrixReport)."""
    cases = []
    for c in report.comparisons:
        metrics = ", ".join(f"{k}={c.metrics.get(k):.6g}" for k in ("max_abs", "mean_abs", "cosine", "top1", "accuracy")
                            if isinstance(c.metrics.get(k), int | float))
        prefix = f"{c.info['case']}." if "case" in c.info else ""
        cases.append((f"parity.{prefix}{c.backend}.{c.precision}", c.inputs, list(c.failures), metrics))
    compared = {c.info.get("case") for c in report.comparisons}
    cases.extend((f"parity.{case['case']}", "export", [case["error"] or "no comparison ran"], "")
                 for case in getattr(report, "cases", [])  # matrix cases that never got to a comparison (export failed)
                 if case["case"] not in compared)
    return write_text(path, junit_xml(cases))
