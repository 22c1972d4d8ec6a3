"""Search space files: loading, one-line located errors, Optuna sampling, grids and budgets."""

from __future__ import annotations

import csv
import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from refiner_nas.refiner_space import ModelConfig, build_model
from refiner_nas.refiner_space.costs import count_costs
from refiner_nas.search.space import Budget, SearchSpace, SpaceError, shipped_spaces

ABLATIONS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ablations.csv"

# A small valid space the error cases edit: 32 px, one channel, no budget (nothing is counted).
BASE = """\
dimensions:
  img_size: 32
  in_chans: 1
  num_classes: 10
  patch_size: 4
  depth: {int: {low: 1, high: 2}}
  embed_dim: {choices: [32, 64]}
  num_heads: {choices: [2, 4]}
  attention: {choices: [vanilla, refiner]}
  kernel_size: {choices: [1, 3], when: {attention: refiner}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as caught:
        SearchSpace.from_yaml(path)
    message = str(caught.value)
    assert "\n" not in message
    return message.removeprefix(f"{path}:")


@pytest.fixture(scope="module")
def tiny() -> SearchSpace:
    return SearchSpace.from_name("tiny")


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_every_shipped_space_loads_and_says_what_it_is() -> None:
    names = list(shipped_spaces())
    assert {"tiny", "default", "table1", "table2", "table4", "table12", "table13"} <= set(names)
    for name in names:
        if name == "default":  # loaded (and its budget counted) in its own test
            continue
        space = SearchSpace.from_name(name)
        assert space.name == name and space.description
        assert space.source == str(shipped_spaces()[name])
        if name.startswith("table"):
            assert f"Table {name.removeprefix('table')} " in shipped_spaces()[name].read_text()


def test_default_space_is_imagenet_sized_around_refined_vit_s() -> None:
    space = SearchSpace.load("default")
    assert space.name == "default" and space.description
    assert space.fixed["img_size"] == 224 and space.fixed["num_classes"] == 1000
    grid = space.grid()
    assert 16 in grid["depth"] and 384 in grid["embed_dim"] and 12 in grid["num_heads"]
    assert grid["expansion_ratio"] == [1, 2, 3, 4, 5, 6] and grid["kernel_size"] == [1, 3, 5, 7]
    assert grid["share_span"] == [1, 2, 3] and set(grid["context_broadcast"]) == {"off", "mlp_end"}
    assert set(grid["attention"]) == {"vanilla", "talking_heads", "refiner"}
    assert set(grid["dla_constraint"]) == {"none", "spatial", "rowcol"}
    for width, heads in itertools.product(grid["embed_dim"], grid["num_heads"]):
        assert width % heads == 0


def test_tiny_space_fits_the_digits_quick_start(tiny: SearchSpace) -> None:
    assert tiny.fixed == {"img_size": 32, "in_chans": 1, "num_classes": 10, "patch_size": 4, "mlp_ratio": 2.0}
    grid = tiny.grid()
    assert grid["depth"] == [2, 3, 4] and min(grid["embed_dim"]) == 32 and max(grid["embed_dim"]) == 96
    assert grid["context_broadcast"] == ["off", "mlp_end"]  # YAML 1.2: `off` stays a string
    assert tiny.budget.max_params == 200_000


@pytest.mark.parametrize(
    ("edit", "where", "problem"),
    [
        ("  embed_dm: 64\n", "11 (dimensions.embed_dm)",
         "unknown field 'embed_dm' (did you mean 'embed_dim'?); allowed fields: img_size"),
        ("  mlp_ratio: {choice: [2, 4]}\n", "11 (dimensions.mlp_ratio.choice)", "unknown key 'choice'"),
        ("  mlp_ratio: {choices: []}\n", "11 (dimensions.mlp_ratio.choices)", "choices is empty"),
        (
            "  mlp_ratio:\n    int: {low: 4, high: 2}\n",
            "12 (dimensions.mlp_ratio.int)",
            "range low 4 exceeds high 2; swap them",
        ),
        (
            "  drop_rate: {float: {low: 0.0, high: 0.25, step: 0.1}}\n",
            "11 (dimensions.drop_rate.float)",
            "high 0.25 is not low 0.0 plus a multiple of step 0.1; use high 0.2 or 0.3",
        ),
        ("  share_span: {float: {low: 1, high: 2}}\n", "11 (dimensions.share_span.float)", "use an int range"),
        ("  mlp_ratio: {choices: [2, 4], int: {low: 1, high: 2}}\n", "11 (dimensions.mlp_ratio)", "exactly one"),
        (
            "  context_broadcast:\n    choices:\n      - off\n      - mlp_ending\n",
            "14 (dimensions.context_broadcast.choices[1])",
            "context_broadcast='mlp_ending' is not a valid value",
        ),
        ("  stem: {choices: [patch, patch]}\n", "11 (dimensions.stem.choices[1])", "listed twice"),
        ("  depth: 3\n", "11 (dimensions.depth)", "key 'depth' is given twice"),
        (
            "  expansion_ratio: {int: {low: 1, high: 2}, when: {attn: refiner}}\n",
            "11 (dimensions.expansion_ratio.when.attn)",
            "condition on 'attn', which is not a dimension of this space",
        ),
        (
            "  expansion_ratio: {int: {low: 1, high: 2}, when: {attention: [refinr]}}\n",
            "11 (dimensions.expansion_ratio.when.attention)",
            "attention is never 'refinr'",
        ),
        (
            "  shape:\n    choices:\n      small: {depth: 1, qkv_bias: false}\n",
            "11 (dimensions.shape)",
            "field 'depth' is set by both 'depth' and 'shape'; keep one",
        ),
        (
            "  shape:\n    choices:\n      small: {dept: 1}\n",
            "13 (dimensions.shape.choices.small.dept)",
            "unknown field 'dept'",
        ),
        (
            "  expansion_ratio: 2\n",
            "11 (dimensions.expansion_ratio)",
            "rejects depth=1, embed_dim=32, num_heads=2, attention='vanilla': expansion_ratio=2 does not apply to "
            "attention='vanilla' (only to 'refiner' or 'refiner_official'); remove it; "
            "or make it conditional: when: {attention: [...]}",
        ),
        ("constraints: {max_params: 30X}\n", "11 (constraints.max_params)", "'30X' is not a count"),
        ("constraints: {max_parameters: 30M}\n", "11 (constraints.max_parameters)", "unknown key 'max_parameters'"),
        ("colour: red\n", "11 (colour)", "unknown key 'colour'; allowed keys: description, dimensions, constraints"),
        ("  depth: [1, 2\n", "12", "invalid YAML"),
    ],
)
def test_each_mistake_gets_one_line_naming_file_line_and_key(
    tmp_path: Path, edit: str, where: str, problem: str
) -> None:
    message = load_error(tmp_path, BASE + edit)
    assert message.startswith(f"{where}: "), message
    assert problem in message


# Five mistakes of different kinds: an unknown key, a repeated choice, a wrong type, an unknown field, low > high.
FIVE_MISTAKES = """\
dimensions:
  img_size: 32
  depth: {int: {low: 6, hi: 8}}
  embed_dim: {choices: [32, 32]}
  num_heads: four
  embed_dims: 64
  drop_path_rate: {float: {low: 0.3, high: 0.1}}
