"""What one traced operator costs: the counting convention, as fvcore op handles.

Convention (every number is per forward pass of the traced input):

* **MACs** are the multiply-accumulates of products and convolutions: ``linear``, ``matmul``, ``mm``,
  ``bmm``, ``addmm``, ``einsum``, ``_convolution`` and fused ``scaled_dot_product_attention``
  (q kᵀ and A v). A product of an (…, n, k) and a (…, k, m) operand costs (… · n · m) · k; a convolution
  costs output elements × (input channels per group) × kernel area. An einsum costs, over its pairwise
  steps in the order torch evaluates them, the product of the sizes of every index of the two operands
  for each step that sums over an index. **FLOPs of products are 2 × MACs.**
* **Element-wise FLOPs** are everything else that computes:
  - arithmetic, activations and comparisons (add, mul, div, GELU, ReLU6, exp, ...): 1 per output
    element, whatever the function (GELU counts 1 like an add); ``addcmul``: 2 per output element;
    an einsum step that sums over no index: 1 per product;
    integer results (shape and index arithmetic recorded by tracing) count 0;
  - a bias added by ``linear``/``addmm``/a convolution: 1 per output element;
  - reductions (mean, sum, amax, ...): 1 per input element;
  - softmax: 5 per element (max, subtract, exp, sum, divide);
  - LayerNorm / GroupNorm / InstanceNorm and training-mode BatchNorm: as fvcore counts them, 5 per
    element with an affine transform, 4 without; eval-mode BatchNorm: 2 per element (1 without affine);
  - fused attention adds its softmax (5 per map element) and the scaling of q (1 per query element),
    exactly what the explicit path computes, so fused and explicit attention count the same.
* Data movement (view, reshape, transpose, cat, slicing, padding, eval-mode dropout, ...) costs 0.
* Any other operator is **unsupported**: the counter refuses to return a number that would silently
  leave its compute out (see ``refiner_nas.refiner_space.costs._count.UncountedOperatorError``).

Each handle also reports what plain fvcore would count for the same operator (one multiply-add as one
"flop", its norm estimates, fused attention and element-wise operators as zero), so the spec's "fvcore
flops" come out of the same trace.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Callable, Sequence
from math import prod
from typing import Any

import torch
from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS as _FVCORE_HANDLES
from fvcore.nn.jit_analysis import _IGNORED_OPS as _FVCORE_IGNORED_OPS
from fvcore.nn.jit_handles import get_shape

# Counter categories: the three counts, then the calls of zero-cost and of unsupported operators.
MACS, ELEMENTWISE, FVCORE = "macs", "elementwise", "fvcore"
ZERO_COST, UNSUPPORTED = "zero_cost", "unsupported"
CATEGORIES = (MACS, ELEMENTWISE, FVCORE, ZERO_COST, UNSUPPORTED)

# (MACs, element-wise FLOPs) of one operator call, from the jit values of its inputs and outputs.
Rule = Callable[[list[Any], list[Any]], tuple[int, int]]

ZERO_COST_OPS = frozenset(
    f"aten::{name}"
    for name in (
        "view", "reshape", "flatten", "unflatten", "transpose", "permute", "t", "expand", "expand_as",
        "contiguous", "to", "type_as", "size", "Int", "ScalarImplicit", "select", "slice", "narrow",
        "split", "split_with_sizes", "chunk", "unbind", "cat", "stack", "squeeze", "unsqueeze",
        "unsqueeze_", "detach", "dropout", "alias", "clone", "copy_", "zeros", "ones", "empty", "full",
        "zeros_like", "ones_like", "full_like", "empty_like", "new_empty", "new_zeros", "new_full",
        "arange", "constant_pad_nd", "roll", "gather", "index", "lift_fresh", "numpy_T",
    )
)  # fmt: skip


def key(category: str, op: str) -> str:
    """The counter key of one operator's contribution to one category, e.g. ``macs:aten::linear``."""
    return f"{category}:{op}"


def split_key(counter_key: str) -> tuple[str, str]:
    """Inverse of ``key``: ``(category, op)``."""
    category, _, op = counter_key.partition(":")
    return category, op


def _numel(value: Any) -> int:
    shape = get_shape(value)
    return prod(shape) if shape is not None else 0


_FLOATING = frozenset({"Float", "Double", "Half", "BFloat16"})


def _floating(value: Any) -> bool:
    return getattr(value.type(), "scalarType", lambda: None)() in _FLOATING


