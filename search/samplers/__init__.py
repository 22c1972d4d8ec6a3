"""Samplers: how a trial's architecture is chosen.

- ``KnownCostSampler`` (``_ehvi``): expected hypervolume improvement with costs counted before training;
- ``PromotingSampler`` (``_promoting``): resumes paused trials that the ``promote`` rule lets on;
- ``PrescreenSampler`` (``_prescreen``, ``_zero_cost``): scores candidates with a zero-cost proxy first;
- ``make_sampler``, ``worker_sampler`` (``_factory``): the sampler a launch's settings ask for.
"""

from refiner_nas.search.samplers._ehvi import KNOWN_COSTS, Candidate, KnownCostSampler
from refiner_nas.search.samplers._factory import (
    GP_ACQUISITION_SEARCH,
    LaunchCosts,
    known_cost_sampler,
    make_sampler,
    prunes_over_budget,
    sampler_seed,
    worker_sampler,
)
from refiner_nas.search.samplers._prescreen import PROXY_BATCH, PrescreenSampler, ProxyScorer, with_prescreen
from refiner_nas.search.samplers._promoting import PromotingSampler, ResumptionWeigher, resumed_trial
from refiner_nas.search.samplers._zero_cost import grad_norm, naswot, score, synflow

__all__ = [
    "Candidate",
    "GP_ACQUISITION_SEARCH",
    "KNOWN_COSTS",
    "KnownCostSampler",
    "LaunchCosts",
    "PROXY_BATCH",
    "PrescreenSampler",
    "PromotingSampler",
    "ProxyScorer",
    "ResumptionWeigher",
    "grad_norm",
    "known_cost_sampler",
    "make_sampler",
    "naswot",
    "prunes_over_budget",
    "resumed_trial",
    "sampler_seed",
    "score",
    "synflow",
    "with_prescreen",
    "worker_sampler",
]
