"""Which hostile cases each reader gets, and the seeded builder of one batch."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from .folders import FOLDER_CASES, Batch, folder_finish, folder_valid
from .coco import (ENTRY_CASES, IMAGE_FILE_CASES, INSTANCES_CASES, PANOPTIC_CASES, c_absolute_file_name,
                          c_declared_size_mismatch, c_duplicate_image_entry, c_huge_declared_size, c_surrogate_file_name,
                          c_traversal_file_name, c_unknown_image, instances_finish, instances_valid, p_duplicate_image_id,
                          panoptic_finish, panoptic_valid)

READERS = {
    "semantic-png": (folder_valid, FOLDER_CASES, folder_finish),
    "ade20k": (folder_valid, FOLDER_CASES, folder_finish),
    "coco-instances": (instances_valid, INSTANCES_CASES + ENTRY_CASES + IMAGE_FILE_CASES +
                       [c_duplicate_image_entry, c_surrogate_file_name, c_traversal_file_name, c_absolute_file_name,
                        c_huge_declared_size, c_declared_size_mismatch, c_unknown_image], instances_finish),
    "coco-panoptic": (panoptic_valid, PANOPTIC_CASES + ENTRY_CASES + IMAGE_FILE_CASES +
                      [c_surrogate_file_name, c_traversal_file_name, c_absolute_file_name, c_declared_size_mismatch,
                       c_unknown_image, p_duplicate_image_id], panoptic_finish),
}


def build_batch(reader: str, root: Path, outside: Path, n_cases: int, seed: int, chunk: int) -> tuple[Batch, Path]:
    """A dataset of `n_cases` hostile cases drawn (seeded) from the reader's kinds, each
    kind at least once when there is room, with valid siblings in between; returns the
    batch and the path to ingest."""
    valid, kinds, finish = READERS[reader]
    b = Batch(reader, root, np.random.default_rng(seed), outside=outside, state={"chunk": chunk})
    rnd = random.Random(seed)
    order = (kinds * (n_cases // len(kinds) + 1))[:n_cases] if n_cases >= len(kinds) else rnd.sample(kinds, n_cases)
    rnd.shuffle(order)
    for k in range(3):
        valid(b, f"v{k:04d}")  # the first images: those duplicates point at
    for i, case in enumerate(order):
        case(b, f"h{i:04d}")
        if i % 3 == 2:
            valid(b, f"v{i + 3:04d}")
    return b, finish(b)

