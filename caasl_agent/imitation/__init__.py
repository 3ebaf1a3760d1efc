"""Imitation of a planning designer (DAgger) and the command ``caasl imitate``."""

from caasl_agent.imitation.labels import (
    FORMAT,
    LabelChunk,
    LabelSetting,
    check_teacher,
    collect,
    collect_chunk,
    load_chunk,
    load_chunks,
    save_chunk,
)
from caasl_agent.imitation.trainer import (
    LabelDataset,
    actor_imitation_loss,
    fit_actor,
    imitation_loss,
)

__all__ = [
    "FORMAT",
    "LabelChunk",
    "LabelDataset",
    "LabelSetting",
    "actor_imitation_loss",
    "check_teacher",
    "collect",
    "collect_chunk",
    "fit_actor",
    "imitation_loss",
    "load_chunk",
    "load_chunks",
    "save_chunk",
]
