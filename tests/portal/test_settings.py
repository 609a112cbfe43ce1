"""Settings come from the environment; a production-like environment passes Django's deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_env(tmp_path: Path) -> None:
    """The README's deployment settings (HTTPS=1, no per-setting overrides) pass every deploy check,
    warnings included (W021, HSTS preload, follows HTTPS=1)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "SESSION_COOKIE", "CSRF_COOKIE"))},
        "SECRET_KEY": "x" * 20 + "production-like-" + "k" * 40,
        "DEBUG": "0",
        "HTTPS": "1",
        "ALLOWED_HOSTS": "labformer.example.org",
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        "LABFORMER_VAR_DIR": str(tmp_path),
    }
    out = _manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout
    assert "WARNINGS" not in out.stdout + out.stderr


def test_check_deploy_warns_when_hsts_preload_is_turned_off(tmp_path: Path) -> None:
    """The setting is real: turning preload off brings W021 back (so the clean run above means something)."""
    env = {**os.environ, "SECRET_KEY": "x" * 20 + "production-like-" + "k" * 40, "DEBUG": "0", "HTTPS": "1",
           "SECURE_HSTS_PRELOAD": "0", "ALLOWED_HOSTS": "labformer.example.org", "LABFORMER_VAR_DIR": str(tmp_path)}
    out = _manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert out.returncode != 0 and "security.W021" in out.stdout + out.stderr


def test_secret_key_is_generated_once_into_var(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env["LABFORMER_VAR_DIR"] = str(tmp_path)
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    first = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "portal.config.settings"},
                           capture_output=True, text=True, check=True).stdout.strip()
    second = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "portal.config.settings"},
                            capture_output=True, text=True, check=True).stdout.strip()
    assert len(first) >= 50 and first == second
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first and oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "DEBUG": "maybe", "LABFORMER_VAR_DIR": str(tmp_path)}
    out = _manage(["check"], env)
    assert out.returncode != 0 and "DEBUG='maybe'" in out.stderr


def test_env_example_documents_every_variable_settings_read() -> None:
    import re

    read = set()
    for path in (ROOT / "portal" / "config").glob("*.py"):
        read |= set(re.findall(r"env_(?:str|bool|int|list)\(\s*\"([A-Z0-9_]+)\"", path.read_text()))
        read |= set(re.findall(r"name=\"([A-Z0-9_]+)\"", path.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read and read <= documented, f"undocumented: {sorted(read - documented)}"
