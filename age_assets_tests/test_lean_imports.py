"""Loading the code location, and so every step process, imports no TensorFlow or Keras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ["tensorflow", "keras"]


def _imported_after(code: str) -> list[str]:
    """Which of Dagster, TensorFlow and Keras a fresh interpreter holds after running ``code``."""
    report = f"import json, sys; print(json.dumps([m for m in ['dagster', *{HEAVY}] if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_loading_the_definitions_imports_no_tensorflow(tmp_path: Path) -> None:
    code = ("from age_assets.definitions import build_defs\n"
            f"defs = build_defs({{'AGE_ASSETS_BACKBONES': 'mobilenet_v2,efficientnet_b0', "
            f"'AGE_ASSETS_DATA_DIR': {str(tmp_path)!r}}})\n"
            "defs.resolve_asset_graph()")
    assert _imported_after(code) == ["dagster"]


def test_importing_the_package_imports_neither_dagster_nor_tensorflow() -> None:
    assert _imported_after("import age_assets") == []


def test_the_package_still_offers_defs_to_dagster() -> None:
    """``dagster -m age_assets`` finds ``defs`` through ``dir`` and ``getattr`` (inspect.getmembers)."""
    code = ("import inspect, dagster as dg, age_assets\n"
            "found = [n for n, v in inspect.getmembers(age_assets) if isinstance(v, dg.Definitions)]\n"
            "assert found == ['defs'], found")
    assert _imported_after(code) == ["dagster"]


def test_imports_run_down_the_rooms_only() -> None:
    """``ml/`` and ``datasets/`` never import the serving code, nor anything of Dagster's."""
    import ast

    package = Path(__file__).resolve().parents[1] / "age_assets"
    upward = []
    for room in ("ml", "datasets"):
        for path in sorted((package / room).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                upward += [f"{path.name}: {n}" for n in names
                           if n.startswith(("age_assets.serving", "age_assets.assets", "dagster"))]
    assert upward == []
