"""Phase detect: choose the buildpack and read ``.binder.yml``."""

from __future__ import annotations

from typing import Any

from workers.binder_yml import find_binder_yml, load_binder_yml
from workers.buildpacks import BuildInputs, detect
from workers.phase_runner import PhaseRun


def run(context: PhaseRun) -> dict[str, Any]:
    checkout = context.checkout
    buildpack, config_path = detect(checkout, context.config)
    buildpack.check(BuildInputs(checkout, config_path, context.config))
    binder_yml: dict[str, Any] = {}
    yml_path = find_binder_yml(checkout)
    if yml_path is not None:
        binder_yml = load_binder_yml(yml_path)
        context.say(f"read {yml_path.name}")
    chosen = str(config_path) if config_path else "none"
    context.say(f"building with the {buildpack.id} buildpack (config file: {chosen})")
    return {"config": str(config_path) if config_path else None, "buildpack": buildpack.id,
            "binder_yml": binder_yml}
