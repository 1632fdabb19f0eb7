"""The speed section: the generator bank against a Python loop, achieved GFLOP/s against the
measured matmul peak, sampling throughput and server latency (the measurements are in
``tfgan_mix.training.bench_speed``). The notes' words are in ``notes/speed.md``."""
import os
import shutil

from tfgan_mix.benchmarks.harness import note
from tfgan_mix.data import load_dataset


def speed_section(profile, work_dir, log=print):
    """Every speed measurement at ``profile``'s sizes: {generator_bank, matmul_peak_gflops,
    training_step, sampling}."""
    from tfgan_mix.export import writer
    from tfgan_mix.training import bench_speed as S
    from tfgan_mix.training import presets
    from tfgan_mix.training.train import TrainSpec, train

    log("speed: generator bank against a Python loop")
    bank = S.generator_bank_step_times(ks=profile.speed_ks, repeats=profile.speed_repeats)
    log("speed: matmul peak and training-step GFLOP/s")
    peak = S.matmul_peak_gflops(repeats=profile.speed_repeats)
    step = S.training_step_gflops(width=profile.gflops_width, repeats=profile.speed_repeats)
    log("speed: sampling throughput")
    preset = presets.load("npgan_gaussians3")
    run_dir = os.path.join(work_dir, "throughput-npgan")
    shutil.rmtree(run_dir, ignore_errors=True)
    steps = max(1, round(preset["steps"] * profile.step_scale))
    train(TrainSpec("npgan", "gaussians3", steps, preset["generators"], preset["batch_size"],
                    options=preset["options"], epoch_steps=steps), load_dataset("gaussians3"), run_dir, verbose=0)
    export_base = os.path.join(work_dir, "throughput-export")
    shutil.rmtree(export_base, ignore_errors=True)
    version = writer.export_run(run_dir, export_base)
    sampling = S.sampling_throughput(run_dir, version, batches=profile.throughput_batches, repeats=profile.speed_repeats,
                                     load_requests=profile.load_requests)
    return {"generator_bank": bank, "matmul_peak_gflops": peak, "training_step": step, "sampling": sampling}


def bank_note(rows, peak, batch=256, layer_sizes=(100, 200, 100, 20, 2)):
    """The bank-against-loop comparison in words: speed-ups per K and what bounds them."""
    ms = {(r["k"], r["implementation"].startswith("GeneratorBank"), r["xla"]): r["ms_per_step"] for r in rows}
    ks = sorted({r["k"] for r in rows})
    ratio = {xla: ", ".join(f"K={k} {ms[k, False, xla] / ms[k, True, xla]:.2f}" for k in ks
                            if (k, False, xla) in ms and (k, True, xla) in ms) for xla in (False, True)}
    best = {k: min(((v, bank, xla) for (kk, bank, xla), v in ms.items() if kk == k), default=None) for k in ks}
    # Forward plus the two backward matmuls of every dense layer: 3 x 2 x batch x in x out FLOPs per generator.
    flops = 6 * batch * sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))
    k = ks[-1]
    fastest = best[k][0] if best[k] else float("nan")
    return note("speed", "bank", ratio_off=ratio[False], ratio_on=ratio[True],
                fastest="; ".join(f"K={kk} {'bank' if b[1] else 'loop'}, XLA {'on' if b[2] else 'off'}"
                                  for kk, b in best.items() if b),
                k=k, gflop=flops * k / 1e9, ms=fastest, gflops=flops * k / fastest / 1e6, peak=peak)
