"""Import boundaries: the import-linter contracts in .importlinter (static, every import), and the same
rules checked at run time in fresh interpreters (the web process never loads torch, mlcore never loads
Django)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.config.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_web_process_does_not_import_torch() -> None:
    code = (
        "import sys, django; django.setup()\n"
        "from django.urls import get_resolver; get_resolver().url_patterns\n"
        "import portal.config.wsgi, portal.config.celery\n"
        "from django.apps import apps\n"
        "import importlib\n"
        "for cfg in apps.get_app_configs():\n"
        "    if cfg.name.startswith('portal.'):\n"
        "        for mod in ('models', 'services', 'selectors', 'views', 'admin'):\n"
        "            try: importlib.import_module(f'{cfg.name}.{mod}')\n"
        "            except ModuleNotFoundError as e:\n"
        "                if e.name != f'{cfg.name}.{mod}': raise\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    assert _run(code) == "[]"


def test_catalog_is_light_and_mlcore_does_not_import_django() -> None:
    assert _run("import sys, mlcore, mlcore.catalog; print('django' in sys.modules, 'torch' in sys.modules)") == "False False"
    code = "import sys, mlcore.model, mlcore.trainer; print('django' in sys.modules)"
    assert _run(code) == "False"


def test_column_mapping_is_light() -> None:
    """mlcore.columns (the one column mapping, imported by the web process) loads neither torch, numpy nor Django."""
    code = "import sys, mlcore.columns; print([m for m in ('torch', 'numpy', 'django') if m in sys.modules])"
    assert _run(code) == "[]"


def test_import_contracts_hold() -> None:
    """The static rules of .importlinter (layers workers > portal > mlcore, mlcore without Django, the web
    process without torch even indirectly, portal using only mlcore's torch-free surface), checked by
    import-linter over every import in the three packages, function-level imports included."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout
