"""The gate verdict a stream version carries in its manifest (`gate`), so rollback can tell tested from untested.

Every writer that publishes through a gate records it: `recforge model publish` (the validation gate),
the streaming trainer (the same gate on its gate window) and the FTRL job (its progressive-AUC floor).
A version without a verdict was published before verdicts were recorded, or copied in by hand.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from recforge.bundle.bundle import read_manifest
from recforge.errors import BundleError

GATE = "gate"  # manifest key of the verdict


def gate_verdict(
    passed: bool, reasons: list[str], metrics: dict[str, Any], *, judge: str, serving: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest `gate` entry: the outcome, why, the held-out numbers (and the served version's) and the judge."""
    return {
        "passed": bool(passed),
        "reasons": list(reasons),
        "metrics": metrics,
        "serving": serving or {},
        "judge": judge,
        "judged_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def read_verdict(version: Path) -> dict[str, Any] | None:
    """The version's recorded verdict; None when it has none (published before verdicts, or copied in)."""
    verdict = read_manifest(version).get(GATE)
    return verdict if isinstance(verdict, dict) else None


def passed_gate(version: Path) -> bool:
    verdict = read_verdict(version)
    return verdict is not None and verdict.get("passed") is True


def why_not_served(version: Path) -> str | None:
    """Why rollback must not serve `version` without --force; None when its recorded verdict passed."""
    verdict = read_verdict(version)
    if verdict is None:
        return (
            f"{version}: no gate verdict is recorded in its manifest (published before verdicts were recorded, "
            "or copied in by hand), so it is not known to have passed the gate"
        )
    if verdict.get("passed") is not True:
        reasons = "; ".join(map(str, verdict.get("reasons") or [])) or "no reason recorded"
        return f"{version}: it failed the gate ({reasons})"
    return None


def require_passed(version: Path) -> None:
    """BundleError unless `version`'s recorded verdict passed; the message suggests --force."""
    problem = why_not_served(version)
    if problem is not None:
        raise BundleError(
            f"{problem}; rollback serves only versions that passed the gate"
            f"\n  fix: check the version, then roll back with --force to serve it anyway"
        )
