"""User data files: ``.npy`` of shape (n, d) or (n, h, w, c), or ``.csv`` of shape (n, d).

A CSV may start with one header row whose cells are all non-numeric. uint8 data is scaled to
[-1, 1]; other numbers are kept as they are (and must fit float32, the training dtype). A
``.npy`` header is checked against the file's size before any array is allocated. Every problem
is a ``DataError`` naming the file.
"""
import csv
import math
import os

import numpy as np

from tfgan_mix.data.dataset import DataError, Dataset


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
    _check_float32_range(path, x, line_numbers)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 127.5 - 1.0
    kind = "images" if x.ndim == 4 else "points"
    return Dataset(path, x, kind, description=f"{path}: {len(x)} examples of shape {x.shape[1:]}")


def _read_npy(path):
    _check_npy_header(path)
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


def _check_npy_header(path):
    """Read only the .npy header and check that the file holds the bytes its shape and dtype need,
    so a header claiming a huge shape is refused before anything that size is allocated."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:  # 3.0 exists only for structured dtypes with non-latin-1 field names
                raise DataError(f"{path}: .npy format version {version[0]}.{version[1]} is not supported "
                                f"(save a plain numeric array with numpy.save)")
            shape, _, dtype = read_header(f)
        except (ValueError, OSError, EOFError, SyntaxError) as error:
            raise DataError(f"{path}: not a readable .npy array ({error})") from None
        data_start = f.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: expected numbers, got dtype {dtype} (Python objects are not loaded)")
    needed = math.prod(shape) * dtype.itemsize
    available = os.path.getsize(path) - data_start
    if needed > available:
        raise DataError(f"{path}: the header claims shape {shape} of {dtype} ({needed:,} bytes) but the file "
                        f"holds {available:,} bytes of data (truncated or corrupt)")


def _check_float32_range(path, x, line_numbers):
    """Training runs in float32: refuse values that would become inf there (float64 data can hold
    finite values up to 1.8e308, float32 only up to 3.4e38)."""
    if x.dtype.kind != "f" or x.dtype.itemsize <= 4:
        return
    limit = np.finfo(np.float32).max
    too_big = np.flatnonzero((np.abs(x.reshape(len(x), -1)) > limit).any(axis=1))
    if len(too_big):
        first = f"row {line_numbers[too_big[0]]}" if line_numbers else f"index {too_big[0]}"
        raise DataError(f"{path}: {len(too_big)} example(s) hold values beyond float32's range (|x| > {limit:.3g}, "
                        f"largest {np.abs(x).max():.3g}), which training would turn into inf; the first is {first}")


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
