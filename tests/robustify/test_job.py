from __future__ import annotations

from pathlib import Path

import pytest

from perturbations.errors import ConfigError
from robustify.pipeline.jobfile import DEFAULT_TRANSFORMS, JobConfig, load_job

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_job_file_loads() -> None:
    job = load_job(ROOT / "examples" / "job.yaml")
    assert job.data[0].path == "sample"
    assert job.models[0].spec == "local:smollm2"
    assert job.models[0].params == {"max_tokens": 48}
    assert job.transforms == DEFAULT_TRANSFORMS
    assert job.gates.fail_on_drop == 25 and job.gates.per_transform == {"typos": 20}
    assert job.gates.max_error_rate == 0.05
    assert job.limit == 40 and job.out == "reports/example-job"


def test_relative_data_paths_resolve_against_the_job_file(tmp_path: Path) -> None:
    job = load_job(_write(tmp_path, "data: [{path: items.jsonl, format: jsonl}]\n"))
    assert job.data[0].path == str(tmp_path / "items.jsonl")
    assert job.data[0].format == "jsonl"


def test_models_keep_key_variable_name_and_params(tmp_path: Path) -> None:
    job = load_job(_write(tmp_path, """
models:
  - spec: openai:gpt-4o-mini@http://127.0.0.1:9/v1
    api_key_env: MY_KEY
    temperature: 0
    max_tokens: 16
    concurrency: 4
"""))
    (model,) = job.models
    assert model.api_key_env == "MY_KEY" and model.concurrency == 4
    assert model.params == {"temperature": 0, "max_tokens": 16}


@pytest.mark.parametrize("text, fragment", [
    ("severites: [low]\n", "unknown key 'severites' (did you mean 'severity'?)"),
    ("models: [{spec: local:smollm2, temprature: 0}]\n", "unknown key models[0].'temprature'"),
    ("models: [{spec: openai:x, api_key: sk-123}]\n", "keys never go in job files"),
    ("gates: {fail_on_drop: ten}\n", "key 'gates.fail_on_drop' must be a number"),
    ("gates: {max_error_rate: 2}\n", "gates.max_error_rate must lie in [0, 1]"),
    ("limit: 0\n", "limit must be a positive number"),
    ("replicates: -1\n", "replicates must be at least 1"),
    ("seed: 1.5\n", "key 'seed' must be a whole number"),
    ("out: /etc/robustify\n", "key 'out' must be a relative folder"),
    ("out: ../../elsewhere\n", "key 'out' must be a relative folder"),
    ("data: [1, 2]\n", "data[0] must be a path or a mapping"),
    ("- just\n- a list\n", "must be a mapping of keys to values"),
    ("", "job file is empty"),
    ("transforms: [typos\nseed: 1\n", "invalid YAML"),
    ("!!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
])
def test_bad_job_files_name_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_job(path)
    message = str(info.value)
    assert str(path) in message and fragment in message, message
    assert "\n" not in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "seed: 1\ntransforms: [typos\nlimit: 3\n")
    with pytest.raises(ConfigError, match=r"line \d+: invalid YAML"):
        load_job(path)


def test_missing_directory_and_unreadable_job_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="job file not found"):
        load_job(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_job(tmp_path)


def test_override_keeps_file_values_for_missing_flags() -> None:
    job = JobConfig(seed=3, limit=10).override(seed=None, limit=5, out=None)
    assert job.seed == 3 and job.limit == 5 and job.out is None
