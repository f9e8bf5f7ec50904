"""Leaderboard: entries as reviewable data in git, validated, re-derivable, rendered offline.

Public API::

    from mribench.workflows.leaderboard import build_entry, write_entry, validate_leaderboard, build_site, export_table
    entry = build_entry("runs/anatomy/my-unet", name="my-unet", display_name="My U-Net", authors=["A. B."])
    write_entry(entry, mribench.load_run("runs/anatomy/my-unet").slices, root="leaderboard")
    problems = validate_leaderboard("leaderboard")      # [] when valid; one line per problem otherwise
    build_site("leaderboard")                           # leaderboard/README.md + leaderboard/site/
    export_table("leaderboard", format="parquet", out="leaderboard.parquet")
"""

from __future__ import annotations

from mribench.workflows.leaderboard.entry import (
    LoadedEntry,
    build_entry,
    entry_path,
    entry_to_run,
    load_entries,
    parse_entry,
    write_entry,
    write_json_schema,
)
from mribench.workflows.leaderboard.export import export_table, leaderboard_table
from mribench.workflows.leaderboard.schema import SCHEMA_VERSION, Entry, json_schema
from mribench.workflows.leaderboard.site import build_site
from mribench.workflows.leaderboard.validate import Problem, validate_leaderboard

__all__ = [
    "SCHEMA_VERSION",
    "Entry",
    "LoadedEntry",
    "Problem",
    "build_entry",
    "build_site",
    "entry_path",
    "entry_to_run",
    "export_table",
    "json_schema",
    "leaderboard_table",
    "load_entries",
    "parse_entry",
    "validate_leaderboard",
    "write_entry",
    "write_json_schema",
]
