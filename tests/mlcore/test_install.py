"""The project's packages are installed into the virtual environment (`pip install -e .`, the Makefile's
venv target): `python -m mlcore` works from any directory, not only from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_python_m_mlcore_works_from_any_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the venv's own path
    proc = subprocess.run([sys.executable, "-m", "mlcore", "tasks"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:] + "\n(run `make venv`: it installs the packages, editable)"
    assert "dna-classification" in proc.stdout and "tabular-classification" in proc.stdout
    # The worker's entry and the portal resolve the same way.
    proc = subprocess.run([sys.executable, "-c", "import mlcore.catalog, portal.config, workers"], cwd=tmp_path,
                          env={**env, "DJANGO_SETTINGS_MODULE": "portal.config.settings"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
