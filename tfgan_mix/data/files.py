"""User data files: ``.npy`` of shape (n, d) or (n, h, w, c), or ``.csv`` of shape (n, d).

A CSV may start with one header row whose cells are all non-numeric. uint8 data is scaled to
[-1, 1]; other numbers are kept as they are. Every problem is a ``DataError`` naming the file.
"""
import csv
import os

import numpy as np

from tfgan_mix.data import DataError, Dataset


def load_file(path):
    """Read and validate ``path`` (.npy or .csv) into a Dataset."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: data file not found")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty")
    if path.lower().endswith(".csv"):
        x, line_numbers = _read_csv(path)
    else:
        x, line_numbers = _read_npy(path), None
    if len(x) == 0:
        raise DataError(f"{path}: the array is empty (shape {x.shape})")
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if len(bad):
        first = f"row {line_numbers[bad[0]]}" if line_numbers else f"index {bad[0]}"
        raise DataError(f"{path}: {len(bad)} example(s) contain NaN or inf values; the first is {first}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 127.5 - 1.0
    kind = "images" if x.ndim == 4 else "points"
    return Dataset(path, x, kind, description=f"{path}: {len(x)} examples of shape {x.shape[1:]}")


def _read_npy(path):
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from None
    if not isinstance(x, np.ndarray):
        raise DataError(f"{path}: expected a single .npy array, got {type(x).__name__}")
    if x.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected numbers, got dtype {x.dtype}")
    if x.ndim not in (2, 4):
        raise DataError(f"{path}: expected an array of rank 2 (n, d) or rank 4 (n, h, w, c), "
                        f"got rank {x.ndim} with shape {x.shape}")
    return x


def _read_csv(path):
    """The numbers as an (n, d) array, and the 1-based file row of each example."""
    rows, line_numbers, header = [], [], None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for number, cells in enumerate(csv.reader(f), start=1):
                if not any(c.strip() for c in cells):
                    continue  # blank line
                values = [_number(c) for c in cells]
                if not rows and header is None and all(v is None for v in values):
                    header = cells
                    continue
                for column, (cell, value) in enumerate(zip(cells, values), start=1):
                    if value is None:
                        raise DataError(f"{path}: row {number}, column {column}: {cell!r} is not a number")
                if rows and len(values) != len(rows[0]):
                    raise DataError(f"{path}: row {number} has {len(values)} columns, expected {len(rows[0])}")
                rows.append(values)
                line_numbers.append(number)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable CSV text file ({error})") from None
    if not rows:
        raise DataError(f"{path}: no data rows (empty apart from a header or blank lines)")
    return np.array(rows, dtype=np.float64), line_numbers


def _number(cell):
    try:
        return float(cell)
    except ValueError:
        return None
