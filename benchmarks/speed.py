"""The speed section: the generator bank against a Python loop, achieved GFLOP/s against the
measured matmul peak, sampling throughput and server latency, measured side by side in one process
(``speed_section`` runs them at a profile's sizes; the words of its notes are in ``notes/speed.md``).

* ``generator_bank_step_times``: one generator training step (forward, backward) of K generators
  as the vectorised ``GeneratorBank`` against K separate Keras MLPs called in a Python loop, for
  each K, with XLA on and off.
* ``matmul_peak_gflops`` and ``training_step_gflops``: the machine's float32 matmul peak, and the
  achieved GFLOP/s of a whole ``train_step`` on axes1024-sized MLPs (5 layers of 1024, batch 256);
  the step's FLOPs are counted from its traced graph by ``flops`` (every contraction: MatMul,
  BatchMatMul, Einsum, Conv; the ops TensorFlow runs, not the gradients it prunes), not estimated by
  hand.
* ``sampling_throughput``: samples/s of the exported sampler through Keras, the SavedModel
  signature, onnxruntime, REST and gRPC at several batch sizes, and server latency percentiles
  under a bounded concurrent load.

Every function returns plain rows (lists of dicts) for the report writer. Compilation is never
counted (a warm-up call first); the bank and hard-routing tables keep every timing window of their
interleaved contenders (``interleaved_ms``), the other figures are medians of ``repeats`` calls.
"""
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import shutil
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import onnxruntime as ort
import tensorflow as tf

from tfgan_mix.benchmarks import flops as bench_flops
from tfgan_mix.benchmarks.harness import note
from tfgan_mix.core import build_model
from tfgan_mix.data import load_dataset
from tfgan_mix.export import writer
from tfgan_mix.export.client import read_card
from tfgan_mix.export.sampler import Rejection, Sampler
from tfgan_mix.layers import GeneratorBank
from tfgan_mix.runs import load_run
from tfgan_mix.serving.grpc_client import predict_seeds
from tfgan_mix.serving.model_server import serve
from tfgan_mix.training import presets
from tfgan_mix.training.train import TrainSpec, make_dataset, resolve_auto_jit, train


def interleaved_ms(functions, repeats, window_seconds=0.2):
    """{name: [ms per call, one per window]} for ``functions`` ({name: zero-argument callable}):
    each is warmed up (tracing and compilation are not throughput) and sized to windows of about
    ``window_seconds``, then the windows take turns, one function at a time, ``repeats`` rounds.
    Window i of one against window i of another is a paired ratio: a burst of load on the box
    hits both."""
    calls = {}
    for name, function in functions.items():
        function()
        start = time.perf_counter()
        function()
        calls[name] = max(1, round(window_seconds / (time.perf_counter() - start)))
    windows = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                function()
            windows[name].append(1000 * (time.perf_counter() - start) / calls[name])
    return windows


def median_seconds(function, repeats):
    function()  # warm-up: tracing, compilation and graph optimisation are not throughput
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------- K generators
def _loop_generators(k, latent_dim, units, out_dim):
    """K independent Keras MLPs: the straightforward implementation the bank replaces."""
    return [
        keras.Sequential([keras.Input((latent_dim,))]
                         + [keras.layers.Dense(u, activation="leaky_relu") for u in units]
                         + [keras.layers.Dense(out_dim)])
        for _ in range(k)
    ]


def _generator_step(forward, variables, optimizer, z):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(forward(z)))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss


def _bind_step(forward, variables, optimizer):
    # A closure, not default arguments: tf.function would turn those into traced inputs.
    return lambda z: _generator_step(forward, variables, optimizer, z)


