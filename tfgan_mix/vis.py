"""Pictures: samples coloured by generator, the noise-space routing map, image grids, saliency.

Matplotlib's object-oriented API with the Agg canvas (no display needed); TensorFlow is imported
only by the saliency functions. Every function writes a PNG, creating its folder, and returns the
path. Generator g has the same colour in every picture (``generator_colours``).
"""
import os
import warnings

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib import colormaps

REAL_COLOUR = "#c8c8c8"


def generator_colours(num_generators):
    """One RGBA colour per generator: tab10 up to 10, tab20 up to 20, then evenly spaced hues."""
    if num_generators <= 10:
        return colormaps["tab10"].colors[:num_generators]
    if num_generators <= 20:
        return colormaps["tab20"].colors[:num_generators]
    return [colormaps["hsv"](i / num_generators) for i in range(num_generators)]


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _ids(generator_ids, n, num_generators):
    ids = np.asarray(generator_ids).astype(int).ravel()
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} generator ids for {n} samples")
    k = int(num_generators or (ids.max() + 1 if len(ids) else 1))
    return ids, k


def scatter_by_generator(samples, generator_ids, path, *, real=None, num_generators=None, title=None,
                         accepted=None):
    """2-D scatter of samples coloured by generator over the real data in grey; rejected samples
    (``accepted`` False) as black crosses. Higher-dimensional points show their first two coordinates."""
    samples = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    if samples.shape[1] < 2:
        raise ValueError(f"scatter_by_generator needs at least 2-D points, got dimension {samples.shape[1]}")
    ids, k = _ids(generator_ids, len(samples), num_generators)
    keep = np.ones(len(samples), bool) if accepted is None else np.asarray(accepted, bool)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    if real is not None:
        real = np.asarray(real).reshape(len(real), -1)
        ax.scatter(real[:, 0], real[:, 1], s=2, c=REAL_COLOUR, label="data", rasterized=True)
    for g, colour in enumerate(generator_colours(k)):
        chosen = (ids == g) & keep
        if chosen.any():
            ax.scatter(samples[chosen, 0], samples[chosen, 1], s=3, color=colour, label=f"G{g}", rasterized=True)
    if not keep.all():
        ax.scatter(samples[~keep, 0], samples[~keep, 1], s=12, c="black", marker="x", label="rejected")
    suffix = " (first 2 coordinates)" if samples.shape[1] > 2 else ""
    ax.set_title((title or "samples by generator") + suffix)
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    ax.set_aspect("equal", adjustable="datalim")
    return _save(fig, path)


def routing_grid(low, high, resolution=200):
    """A ``resolution x resolution`` grid over [low, high]^2 as float32 points of shape (resolution^2, 2)."""
    axis = np.linspace(low, high, int(resolution), dtype=np.float32)
    z1, z2 = np.meshgrid(axis, axis)
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def noise_routing_map(noise_grid, generator_ids, path, *, num_generators=None, title=None):
    """Which generator each point of a 2-D noise grid is routed to (paper 000, Figure 4)."""
    grid = np.asarray(noise_grid)
    if grid.ndim != 2 or grid.shape[1] != 2:
        raise ValueError(f"the noise grid must hold 2-D points (n, 2), got shape {grid.shape}")
    ids, k = _ids(generator_ids, len(grid), num_generators)
    side = int(round(np.sqrt(len(grid))))
    if side * side != len(grid):
        raise ValueError(f"the noise grid must be square (as routing_grid makes), got {len(grid)} points")
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    extent = [grid[:, 0].min(), grid[:, 0].max(), grid[:, 1].min(), grid[:, 1].max()]
    ax.imshow(ids.reshape(side, side), origin="lower", extent=extent, interpolation="nearest",
              cmap=ListedColormap(generator_colours(k)), vmin=-0.5, vmax=k - 0.5)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title(title or "generator chosen for each z")
    return _save(fig, path)


def _check_images(images):
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have shape (n, h, w, 1 or 3), got {images.shape}")
    return np.clip((images + 1.0) / 2.0, 0.0, 1.0)  # [-1, 1] -> [0, 1]


def _show(ax, image):
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
              vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(images, path, *, nrow=None, title=None):
    """Images in [-1, 1] tiled into a grid."""
    images = _check_images(images)
    n = len(images)
    cols = int(nrow or np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(cols, rows))
    for i, image in enumerate(images):
        _show(fig.add_subplot(rows, cols, i + 1), image)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def image_grid_per_generator(images, generator_ids, path, *, num_generators, per_generator=8):
    """One row per generator with up to ``per_generator`` of its images; unused generators say so."""
    images = _check_images(images)
    ids, k = _ids(generator_ids, len(images), num_generators)
    fig = Figure(figsize=(per_generator + 1, k))
    colours = generator_colours(k)
    for g in range(k):
        own = images[ids == g][:per_generator]
        label = fig.add_subplot(k, per_generator + 1, g * (per_generator + 1) + 1)
        label.axis("off")
        label.text(0.5, 0.5, f"G{g}" if len(own) else f"G{g}\nunused", ha="center", va="center", color=colours[g])
        for j, image in enumerate(own):
            _show(fig.add_subplot(k, per_generator + 1, g * (per_generator + 1) + j + 2), image)
    return _save(fig, path)


def saliency(model, images, score=None):
    """|d score / d image|, max over channels, scaled to [0, 1] per image: (n, h, w).

    Made with tf-keras-vis's ``Saliency`` (vanilla gradients). ``score`` maps the model's output
    to one value per image; default: the first output column (the adversarial logit).
    """
    import tensorflow as tf
    from tf_keras_vis.saliency import Saliency

    images = np.asarray(images, dtype=np.float32)
    score = score or (lambda output: output[:, 0])
    with warnings.catch_warnings():  # tf-keras-vis passes the input as a one-element list; Keras 3 warns
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        maps = Saliency(model, clone=False)(score, tf.constant(images), keepdims=False, normalize_map=True)
    return np.asarray(maps)


def saliency_maps(model, images, path, *, score=None):
    """Each image next to the discriminator's saliency map for it."""
    shown = _check_images(images)
    maps = saliency(model, images, score)
    fig = Figure(figsize=(2 * len(shown) * 0.9, 2))
    for i, (image, heat) in enumerate(zip(shown, maps)):
        _show(fig.add_subplot(2, len(shown), i + 1), image)
        ax = fig.add_subplot(2, len(shown), len(shown) + i + 1)
        ax.imshow(heat, cmap="jet", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("discriminator saliency")
    return _save(fig, path)
