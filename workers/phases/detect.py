"""Phase detect: choose the environment and what composes on top; read ``.binder.yml``."""

from __future__ import annotations

from typing import Any

from common.sizes import parse_size
from workers.binder_yml import Ceilings, find_binder_yml, load_binder_yml
from workers.buildpacks import check, detect, notices
from workers.phase_runner import PhaseResult, PhaseRun


def run(phase: PhaseRun) -> PhaseResult:
    checkout, config = phase.checkout, phase.config
    detection = detect(checkout, config)
    check(detection, checkout, config)
    for notice in notices(detection, checkout, config):
        phase.say(notice)
    binder_yml: dict[str, Any] = {}
    yml_path = find_binder_yml(checkout)
    if yml_path is not None:
        binder_yml = load_binder_yml(checkout / yml_path, Ceilings(parse_size(config.max_memory),
                                                                   config.max_cpu))
        phase.say(f"read {yml_path}")
    applied = [str(path) for path in detection.applied]
    phase.say(f"building with the {detection.buildpack.id} buildpack; applying, in order: "
              f"{', '.join(applied) if applied else 'no configuration file'}")
    for path, reason in detection.ignored:
        phase.say(f"ignoring {path}: {reason}")
    config_path = detection.config_path
    return PhaseResult({"config": str(config_path) if config_path else None,
                        "buildpack": detection.buildpack.id, "config_files": applied,
                        "binder_yml": binder_yml})
