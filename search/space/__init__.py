"""Search spaces: which model configurations a search may try, declared in YAML.

A space file has three keys::

    description: Depth, width and attention variant of small ViTs.   # optional, free text
    dimensions:                        # ModelConfig fields (and groups), each one of:
      img_size: 32                     #   a fixed value (a list is a fixed value too: img_size: [32, 48])
      depth: {int: {low: 2, high: 4}}                  # integer range: low, high, step (1), log (false)
      drop_path_rate: {float: {low: 0.0, high: 0.2, step: 0.05}}   # real range: step or log, or neither
      embed_dim: {choices: [32, 48, 64, 96]}           # a list of choices (numbers, strings, true/false)
      attention: {choices: [vanilla, talking_heads, refiner]}
      kernel_size:                     # any dimension may carry a condition: drawn and set only when every
        choices: [1, 3]                # named dimension has one of the listed values (else the field keeps
        when: {attention: refiner}     # ModelConfig's default)
      expansion_ratio: {value: 1, when: {attention: [refiner]}}    # a conditional fixed value
      shape:                           # a group (its name is not a model field): labelled choices that
        choices:                       # set several fields together; conditions and trial params use
          12x768: {depth: 12, embed_dim: 768}   # the labels
          16x384: {depth: 16, embed_dim: 384}
    constraints:                       # optional budget, all limits optional
      max_params: 30M                  # numbers or K/M/G/T suffixes: 30000000, 30e6, "30M"
      max_macs: 8G                     # multiply-accumulates, one image (refiner_space.costs.count_costs)
      max_latency_ms: 50               # measured per trial by the search; cannot be checked up front

YAML 1.2 scalars: only true/false are booleans (``off`` is the string ``context_broadcast`` expects).

Validation happens on load and names the file, the line and the key, one line per error
(``spaces/foo.yaml:12 (dimensions.embed_dim.int): range low 512 exceeds high 256; swap them``), every error
of the keys and dimensions at once (``SpaceError.problems``; the command line prints each on an ``error:``
line); how the dimensions combine is checked once they all parse:
an unknown key or model field, a key given twice, a value the field's type rejects, empty or repeated
choices, a range whose low exceeds its high (or whose step does not reach high), a condition on an
undeclared dimension or a value it never takes, a cycle of conditions, a field set by two dimensions, and
every combination of values the model family (``ModelConfig``) rejects, such as ``num_heads`` not dividing
``embed_dim``: all combinations are tried, or 4096 of them when there are more (half cycling through
every dimension's values, half at random; continuous ranges are tried at both ends). A budget no
configuration can meet is rejected too: the cheapest configurations (each dimension at its cheapest end;
every value of a dimension whose effect on cost is not monotone) are built and counted, and if none meets
``max_params``/``max_macs`` (together) the file is refused. Latency depends on the machine: it cannot be
checked up front, and the search measures it per trial.

Using a space::

    space = SearchSpace.load("tiny")            # a shipped name (shipped_spaces()) or a path to a file
    config = space.suggest(trial)               # optuna trial: parameter names are dimension names
    config = space.config_from_params(trial.params)   # the same configuration again
    sampler = optuna.samplers.GridSampler(space.grid())
    space.budget.constraint_values(params=..., macs=...)   # Optuna constraint values, <= 0 feasible
    space.with_fixed(img_size=32, in_chans=1, num_classes=10)  # fit a space to a dataset
    space.with_budget(Budget(max_params="20K"))  # the same space under other cost limits

Shipped: ``tiny`` (the quick start's digits search), ``default`` (around Refined-ViT-S at 224 px), and
``table1``, ``table2``, ``table4``, ``table12``, ``table13``: the paper's ablations as grid searches.
"""

from refiner_nas.search.space._budget import Budget
from refiner_nas.search.space._domains import Choices, Domain, Fixed, FloatRange, Group, IntRange
from refiner_nas.search.space._size import ENUMERATE_LIMIT, design_levels, design_size, enumerate_space, grid_size
from refiner_nas.search.space._space import Dimension, SearchSpace, shipped_spaces
from refiner_nas.search.space._yaml import SpaceError

__all__ = [
    "ENUMERATE_LIMIT",
    "design_levels",
    "design_size",
    "enumerate_space",
    "grid_size",
    "Budget",
    "Choices",
    "Dimension",
    "Domain",
    "Fixed",
    "FloatRange",
    "Group",
    "IntRange",
    "SearchSpace",
    "SpaceError",
    "shipped_spaces",
]
