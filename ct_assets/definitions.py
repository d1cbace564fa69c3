"""The Dagster code location (`[tool.dagster] module_name`)."""

from ct_assets.defs.build import build_definitions

defs = build_definitions()
