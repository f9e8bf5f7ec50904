"""Workflows: what a user runs, built from the layers below (contracts, physics, data, tasks, models,
metrics, analysis, results).

Modules: :mod:`.evaluation` (evaluate a model on a task), :mod:`.check` (the CI regression gate),
:mod:`.curve` (robustness curves), :mod:`.similarity` (CLIP nearest-neighbour similarity),
:mod:`.report` (HTML/Markdown reports), :mod:`.launch` (cluster launchers); packages
:mod:`.training` (training recipes, self-supervised training, test-time training) and
:mod:`.leaderboard` (entries, validation, site).
"""