def generator_bank_step_times(ks=(1, 4, 16, 64, 200), batch=256, latent_dim=100, units=(200, 100, 20),
                              out_dim=2, repeats=10):
    """Rows of {k, implementation, xla, ms_per_step: [ms per window]}; at each K the four
    contenders' windows interleave (``interleaved_ms``)."""
    rows = []
    z = tf.random.stateless_uniform([batch, latent_dim], [1, 2], -1.0, 1.0)
    for k in ks:
        bank = GeneratorBank(k, (out_dim,), units=units)
        bank.build((None, latent_dim))
        loop = _loop_generators(k, latent_dim, units, out_dim)
        implementations = {
            "GeneratorBank (batch matmul)": (bank, bank.trainable_variables),
            "Python loop over K": (lambda x, nets=loop: tf.stack([net(x) for net in nets], axis=1),
                                   [v for net in loop for v in net.trainable_variables]),
        }
        steps = {}
        for name, (forward, variables) in implementations.items():
            for xla in (False, True):
                optimizer = keras.optimizers.Adam(1e-4)
                optimizer.build(variables)
                step = tf.function(_bind_step(forward, variables, optimizer), jit_compile=xla)
                steps[name, xla] = lambda s=step: s(z).numpy()
        windows = interleaved_ms(steps, repeats)
        rows += [{"k": k, "implementation": name, "xla": xla, "ms_per_step": ms} for (name, xla), ms in windows.items()]
    return rows


# ---------------------------------------------------------------------- against PyTorch
def _npgan_options(**extra):
    """The npgan_gaussians3 preset's options (paper 000's toy nets) at a constant rate, as the
    PyTorch reference's Adam, with ``extra`` on top."""
    return {**presets.load("npgan_gaussians3")["options"], "learning_rate_decay": "constant", "data_shape": (2,),
            **extra}


class _StepClock(keras.callbacks.Callback):
    """Seconds from the end of a fit's first step to the end of its last: the steps alone. The
    fit's own setup is not a training step: a fresh dataset iterator (with the last one's end)
    took 0.5-0.57 s in 4 of 12 windows and 1-5 ms in the others (measured, npgan K=3), which made
    whole 30-step windows look 1.7x slower."""

    def on_train_batch_end(self, batch, logs=None):
        if batch in (0, self.params["steps"] - 1):
            float(logs["d_loss"])  # wait for the step itself, not only its dispatch
            self.marks.append(time.perf_counter())

    def on_train_begin(self, logs=None):
        self.marks = []

    @property
    def seconds(self):
        return self.marks[-1] - self.marks[0]


def _tfgan_npgan_window(k, xla, batch, steps):
    """A function timing ``steps`` steps of tfgan_mix's npgan through ``model.fit`` (paper 000's
    toy nets, the npgan_gaussians3 preset's options, K generators), after a warm-up fit. Each
    window's fit runs one step more, before the clock starts (``_StepClock``)."""
    model = build_model("npgan", _npgan_options(num_generators=k), jit_compile=xla)
    data = make_dataset(load_dataset("gaussians3").x, batch, seed=0)
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)  # tracing and compilation
    clock = _StepClock()

    def window():
        model.fit(data, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[clock])
        return clock.seconds

    return window


def _torch_npgan_window(k, impl, batch, steps):
    from tfgan_mix.benchmarks.torch_npgan import TorchNPGAN  # optional: the [bench] extra

    model = TorchNPGAN(k, impl, batch=batch, threads=os.cpu_count())
    model.seconds_for(steps)  # warm-up
    return lambda: model.seconds_for(steps)


def _window_worker(connection, make_window, arguments):
    """A contender's own process: build it, then time one window per request until told to stop.
    Each framework gets a process of its own so their thread pools never share one (PyTorch's
    OpenMP threads spin-waited on TensorFlow's in one process: 5-10x slower windows, measured)."""
    window = make_window(*arguments)
    connection.send("ready")
    while connection.recv():
        connection.send(window())


