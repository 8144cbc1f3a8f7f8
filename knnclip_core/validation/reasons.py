"""Quarantine reason codes, in the order they are reported when several apply."""

IMAGE_REASONS = {
    "path_outside_root": "the path leaves the dataset root ('..' or a symlink pointing outside)",
    "missing_file": "the image file does not exist",
    "missing_mask": "the image has no mask",
    "missing_image": "the mask has no image",
    "unknown_image": "the annotation names an image the file does not list",
    "mask_unreadable": "the mask cannot be read",
    "not_an_image": "the file is not an image",
    "too_many_pixels": "the image has more pixels than allowed (decompression bomb guard)",
    "truncated_image": "the image does not decode fully",
    "size_mismatch": "image and mask sizes differ",
    "duplicate_id": "the image id appears twice in the batch",
}

SEGMENT_REASONS = {
    "bad_segmentation": "the segmentation cannot be decoded",
    "unknown_label": "the label is not in the dataset's class list",
    "empty_mask": "the mask has no pixels",
    "bad_area": "the area is larger than the image",
    "bbox_outside_image": "the bounding box leaves the image",
    "duplicate_id": "the segment id appears twice in the batch",
}
