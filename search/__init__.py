"""Architecture search over the Refined-ViT space, on Optuna (or Ray Tune).

Rooms, from the bottom up (a room imports only rooms above it in this list; ``tests/test_layout.py``
checks it):

- ``settings``, ``objectives``, ``records``, ``pareto``, ``provenance``, ``periodic``: what a launch is
  told, what it optimises, what each trial records, and the shared Pareto primitives;
- ``space``: search spaces from YAML, their sizes and points; ``strategy``: what ``auto`` resolves to;
- ``storages``: the journal file, database URLs that ride out restarts, liveness of running trials;
- ``tabular``: the tabular benchmark's file format and its true front;
- ``stoppers``: early stopping (dominance, MO-ASHA, pause and resume) and pruners;
- ``evaluation``: costing and training one architecture, or replaying it from a table;
- ``samplers``: known-cost EHVI, promotion of paused trials, pre-screening, the sampler factory;
- ``study``: creating, resuming, listing and summarising studies;
- ``trial``: one trial from its sampled architecture to its record;
- ``runner``: launches, their plan, local and remote workers, the worker loop, Ray, the live display.
"""