class _Contender:
    def __init__(self, context, make_window, arguments):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_window_worker, args=(child, make_window, arguments), daemon=True)
        self.process.start()
        self.name = f"{make_window.__name__}{arguments}"

    def wait_ready(self):
        if self.connection.recv() != "ready":
            raise RuntimeError(f"{self.name} did not start")

    def seconds(self):
        self.connection.send(True)
        return self.connection.recv()

    def stop(self):
        try:
            self.connection.send(False)
        except OSError:  # the worker died already (its error reached wait_ready or seconds)
            pass
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()


def npgan_against_torch(ks=(3, 32), repeats=7, steps=30, batch=256):
    """Rows of {k, implementation, steps_per_s: [one per repeat]}: tfgan_mix's npgan step (fit,
    XLA off and on) against the PyTorch reference (``torch_npgan``: stacked weights with bmm, and a
    loop over K). Each contender lives in its own process and their timing windows interleave
    (A B C D A B C D ...), so a slow spell of the machine hits every one and only one runs at a
    time. Without PyTorch installed only tfgan_mix is timed."""
    context = multiprocessing.get_context("spawn")
    torch_impls = ("bmm", "loop") if importlib.util.find_spec("torch") else ()
    rows = []
    for k in ks:
        plan = {f"tfgan_mix npgan, XLA {'on' if xla else 'off'}": (_tfgan_npgan_window, (k, xla, batch, steps))
                for xla in (False, True)}
        plan.update({f"PyTorch {torch_version()} eager, {'stacked weights + bmm' if impl == 'bmm' else 'loop over K'}":
                     (_torch_npgan_window, (k, impl, batch, steps)) for impl in torch_impls})
        contenders = {}
        try:
            for name, (make_window, arguments) in plan.items():  # built together: builds are not timed
                contenders[name] = _Contender(context, make_window, arguments)
            for contender in contenders.values():
                contender.wait_ready()
            rates = {name: [] for name in contenders}
            for _ in range(repeats):
                for name, contender in contenders.items():
                    rates[name].append(steps / contender.seconds())
        finally:
            for contender in contenders.values():
                contender.stop()
        rows += [{"k": k, "implementation": name, "steps_per_s": values} for name, values in rates.items()]
    return rows


def torch_version():
    return importlib.metadata.version("torch").split("+")[0]


# ---------------------------------------------------------------------- hard routing against k
def routed_step_times(ks=(1, 16, 200), batch=512, sample_batch=4096, repeats=10, preset="pgmgan_grid25"):
    """Rows of {k, xla, ms_per_step, ms_per_generate}: PGMGAN's whole train_step (partitioner, D and
    G updates) at ``preset``'s sizes with k partitions, and its ``generate`` (what the exported
    sampler runs per candidate batch) on ``sample_batch`` noise rows. Each sample belongs to one
    partition, so only its own generator head is computed (``GeneratorBank.own_heads``) and only its
    own column of D's k-wide last layer. Every (k, XLA) contender's windows interleave
    (``interleaved_ms``), so the ratios against k = 1 are paired per window."""
    settings = presets.load(preset)
    real = load_dataset(settings["data"]).x[:batch].astype(np.float32)
    steps, generates = {}, {}
    for k in ks:
        # One step timed, not a run: the preset's rate schedule has no run length here.
        model = build_model(settings["method"], {**settings["options"], "learning_rate_decay": "constant",
                                                 "num_generators": k, "data_shape": (2,)})
        noise = model.sample_noise(sample_batch, seed=[0, 0])
        for xla in (False, True):
            step = tf.function(model.train_step, jit_compile=xla)
            generate = tf.function(lambda n, m=model: m.generate(n)[0], jit_compile=xla)
            steps[k, xla] = lambda s=step: s(real)["d_loss"].numpy()
            generates[k, xla] = lambda g=generate, n=noise: g(n).numpy()
    step_ms, generate_ms = interleaved_ms(steps, repeats), interleaved_ms(generates, repeats)
    return [{"k": k, "xla": xla, "ms_per_step": step_ms[k, xla], "ms_per_generate": generate_ms[k, xla]}
            for k, xla in steps]


