"""The Embedder contract: dense features from one forward pass per image, every mask of
the image pooled from them with one matrix product, L2-normalised float32 rows.

Work is split so that a DataLoader can parallelise it (`embedder.prep`, a picklable
Preparer, is all that DataLoader workers get):
  `prep.read(path)`    CPU, in workers: decode + resize -> compact CHW array (uint8)
  `prep.to_model(x)`   device: that batch -> normalised float model input
  `grid_hw(h, w)`      the feature grid an image of that size gives
  `forward(x)`         device: (B, C, H, W) tensor -> (B, gh, gw, D') dense features
  `head(pooled)`       device: (n, D') pooled means -> (n, D) (CLIP towers' head after
                       pooling, see clip_dense; identity for the others)
  `finalize(pooled)`   CPU: (n, D) -> final vectors (L2-normalised)
"""
from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # annotations only: torch is imported where it is used
    import torch

from .backbones import BackboneSpec
from .pooling import l2_normalize, mask_weights, pool

logger = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without a GPU raises ValueError."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from ..errors import KnnclipError

        raise KnnclipError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    assert device == "cpu" or device.startswith("cuda"), device
    return device


def format_id(family: str, spec: BackboneSpec, weights_label: str, dim: int, extra: str = "") -> str:
    """An embedder id: family|architecture|weights|[extra|]pooling|l2|dim=D."""
    parts = [family, spec.architecture, weights_label] + ([extra] if extra else [])
    return "|".join(parts + [spec.pooling, "l2", f"dim={dim}"])


class Preparer:
    """The CPU side of an embedder (picklable, runs in DataLoader workers).

    `pixels` gives the compact input that travels to the device (uint8 for image
    models: a quarter of the bytes of float32); `to_model` finishes it there. With
    `features_on_host`, `pixels` already are the dense features (the embedder's forward is
    the identity), so the loader pools them where they are made.
    """

    features_on_host = False

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> (C, H', W') array that `to_model` turns into model input."""
        raise NotImplementedError

    def read(self, path: str, height: int, width: int) -> np.ndarray:
        """Image file -> `pixels` of it; ValueError when its size is not height x width."""
        from .image_io import open_rgb

        with open_rgb(path, (height, width)) as im:
            return self.pixels(np.asarray(im))

    def pooled_means(self, image: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """With `features_on_host`: HxWx3 uint8 RGB and (n, cells) mask weights -> (n, C) float32
        per-mask means of the dense features (a preparer may pool without writing them all)."""
        x = self.pixels(image)
        return pool(weights, x.reshape(x.shape[0], -1).T, normalize=False)

    def read_pooled(self, path: str, height: int, width: int, weights: np.ndarray) -> np.ndarray:
        """`pooled_means` of an image file; ValueError when its size is not height x width."""
        from .image_io import open_rgb

        with open_rgb(path, (height, width)) as im:
            return self.pooled_means(np.asarray(im), weights)

    def to_model(self, x):
        """(B, C, H', W') tensor of `pixels`, on the device -> float model input."""
        return x.float()

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> float32 (C, H', W') model input, on the CPU."""
        import torch

        return self.to_model(torch.from_numpy(self.pixels(image))[None])[0].numpy()

    def grid_hw(self, h: int, w: int) -> tuple[int, int]:
        """Feature grid (gh, gw) that an h x w image gives."""
        raise NotImplementedError

    def mask_weights_of(self, masks, h: int, w: int) -> np.ndarray:
        """(n, gh*gw) area weights of decoded masks (n, h, w) (or a list of them) on this grid."""
        masks = np.asarray(masks, dtype=bool).reshape(-1, h, w) if len(masks) else np.zeros((0, h, w), bool)
        return mask_weights(masks, self.grid_hw(h, w))

    def prepare(self, image: np.ndarray, masks) -> tuple[np.ndarray, np.ndarray]:
        """One image and its masks -> (`pixels`, (n, gh*gw) area mask weights)."""
        image = np.asarray(image)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, (image.shape, image.dtype)
        return self.pixels(image), self.mask_weights_of(masks, *image.shape[:2])


class ResizePreparer(Preparer):
    """Whole image resized (bicubic, no crop) to a fixed square input; uint8 on the CPU,
    mean/std normalised on the device."""

    def __init__(self, input_hw: tuple[int, int], mean, std, grid: tuple[int, int]):
        self.input_hw, self.mean, self.std, self.grid = tuple(input_hw), tuple(mean), tuple(std), tuple(grid)

    def pixels(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        return self._resized(Image.fromarray(image))

    def read(self, path: str, height: int, width: int) -> np.ndarray:
        """Decode and resize without a full-size array copy (JPEGs decode at a reduced
        scale when that still leaves at least the input size)."""
        from .image_io import open_rgb

        with open_rgb(path, (height, width), draft_hw=self.input_hw) as im:
            return self._resized(im)

    def _resized(self, im) -> np.ndarray:
        from PIL import Image

        h, w = self.input_hw
        if im.size != (w, h):
            im = im.resize((w, h), Image.BICUBIC)
        return np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1))

    def to_model(self, x):
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) * 255.0
        inv_std = 1.0 / (torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) * 255.0)
        return x.float().sub_(mean).mul_(inv_std)

    def grid_hw(self, h: int, w: int) -> tuple[int, int]:
        return self.grid