def _float_numel(inputs: list[Any], outputs: list[Any]) -> int:
    """Output elements of an operator on floating-point values (a comparison's output is boolean).
    Integer-only operators are shape and index arithmetic that tracing records: no FLOPs."""
    return _numel(outputs[0]) if _floating(outputs[0]) or (inputs and _floating(inputs[0])) else 0


def _present(value: Any) -> bool:
    return get_shape(value) is not None


def _product_macs(left: Sequence[int], out: Sequence[int]) -> int:
    # Every output element is a dot product over the last axis of the left operand.
    return prod(out) * (left[-1] if left else 1)


def _matmul(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    return _product_macs(get_shape(inputs[0]), get_shape(outputs[0])), 0


def _addmm(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    # addmm(bias, a, b): a @ b plus the bias.
    return _product_macs(get_shape(inputs[1]), get_shape(outputs[0])), _numel(outputs[0])


def _linear(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    bias = _numel(outputs[0]) if _present(inputs[2]) else 0
    return _product_macs(get_shape(inputs[0]), get_shape(outputs[0])), bias


def _convolution(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    weight = get_shape(inputs[1])
    transposed = len(inputs) > 6 and inputs[6].toIValue() is True
    # Direct: each output element sums (C_in/groups)·k² products. Transposed: each input element
    # scatters into (C_out/groups)·k² outputs; the weight is (C_in, C_out/groups, k...).
    elements = _numel(inputs[0]) if transposed else _numel(outputs[0])
    bias = _numel(outputs[0]) if _present(inputs[2]) else 0
    return elements * prod(weight[1:]), bias


def _einsum(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    equation = inputs[0].toIValue()
    shapes = [get_shape(value) for value in inputs[1].node().inputs()]
    return einsum_costs(equation, shapes)


def einsum_costs(equation: str, shapes: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(MACs, element-wise FLOPs) of ``torch.einsum(equation, *operands)`` with operands of ``shapes``.

    Torch contracts two operands at a time (left to right, or along opt_einsum's path when torch uses
    opt_einsum). A pairwise step that sums over an index costs the product of the sizes of every index of
    the two operands in MACs; a step that sums nothing is that many element-wise multiplications.
    """
    terms, output = _parse_einsum(equation, shapes)
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        for index, size in zip(term, shape, strict=True):
            sizes[index] = max(size, sizes.get(index, 1))
    macs = elementwise = 0
    for pair in _contraction_path(equation, shapes, len(terms)):
        first, second = sorted(pair)
        left, right = terms[first], terms[second]
        rest = [t for i, t in enumerate(terms) if i not in (first, second)]
        needed = set(output).union(*rest)
        involved = set(left + right)
        products = prod(sizes[index] for index in involved)
        if involved <= needed:
            elementwise += products
        else:
            macs += products
        terms = [*rest, "".join(i for i in dict.fromkeys(left + right) if i in needed)]
    return macs, elementwise


def _parse_einsum(equation: str, shapes: Sequence[Sequence[int]]) -> tuple[list[str], str]:
    """Operand terms and output of an einsum equation, with ``...`` spelled out as letters."""
    lhs, arrow, output = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    spare = [c for c in string.ascii_letters if c not in equation]
    widest = 0
    for position, (term, shape) in enumerate(zip(terms, shapes, strict=True)):
        if "..." in term:
            count = len(shape) - (len(term) - 3)
            widest = max(widest, count)
            terms[position] = term.replace("...", "".join(spare[len(spare) - count :]))
    ellipsis = "".join(spare[len(spare) - widest :]) if widest else ""
    if not arrow:
        joined = "".join(terms)
        singles = sorted(c for c in set(joined) if joined.count(c) == 1 and c not in ellipsis)
        output = ellipsis + "".join(singles)
    return terms, output.replace("...", ellipsis)


def _contraction_path(equation: str, shapes: Sequence[Sequence[int]], operands: int) -> list[tuple[int, ...]]:
    if operands > 2 and torch.backends.opt_einsum.enabled and torch.backends.opt_einsum.is_available():
        import opt_einsum

        path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=torch.backends.opt_einsum.strategy)
        return list(path)
    return [(0, 1)] * (operands - 1)


def _elementwise(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    return 0, _float_numel(inputs, outputs)


def _addcmul(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    return 0, 2 * _float_numel(inputs, outputs)


def _reduction(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    return 0, _numel(inputs[0]) if _floating(inputs[0]) else 0


def _softmax(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    return 0, 5 * _numel(inputs[0])


def _norm(affine_index: int) -> Rule:
    def rule(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
        return 0, _numel(inputs[0]) * (5 if _present(inputs[affine_index]) else 4)

    return rule


def _batch_norm(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    if inputs[5].toIValue():  # training: normalises with batch statistics
        return _norm(1)(inputs, outputs)
    return 0, _numel(inputs[0]) * (2 if _present(inputs[1]) else 1)


def _scaled_dot_product_attention(inputs: list[Any], outputs: list[Any]) -> tuple[int, int]:
    query, key_, value = (get_shape(v) for v in inputs[:3])
    maps = prod(query[:-1]) * key_[-2]  # B·H·Nq·Nk
    macs = maps * query[-1] + maps * value[-1]  # q kᵀ and A v
    elementwise = prod(query) + 5 * maps + (maps if _present(inputs[3]) else 0)  # scale, softmax, mask
    return macs, elementwise


_ELEMENTWISE_OPS = (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs", "reciprocal",
    "exp", "log", "sqrt", "rsqrt", "pow", "square", "sigmoid", "tanh", "relu", "relu_", "relu6",
    "hardtanh", "hardtanh_", "gelu", "silu", "silu_", "hardswish", "hardsigmoid", "clamp", "clamp_",
    "clamp_min", "clamp_max", "floor", "ceil", "round", "floor_divide", "remainder", "where",
    "masked_fill", "masked_fill_", "eq", "ne", "ge", "gt", "le", "lt", "bitwise_not", "__and__",
    "__or__", "logical_and", "logical_or", "logical_not", "lerp",
)  # fmt: skip
_REDUCTION_OPS = ("mean", "sum", "amax", "amin", "max", "min", "std", "var", "norm", "logsumexp")

RULES: dict[str, Rule] = {
    "aten::linear": _linear,
    "aten::matmul": _matmul,
    "aten::mm": _matmul,
    "aten::bmm": _matmul,
    "aten::addmm": _addmm,
    "aten::einsum": _einsum,
    "aten::_convolution": _convolution,
    "aten::conv1d": _convolution,
    "aten::conv2d": _convolution,
    "aten::scaled_dot_product_attention": _scaled_dot_product_attention,
    "aten::softmax": _softmax,
    "aten::log_softmax": _softmax,
    "aten::addcmul": _addcmul,
    "aten::layer_norm": _norm(2),
    "aten::group_norm": _norm(2),
    "aten::instance_norm": _norm(1),
    "aten::batch_norm": _batch_norm,
    **{f"aten::{name}": _elementwise for name in _ELEMENTWISE_OPS},
    **{f"aten::{name}": _reduction for name in _REDUCTION_OPS},
}


def handle_for(op: str, rule: Rule) -> Callable[[list[Any], list[Any]], Counter[str]]:
    """An fvcore op handle counting ``op`` under the convention, plus plain fvcore's count of it."""
    fvcore_handle = _FVCORE_HANDLES.get(op)

    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        macs, elementwise = rule(inputs, outputs)
        counts: Counter[str] = Counter({key(MACS, op): macs, key(ELEMENTWISE, op): elementwise})
        if fvcore_handle is not None:
            fvcore_count = fvcore_handle(inputs, outputs)
            total = sum(fvcore_count.values()) if isinstance(fvcore_count, Counter) else fvcore_count
            counts[key(FVCORE, op)] = int(total)
        return counts

    return handle


def _call_counter(category: str, op: str) -> Callable[[list[Any], list[Any]], Counter[str]]:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        return Counter({key(category, op): 1})

    return handle


def op_handles() -> dict[str, Callable[[list[Any], list[Any]], Counter[str]]]:
    """Every handle the counter registers: the counting rules; a call counter for each zero-cost
    operator; and a handle marking as unsupported each operator that fvcore would silently skip although
    it computes (fvcore's skip list mixes data movement and compute)."""
    handles = {op: handle_for(op, rule) for op, rule in RULES.items()}
    for op in ZERO_COST_OPS:
        handles[op] = _call_counter(ZERO_COST, op)
    for op in _FVCORE_IGNORED_OPS - ZERO_COST_OPS - RULES.keys():
        handles[op] = _call_counter(UNSUPPORTED, op)
    return handles