# ---------------------------------------------------------------------- FLOP/s
def matmul_peak_gflops(n=2048, repeats=10):
    """float32 matmul GFLOP/s of this machine (2 n^3 FLOPs per n x n product), best of XLA/plain."""
    a = tf.random.stateless_normal([n, n], [0, 1])
    b = tf.random.stateless_normal([n, n], [0, 2])
    best = 0.0
    for xla in (False, True):
        product = tf.function(lambda x, y: tf.matmul(x, y), jit_compile=xla)
        seconds = median_seconds(lambda p=product: p(a, b).numpy(), repeats)
        best = max(best, 2 * n**3 / seconds / 1e9)
    return best


def graph_flops(concrete_function):
    """FLOPs of one call of a traced function: ``bench_flops.graph_flops``'s total (contractions x 2)."""
    return bench_flops.graph_flops(concrete_function).total


def _axes_step(method, width, layers, batch, data_dim):
    """``method``'s train_step as a tf.function on axes1024-sized nets, and a real batch for it."""
    hidden = (width,) * (layers - 2)  # paper 001's "5 layers": input, 3 hidden of 1024, output
    options = {"data_shape": (data_dim,), "latent_dim": 100, "generator_units": hidden, "discriminator_units": hidden}
    model = build_model(method, options)
    real = tf.random.stateless_normal([batch, data_dim], [3, 4])
    return tf.function(model.train_step), real


def training_step_flops(method="gan", width=1024, layers=5, batch=256, data_dim=1024):
    """``bench_flops.FlopCount`` of one ``method`` train_step on axes1024-sized nets (tracing only)."""
    step, real = _axes_step(method, width, layers, batch, data_dim)
    return bench_flops.graph_flops(step.get_concrete_function(real))


def training_step_gflops(method="gan", width=1024, layers=5, batch=256, data_dim=1024, repeats=5):
    """{flops_per_step, seconds_per_step, gflops, flops_by_type} of ``method``'s train_step on
    axes1024-sized nets; FLOPs counted by ``bench_flops`` from the traced step."""
    step, real = _axes_step(method, width, layers, batch, data_dim)
    count = bench_flops.graph_flops(step.get_concrete_function(real))
    seconds = median_seconds(lambda: step(real)["d_loss"].numpy(), repeats)
    return {"method": method, "width": width, "layers": layers, "flops_per_step": count.total,
            "seconds_per_step": seconds, "gflops": count.total / seconds / 1e9, "flops_by_type": count.by_type}