class Embedder:
    """Base class; families override preprocess/grid_hw/forward (and finalize)."""

    family: str = ""
    has_text: bool = False

    def __init__(self, spec: BackboneSpec, device: str = "cpu"):
        self.spec = spec
        self.name = spec.name
        self.device = device
        self.dim: int = 0
        self.id: str = ""
        self.prep: Preparer = Preparer()  # the picklable CPU side; families set it

    # --- identity -------------------------------------------------------------------
    def make_id(self, weights_label: str, dim: int, extra: str = "") -> str:
        """family|architecture|weights|pooling|l2|dim=D (plus family extras)."""
        return format_id(self.family, self.spec, weights_label, dim, extra)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, device={self.device!r})"

    # --- the four stages --------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 RGB -> float32 (C, H', W') model input (see `self.prep`)."""
        return self.prep.preprocess(image)

    def model_input(self, pixels):
        """Stacked `prep.pixels` (array or tensor) -> float model input on the device."""
        import torch

        x = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.asarray(pixels))
        return self.prep.to_model(x.to(self.device, non_blocking=True))

    def grid_hw(self, h: int, w: int) -> tuple[int, int]:
        """Feature grid (gh, gw) that an h x w image gives."""
        return self.prep.grid_hw(h, w)

    def forward(self, x):
        """(B, C, H', W') float tensor on self.device -> (B, gh, gw, D') float tensor."""
        raise NotImplementedError

    def head(self, pooled):
        """(n, D') pooled means (tensor on the device) -> (n, D) tensor; identity here."""
        return pooled

    def finalize(self, pooled: np.ndarray) -> np.ndarray:
        """(n, D) area-weighted means (after `head`) -> (n, D) float32 L2-normalised vectors."""
        return l2_normalize(pooled)

    # --- driving them -----------------------------------------------------------------
    def autocast(self):
        """bf16 (or fp16) autocast on CUDA, nothing on CPU."""
        import torch

        if not self.device.startswith("cuda"):
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def forward_batch(self, inputs: Sequence[np.ndarray] | "torch.Tensor"):
        """Stacked `prep.pixels` (same shape) -> (B, cells, D') float32 tensor on the device."""
        import torch

        with torch.inference_mode():
            x = self.model_input(inputs if isinstance(inputs, torch.Tensor) else np.stack(inputs))
            with self.autocast():
                feats = self.forward(x)
        b, gh, gw, d = feats.shape
        return feats.reshape(b, gh * gw, d).float()

    def pool_batch(self, feats, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Pool every image's masks: feats (B, cells, D') tensor, weights[i] (n_i, cells)
        -> list of (n_i, D) float32 final vectors. One matrix product per image."""
        import torch

        out = []
        with torch.inference_mode():
            for f, w in zip(feats, weights):
                assert w.shape[1] == f.shape[0], (w.shape, f.shape)
                if w.shape[0] == 0:
                    out.append(np.zeros((0, self.dim), np.float32))
                    continue
                wt = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)).to(f.device)
                pooled = (wt @ f) / wt.sum(dim=1, keepdim=True).clamp_min(1e-12)
                out.append(self.finalize(self.head(pooled).float().cpu().numpy()))
        return out

    def prepare(self, image: np.ndarray, masks) -> tuple[np.ndarray, np.ndarray]:
        """CPU part for one image: (model input, (n, cells) mask weights)."""
        return self.prep.prepare(image, masks)

    def embed_masks(self, image: np.ndarray, masks) -> np.ndarray:
        """HxWx3 uint8 image and a list of HxW bool masks -> (n, D) float32, L2-normalised."""
        return self.embed_batch([(image, masks)])[0]

    def embed_batch(self, items: Iterable[tuple[np.ndarray, list]]) -> list[np.ndarray]:
        """List of (image, masks) -> list of (n_i, D) arrays; images of the same input
        shape share one forward pass."""
        prepared = [self.prepare(img, masks) for img, masks in items]
        out: list[Optional[np.ndarray]] = [None] * len(prepared)
        groups: dict[tuple, list[int]] = {}
        for i, (x, _) in enumerate(prepared):
            groups.setdefault(x.shape, []).append(i)
        for idx in groups.values():
            feats = self.forward_batch([prepared[i][0] for i in idx])
            for i, vecs in zip(idx, self.pool_batch(feats, [prepared[i][1] for i in idx])):
                out[i] = vecs
        return out  # type: ignore[return-value]

    # --- text (CLIP families override) ------------------------------------------------
    def encode_text(self, class_names: list[str]) -> np.ndarray:
        """(n, D) L2-normalised text embeddings; only for embedders with has_text."""
        raise NotImplementedError(f"{self.family} embedders have no text tower")

    @property
    def logit_scale(self) -> float:
        raise NotImplementedError(f"{self.family} embedders have no text tower")
