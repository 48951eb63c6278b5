from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from naming._cli import main
from naming.core import PluginRegistry


def test_backends_lists_the_builtins_with_their_distribution(
    fresh_registry: PluginRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "distribution", "module", "status"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["static"][1:] == ["grpc-naming", "0.1.0", "backends.static", "ok"]
    assert rows["manual"][3:] == ["backends.manual", "ok"]


def test_balancers_lists_the_builtins(
    fresh_registry: PluginRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["balancers", "--no-check"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["round_robin"][3:] == ["balancers.roundrobin", "-"]
    assert rows["pick_first"][3:] == ["balancers.pickfirst", "-"]


def test_the_console_script_runs() -> None:
    script = Path(sys.executable).parent / "grpc-naming"
    command = [str(script)] if script.exists() else [shutil.which("grpc-naming") or "grpc-naming"]
    result = subprocess.run([*command, "balancers"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "round_robin" in result.stdout and "ok" in result.stdout


def test_python_dash_m_naming_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "naming", "backends"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "static" in result.stdout


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2
    assert "backends" in capsys.readouterr().err
