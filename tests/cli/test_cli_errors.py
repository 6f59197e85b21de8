"""The `recforge` command never shows a traceback: usage errors are one line and exit 2 (issue 15, defect 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import recforge

from support import REPO


def recforge_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recforge", *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_version_prints_the_package_version() -> None:
    proc = recforge_cli("--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"recforge {recforge.__version__}\n", "")


@pytest.mark.parametrize(
    ("args", "line", "hint"),
    [
        (["trian"], "error: No such command 'trian'. Did you mean 'train'?", "  help: python -m recforge --help"),
        (["train", "p.yaml"], "error: Missing option '--out'.", "  help: python -m recforge train --help"),
        (
            ["serve", "bundle", "--port", "abc"],
            "error: Invalid value for '--port': Input should be a valid integer, unable to parse string as an integer",
            "  help: python -m recforge serve --help",
        ),
        (["--nope"], "error: No such option: --nope", "  help: python -m recforge --help"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args: list[str], line: str, hint: str) -> None:
    proc = recforge_cli(*args)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line, hint]
    assert proc.stdout == ""


def test_bare_recforge_prints_help_and_exits_2() -> None:
    proc = recforge_cli()
    assert proc.returncode == 2 and proc.stderr == ""
    assert "Usage:" in proc.stdout and "quickstart" in proc.stdout and "Traceback" not in proc.stdout


def test_a_recforge_error_prints_its_message_and_exits_1(tmp_path: Path) -> None:
    proc = recforge_cli("model", "list", tmp_path / "nope")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: {tmp_path / 'nope'} does not exist or is not a directory (expected a bundle or a model stream)"
    ]


FAILING_APP = textwrap.dedent(
    """
    import typer
    from recforge.cli.failure import run, set_verbose

    app = typer.Typer()

    @app.command()
    def boom(verbose: bool = False) -> None:
        set_verbose(verbose)
        raise KeyError("lost")

    run(app)
    """
)


@pytest.mark.parametrize(
    ("args", "env", "traceback"),
    [([], {}, False), (["--verbose"], {}, True), ([], {"RECFORGE_DEBUG": "1"}, True)],
)
def test_an_unexpected_error_is_one_line_unless_a_traceback_is_asked_for(
    args: list[str], env: dict[str, str], traceback: bool
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FAILING_APP, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "RECFORGE_DEBUG": "", **env},
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert ("Traceback (most recent call last):" in lines) is traceback
    assert "error: unexpected KeyError: 'lost'" in lines
    if not traceback:
        assert len(lines) == 2 and "--verbose or RECFORGE_DEBUG=1" in lines[1]