# ---------------------------------------------------------------------- sampling
def sampling_throughput(run_dir, version_dir, batches=(1, 64, 4096), repeats=5, load_threads=8, load_requests=25,
                        load_batch=64):
    """Rows of {path, batch, samples_per_s} for one exported sampler, plus a latency row per server
    (p50/p99 over ``load_threads`` x ``load_requests`` concurrent requests of ``load_batch`` rows)."""
    sampler = Sampler(load_run(run_dir), Rejection.load(version_dir))
    keras_fn = sampler.noise_function()
    names = list(sampler.noise_spec)
    saved = tf.saved_model.load(version_dir).signatures["from_noise"]
    session = ort.InferenceSession(f"{version_dir}/model.onnx", providers=["CPUExecutionProvider"])
    server = serve(version_dir.rstrip("/").rsplit("/", 1)[0], port=0, grpc_port=0,
                   max_batch=max(batches), max_body_bytes=64 << 20)

    def rest(seeds):
        body = json.dumps({"inputs": {"seed": [int(s) for s in seeds]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/sampler:predict", body)
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def grpc(seeds):
        return predict_seeds("127.0.0.1", server.grpc_port, "sampler", seeds, timeout=120)

    rows = []
    try:
        for batch in batches:
            noise = sampler.candidate_noise(tf.range(batch, dtype=tf.int64))
            feeds = {k: v.numpy() for k, v in noise.items()}
            seeds = np.arange(batch)
            paths = {
                "Keras (tf.function)": lambda n=noise: keras_fn(*[n[k] for k in names]),
                "SavedModel signature": lambda n=noise: saved(**n),
                "onnxruntime": lambda f=feeds: session.run(None, f),
                "REST server": lambda s=seeds: rest(s),
                "gRPC server": lambda s=seeds: grpc(s),
            }
            for path, function in paths.items():
                rows.append({"path": path, "batch": batch,
                             "samples_per_s": batch / median_seconds(function, repeats)})
        for path, function in (("REST server", rest), ("gRPC server", grpc)):
            def timed(i, f=function):
                start = time.perf_counter()
                f(np.arange(i * load_batch, (i + 1) * load_batch))
                return time.perf_counter() - start
            with ThreadPoolExecutor(load_threads) as pool:
                latencies = sorted(pool.map(timed, range(load_threads * load_requests)))
            rows.append({"path": path, "batch": load_batch, "concurrency": load_threads,
                         "p50_ms": 1000 * float(np.percentile(latencies, 50)),
                         "p99_ms": 1000 * float(np.percentile(latencies, 99))})
    finally:
        server.stop()
    return rows


# ---------------------------------------------------------------------- the section
def speed_section(profile, work_dir, log=print):
    """Every speed measurement at ``profile``'s sizes: {generator_bank, npgan_vs_torch, jit_auto_xla,
    routed, matmul_peak_gflops, training_step, sampling, sampling_setup (the export's rule and
    candidates)}."""
    log("speed: generator bank against a Python loop")
    bank = generator_bank_step_times(ks=profile.speed_ks, repeats=profile.speed_repeats)
    log("speed: npgan against PyTorch")
    torch_rows = npgan_against_torch(ks=profile.torch_ks, repeats=profile.torch_repeats, steps=profile.torch_steps)
    log("speed: hard-routed PGMGAN against k")
    routed = routed_step_times(ks=profile.routed_ks, repeats=profile.speed_repeats)
    log("speed: matmul peak and training-step GFLOP/s")
    peak = matmul_peak_gflops(repeats=profile.speed_repeats)
    step = training_step_gflops(width=profile.gflops_width, repeats=profile.speed_repeats)
    log("speed: sampling throughput")
    preset = presets.load("npgan_gaussians3")
    run_dir = os.path.join(work_dir, "throughput-npgan")
    shutil.rmtree(run_dir, ignore_errors=True)
    steps = max(1, round(preset["steps"] * profile.step_scale))
    train(TrainSpec("npgan", "gaussians3", steps, preset["generators"], preset["batch_size"],
                    options=preset["options"], epoch_steps=steps), load_dataset("gaussians3"), run_dir,
          jit_compile=profile.jit_compile, verbose=0)
    export_base = os.path.join(work_dir, "throughput-export")
    shutil.rmtree(export_base, ignore_errors=True)
    version = writer.export_run(run_dir, export_base)
    sampling = sampling_throughput(run_dir, version, batches=profile.throughput_batches, repeats=profile.speed_repeats,
                                     load_requests=profile.load_requests)
    card = read_card(version)
    return {"generator_bank": bank, "matmul_peak_gflops": peak, "training_step": step, "sampling": sampling,
            "sampling_setup": {"rule": card["rejection"]["rule"], "candidates": card["candidates"]},
            "npgan_vs_torch": torch_rows, "jit_auto_xla": train_auto_jit(), "routed": routed}


def bank_note(rows, peak, batch=256, layer_sizes=(100, 200, 100, 20, 2)):
    """The bank-against-loop comparison in words: speed-ups per K and what bounds them."""
    windows = {(r["k"], r["implementation"].startswith("GeneratorBank"), r["xla"]): r["ms_per_step"] for r in rows}
    ms = {key: statistics.median(v) for key, v in windows.items()}
    ks = sorted({r["k"] for r in rows})
    ratio = {xla: ", ".join(f"K={k} {_paired_ratios(windows[k, False, xla], windows[k, True, xla])}" for k in ks
                            if (k, False, xla) in ms and (k, True, xla) in ms) for xla in (False, True)}
    best = {k: min(((v, bank, xla) for (kk, bank, xla), v in ms.items() if kk == k), default=None) for k in ks}
    # Forward plus the two backward matmuls of every dense layer (3 x 2 x batch x in x out FLOPs per
    # generator), minus the first layer's input gradient: z is no variable, TensorFlow prunes it.
    flops = 6 * batch * sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:])) - 2 * batch * layer_sizes[0] * layer_sizes[1]
    k = ks[-1]
    fastest = best[k][0] if best[k] else float("nan")
    return note("speed", "bank", ratio_off=ratio[False], ratio_on=ratio[True],
                fastest="; ".join(f"K={kk} {'bank' if b[1] else 'loop'}, XLA {'on' if b[2] else 'off'}"
                                  for kk, b in best.items() if b),
                k=k, gflop=flops * k / 1e9, ms=fastest, gflops=flops * k / fastest / 1e6, peak=peak)


