"""Benchmarks of the model family and of the search: each module measures one thing and reports it.

- ``fold``, ``official``, ``kernels``: the refiner's fold, the released-code variant and its kernels;
- ``regress``: today's costs and speed against the committed baselines (``results/baselines/``);
- ``table_build``, ``simulate``, ``search_strategies``, ``proxy_correlations``: the tabular benchmark,
  searches replayed on it, and how cheap predictors rank its architectures;
- ``scale``, ``search_overhead``, ``distinct_work``: the search harness at cluster scale, its own cost,
  and how much of a launch's work is new.

What a model costs (counted and measured) is a library, ``refiner_nas.refiner_space.costs``.
"""
