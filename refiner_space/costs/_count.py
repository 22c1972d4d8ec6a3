"""Parameters, MACs and FLOPs of any model of the family, counted with fvcore under one convention.

``count_costs`` is what searches call: it takes a ``ModelConfig`` (or a built model), traces one image
through the model with fvcore and the handles of ``refiner_nas.refiner_space.costs._ops``, and returns
``Costs``, with a per-part breakdown. Results for configurations are cached by configuration hash and input
size (``refiner_nas.refiner_space.costs._cache.CostCache``), so the same architecture is never counted twice.
"""

from __future__ import annotations

import warnings
from collections import Counter

import torch
from torch import nn

from refiner_nas.refiner_space.costs._costs import Costs, PartCosts, UncountedOperatorError

with warnings.catch_warnings():
    # fvcore scripts its losses with torch.jit on import, which warns about its own deprecation once per
    # process: every search worker would print it through the progress display.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
    from fvcore.nn import parameter_count
    from fvcore.nn.jit_analysis import JitModelAnalysis

    import refiner_nas.refiner_space.costs._ops as op_costs
from refiner_nas.refiner_space import ModelConfig, RefinedViT, build_model, set_refiner_fold
from refiner_nas.refiner_space.costs._cache import DEFAULT_CACHE, CostCache
from refiner_nas.refiner_space.layers import (
    Attention,
    AttentionRefiner,
    Block,
    ContextBroadcast,
    HeadMixing,
    OfficialComputeAttention,
    OfficialMapRefiner,
    OfficialShareAttention,
)


def count_costs(
    model: nn.Module | ModelConfig,
    *,
    img_size: int | tuple[int, int] | None = None,
    refiner_fold: bool = False,
    cache: CostCache | None = DEFAULT_CACHE,
) -> Costs:
    """Count parameters, MACs and FLOPs of one forward pass of one image.

    Args:
        model: a configuration (built here; results cached) or a built model (counted as it is, in eval
            mode, never cached: folds and loaded weights may change what it computes).
        img_size: input size; default the configuration's. For a configuration, a different size builds
            the model for that size (the token grid changes).
        refiner_fold: count paper-variant refiners as their folded dense k×k convolution
            (configurations only; for a built model, fold it yourself).
        cache: where results are kept; ``None`` counts afresh.

    Raises:
        UncountedOperatorError: the model computes with an operator the convention has no rule for.
        refiner_space.FoldError: ``refiner_fold`` on a configuration with nothing to fold.
        TypeError: ``model`` is neither a configuration nor a module.
    """
    if isinstance(model, ModelConfig):
        config = model if img_size is None else model.replace(img_size=img_size)
        if cache is None:
            return _count_config(config, refiner_fold)
        return cache.get_or_count(config, refiner_fold, lambda: _count_config(config, refiner_fold))
    if refiner_fold:
        raise ValueError("refiner_fold applies to configurations; call set_refiner_fold(model) instead")
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_costs takes a ModelConfig or an nn.Module, not {type(model).__name__}")
    if img_size is None:
        if not isinstance(model, RefinedViT):
            raise ValueError(f"img_size is needed to count a {type(model).__name__}")
        img_size = model.config.img_hw
    return count_model(model, img_size if isinstance(img_size, tuple) else (img_size, img_size))


def _count_config(config: ModelConfig, refiner_fold: bool) -> Costs:
    model = build_model(config)
    if refiner_fold:
        set_refiner_fold(model, True)
    return count_model(model, config.img_hw)


