"""Quarantine reason codes, in the order they are reported when several apply."""

IMAGE_REASONS = {
    "bad_annotation": "an entry of the annotation file is malformed (not an object, a missing or non-integer id or size)",
    "bad_name": "a file name or id is not valid UTF-8",
    "path_outside_root": "the path leaves the dataset root ('..' or a symlink pointing outside)",
    "mask_outside_root": "the mask path leaves the masks folder ('..' or a symlink pointing outside)",
    "special_file": "the path is a FIFO, socket, device or folder, not a regular file (never opened)",
    "missing_file": "the image file does not exist",
    "missing_mask": "the image has no mask",
    "ambiguous_mask": "several masks share the image's name (e.g. a.png and a.tif), so none is guessed",
    "missing_image": "the mask has no image",
    "unknown_image": "the annotation names an image the file does not list",
    "mask_unreadable": "the mask cannot be read",
    "mask_too_large": "the mask has more pixels than allowed (checked from its header, never decoded)",
    "too_many_labels": "the mask has more distinct labels or segments than allowed",
    "not_an_image": "the file is not an image",
    "too_many_pixels": "the image has more pixels than allowed (decompression bomb guard)",
    "truncated_image": "the image does not decode fully",
    "size_mismatch": "image and mask sizes differ",
    "duplicate_id": "the image id appears twice in the batch",
    "inspect_failed": "the item could not be inspected (an unexpected error, named in the message)",
}

SEGMENT_REASONS = {
    "bad_annotation": "the segment's entry in the annotation file is malformed",
    "bad_segmentation": "the segmentation cannot be decoded",
    "mask_size_mismatch": "the segment's mask (e.g. an RLE's size) differs in size from its image",
    "unknown_label": "the label is not in the dataset's class list",
    "empty_mask": "the mask has no pixels",
    "bad_area": "the area is larger than the image",
    "bbox_outside_image": "the bounding box leaves the image",
    "duplicate_id": "the segment id appears twice in the batch",
}
