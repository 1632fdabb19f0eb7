"""Faults around an exported sampler: concurrent exports, exports killed mid-way, odd directory
names under the base, damaged files and model cards. Each is refused with a one-line error (exit 2
from the command line) and no output file, or handled without loss."""
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from tfgan_mix.export import client, writer
from tfgan_mix.training import cli

# The module's fixtures train or export once per process: keep its tests in one process.
pytestmark = pytest.mark.xdist_group("export_faults")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """One exported version (SavedModel + ONNX) of the tiny npgan run, made in a base that already
    holds a stale temporary of a dead export, a live export's temporary and a folder named '²'."""
    base = tmp_path_factory.mktemp("base")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    stale, alive = base / f".tmp-1-{dead.pid}", base / f".tmp-1-{live.pid}-0a1b"
    for directory in (stale, alive):
        directory.mkdir()
        (directory / "model.onnx").write_bytes(b"half")
    (base / "\u00b2").mkdir()  # str.isdigit() is True for it, int() refuses it
    try:
        version = writer.export_run(tiny_run, str(base))
        listing = sorted(os.listdir(base))
    finally:
        live.kill()
        live.wait()
    return {"run": tiny_run, "base": base, "version": version, "listing": listing,
            "stale": stale.name, "alive": alive.name}


def _copy(exported, tmp_path):
    """A private copy of the shared version, to damage."""
    target = tmp_path / "base" / "1"
    shutil.copytree(exported["version"], target)
    return target


def _sample(source, out, n=50, capsys=None):
    code = cli.main(["sample", str(source), "-n", str(n), "--out", str(out)])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


# ---------------------------------------------------------------------- versions and temporaries
def test_export_ignores_non_ascii_digits_and_cleans_only_dead_temporaries(exported):
    assert os.path.basename(exported["version"]) == "1"
    assert exported["stale"] not in exported["listing"], "a dead export's temporary must be removed"
    assert exported["alive"] in exported["listing"], "a live export's temporary must be kept"
    assert "\u00b2" in exported["listing"] and "1" in exported["listing"]


def test_next_version_counts_only_ascii_digit_names(tmp_path):
    for name in ("\u00b2", "\u0663", "7a", "3"):  # superscript two, Arabic-Indic three
        (tmp_path / name).mkdir()
    assert writer.next_version(str(tmp_path)) == 4
    assert writer.next_version(str(tmp_path / "missing")) == 1


def test_remove_stale_temporaries_keeps_live_and_foreign_names(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = [f".tmp-2-{dead.pid}", f".tmp-3-{dead.pid}-beef", f".tmp-4-{os.getpid()}", f".tmp-5-{os.getppid()}-00",
             ".tmp-notes", "2"]
    for name in names:
        (tmp_path / name).mkdir()
    assert sorted(writer.remove_stale_temporaries(str(tmp_path))) == sorted(names[:2])
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])


def _finished_tmp(base, tag):
    tmp = base / f".tmp-0-{os.getpid()}-{tag}"
    tmp.mkdir()
    (tmp / writer.CARD_FILE).write_text(json.dumps({"tag": tag}))
    return tmp


def test_publish_takes_the_next_number_when_another_export_won_the_race(tmp_path, monkeypatch):
    """Both exports chose version 1; the other renamed first: this one must end as version 2."""
    base = tmp_path
    winner = _finished_tmp(base, "aa")
    loser = _finished_tmp(base, "bb")
    chosen = [writer.next_version(str(base))]  # 1, chosen before either published
    assert writer.publish(str(winner), str(base)) == str(base / "1")
    real = writer.next_version
    monkeypatch.setattr(writer, "next_version", lambda b: chosen.pop() if chosen else real(b))
    assert writer.publish(str(loser), str(base)) == str(base / "2")
    assert json.loads((base / "1" / writer.CARD_FILE).read_text()) == {"tag": "aa"}
    assert json.loads((base / "2" / writer.CARD_FILE).read_text()) == {"tag": "bb"}
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_concurrent_publishes_end_as_distinct_versions(tmp_path):
    tmps = [_finished_tmp(tmp_path, f"{i:02x}") for i in range(8)]
    start, finals, errors = threading.Barrier(len(tmps)), [], []

    def run(tmp):
        start.wait()
        try:
            finals.append(writer.publish(str(tmp), str(tmp_path)))
        except Exception as error:  # collected: the assertion below names it
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in tmps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(int(os.path.basename(f)) for f in finals) == list(range(1, 9))
    tags = {json.loads((tmp_path / str(v) / writer.CARD_FILE).read_text())["tag"] for v in range(1, 9)}
    assert tags == {f"{i:02x}" for i in range(8)}