def count_model(model: nn.Module, img_size: tuple[int, int], in_chans: int | None = None) -> Costs:
    """Count a built model on one ``img_size`` image (eval mode; the mode is restored afterwards).

    Raises:
        UncountedOperatorError: an operator with compute has no counting rule.
    """
    if in_chans is None:
        in_chans = model.config.in_chans if isinstance(model, RefinedViT) else 3
    device = next(model.parameters(), torch.zeros(())).device
    images = torch.zeros(1, in_chans, *img_size, device=device)
    was_training = model.training
    model.eval()
    try:
        analysis = JitModelAnalysis(model, images)
        analysis.set_op_handle(**op_costs.op_handles())
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with warnings.catch_warnings(), torch.no_grad():
            # fvcore traces with torch.jit, which warns about its own deprecation and tracing.
            warnings.simplefilter("ignore")
            by_module = analysis.by_module_and_operator()
            unsupported = Counter(analysis.unsupported_ops())
    finally:
        model.train(was_training)

    totals: Counter[str] = Counter(by_module[""])
    for counter_key, calls in totals.items():
        category, op = op_costs.split_key(counter_key)
        if category == op_costs.UNSUPPORTED:
            unsupported[op] += calls
    if unsupported:
        listed = ", ".join(f"{op} ({calls}×)" for op, calls in sorted(unsupported.items()))
        raise UncountedOperatorError(
            f"{type(model).__name__} runs operators that the cost convention has no rule for: {listed}; "
            "add a rule to refiner_nas.refiner_space.costs._ops.RULES (or to ZERO_COST_OPS if it only moves data)"
        )
    category_totals = _by_category(totals)
    return Costs(
        params=sum(p.numel() for p in model.parameters()),
        macs=category_totals[op_costs.MACS],
        elementwise_flops=category_totals[op_costs.ELEMENTWISE],
        fvcore_flops=category_totals[op_costs.FVCORE],
        img_size=tuple(img_size),  # type: ignore[arg-type]
        parts=_parts(model, by_module),
        zero_cost_ops={
            op: int(calls)
            for counter_key, calls in sorted(totals.items())
            for category, op in [op_costs.split_key(counter_key)]
            if category == op_costs.ZERO_COST
        },
    )


def _by_category(counts: Counter[str]) -> Counter[str]:
    result: Counter[str] = Counter({category: 0 for category in op_costs.CATEGORIES})
    for counter_key, value in counts.items():
        result[op_costs.split_key(counter_key)[0]] += int(value)
    return result


def _part_of(name: str, module: nn.Module, parent: nn.Module | None) -> str | None:
    """The part of the breakdown that ``module`` starts, or None when it belongs to its parent's part."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "patch_embed":
        return "stem"
    if isinstance(module, (AttentionRefiner, OfficialMapRefiner)):
        return "refiner"
    if isinstance(module, HeadMixing):
        return "head mixing"
    if isinstance(module, ContextBroadcast):
        return "context broadcast"
    if isinstance(module, nn.LayerNorm):
        return "norms"
    if isinstance(parent, (Attention, OfficialComputeAttention, OfficialShareAttention)):
        return {"qkv": "qkv projection", "proj": "attention projection"}.get(leaf)
    if isinstance(module, (Attention, OfficialComputeAttention, OfficialShareAttention)):
        return "attention products"
    if isinstance(parent, Block) and leaf == "mlp":
        return "mlp"
    if isinstance(module, Block):
        return "residual"
    if isinstance(parent, RefinedViT) and leaf in ("head", "aux_head"):
        return "head"
    if name == "":
        return "embedding and pooling" if isinstance(module, RefinedViT) else "other"
    return None


def _parts(model: nn.Module, by_module: dict[str, Counter[str]]) -> tuple[PartCosts, ...]:
    modules = dict(model.named_modules())
    parent_names = {name: name.rsplit(".", 1)[0] if "." in name else "" for name in modules if name}
    children: dict[str, list[str]] = {name: [] for name in modules}
    for name, parent in parent_names.items():
        children[parent].append(name)

    part_of_module: dict[str, str] = {}
    for name, module in modules.items():
        parent = modules.get(parent_names.get(name, ""), None) if name else None
        part = _part_of(name, module, parent)
        part_of_module[name] = part if part is not None else part_of_module[parent_names[name]]

    params = parameter_count(model)
    own_params: Counter[str] = Counter()
    for name in modules:
        own = params.get(name, 0) - sum(params.get(child, 0) for child in children[name])
        own_params[part_of_module[name]] += own
    own_costs: dict[str, Counter[str]] = {}
    for name in modules:
        own = Counter(by_module.get(name, Counter()))
        for child in children[name]:
            own.subtract(by_module.get(child, Counter()))
        category_totals = _by_category(+own)
        own_costs.setdefault(part_of_module[name], Counter()).update(category_totals)
    order = [
        "stem", "embedding and pooling", "norms", "qkv projection", "attention products", "head mixing",
        "refiner", "attention projection", "mlp", "context broadcast", "residual", "head", "other",
    ]  # fmt: skip
    return tuple(
        PartCosts(
            part=part,
            params=own_params[part],
            macs=own_costs.get(part, Counter())[op_costs.MACS],
            elementwise_flops=own_costs.get(part, Counter())[op_costs.ELEMENTWISE],
        )
        for part in order
        if own_params[part] or any(own_costs.get(part, Counter()).values())
    )
