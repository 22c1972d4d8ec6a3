"""``refiner-nas bench``: tables, JSON/CSV for scripts, one-line errors, regress exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from refiner_nas.cli.bench import bench_app
from refiner_nas.refiner_space import ModelConfig
from refiner_nas.refiner_space.costs import count_costs

runner = CliRunner()
TINY = {"depth": 2, "embed_dim": 32, "num_heads": 4, "img_size": 32, "num_classes": 10, "attention": "refiner"}


@pytest.fixture
def tiny_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(bench_app, list(args))
    return result.exit_code, result.output


def test_flops_json_equals_the_library_count(tiny_yaml: Path) -> None:
    code, output = invoke("flops", str(tiny_yaml), "--json")
    assert code == 0, output
    (row,) = json.loads(output)
    costs = count_costs(ModelConfig(**TINY))
    assert (row["params"], row["macs"], row["elementwise_flops"]) == (costs.params, costs.macs, costs.elementwise_flops)
    assert row["model"] == str(tiny_yaml) and row["refiner_fold"] is False


def test_flops_table_breakdown_and_csv(tiny_yaml: Path) -> None:
    code, output = invoke("flops", str(tiny_yaml), "--img-size", "48")
    assert code == 0 and "48x48" in output and "fvcore_flops_g" in output
    code, output = invoke("flops", str(tiny_yaml), "--breakdown", "--csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert code == 0 and "refiner" in {row["part"] for row in rows}
    costs = count_costs(ModelConfig(**TINY))
    assert rows[-1] == {"model": str(tiny_yaml), "part": "total", "params_m": f"{costs.params / 1e6:.3f}",
                        "macs_g": f"{costs.macs / 1e9:.4f}",
                        "elementwise_flops_g": f"{costs.elementwise_flops / 1e9:.4f}",
                        "flops_g": f"{costs.flops / 1e9:.4f}", "share_of_flops": "100.0%"}
    parts_sum = sum(float(row["flops_g"]) for row in rows[:-1])
    assert parts_sum == pytest.approx(float(rows[-1]["flops_g"]), abs=1e-3)
    code, output = invoke("flops", str(tiny_yaml), "--fold", "--json")
    assert code == 0 and json.loads(output)[0]["refiner_fold"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("flops", "nope"), "error: unknown model 'nope': neither a registered name (refined_vit_s"),
        (("flops", "missing.yaml"), "error: configuration file missing.yaml does not exist"),
        (("flops", "vit_16b_384", "--img-size", "100"), "error: img_size=100 is not a multiple of patch_size=16"),
        (("flops", "vit_16b_384", "--json", "--csv"), "error: choose one of --json and --csv"),
        (("flops", "vit_16b_384", "--img-size", "32", "--fold"), "error: nothing to fold"),
        (("throughput", "vit_16b_384", "--iters", "3"), "error: iters=3: at least 10 timed iterations"),
        (("throughput", "vit_16b_384", "--amp", "fp16"), "error: amp='fp16' needs a CUDA device"),
        (("throughput", "vit_16b_384", "--max-batch"), "error: max_batch searches the largest batch"),
        (("regress", "--model", "nope", "--no-speed"), "error: unknown model 'nope'"),
        (("regress", "--tolerance", "0"), "error: tolerance=0.0 must be positive"),
        (("fold", "--model", "vit_16b_384"), "error: model 'vit_16b_384' has attention='vanilla'"),
    ],
)
def test_bad_input_gives_one_error_line(args: tuple[str, ...], message: str) -> None:
    code, output = invoke(*args)
    assert code == 2
    lines = [line for line in output.strip().splitlines() if not line.strip().startswith("warnings.warn")]
    assert len(lines) == 1 and lines[0].startswith(message), output


def test_throughput_json_and_table(tiny_yaml: Path) -> None:
    common = ("--batch-size", "2", "--warmup", "1", "--threads", "1", "--mode", "inference")
    code, output = invoke("throughput", str(tiny_yaml), *common, "--json")
    assert code == 0, output
    (result,) = json.loads(output)
    assert result["reference"] == "vanilla ViT 2x32, 4 heads"
    assert result["modes"][0]["ratio_to_reference"]["n"] == 10
    code, output = invoke("throughput", str(tiny_yaml), *common, "--reference", "none", "--mode", "latency")
    assert code == 0 and "(itself)" in output and "latency" in output
    assert f"measuring {tiny_yaml}: latency, 1 warm-up + 10 timed ..." in output  # progress on stderr


def test_regress_exit_codes(tmp_path: Path) -> None:
    args = ("regress", "--no-speed", "--model", "vit_16b_384", "--baseline-dir", str(tmp_path))
    code, output = invoke(*args, "--update")
    assert code == 0 and "wrote" in output
    code, output = invoke(*args)
    assert code == 0 and "4 of 4 checks hold" in output
    data = json.loads((tmp_path / "costs.json").read_text())
    data["models"]["vit_16b_384"]["params"] = 1
    (tmp_path / "costs.json").write_text(json.dumps(data))
    code, output = invoke(*args)
    assert code == 1 and "Regressions" in output and "params" in output
    code, output = invoke(*args, "--json")
    assert code == 1 and json.loads(output)["ok"] is False
    code, output = invoke(*args, "--csv")
    failed = [row for row in csv.DictReader(io.StringIO(output)) if row["ok"] == "False"]
    assert code == 1 and [(row["quantity"], row["baseline"]) for row in failed] == [("params", "1")]


def test_fold_table_and_csv_on_a_tiny_refiner(tiny_yaml: Path) -> None:
    args = ("fold", "--model", str(tiny_yaml), "--img-size", "32", "--batch-size", "2", "--threads", "1")
    code, output = invoke(*args, "--warmup", "1", "--ratio", "2")
    assert code == 0 and "Fold on CPU" in output and "folded/vanilla" in output
    code, output = invoke(*args, "--csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert code == 0 and [row["expansion_ratio"] for row in rows] == ["3", "6"]
    assert float(rows[0]["max_relative_error"]) < 1e-5 and float(rows[0]["fold_speedup_median"]) > 0
