"""tracking.log text: ours is byte-identical to the original event-tracking 4.0.2's.

The same script (tests/upstream/tracking_log_corpus.py) emits a corpus of
awkward events through the stock Open edX `tracking_logs` tree, once in a
virtualenv holding the original from the package registry
(build/upstream-venv, built on first use) and once in ours. Where the
original writes nothing (a value json cannot encode, an oversize event, a
processor's EventEmissionExit), ours must write nothing either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import service_unavailable
from upstream import upstream_venv

SCRIPT = Path(__file__).parent / "upstream" / "tracking_log_corpus.py"
RUN_TIMEOUT = 120  # seconds per side; the corpus itself takes well under one
EXCERPT = 80  # characters shown either side of a line's first difference


def run_corpus(python: Path | str, out: Path, side: str) -> tuple[bytes, dict[str, Any]]:
    """Run the corpus script with `python`; the log it wrote and its case index."""
    log, cases = out / f"{side}.log", out / f"{side}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run(
        [str(python), str(SCRIPT), str(log), str(cases)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"the corpus script failed with {side} (exit code {result.returncode}):\n"
            + result.stderr[-3000:],
            pytrace=False,
        )
    return log.read_bytes(), json.loads(cases.read_text(encoding="utf-8"))


def first_difference(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def excerpt(line: str, at: int) -> str:
    start = max(0, at - EXCERPT)
    return (
        ("..." if start else "")
        + line[start : at + EXCERPT]
        + ("..." if at + EXCERPT < len(line) else "")
    )


def describe(label: str, theirs: bytes, ours: bytes, raised: tuple[str | None, str | None]) -> str:
    """A readable account of how one corpus entry's lines differ."""
    old = theirs.decode("utf-8", "replace").splitlines()
    new = ours.decode("utf-8", "replace").splitlines()
    out = [f"* {label}: the original wrote {len(old)} line(s), ours {len(new)}"]
    if raised[0] != raised[1]:
        out.append(f"    emit raised: original {raised[0]!r}, ours {raised[1]!r}")
    for number in range(max(len(old), len(new))):
        a = old[number] if number < len(old) else None
        b = new[number] if number < len(new) else None
        if a == b:
            continue
        if a is None or b is None:
            who, line = ("ours only", b) if a is None else ("original only", a)
            out.append(f"    line {number + 1}, {who}: {excerpt(line or '', 0)}")
            continue
        at = first_difference(a, b)
        out.append(f"    line {number + 1}, first difference at character {at}:")
        out.append(f"      original: {excerpt(a, at)}")
        out.append(f"      ours:     {excerpt(b, at)}")
    return "\n".join(out)


@pytest.mark.timeout(upstream_venv.BUILD_TIMEOUT + 2 * RUN_TIMEOUT + 60)
def test_tracking_log_is_byte_identical_to_the_originals(tmp_path: Path) -> None:
    try:
        original_python = upstream_venv.ensure()
    except upstream_venv.UpstreamVenvError as exc:
        service_unavailable(f"the package registry ({upstream_venv.ORIGINAL})", str(exc))
    theirs, their_cases = run_corpus(original_python, tmp_path, "original")
    ours, our_cases = run_corpus(sys.executable, tmp_path, "ours")
    assert their_cases["implementation"]["version"] == upstream_venv.VERSION
    assert Path(our_cases["implementation"]["path"]).is_relative_to(Path(__file__).parents[1])

    labels = [c["label"] for c in their_cases["cases"]]
    assert [c["label"] for c in our_cases["cases"]] == labels
    differing = []
    for old, new in zip(their_cases["cases"], our_cases["cases"], strict=True):
        a, b = theirs[old["start"] : old["end"]], ours[new["start"] : new["end"]]
        if a != b or old["raised"] != new["raised"]:
            differing.append(describe(old["label"], a, b, (old["raised"], new["raised"])))
    if differing:
        pytest.fail(
            f"{len(differing)} of {len(labels)} corpus entries differ from the original's "
            f"tracking.log (logs in {tmp_path}):\n" + "\n".join(differing),
            pytrace=False,
        )
    assert ours == theirs  # and nothing outside the entries (none write outside them)
