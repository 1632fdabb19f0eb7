"""Data regions, whose shares the exported sampler keeps under rejection.

Rejecting a sample and drawing another moves mass between modes whenever the model's outliers sit
closer to some modes than to others. Keeping each row's generator (drawn once, only z redrawn)
stops that for generators that each serve one mode, not for a generator that spans several, and
not at all for a soft-gated MoG/HMoG, whose samples blend every leaf. Measured on MoG gaussians5
(3 trained seeds, 200,000 draws each, manifold threshold -0.53, seed 0's exported one), mode-share
TV against the data: 0.016 / 0.009 / 0.013 raw; 0.091 / 0.055 / 0.118 with plain rejection;
0.071 / 0.059 / 0.096 with the argmax leaf kept; 0.016 / 0.009 / 0.013 with each sample's nearest
mode kept (the ideal region).

So a calibrated sampler carries ``REGIONS`` k-means cells of held-back real data (scipy's
``kmeans2``); a candidate's region is its nearest cell centre. Among a row's passing candidates
the sampler prefers those in its first candidate's region, so each region keeps about its raw
share of rows (up to the bound below); cells finer than the modes keep the modes' shares too (a mode's share is its
cells'). For generators that serve distinct samples a row's route is its (generator, region)
cell, and a row whose cell has no passing candidate takes a passing one of its generator; for
blended generators (``MixtureGAN.blended_generators``) and a lone generator, whose samples span
every region, the region is the route (``sampler.routes_by_region``), and such a row takes any
passing one. Calibration bounds what the fallback moves by ``calibration.MAX_SHARE_SHIFT``: the
cells' shares (a generator that spans several modes otherwise loses the mode whose samples fail
more often); routed by region, how far the regions' shares move away from the data's
(``region_shares`` of the held-back data; only regions that get farther than raw count), and how
far any region falls below the smaller of its raw and its data share. Raw region
shares count outliers under their nearest region, so for a model that blends modes they are
shares no on-manifold sample holds, and rejecting those outliers moves them toward the data's.
Simulated on the same draws with 64 candidates per row, MoG at threshold -0.53: 97% of rows find a
passing candidate in their own region, served off-manifold 0.004, mode TV 0.020 (raw 0.016).

Routed by region, the bound is on the data's connected pieces (``connected_pieces``), not on the
cells: 8 cells are finer than a mixture of 3-5 modes, a model may fill one mode's cells unevenly,
and rejecting its outliers then moves mass between cells of one mode, which the cells' bound
counted as moving away from the data (measured on own tetra3d, HMoG seed 0: the bound held 0.069
of the served samples off the manifold while the served mode TV was 0.004). A piece is a union of
cells the held-back data runs across: cells joined where at least ``PIECE_LINKS`` pairs of points
across their border lie closer than ``PIECE_SCALE`` times the data's median distance to its
``PIECE_NEIGHBOURS``-th nearest neighbour. Measured on the built-in mixtures (a 10,000-point draw
each): gaussians3's 8 cells form 3 pieces, gaussians5's 5, one per mode; grid25's and ring8's stay
8 pieces (no mode spans two of their cells). On the 5,000-point held-back parts of the own-data
mixtures (``benchmarks/served.py``, 3 seeds each) the pieces were the modes on 8 of 9 (unequal2d
seed 1: 5 pieces for 4 modes). In high dimension the linking scale joins everything
(axes1024, stacked_digits: one piece), and one piece would bound nothing, so there the cells stay
the pieces.
"""
import numpy as np
import tensorflow as tf
from scipy.cluster.vq import kmeans2
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

REGIONS = 8  # k-means cells; more keep finer shares but leave each row fewer candidates in its own
SEED = 0
# Pieces (``connected_pieces``): points closer than PIECE_SCALE x the median PIECE_NEIGHBOURS-NN
# distance are linked; PIECE_LINKS linked pairs across two cells' border join them (a few stray
# pairs between two modes do not); at most PIECE_POINTS held-back points (a seeded subset) are used.
PIECE_NEIGHBOURS, PIECE_SCALE, PIECE_LINKS, PIECE_POINTS = 3, 2.0, 5, 10_000


def fit_regions(real, count=REGIONS, seed=SEED):
    """(R, d) float32 cell centres of held-back ``real`` data (k-means++ start, seeded), or None
    when the data has fewer than two distinct points."""
    x = np.asarray(real, np.float64).reshape(len(real), -1)
    count = min(int(count), len(np.unique(x, axis=0)))
    if count < 2:
        return None
    centres, _ = kmeans2(x, count, minit="++", seed=seed)
    return centres.astype(np.float32)


def nearest_region(samples, regions):
    """(N,) int32 index of each sample's nearest cell centre; fixed shapes, ONNX-convertible."""
    x = tf.reshape(tf.cast(samples, tf.float32), [tf.shape(samples)[0], -1])
    centres = tf.constant(np.asarray(regions, np.float32))  # a graph constant (see rules.graph_constant)
    # |x - c|^2 without the |x|^2 term, which is the same for every cell of a row.
    squared = -2.0 * tf.matmul(x, centres, transpose_b=True) + tf.reduce_sum(centres * centres, axis=1)[None, :]
    return tf.argmin(squared, axis=1, output_type=tf.int32)


def region_shares(real, regions):
    """(R,) share of held-back ``real`` examples nearest each region."""
    nearest = nearest_region(np.asarray(real, np.float32).reshape(len(real), -1), regions).numpy()
    return np.bincount(nearest, minlength=len(regions)) / len(nearest)


def connected_pieces(real, regions):
    """(R,) int piece of each cell of ``regions``: cells the held-back ``real`` data runs across
    share a piece (the module docstring gives the rule). Every cell is its own piece when the
    data is one piece at this scale: a single piece would bound nothing."""
    x = np.asarray(real, np.float64).reshape(len(real), -1)
    if len(x) > PIECE_POINTS:
        x = x[np.sort(np.random.default_rng(SEED).permutation(len(x))[:PIECE_POINTS])]
    region = nearest_region(x, regions).numpy()
    tree = cKDTree(x)
    distances, _ = tree.query(x, k=PIECE_NEIGHBOURS + 1)  # the first neighbour is the point itself
    pairs = tree.query_pairs(PIECE_SCALE * np.median(distances[:, -1]), output_type="ndarray")
    cells = len(regions)
    across = region[pairs[:, 0]] != region[pairs[:, 1]]
    links = coo_matrix((np.ones(across.sum()), (region[pairs[across, 0]], region[pairs[across, 1]])),
                       shape=(cells, cells)).toarray()
    count, piece = connected_components((links + links.T) >= PIECE_LINKS, directed=False)
    return piece if count > 1 else np.arange(cells)
