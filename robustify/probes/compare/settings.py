"""What differs between two runs' settings, from their manifests (``compare`` shows it first).

:func:`run_settings` flattens a manifest into the settings a reader compares: models,
data (paths, format, mapping, task, content hash), transforms and specs, seed,
replicates, limit, each model's generation parameters, scorer, templates, the frozen
variants file and the robustify version. :func:`settings_diff` lists the ones that differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

__all__ = ["run_settings", "settings_diff", "read_manifest"]


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def run_settings(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The comparable settings of one run, as ``{name: text}`` in a stable order."""
    out: dict[str, str] = {}
    models = manifest.get("models") or []
    out["model"] = _text([m.get("label") for m in models])
    data = manifest.get("data") or []
    out["data"] = _text([d.get("path") for d in data])
    for key in ("format", "map", "task"):
        values = [d.get(key) for d in data]
        if any(v is not None for v in values):
            out[f"data.{key}"] = _text(values)
    if manifest.get("dataset_hash"):
        out["data_hash"] = str(manifest["dataset_hash"])[:12]
    for key in ("n_items", "limit", "transforms", "specs", "seed", "replicates", "scorer",
                "templates", "robustify_version"):
        if key in manifest:
            out[key] = _text(manifest[key])
    out["variants_file"] = _text(manifest.get("variants_file"))  # recorded only when used
    for model in models:
        params = (model.get("identity") or {}).get("params") or {}
        prefix = f"params[{model.get('label')}]." if len(models) > 1 else "params."
        for key in sorted(params):
            out[prefix + key] = _text(params[key])
    return out


def settings_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(setting, value in a, value in b)`` for every setting that differs, a's order first."""
    sa, sb = run_settings(a), run_settings(b)
    keys = list(dict.fromkeys([*sa, *sb]))
    return [(k, sa.get(k, "(not recorded)"), sb.get(k, "(not recorded)"))
            for k in keys if sa.get(k) != sb.get(k)]


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's ``manifest.json`` ({} when missing or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