def _paired_ratios(numerator, denominator):
    """min/median/max of the per-repeat ratios of two interleaved series, as text."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return f"{min(ratios):.2f} / {statistics.median(ratios):.2f} / {max(ratios):.2f}"


def train_auto_jit():
    """What ``tfgan-mix train``'s default ``--jit-compile auto`` resolves to for npgan on one device."""
    model = build_model("npgan", _npgan_options(), jit_compile="auto")
    return bool(resolve_auto_jit(model, "auto", tf.distribute.get_strategy()))


TIE = 0.03  # medians this close count as equal: the spread between repeats is wider


def torch_note(rows, auto_xla):
    """Per K: each tfgan_mix variant's speed-up over PyTorch with stacked weights (per-repeat ratios
    of the interleaved windows) and the XLA settings' medians, against the 1.5x target, and
    whether what ``--jit-compile auto`` picks (``auto_xla``) was the faster setting."""
    by = {(r["k"], r["implementation"]): r["steps_per_s"] for r in rows}
    auto = "on" if auto_xla else "off"
    parts, chosen = [], []
    for k in dict.fromkeys(r["k"] for r in rows):
        ours = {xla: by[k, f"tfgan_mix npgan, XLA {xla}"] for xla in ("off", "on")}
        medians = {xla: statistics.median(v) for xla, v in ours.items()}
        chosen.append(medians[auto] >= (1 - TIE) * max(medians.values()))
        bmm = next((v for (kk, name), v in by.items() if kk == k and name.endswith("bmm")), None)
        versus = "; ".join(f"XLA {xla} / PyTorch bmm {_paired_ratios(ours[xla], bmm)}" for xla in ours) if bmm \
            else note("speed", "torch-missing")
        parts.append(note("speed", "torch-k", k=k, versus=versus, off=medians["off"], on=medians["on"]))
    agrees = all(chosen)
    return note("speed", "torch", per_k=" ".join(parts), auto=auto,
                verdict=note("speed", "auto-faster" if agrees else "auto-slower"))


def routed_note(rows):
    """The step and generate time at the largest k over those at k = 1, per XLA setting."""
    ks = sorted({r["k"] for r in rows})
    ms = {(r["k"], r["xla"]): r for r in rows}
    ratios = "; ".join(
        f"XLA {'on' if xla else 'off'}: train step {_paired_ratios(ms[ks[-1], xla]['ms_per_step'], ms[ks[0], xla]['ms_per_step'])}, "
        f"generate {_paired_ratios(ms[ks[-1], xla]['ms_per_generate'], ms[ks[0], xla]['ms_per_generate'])}"
        for xla in (False, True) if (ks[0], xla) in ms and (ks[-1], xla) in ms)
    return note("speed", "routed", k=ks[-1], k0=ks[0], ratios=ratios)
