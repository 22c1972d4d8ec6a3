from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import typer
from typer.testing import CliRunner

from refiner_nas.cli.analyze import analyze_app
from refiner_nas.refiner_space import build_model

app = typer.Typer()  # the root CLI mounts analyze_app the same way
app.add_typer(analyze_app, name="analyze")
runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    return runner.invoke(app, ["analyze", *args])


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.std() > 0.01  # something was drawn


@pytest.fixture
def models(tiny, write_yaml) -> tuple[str, str]:
    return (
        write_yaml("plain.yaml", tiny().to_dict()),
        write_yaml("refined.yaml", tiny(attention="refiner", depth=4).to_dict()),
    )


def test_cka_compares_models_on_digits(models, tmp_path) -> None:
    out = tmp_path / "out"
    result = invoke("cka", *models, "--out", str(out), "--batch-size", "6", "--batches", "2")
    assert result.exit_code == 0, result.output
    assert "plain: weights random, images 16x16" in result.output
    table = pd.read_csv(out / "cka.csv")
    assert table.groupby("model")["block"].max().to_dict() == {"plain": 2, "refined": 3}
    assert set(table["batches"]) == {2} and set(table["images_per_batch"]) == {6}
    assert table["cka_to_output"].between(0, 1).all() and table["f_norm"].gt(0).all()
    assert_png(out / "cka.png")


def test_attention_writes_a_grid_per_model_image_and_query(models, tmp_path) -> None:
    out = tmp_path / "maps"
    result = invoke(
        "attention",
        *models,
        "--out",
        str(out),
        "--image",
        "2",
        "--image",
        "5",
        "--query",
        "cls",
        "--query",
        "1,1",
        "--block",
        "0",
        "--block",
        "2",
        "--head",
        "1",
    )
    assert result.exit_code == 0, result.output
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert pictures == sorted(
        f"attention_{m}_img{i}_q{q}.png" for m in ("plain", "refined") for i in (2, 5) for q in (0, 6)
    )
    for picture in pictures:
        assert_png(out / picture)
    from matplotlib.image import imread

    # One block, one head still gives a readable figure (at least 6 x 3.5 inches at 150 dpi)...
    height, width = imread(out / pictures[0]).shape[:2]
    assert width >= 900 and height >= 525
    # ... with a colour bar: a column right of the maps running through viridis from bottom to top.
    pixels = imread(out / pictures[0])[:, :, :3]
    column = pixels[:, int(width * 0.9):].reshape(-1, 3)
    yellow, purple = (column[:, 0] > 0.8) & (column[:, 1] > 0.8) & (column[:, 2] < 0.3), \
        (column[:, 0] > 0.2) & (column[:, 0] < 0.35) & (column[:, 1] < 0.1) & (column[:, 2] > 0.3)
    assert yellow.sum() > 50 and purple.sum() > 50
    table = pd.read_csv(out / "attention.csv")
    counts = table.groupby(["model", "stage"]).size().to_dict()
    # images x queries x blocks x heads x keys; the plain model's maps are unrefined: one stage
    assert counts == {
        ("plain", "raw"): 2 * 2 * 2 * 17,
        ("refined", "raw"): 2 * 2 * 2 * 17,
        ("refined", "refined"): 2 * 2 * 2 * 17,
    }


def test_density_with_and_without_context_broadcasting(tiny, write_yaml, tmp_path) -> None:
    plain = write_yaml("plain.yaml", tiny().to_dict())
    broadcast = write_yaml("cb.yaml", tiny(context_broadcast="mlp_end").to_dict())
    result = invoke("density", plain, broadcast, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "density.csv")
    assert table.groupby("model")["context_broadcast"].first().to_dict() == {"plain": "off", "cb": "mlp_end"}
    assert ((table["share"] > 0) & (table["share"] <= 1)).all()
    assert (table["share"] - table["entropy"] / table["max_entropy"]).abs().max() < 1e-12
    assert_png(tmp_path / "density.png")


@torch.no_grad()
def test_checkpoint_on_an_image_folder(tiny, write_yaml, tmp_path) -> None:
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for label in ("cat", "dog"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for index in range(6):
            pixels = torch.randint(0, 256, (20, 20, 3), generator=generator, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{index}.png")
    config = tiny(attention="refiner_official", stem="conv4", depth=2)
    checkpoint = tmp_path / "trained.pt"
    torch.save({"model": build_model(config).state_dict()}, checkpoint)
    out = tmp_path / "out"
    result = invoke(
        "cka",
        str(checkpoint),
        "--config",
        write_yaml("c.yaml", config.to_dict()),
        "--data",
        f"imagefolder:{tmp_path / 'data'}",
        "--val-fraction",
        "0.5",
        "--batch-size",
        "3",
        "--batches",
        "2",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert f"trained: weights {checkpoint}, images 16x16" in result.output
    assert len(pd.read_csv(out / "cka.csv")) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cka", "vit_enormous"], "error: unknown model 'vit_enormous': neither a registered name"),
        (["attention", "{plain}", "--block", "3"], "error: block index 3 is out of range: the model has 3 blocks"),
        (["attention", "{plain}", "--head", "5"], "error: head index 5 is out of range: the model has 2 heads"),
        (["attention", "{plain}", "--query", "9,9"], "error: query patch 9,9 is outside the 4x4 token grid"),
        (["attention", "{plain}", "--image", "999"], "error: image index 999 is out of range"),
        (["cka", "{checkpoint}", "--config", "{deeper}"], "does not match its configuration (missing: blocks.3."),
        (["cka", "{checkpoint}"], "error: checkpoint {checkpoint} needs its configuration"),
        (["cka", "{plain}", "--tokens", "max"], "error: tokens='max': use one of flatten, mean"),
        (["density", "{plain}", "--data", "imagefolder:/nonexistent"], "error: imagefolder directory /nonexistent"),
        (["density", "{plain}", "--device", "tpu"], "error: device='tpu' is not a device"),
        (["cka", "{plain}", "--batch-size", "2"], "error: batch 0: CKA needs at least 3 examples"),
    ],
)
def test_bad_input_gives_one_error_line(tiny, write_yaml, tmp_path, args: list[str], message: str) -> None:
    paths = {
        "plain": write_yaml("plain.yaml", tiny().to_dict()),
        "deeper": write_yaml("deeper.yaml", tiny(depth=4).to_dict()),
        "checkpoint": str(tmp_path / "m.pt"),
    }
    torch.save(build_model(tiny()).state_dict(), paths["checkpoint"])
    result = invoke(*[arg.format(**paths) for arg in args], "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message.format(**paths) in lines[0]
    assert not (tmp_path / "out").exists()


def test_existing_outputs_need_force(models, tmp_path) -> None:
    (tmp_path / "density.csv").write_text("keep me")
    result = invoke("density", models[0], "--out", str(tmp_path))
    assert result.exit_code == 2 and "density.csv exists; pass --force" in result.output
    assert (tmp_path / "density.csv").read_text() == "keep me"
    assert invoke("density", models[0], "--out", str(tmp_path), "--force").exit_code == 0
    assert len(pd.read_csv(tmp_path / "density.csv")) == 3
