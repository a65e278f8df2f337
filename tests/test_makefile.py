"""`make serve` keeps its generated secret key in EORA_DATA_DIR, and runs quietly."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET_KEY = ROOT / "data" / "secret_key"
# What pyenv's shim of a version that is not installed does.
PYENV_SHIM = "#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def run_make(*args: str, **env: str) -> subprocess.CompletedProcess:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in {"EORA_DATA_DIR", "PYTHON", "MAKEFLAGS"}
    }
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def snapshot(path: Path) -> tuple[int, int] | None:
    return (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None


def test_secret_key_is_generated_in_eora_data_dir(tmp_path: Path) -> None:
    # given a data directory outside the checkout
    data_dir = tmp_path / "eora-data"
    default_before = snapshot(DEFAULT_SECRET_KEY)

    # when make generates the secret key
    result = run_make("secret-key", EORA_DATA_DIR=str(data_dir))

    # then it is written there, readable by its owner only, and ./data is untouched
    assert result.returncode == 0, result.stderr
    secret_key = data_dir / "secret_key"
    assert len(secret_key.read_text().strip()) >= 50
    assert stat.S_IMODE(secret_key.stat().st_mode) == 0o600
    assert snapshot(DEFAULT_SECRET_KEY) == default_before


def test_serve_reads_the_secret_key_from_eora_data_dir(tmp_path: Path) -> None:
    result = run_make("-n", "serve", EORA_DATA_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert f"cat {tmp_path}/secret_key" in result.stdout
    assert "data/secret_key" not in result.stdout


def test_python_lookup_hides_errors_of_pyenv_shims(tmp_path: Path) -> None:
    # given pyenv shims for Pythons that are not installed, first on the PATH
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("python3.13", "python3.12"):
        shim = shims / name
        shim.write_text(PYENV_SHIM.format(name=name))
        shim.chmod(0o755)
    path = f"{shims}{os.pathsep}{os.environ['PATH']}"

    # when make looks for a Python (a dry run of serve)
    result = run_make("-n", "serve", EORA_DATA_DIR=str(tmp_path), PATH=path)

    # then it picks an installed one, without printing the shims' errors
    assert result.returncode == 0, result.stderr
    assert "command not found" not in result.stderr
    assert "python3.13 -c" not in result.stdout
    assert "python3.12 -c" not in result.stdout


def test_metrics_dir_is_made_and_emptied_of_old_metrics(tmp_path: Path) -> None:
    # given the metrics of a previous run, and a file that is not one
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1234.db").write_bytes(b"old")
    (metrics_dir / "notes.txt").write_text("kept")

    result = run_make("metrics-dir", EORA_DATA_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in metrics_dir.iterdir()) == ["notes.txt"]


def test_serve_gives_uvicorn_the_metrics_dir(tmp_path: Path) -> None:
    result = run_make("-n", "serve", EORA_DATA_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert f'PROMETHEUS_MULTIPROC_DIR="{tmp_path}/prometheus"' in result.stdout