"""


def five_mistakes(path: Path) -> list[str]:
    """The lines ``FIVE_MISTAKES`` written at ``path`` must give, in file order."""
    return [
        f"{path}:3 (dimensions.depth.int.hi): unknown key 'hi' (did you mean 'high'?); allowed keys: low, high, log, "
        "step",
        f"{path}:4 (dimensions.embed_dim.choices[1]): choice 32 is listed twice; remove one",
        f"{path}:5 (dimensions.num_heads): num_heads='four' is not a valid value: Input should be a valid integer, "
        "unable to parse string as an integer",
        f"{path}:6 (dimensions.embed_dims): unknown field 'embed_dims' (did you mean 'embed_dim'?); allowed fields: "
        + ", ".join(ModelConfig.model_fields) + " (or a group: choices mapping labels to fields)",
        f"{path}:7 (dimensions.drop_path_rate.float): range low 0.3 exceeds high 0.1; swap them",
    ]


def test_every_problem_of_a_file_gets_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_MISTAKES)
    with pytest.raises(SpaceError) as caught:
        SearchSpace.from_yaml(path)
    assert list(caught.value.problems) == five_mistakes(path)
    assert str(caught.value).splitlines() == five_mistakes(path)


def test_the_command_line_prints_each_problem_on_its_own_error_line(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_MISTAKES)
    script = Path(sys.executable).with_name("refiner-nas")  # a real process, as a user runs it
    done = subprocess.run([str(script), "search", "launch", "--space", str(path), "--run-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: {line}" for line in five_mistakes(path)]
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_a_misspelt_key_is_named_with_its_guess_and_the_other_problems_still_reported(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "  mlp_ratio: {float: {lo: 1.0, high: 2.0}}\ncolour: red\n")
    with pytest.raises(SpaceError) as caught:
        SearchSpace.from_yaml(path)
    assert [line.removeprefix(f"{path}:") for line in caught.value.problems] == [
        "12 (colour): unknown key 'colour'; allowed keys: description, dimensions, constraints",
        "11 (dimensions.mlp_ratio.float.lo): unknown key 'lo' (did you mean 'low'?); allowed keys: low, high, log, "
        "step",
    ]
    missing_only = write(tmp_path, BASE + "  mlp_ratio: {float: {high: 2.0}}\n")
    with pytest.raises(SpaceError, match=r"\(dimensions.mlp_ratio.float.low\): missing key 'low'$"):
        SearchSpace.from_yaml(missing_only)


def test_a_huge_image_size_is_one_located_line_before_any_model_is_built(tmp_path: Path) -> None:
    text = BASE.replace("img_size: 32", "img_size: 100000") + "constraints: {max_params: 1M}\n"
    message = load_error(tmp_path, text)
    assert message.startswith("2 (dimensions.img_size): the model family rejects ")
    assert "img_size=100000 is above 4096 px a side" in message and message.endswith("lower img_size")


def test_a_rejected_combination_is_named_with_the_model_familys_reason(tmp_path: Path) -> None:
    text = BASE.replace("  num_heads: {choices: [2, 4]}\n", "  num_heads: {choices: [2, 3]}\n")
    message = load_error(tmp_path, text)
    assert message.startswith(
        "8 (dimensions.num_heads): the model family rejects depth=1, embed_dim=32, num_heads=3, "
        "attention='vanilla': num_heads=3 does not divide embed_dim=32"
    )


def test_a_rejected_value_is_found_among_more_combinations_than_are_tried(tmp_path: Path) -> None:
    # 5000 depths x 2 head counts exceed the 4096 combinations tried; the covering sample still uses 3.
    text = BASE.replace("{int: {low: 1, high: 2}}", "{int: {low: 1, high: 5000}}")
    text = text.replace("  num_heads: {choices: [2, 4]}\n", "  num_heads: {choices: [2, 3]}\n")
    assert "does not divide" in load_error(tmp_path, text)


def test_a_cycle_of_conditions_is_refused(tmp_path: Path) -> None:
    text = BASE.replace("  attention: {choices: [vanilla, refiner]}\n", "")
    text += "  attention: {choices: [vanilla, refiner], when: {kernel_size: 3}}\n"
    message = load_error(tmp_path, text)
    assert "the conditions of kernel_size, attention depend on each other in a cycle; remove one" in message


def cheapest_tiny_config() -> ModelConfig:
    return ModelConfig(img_size=32, in_chans=1, num_classes=10, patch_size=4, depth=1, embed_dim=32, num_heads=2)


def test_a_budget_no_configuration_meets_is_refused_with_the_cheapest_cost(tmp_path: Path) -> None:
    cheapest = count_costs(cheapest_tiny_config())
    limit = cheapest.params - 1000
    message = load_error(tmp_path, BASE + f"constraints:\n  max_params: {limit}\n")
    assert message.startswith("12 (constraints.max_params): no configuration meets max_params")
    match = re.search(r"has ([\d.]+)K params", message)
    assert match is not None and float(match[1]) == pytest.approx(cheapest.params / 1e3, abs=0.01)
    assert "depth=1, embed_dim=32, num_heads=2, attention='vanilla'" in message
    # The same limit just above the cheapest model is accepted.
    SearchSpace.from_yaml(write(tmp_path, BASE + f"constraints:\n  max_params: {cheapest.params}\n"))


def test_limits_each_meetable_but_not_together_are_refused(tmp_path: Path) -> None:
    # Small patches: few parameters, many MACs; large patches: the reverse.
    text = BASE.replace("  patch_size: 4\n", "  patch_size: {choices: [2, 16]}\n").replace("in_chans: 1", "in_chans: 3")
    base = {"img_size": 32, "in_chans": 3, "num_classes": 10, "depth": 1, "embed_dim": 32, "num_heads": 2}
    small, large = (count_costs(ModelConfig(**base, patch_size=p)) for p in (2, 16))
    assert small.params < large.params and small.macs > large.macs
    params, macs = (small.params + large.params) // 2, (small.macs + large.macs) // 2
    message = load_error(tmp_path, text + f"constraints: {{max_params: {params}, max_macs: {macs}}}\n")
    assert message.startswith("11 (constraints): no configuration meets max_params and max_macs together")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30M", 30_000_000), ("30e6", 30_000_000), ("1.5G", 1_500_000_000), ("200K", 200_000), (123456, 123456)],
)
def test_budget_counts_accept_suffixes_and_exponents(tmp_path: Path, text: Any, expected: int) -> None:
    space = SearchSpace.from_yaml(write(tmp_path, BASE + f"constraints:\n  max_params: {text}\n"))
    assert space.budget.max_params == expected


def test_budget_constraint_values_follow_optunas_sign_convention() -> None:
    budget = Budget(max_params="2M", max_macs="1G", max_latency_ms=10)
    values = budget.constraint_values(params=1_000_000, macs=1_500_000_000, latency_ms=10)
    assert values == pytest.approx({"max_params": -0.5, "max_macs": 0.5, "max_latency_ms": 0.0})
    with pytest.raises(ValueError, match="measure the latency"):
        budget.constraint_values(params=1, macs=1)


def test_static_excess_leaves_latency_to_the_measurement() -> None:
    budget = Budget(max_params="2M", max_latency_ms=10)
    assert budget.static_excess(params=3_000_000, macs=10**12) == pytest.approx({"max_params": 0.5})
    assert Budget().static_excess(params=1, macs=1) == {}


def test_suggest_draws_valid_configs_and_respects_conditions(tiny: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    variants = set()
    for _ in range(40):
        trial = study.ask()
        config = tiny.suggest(trial)
        variants.add(config.attention)
        assert set(trial.params) <= {dim.name for dim in tiny.dimensions}
        assert config.img_size == 32 and config.in_chans == 1 and config.embed_dim % config.num_heads == 0
        refined = config.attention == "refiner"
        assert ("expansion_ratio" in trial.params) == refined and ("kernel_size" in trial.params) == refined
        if refined:
            assert 1 <= config.expansion_ratio <= 4 and config.kernel_size in (1, 3)
        else:
            assert config.expansion_ratio is None and config.kernel_size is None
        assert tiny.config_from_params(trial.params) == config
        study.tell(trial, 0.0)
    assert variants == {"vanilla", "talking_heads", "refiner"}


def test_fixed_trial_gives_exactly_its_configuration(tiny: SearchSpace) -> None:
    params = {
        "depth": 3,
        "embed_dim": 48,
        "num_heads": 4,
        "attention": "refiner",
        "expansion_ratio": 2,
        "kernel_size": 3,
        "share_span": 2,
        "context_broadcast": "mlp_end",
    }
    config = tiny.suggest(optuna.trial.FixedTrial(params))
    assert config == ModelConfig(**tiny.fixed, **params)
    assert tiny.config_from_params(params) == config


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"kernel_size": None}, "params lack 'kernel_size'"),
        ({"depth": 7}, "depth=7 is outside the space (int 2..4)"),
        ({"attention": "vanilla"}, "'expansion_ratio' is not drawn for this configuration (it needs attention"),
        ({"img_size": 32}, "'img_size' is fixed in this space"),
        ({"lr": 0.1}, "'lr' is not a dimension of this space"),
    ],
)
def test_config_from_params_refuses_params_of_another_space(
    tiny: SearchSpace, change: dict[str, Any], problem: str
) -> None:
    params = {
        "depth": 2,
        "embed_dim": 32,
        "num_heads": 2,
        "attention": "refiner",
        "expansion_ratio": 1,
        "kernel_size": 1,
        "share_span": 1,
        "context_broadcast": "off",
        **change,
    }
    params = {key: value for key, value in params.items() if value is not None}
    with pytest.raises(SpaceError, match=re.escape(problem)):
        tiny.config_from_params(params)


def test_grid_refuses_a_continuous_range(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "  drop_path_rate: {float: {low: 0.0, high: 0.2}}\n")
    space = SearchSpace.from_yaml(path)
    with pytest.raises(SpaceError, match=re.escape(f"{path}:11 (dimensions.drop_path_rate.float): a continuous")):
        space.grid()
    stepped = SearchSpace.from_yaml(
        write(tmp_path, BASE + "  drop_path_rate: {float: {low: 0.0, high: 0.3, step: 0.1}}\n")
    )
    assert stepped.grid()["drop_path_rate"] == [0.0, 0.1, 0.2, 0.3]


def test_with_fixed_refits_a_space_and_validates_again(tiny: SearchSpace) -> None:
    fitted = tiny.with_fixed(in_chans=3, num_classes=100)
    assert fitted.fixed["in_chans"] == 3 and fitted.fixed["num_classes"] == 100
    assert fitted.grid() == tiny.grid()
    with pytest.raises(SpaceError, match=r"tiny\.yaml \(dimensions\.num_heads\): the model family rejects"):
        tiny.with_fixed(num_heads=5)


def test_with_budget_sets_other_limits_and_validates_them(tiny: SearchSpace) -> None:
    limited = tiny.with_budget(Budget(max_params="20K"))
    assert limited.budget.max_params == 20_000 and limited.grid() == tiny.grid()
    with pytest.raises(SpaceError, match=r"no configuration meets max_params 100"):
        tiny.with_budget(Budget(max_params=100))


def test_load_takes_names_and_paths(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    assert SearchSpace.load(path).source == str(path)
    assert SearchSpace.load(str(path)).name == "space"
    with pytest.raises(SpaceError, match="unknown search space 'tinny'; shipped spaces: default, table1"):
        SearchSpace.load("tinny")
    with pytest.raises(SpaceError, match="cannot read search space"):
        SearchSpace.load(tmp_path / "missing.yaml")


def test_from_dict_names_the_key_without_a_line() -> None:
    with pytest.raises(SpaceError, match=r"^<dict> \(dimensions\.depth\.int\): range low 4 exceeds high 2"):
        SearchSpace.from_dict({"dimensions": {"depth": {"int": {"low": 4, "high": 2}}}})


# The ablation spaces against the paper's rows: how each table's text reads as configuration fields.
def _variant(row: dict[str, str]) -> tuple[Any, ...]:
    text = row["variant"]
    table = row["table"]
    if table == "1":
        return ("refiner", int(row["expansion_ratio"]), 1, None, 1)
    if table == "2":
        return ("vanilla", None, None, None, 1) if text == "vanilla" else ("refiner", 1, 3, None, 1)
    if table == "4":
        constraint = {"none": "none", "spatial": "spatial", "row+col": "rowcol"}[text.split()[-1]]
        return ("refiner", 3, 3, constraint, 1)
    refined = text.startswith("refiner")
    span = int(re.search(r"shared (\d)", text)[1]) + 1 if table == "13" else 1  # type: ignore[index]
    return ("refiner", 3, 3, None, span) if refined else ("vanilla", None, None, None, span)


def _row_key(row: dict[str, str]) -> tuple[Any, ...]:
    heads = int(row["heads"]) if row["heads"] else 12
    return (int(row["blocks"]), int(row["dim"]), heads, *_variant(row))


@pytest.mark.skipif(not ABLATIONS.exists(), reason=f"reference table {ABLATIONS} not present")
@pytest.mark.parametrize("table", ["1", "2", "4", "12", "13"])
def test_ablation_grids_are_the_papers_rows(table: str) -> None:
    with ABLATIONS.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["table"] == table]
    space = SearchSpace.from_name(f"table{table}")
    grid = space.grid()
    configs = [
        space.config_from_params(dict(zip(grid, point, strict=True))) for point in itertools.product(*grid.values())
    ]
    keys = [
        (
            c.depth,
            c.embed_dim,
            c.num_heads,
            c.attention,
            c.expansion_ratio,
            c.kernel_size,
            c.dla_constraint if table == "4" else None,
            c.share_span,
        )
        for c in configs
    ]
    assert len(keys) == len(set(keys)) == len(rows)
    assert set(keys) == {_row_key(row) for row in rows}
    assert all((c.img_size, c.num_classes, c.patch_size) == (224, 1000, 16) for c in configs)


@pytest.mark.slow
@pytest.mark.skipif(not ABLATIONS.exists(), reason=f"reference table {ABLATIONS} not present")
def test_table2_shapes_have_the_papers_parameter_counts() -> None:
    with ABLATIONS.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["table"] == "2"]
    space = SearchSpace.from_name("table2")
    for row in rows:
        variant = "vanilla" if row["variant"] == "vanilla" else "dla_only"
        config = space.config_from_params({"shape": f"{row['blocks']}x{row['dim']}", "variant": variant})
        params = sum(parameter.numel() for parameter in build_model(config).parameters())
        assert int(params / 1e6) == int(row["params_m"])  # the paper truncates: ViT-B's 86.6M is 86
