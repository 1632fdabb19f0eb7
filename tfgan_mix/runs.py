"""A run directory on disk: its file names, loading and saving its model and record, and the file
helpers both training (which writes runs) and export (which reads them) use.

    DIR/model.keras      the trained model (``save_model``, ``load_run``)
    DIR/run.json         what was trained (``write_run_info``, ``read_run_info``)

Atomic writes: ``write_atomically`` writes ``<path>.tmp-<pid><ext>`` beside ``path``, flushes it
to disk and renames it onto ``path``, so ``path`` is either the old complete file or the new one,
also after a kill or a power cut. ``remove_stale_temporaries`` deletes such temporaries whose
process is gone. This module sits in the model layer: it imports the methods (to deserialise any
of them) and nothing of training, export or serving.
"""
import hashlib
import json
import os
import re

import keras

from tfgan_mix import methods  # noqa: F401  (registers every method class, so load_run can deserialise it)

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"

_TEMPORARY = re.compile(r".+\.tmp-([0-9]+)(\.[^.]*)?")  # <name>.tmp-<pid><ext>, as write_atomically names them


# ---------------------------------------------------------------------- a run's model and record
def save_model(model, run_dir):
    """Write ``model`` as the run's model file, atomically; returns its path."""
    path = os.path.join(run_dir, MODEL_FILE)
    write_atomically(path, model.save)  # the temporary keeps the .keras suffix Keras requires
    return path


def load_run(run_dir):
    """Load the trained model of a run directory."""
    path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no trained model ({MODEL_FILE}); train one with `tfgan-mix train`")
    return keras.models.load_model(path)


def write_run_info(run_dir, info):
    """Write the run's record (a dict of plain values, tuples and numpy scalars), atomically."""
    write_json(os.path.join(run_dir, RUN_FILE), info, indent=2)


def read_run_info(run_dir):
    with open(os.path.join(run_dir, RUN_FILE), encoding="utf-8") as f:
        return json.load(f)


def json_default(value):
    """``json.dump``'s ``default`` for run records: tuples as lists, numpy scalars as numbers."""
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


# ---------------------------------------------------------------------- atomic files
def write_atomically(path, write):
    """Call ``write(tmp)`` to write the temporary ``<path>.tmp-<pid><ext>`` (``ext`` the extension of
    ``path``, which some writers require), flush it to disk, rename it onto ``path`` and flush the
    directory, so ``path`` is never half a file. A kill leaves only the temporary, which
    ``remove_stale_temporaries`` removes later."""
    tmp = f"{path}.tmp-{os.getpid()}{os.path.splitext(path)[1]}"
    write(tmp)
    fsync(tmp)
    os.replace(tmp, path)
    fsync(os.path.dirname(os.path.abspath(path)))


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    write_atomically(path, write)


def write_json(path, obj, **dump_options):
    """Write ``obj`` as JSON to ``path`` atomically (``dump_options`` go to ``json.dump``; numpy
    scalars and tuples are written by ``json_default``)."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, default=json_default, **dump_options)

    write_atomically(path, write)


def remove_stale_temporaries(directory):
    """Delete the temporaries of ``write_atomically`` in ``directory`` whose process is gone (a
    live process's are kept); returns the names removed."""
    removed = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        match = _TEMPORARY.fullmatch(name)
        path = os.path.join(directory, name)
        if match and os.path.isfile(path):
            pid = int(match.group(1))
            if pid == os.getpid() or not pid_alive(pid):
                os.remove(path)
                removed.append(name)
    return removed


def fsync(path):
    """Flush a file or directory to disk (directories: so a rename inside them survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path, chunk=1 << 20):
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def pid_alive(pid):
    """Whether process ``pid`` exists on this machine (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:  # no such pid on this system
        return False
    return True
