"""`linctl compile` on the tiny config: the package, its report, its numbers and the refusals.

Each of the two tiny models (Linformer as configured, and softmax attention) is compiled once per module;
AOTInductor builds take a minute on two cores, so the tests of the packages are `slow` and the refusals,
which build nothing, run by default.
"""

import json
import time
from pathlib import Path

import pytest
import torch
import yaml
from pydantic import TypeAdapter

from linctl.export.compile import example_inputs
from linctl.models import MODELS, ModelSpec

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "mlm" / "tiny.yaml"
VARIANTS = {"linformer": [], "softmax": ["--set", "model.attention={kind: softmax}"]}
TRACED, CHECKED, OURS = 3, 5, 4  # tiny's train.batch_size, the --check batch, this file's own batch


@pytest.fixture(scope="module")
def compiled(cli, tmp_path_factory) -> dict[str, dict]:
    """Per variant: the package folder, the results of `linctl compile --check` and its wall time.

    The Linformer package goes to the run config's default folder, MODEL_DIR/compiled, which exists
    already and holds an earlier package: a first run without --force is refused, the second replaces it.
    """
    out = {}
    for name, extra in VARIANTS.items():
        root = tmp_path_factory.mktemp(name)
        args = ["compile", "--config", TINY, "--set", f"model_dir={root / 'model'}", *extra, "--check"]
        folder = root / "model" / "compiled"
        refused = None
        if name == "linformer":
            folder.mkdir(parents=True)  # an earlier package
            (folder / "compile-report.json").write_text("{}\n")
            (folder / "model.pt2").write_text("made by an earlier compile\n")
            refused = cli(*args, ok=False)
            args.append("--force")
        start = time.perf_counter()
        result = cli(*args)
        out[name] = {
            "folder": folder,
            "result": result,
            "refused": refused,
            "seconds": time.perf_counter() - start,
        }
    return out


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_package_holds_the_model_its_report_and_its_config(compiled, variant):
    folder, result = compiled[variant]["folder"], compiled[variant]["result"]
    assert sorted(p.name for p in folder.iterdir()) == ["compile-report.json", "config.yaml", "model.pt2"]
    assert not list(folder.parent.glob("compiled.tmp-*"))  # no temporary folder left behind
    report = json.loads((folder / "compile-report.json").read_text())
    assert report["schema_version"] == 1
    assert report["backend"] == "cpu" and report["torch"] == torch.__version__
    assert report["model"]["attention"]["kind"] == variant
    assert report["inputs"]["input_ids"] == {"shape": [TRACED, 16], "dtype": "int64"}
    assert report["inputs"]["attention_mask"] == {"shape": [TRACED, 16], "dtype": "bool"}
    assert report["dynamic_dims"]["batch"]["min"] == 1
    assert set(report["stage_s"]) == {"build", "export", "compile", "check"}
    stages = report["stage_s"]
    assert stages["compile"] > 0 and sum(stages.values()) <= compiled[variant]["seconds"]
    graph = report["graph"]
    assert graph["nodes"] > graph["call_function"] >= sum(graph["aten_ops"].values()) > 0
    assert graph["aten_ops"]["aten.scaled_dot_product_attention.default"] == 2  # one per layer
    assert report["package"]["bytes"] == (folder / "model.pt2").stat().st_size
    check = report["check"]
    assert check["batch"] == CHECKED and check["passed"] and 0 <= check["max_abs_diff"] <= 1e-4
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    assert saved == {"model": report["model"]}
    model = MODELS.build(TypeAdapter(ModelSpec).validate_python(saved["model"]))
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert "package bytes" in result.stdout and "check: max |compiled - eager|" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_package_matches_an_eager_model_built_the_same_way(compiled, variant):
    folder = compiled[variant]["folder"]
    saved = yaml.safe_load((folder / "config.yaml").read_text())
    torch.manual_seed(0)  # tiny's train.seed
    eager = MODELS.build(TypeAdapter(ModelSpec).validate_python(saved["model"])).eval()
    runner = torch._inductor.aoti_load_package(str(folder / "model.pt2"))
    for batch in (OURS, 1):  # 1: the size torch.export would have specialised
        inputs = example_inputs(eager.cfg, batch, torch.device("cpu"), seed=11)  # (B, T), B > 1 padded
        with torch.no_grad():
            compiled = runner(*inputs.values())
            torch.testing.assert_close(compiled, eager(**inputs).hidden, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_existing_folder_is_refused_without_force_and_replaced_with_it(compiled):
    refused, folder = compiled["linformer"]["refused"], compiled["linformer"]["folder"]
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        f"error: {folder} exists; choose another --output-dir, or add --force to replace it"
    )
    assert json.loads((folder / "compile-report.json").read_text())["check"]["passed"]  # --force replaced it


def refuse_to_build(*args, **kwargs):
    raise AssertionError("a model was built")


@pytest.mark.slow
def test_a_rerun_of_a_finished_compile_does_nothing_and_another_request_is_refused(
    cli, compiled, monkeypatch
):
    folder = compiled["softmax"]["folder"]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr("linctl.export.compile.build_model", refuse_to_build)
    args = ["compile", "--config", TINY, "--set", f"model_dir={folder.parent}", *VARIANTS["softmax"]]
    for checked in (["--check"], []):  # the same command; and without --check, which a checked package meets
        again = cli(*args, *checked)
        assert "(already complete: the folder holds this package)" in " ".join(again.stdout.split())
    refused = cli(*args, "--set", "model.n_heads=2", ok=False)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        f"error: {folder} holds a package compiled with another overrides, model; "
        "choose another --output-dir, or add --force to replace it"
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_existing_folder_is_refused_before_any_model_is_built(cli, monkeypatch, tmp_path):
    monkeypatch.setattr("linctl.export.compile.build_model", refuse_to_build)
    folder = tmp_path / "pkg"
    folder.mkdir()
    earlier = {"compile-report.json": "{}\n", "model.pt2": "made by an earlier compile\n"}
    for name, text in earlier.items():
        (folder / name).write_text(text)
    result = cli("compile", "--config", TINY, "--output-dir", folder, ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {folder} exists; choose another --output-dir, or add --force to replace it"
    )
    assert {p.name: p.read_text() for p in folder.iterdir()} == earlier
    assert [p.name for p in tmp_path.iterdir()] == ["pkg"]  # no temporary folder either


@pytest.mark.parametrize("names", [("--device", "--output-dir"), ("--backend", "--output")])  # new, old
def test_cerebras_backend_is_refused_before_any_model_is_built(cli, monkeypatch, tmp_path, names):
    monkeypatch.setattr("linctl.export.compile.build_model", refuse_to_build)
    device, output = names
    result = cli("compile", "--config", TINY, device, "cs", output, tmp_path / "pkg", ok=False)
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message and "cerebras.pytorch" in message and "not importable" in message
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("config", [TINY, REPO / "configs" / "bench" / "tiny.yaml"], ids=["run", "model"])
def test_model_that_cannot_be_built_is_one_line_naming_the_key(cli, tmp_path, config):
    args = ["--set", "model.n_heads=5", "--output-dir", tmp_path / "pkg"]
    result = cli("compile", "--config", config, *args, ok=False)
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"error: {config}: model: ") and "n_heads (5)" in message
    assert not (tmp_path / "pkg").exists()