def test_explicit_version_lost_to_another_export_is_a_clear_error(tmp_path):
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "saved_model.pb").write_bytes(b"theirs")
    tmp = _finished_tmp(tmp_path, "cc")
    with pytest.raises(FileExistsError, match=r"3 already exists .*choose another --version"):
        writer.publish(str(tmp), str(tmp_path), version=3)
    assert (tmp_path / "3" / "saved_model.pb").read_bytes() == b"theirs"


def test_export_command_refuses_an_existing_version_before_any_work(exported, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the run was loaded before the version was checked")

    monkeypatch.setattr("tfgan_mix.runs.load_run", no_work)
    assert cli.main(["export", exported["run"], "--out", str(exported["base"]), "--version", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------------- checksums
def test_card_lists_a_checksum_of_every_other_file(exported):
    version = exported["version"]
    card = client.read_card(version)
    on_disk = {os.path.relpath(os.path.join(root, f), version).replace(os.sep, "/")
               for root, _, files in os.walk(version) for f in files} - {writer.CARD_FILE}
    assert set(card["files"]) == on_disk
    assert {"model.onnx", "saved_model.pb", "rejection.npz"} <= on_disk
    assert any(name.startswith("variables/") for name in on_disk)
    assert card["files"]["model.onnx"]["sha256"] == writer.file_digest(os.path.join(version, "model.onnx"))
    client.verify_files(version, card)  # the fresh export verifies


def _flip_bytes(path, count=200):
    data = bytearray(path.read_bytes())
    at = np.random.default_rng(0).choice(len(data), size=min(count, len(data)), replace=False)
    for i in at:
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = [
    ("model.onnx", _flip_bytes, "model.onnx does not match the model card's SHA-256"),
    ("model.onnx", _truncate, "model.onnx does not match the model card's SHA-256"),
    ("rejection.npz", _flip_bytes, "rejection.npz does not match"),
    ("rejection.npz", os.remove, "rejection.npz is missing"),
    ("saved_model.pb", os.remove, "saved_model.pb is missing"),
    ("variables/variables.index", _flip_bytes, "variables.index does not match"),
]


@pytest.mark.parametrize("target", ["onnx", "savedmodel"])
@pytest.mark.parametrize("name,damage,message", DAMAGE, ids=[f"{n}-{d.__name__}" for n, d, _ in DAMAGE])
def test_damaged_file_is_refused_with_nothing_written(exported, tmp_path, capsys, target, name, damage, message):
    version = _copy(exported, tmp_path)
    damage(version / name)
    out = tmp_path / "s.npy"
    code, err = _sample(version / "model.onnx" if target == "onnx" else version, out, capsys=capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not [f for f in os.listdir(tmp_path) if f.startswith("s.npy")]


def test_corrupt_onnx_with_a_matching_checksum_is_a_clear_error(exported, tmp_path, capsys):
    """A file that passes the checksum (card rewritten to match) but is not a model."""
    version = _copy(exported, tmp_path)
    _flip_bytes(version / "model.onnx", 2000)
    card = json.loads((version / writer.CARD_FILE).read_text())
    card["files"] = writer.version_files(str(version))
    (version / writer.CARD_FILE).write_text(json.dumps(card))
    code, err = _sample(version / "model.onnx", tmp_path / "s.npy", capsys=capsys)
    assert code == 2 and "is not a loadable ONNX model" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.npy").exists()


# ---------------------------------------------------------------------- model card
def _edit(key, value):
    def edit(card):
        card[key] = value
        return card
    return edit


def _edit_input(key, value):
    """Set the first noise input's ``key``; a callable value is given the card's candidate count."""
    def edit(card):
        card["noise_inputs"][0][key] = value(card["candidates"]) if callable(value) else value
        return card
    return edit


CARDS = [
    ("not json", lambda card: b"{not json", "is not a valid JSON model card"),
    ("not utf-8", lambda card: b"\xff\xfe\x00{", "is not a valid JSON model card"),
    ("a list", lambda card: [card], "a model card is a JSON object, got list"),
    ("no files", lambda card: {k: v for k, v in card.items() if k != "files"}, "missing 'files'"),
    ("no noise inputs", lambda card: {k: v for k, v in card.items() if k != "noise_inputs"}, "missing 'noise_inputs'"),
    ("huge noise", _edit_input("shape", lambda c: [None, c, 10**12 // c]), "elements per row, more than"),
    ("huge samples", _edit("data_shape", [10**6, 10**6]), "elements per sample, more than"),
    ("negative dim", _edit_input("shape", lambda c: [None, c, -4]), "shape must be [null, candidates, positive ints"),
    ("string dim", _edit_input("shape", lambda c: [None, c, "4"]), "shape must be [null, candidates, positive ints"),
    ("bool candidates", _edit("candidates", True), "'candidates' must be a positive integer"),
    ("candidates disagree", _edit("candidates", 999), "candidates in its shape, the card says 999"),
    ("bad distribution", _edit_input("distribution", "cauchy"), "unknown distribution 'cauchy'"),
    ("bad dtype", _edit_input("dtype", "float64"), "dtype must be float32"),
    ("renamed input", _edit_input("name", "w"), "do not match the ONNX graph's inputs"),
    ("wrong latent size", _edit_input("shape", lambda c: [None, c, 5]), "ONNX input 'z' has shape"),
    ("path escape", lambda card: {**card, "files": {"../x": {"sha256": "0", "bytes": 1}}}, "bad 'files' entry"),
]


@pytest.mark.parametrize("what,edit,message", CARDS, ids=[c[0] for c in CARDS])
def test_bad_model_card_is_refused_before_allocating(exported, tmp_path, capsys, what, edit, message):
    version = _copy(exported, tmp_path)
    card_path = version / writer.CARD_FILE
    card = edit(json.loads(card_path.read_text()))
    card_path.write_bytes(card if isinstance(card, bytes) else json.dumps(card).encode())
    out = tmp_path / "s.npy"
    code, err = _sample(version / "model.onnx", out, capsys=capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not [f for f in os.listdir(tmp_path) if f.startswith("s.npy")]


def test_missing_card_is_refused(exported, tmp_path, capsys):
    version = _copy(exported, tmp_path)
    os.remove(version / writer.CARD_FILE)
    for source in (version / "model.onnx", version):
        code, err = _sample(source, tmp_path / "s.npy", capsys=capsys)
        assert code == 2 and "has no model card" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.npy").exists()


def test_large_noise_rows_get_smaller_batches():
    card = {"data_shape": [2], "noise_inputs": [{"shape": [None, 16, 65536]}]}
    rows = client.batch_rows(card)
    assert rows * 4 * (16 * 65536 + 2) <= client.BATCH_BYTES and rows < 1024
    assert client.batch_rows({"data_shape": [2], "noise_inputs": [{"shape": [None, 16, 4]}]}) == 1024


# ---------------------------------------------------------------------- sample count
@pytest.mark.parametrize("target", ["onnx", "savedmodel"])
def test_sample_writes_exactly_n_over_many_batches(exported, tmp_path, capsys, target):
    version = exported["version"]
    out = tmp_path / "s.npy"
    source = os.path.join(version, "model.onnx") if target == "onnx" else version
    assert cli.main(["sample", source, "-n", "5000", "--out", str(out)]) == 0
    assert "wrote 5000 accepted samples" in capsys.readouterr().out
    samples = np.load(out, mmap_mode="r")
    assert samples.shape == (5000, 2) and np.all(np.isfinite(samples))
    assert len(np.unique(np.asarray(samples), axis=0)) == 5000, "every batch must draw fresh noise"


def test_write_accepted_streams_batches_into_the_file(tmp_path):
    """Exactly n rows from batches of 1024 with every other row rejected; batch contents in order."""
    counter = [0]

    def request(rows):
        ids = np.arange(counter[0], counter[0] + rows)
        counter[0] += rows
        return {"samples": np.stack([ids, -ids], axis=1).astype(np.float32), "accepted": ids % 2 == 0}

    rate = client.write_accepted(request, 5000, str(tmp_path / "s.npy"), batch_size=1024)
    samples = np.load(tmp_path / "s.npy")
    np.testing.assert_array_equal(samples[:, 0], np.arange(0, 10000, 2))
    assert rate == 0.5  # every requested row counts, also the accepted ones past the n written
    assert os.listdir(tmp_path) == ["s.npy"]


def test_killed_sample_leaves_no_temporary_behind_the_next_one(tmp_path):
    """A `sample` killed mid-write leaves ``s.npy.tmp-<pid>.npy``; the next write to ``s.npy``
    removes it when that process is gone, and never a live one's."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = tmp_path / f"s.npy.tmp-{dead.pid}.npy", tmp_path / f"s.npy.tmp-{os.getppid()}.npy"
    stale.write_bytes(b"partial")
    live.write_bytes(b"being written")

    def request(rows):
        return {"samples": np.ones((rows, 2), np.float32), "accepted": np.ones(rows, bool)}

    client.write_accepted(request, 10, str(tmp_path / "s.npy"), batch_size=4)
    assert sorted(os.listdir(tmp_path)) == sorted(["s.npy", live.name])
