"""Import boundaries, checked in fresh interpreters: the web process never loads torch,
mlcore never loads Django, and portal never imports workers."""

from __future__ import annotations

import os
import re
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


def test_no_import_from_portal_or_mlcore_into_the_wrong_direction() -> None:
    bad = []
    pattern = {
        "portal": re.compile(r"^\s*(from|import)\s+(workers|torch)\b", re.M),
        "mlcore": re.compile(r"^\s*(from|import)\s+(django|portal|workers)\b", re.M),
    }
    for package, regex in pattern.items():
        for path in (ROOT / package).rglob("*.py"):
            if regex.search(path.read_text()):
                bad.append(str(path.relative_to(ROOT)))
    assert bad == []
