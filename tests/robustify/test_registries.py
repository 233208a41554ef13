"""Every extension point is one registry of one pattern: refusals, close matches, plugins in use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from perturbations.errors import ConfigError, UnknownNameError
from perturbations.plugins import Registry

from robustify.records import Completion, GenerationParams, Score


def test_registry_refuses_bad_names_duplicates_and_wrong_kinds() -> None:
    def must_be_callable(obj: object) -> None:
        if not callable(obj):
            raise TypeError("not callable")

    reg: Registry = Registry("widget", entry_point_group=None, check=must_be_callable)
    with pytest.raises(ConfigError, match="lower_snake_case"):
        reg.register("Bad-Name")
    first = reg.register("thing")(lambda: 1)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("thing")(lambda: 2)
    assert reg.register("thing")(first) is first  # the same object again is fine
    with pytest.raises(TypeError):
        reg.register("other")(42)
    with pytest.raises(UnknownNameError, match="did you mean 'thing'"):
        reg.get("thin")
    assert reg.names() == ["thing"] and "thing" in reg


def test_a_registered_backend_kind_runs_a_job(tmp_path: Path) -> None:
    """A third-party kind: registered once, parsed, built and asked through the whole job."""
    from robustify.models import BaseBackend, ModelSpec, parse_model_spec, register_backend
    from robustify.models.registry import BACKENDS
    from robustify.pipeline import evaluate

    class EchoBackend(BaseBackend):
        kind = "echo"

        def __init__(self, model: str, *, params: GenerationParams, label: str) -> None:
            self.model, self.params, self.label, self.max_concurrency = model, params, label, 2

        def identity(self) -> dict:
            return {"kind": "echo", "model": self.model, "params": self.params.to_dict()}

        async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
            return Completion(text=self.model)

    @register_backend("echo")
    class EchoKind:
        forms = ("echo:ANSWER",)
        options = ()

        @classmethod
        def split(cls, text: str, rest: str) -> ModelSpec:
            return ModelSpec(text, "echo", rest)

        @classmethod
        def build(cls, spec, *, params, api_key_env, concurrency, timeout, **options):
            return EchoBackend(spec.model, params=params, label=options["label"])

    try:
        backend = parse_model_spec("echo:A")
        assert isinstance(backend, EchoBackend) and backend.label == "echo:A"
        with pytest.raises(ConfigError, match="unknown kind 'ecko'.*'echo'.*echo:ANSWER"):
            parse_model_spec("ecko:A")
        with pytest.raises(ConfigError, match="unknown option"):
            parse_model_spec("echo:A", n_ctx=5)
        result = evaluate(data="sample", models=["echo:A"], transforms=["typos"],
                          severity=["high"], limit=5, cache="off", progress=False, write=False)
        assert set(result.results["response"]) == {"A"}
    finally:
        BACKENDS._items.pop("echo", None)


def test_scorer_by_name_in_api_job_file_and_cli(tmp_path: Path) -> None:
    from robustify.cli import main
    from robustify.pipeline import evaluate, load_job
    from robustify.scoring import register_scorer
    from robustify.scoring.registry import SCORERS

    @register_scorer("always_right")
    def always_right(item, text: str) -> Score:
        return Score(1.0, parsed=text, detail={"why": "test"})

    try:
        result = evaluate(data="sample", models=["python:tests.robustify.e2e_models:brittle"],
                          transforms=["typos"], severity=["high"], limit=4, cache="off",
                          scorer="always_right", progress=False, write=False)
        assert (result.results["score"] == 1.0).all()
        assert set(result.results["score_detail"]) == {'{"why":"test"}'}
        assert result.manifest["scorer"] == "always_right"

        job = tmp_path / "job.yaml"
        job.write_text("scorer: always_rihgt\n")
        with pytest.raises(ConfigError, match=r"job.yaml: key 'scorer': unknown scorer "
                                              r"'always_rihgt'; did you mean 'always_right'"):
            load_job(job).validate()

        out = tmp_path / "run"
        assert main(["run", "--data", "sample", "--limit", "3", "--transforms", "slang",
                     "--severity", "high", "--model", "python:tests.robustify.e2e_models:brittle",
                     "--scorer", "exact", "--cache", "off", "--out", str(out), "--quiet"]) == 0
        assert json.loads((out / "manifest.json").read_text())["scorer"] == "exact"
        assert main(["run", "--scorer", "nope", "--cache", "off", "--out", str(out)]) == 2
    finally:
        SCORERS._items.pop("always_right", None)


def test_the_builtin_scorers_keep_their_detail() -> None:
    from perturbations import Item

    from robustify.scoring import score_answer

    item = Item(id="q", input="Pick", target="B", choices=("x", "y"), task="multiple_choice")
    score = score_answer(item, "The answer is B.")
    assert score.value == 1.0 and score.detail  # the runner stores it as score_detail


def test_a_run_reports_guard_counts_unchanged_shares_and_field_edit_rates(tmp_path: Path,
                                                                          capsys) -> None:
    """Issue 15 in the upper layer: the tally reaches the manifest, RunResult and the CLI."""
    from robustify.cli import main
    from robustify.pipeline import RunResult

    out = tmp_path / "run"
    assert main(["run", "--data", "sample", "--limit", "30", "--transforms",
                 "typos,choice_shuffle", "--severity", "high", "--cache", "off",
                 "--model", "python:tests.robustify.e2e_models:golden", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gold guard: 60 variants drawn, 0 redrawn, 0 dropped" in printed
    assert "choice_shuffle: cannot apply to" in printed and "item has no choices" in printed
    stats = RunResult.load(out).variant_stats().set_index("spec")
    assert stats.loc["typos@0.8", "drawn"] == 30 and stats.loc["typos@0.8", "dropped"] == 0
    assert 0 < stats.loc["typos@0.8", "input_words"] < 0.6
    assert stats.loc["typos@0.8", "nominal_word_rate"] == pytest.approx(0.4)
    shuffle = stats.loc["choice_shuffle@0.8"]
    assert shuffle["unchanged_share"] == pytest.approx(shuffle["unchanged"] / 30, abs=1e-6)
    assert shuffle["unchanged_share"] > 0.5
    assert shuffle["skip_reasons"] == {"item has no choices": shuffle["cannot_apply"]}


def test_run_result_draws_every_chart_of_the_one_list() -> None:
    """RunResult and the report iterate the same chart list; an unknown name is refused."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from robustify.pipeline import evaluate

    result = evaluate(data="sample", models=["python:tests.robustify.e2e_models:golden"],
                      transforms=["typos", "slang"], severity=["low", "high"], limit=12,
                      cache="off", progress=False, write=False)
    names = result.chart_names()
    assert names[0] == "overestimation" and {"heatmap", "flips"} <= set(names)
    for name in names:
        ax = Figure().add_subplot()
        assert result.plot(name, ax=ax) is ax, name
        assert ax.has_data() or ax.images or ax.patches, name  # something was drawn
    with pytest.raises(UnknownNameError, match="did you mean 'heatmap'"):
        result.plot("heatmpa")
