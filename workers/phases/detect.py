"""Phase detect: choose the buildpack and read ``.binder.yml``."""

from __future__ import annotations

from typing import Any

from common.sizes import parse_size
from workers.binder_yml import Ceilings, find_binder_yml, load_binder_yml
from workers.buildpacks import BuildInputs, detect
from workers.phase_runner import PhaseResult, PhaseRun


def run(phase: PhaseRun) -> PhaseResult:
    checkout, config = phase.checkout, phase.config
    buildpack, config_path = detect(checkout, config)
    inputs = BuildInputs(checkout, config_path, config)
    buildpack.check(inputs)
    for notice in buildpack.notices(inputs):
        phase.say(notice)
    binder_yml: dict[str, Any] = {}
    yml_path = find_binder_yml(checkout)
    if yml_path is not None:
        binder_yml = load_binder_yml(yml_path, Ceilings(parse_size(config.max_memory),
                                                        config.max_cpu))
        phase.say(f"read {yml_path.name}")
    chosen = str(config_path) if config_path else "none"
    phase.say(f"building with the {buildpack.id} buildpack (config file: {chosen})")
    return PhaseResult({"config": str(config_path) if config_path else None,
                        "buildpack": buildpack.id, "binder_yml": binder_yml})
