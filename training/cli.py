"""The ``tfgan-mix`` command line.

    tfgan-mix methods
    tfgan-mix datasets
    tfgan-mix presets
    tfgan-mix train --method NAME --data DATA [--generators K] --steps N --out DIR
                    [--preset NAME] [--batch-size B] [--seed S] [--strategy default|mirrored|multiworker|tpu]
                    [--devices N] [--tpu ADDRESS] [--steps-per-execution N]
                    [--precision float32|mixed_float16|mixed_bfloat16]
                    [--config FILE.json] [--set key=value ...]
    tfgan-mix evaluate DIR --data DATA [--num-samples N] [--json OUT]
    tfgan-mix sample DIR|BASE/V|BASE/V/model.onnx -n N --out FILE.npy [--seed S]
    tfgan-mix export DIR --out BASE [--version V] [--formats savedmodel,onnx] [--reject RULE]
                     [--candidates M] [--threshold T]
    tfgan-mix serve BASE [--name NAME] [--port P] [--grpc-port Q] [--host 127.0.0.1] [--keep-versions N]
                    [--max-body-bytes B] [--max-batch R] [--idle-timeout S] [--workers W]
    tfgan-mix demo [--out DIR] [--steps N]
    tfgan-mix bench [--quick] [--out DIR] [--work DIR [--resume]] [--only SECTIONS | --render]

Bad input (unknown method or dataset, invalid data file, bad option) is reported in one line
on stderr with exit status 2, before any output directory is created.

``--help`` and the listing commands (methods, datasets, presets) load no TensorFlow: everything
imported at the top of this module is TensorFlow-free (the registry reads method names from the
method files' source). The commands that train, evaluate, sample, export, serve or benchmark import
their TensorFlow modules inside their own function, which is the only reason those imports sit there.
"""
import argparse
import json
import os
import sys
import threading
import time

import numpy as np

from tfgan_mix import constants
from tfgan_mix.core import get_method, list_methods
from tfgan_mix.data import list_datasets, load_dataset
from tfgan_mix.training import presets

EXIT_BAD_INPUT = 2


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    # Device layout must be fixed before TensorFlow starts, so it happens before any TF import.
    if getattr(args, "strategy", None) == "mirrored" and getattr(args, "devices", None):
        from tfgan_mix.training.strategy import split_cpu  # TensorFlow: only for this command

        split_cpu(args.devices)
    try:
        return args.run(args) or 0
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"tfgan-mix {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


# ---------------------------------------------------------------------- commands
def cmd_methods(args):
    print("\n".join(list_methods()))


def cmd_datasets(args):
    print("\n".join(list_datasets()))
    print("tfds:NAME[:SPLIT]\nPATH.npy | PATH.csv")


def cmd_presets(args):
    for name in presets.list_presets():
        print(f"{name:24s} {presets.load(name).get('source', '')}")


def cmd_train(args):
    # TensorFlow modules: imported per command, see the module docstring.
    from tfgan_mix.training import train as T
    from tfgan_mix.training.strategy import make_strategy

    _apply_preset(args)
    options = {**args.preset_options, **parse_options(args.config, args.set)}
    if args.precision:
        options["precision"] = args.precision
    get_method(args.method)  # unknown method: fail before touching data or disk
    dataset = load_dataset(args.data, seed=args.seed)  # invalid data: fail before any directory exists
    spec = T.TrainSpec(
        method=args.method, data=args.data, steps=args.steps, num_generators=args.generators,
        batch_size=args.batch_size, seed=args.seed, options=options, epoch_steps=args.epoch_steps,
        steps_per_execution=args.steps_per_execution,
    )
    T.check_out_dir(args.out, overwrite=args.overwrite)
    strategy = make_strategy(args.strategy, devices=args.devices, tpu=args.tpu)
    start = time.perf_counter()
    # TPUs run XLA only: the TPU path always compiles, as the CPU tests do with jit_compile=True.
    jit = True if args.strategy == "tpu" else _jit(args.jit_compile)
    try:
        model, history = T.train(spec, dataset, args.out, strategy=strategy, jit_compile=jit, overwrite=args.overwrite)
    except T.TrainingDiverged as error:  # not bad input: the run itself failed
        print(f"tfgan-mix train: error: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    trained = len(history.epoch) * T.epoch_plan(args.steps, args.epoch_steps)[0]  # fewer when resumed
    resumed = f" (resumed from a backup at step {args.steps - trained})" if trained < args.steps else ""
    print(f"trained {args.method} on {dataset.name} for {args.steps} steps{resumed}; {trained} steps in this "
          f"run took {seconds:.1f} s ({trained / seconds:.1f} steps/s, start-up included; "
          f"XLA {'on' if model.jit_compile else 'off'})")
    run_dir = T.worker_dir(args.out)
    print(f"model: {os.path.join(run_dir, T.MODEL_FILE)}")
    print(f"tensorboard --logdir {os.path.join(run_dir, 'logs')}")


def cmd_evaluate(args):
    from tfgan_mix.training.evaluate import evaluate_run  # TensorFlow: see the module docstring

    dataset = load_dataset(args.data, seed=args.seed)
    metrics, paths = evaluate_run(args.run_dir, dataset, num_samples=args.num_samples, json_path=args.json,
                                  seed=args.seed)
    print(json.dumps(metrics, indent=2))
    for what, path in paths.items():
        print(f"{what}: {path}")


def cmd_sample(args):
    """Samples from a run directory (the raw generator), or outlier-free samples from an exported
    sampler: a SavedModel version directory or its ``model.onnx``."""

    if args.n < 1:
        raise ValueError(f"-n must be >= 1, got {args.n}")
    if not args.out.endswith(".npy"):
        raise ValueError(f"--out must name a .npy file, got {args.out}")
    source = args.run_dir
    exported = any(os.path.exists(os.path.join(source, f)) for f in ("sampler.json", "saved_model.pb"))
    if source.endswith(".onnx") or exported:
        from tfgan_mix.export import client  # TensorFlow (through the writer): see the module docstring

        if source.endswith(".onnx") and not os.path.isfile(source):
            raise FileNotFoundError(f"{source} does not exist")
        # The card is checked and every file's checksum verified before anything is loaded or sized
        # from it: a damaged version is a one-line error (exit 2) and no output file.
        card = client.read_card(os.path.dirname(os.path.abspath(source)) if source.endswith(".onnx") else source)
        request = client.onnx_requester(source, args.seed) if source.endswith(".onnx") \
            else client.savedmodel_requester(source, args.seed)
        try:
            rate = client.write_accepted(request, args.n, args.out, batch_size=client.batch_rows(card))
        except client.LowAcceptance as error:
            print(f"tfgan-mix sample: error: {error}", file=sys.stderr)
            return 1
        print(f"acceptance rate {rate:.4f}")
        print(f"wrote {args.n} accepted samples to {args.out}")
        return 0
    from tfgan_mix.runs import load_run  # TensorFlow: see the module docstring

    samples, _ = load_run(source).sample(args.n, seed=args.seed)
    _save_npy(samples, args.out)
    print(f"wrote {len(samples)} samples of shape {samples.shape[1:]} to {args.out}")


def _save_npy(array, path):
    """Write ``path`` atomically: no half-written file is ever left there."""
    from tfgan_mix.runs import write_atomically  # imports Keras: see the module docstring

    def write(tmp):
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npy" to the name
            np.save(f, array)

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, write)


def cmd_export(args):
    from tfgan_mix.export.writer import export_run  # TensorFlow: see the module docstring

    path = export_run(args.run_dir, args.out, version=args.version, formats=args.formats, rule=args.reject,
                      candidates=args.candidates, threshold=args.threshold, target=args.outlier_target,
                      floor=args.row_acceptance)
    with open(os.path.join(path, "sampler.json"), encoding="utf-8") as f:
        card = json.load(f)
    print(f"exported {card['method']} to {path} ({', '.join(card['formats'])})")
    print(f"rejection: {card['rejection']['rule']} >= {card['rejection']['threshold']:.4g} "
          f"({card['rejection']['threshold_from']}), {card['candidates']} candidates per row")
    for key, value in card["measured"].items():
        print(f"  {key:28s} {_fmt(value)}")


def cmd_serve(args):
    from tfgan_mix.serving.model_server import serve  # TensorFlow: see the module docstring

    server = serve(args.base, name=args.name, host=args.host, port=args.port, grpc_port=args.grpc_port,
                   keep_versions=args.keep_versions, max_body_bytes=args.max_body_bytes, max_batch=args.max_batch,
                   idle_timeout_s=args.idle_timeout, workers=args.workers)
    print(f"serving {args.base} as '{args.name}' (versions {server.store.versions()}): "
          f"REST http://{args.host}:{server.rest_port}/v1/models/{args.name}, gRPC {args.host}:{server.grpc_port}",
          flush=True)
    try:
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def cmd_demo(args):
    """The main job on a built-in default: NPGAN on the three unequal Gaussians (paper 000)."""
    # TensorFlow modules: imported per command, see the module docstring.
    from tfgan_mix.training import train as T
    from tfgan_mix.training.evaluate import evaluate_run

    preset = presets.load("npgan_gaussians3")
    steps = args.steps or preset["steps"]
    dataset = load_dataset(preset["data"], seed=args.seed)
    spec = T.TrainSpec(method=preset["method"], data=preset["data"], steps=steps,
                       num_generators=preset["generators"], batch_size=preset["batch_size"], seed=args.seed,
                       options=preset["options"])
    if os.path.exists(os.path.join(args.out, T.MODEL_FILE)):
        print(f"{args.out} already holds a trained model: evaluating it (delete the folder to retrain)")
    else:
        start = time.perf_counter()
        T.train(spec, dataset, args.out, verbose=2)
        print(f"trained {spec.method} for {steps} steps in {time.perf_counter() - start:.1f} s")
    metrics, paths = evaluate_run(args.out, dataset, num_samples=args.num_samples, seed=args.seed)
    print(f"\n{spec.method} on {dataset.name} with {spec.num_generators} generators:")
    for key in ("off_manifold_rate", "mode_proportions", "data_mode_proportions", "generator_usage",
                "frechet_distance", "knn2st_accuracy"):
        print(f"  {key:24s} {_fmt(metrics[key])}")
    for what, path in paths.items():
        print(f"{what}: {path}")
    _demo_serve(args.out)


def _demo_serve(run_dir):
    """Export the demo run as a sampler and draw from its ONNX file, as a client would: raw
    against served figures from the model card, and the served samples written to .npy."""
    # TensorFlow modules: imported per command, see the module docstring.
    from tfgan_mix.export import client
    from tfgan_mix.export.writer import export_run

    version = export_run(run_dir, os.path.join(run_dir, "exported"))
    card = client.read_card(version)
    measured = card["measured"]
    print(f"\nexported to {version}: rule {card['rejection']['rule']}, {card['candidates']} candidates per row "
          f"({card['rejection']['threshold_from']})")
    for key in ("raw", "accepted"):
        print(f"  {'served' if key == 'accepted' else key:8s} {_fmt(measured[key])}")
    out = os.path.join(run_dir, "served_samples.npy")
    rate = client.write_accepted(client.onnx_requester(os.path.join(version, "model.onnx"), seed=0), 5000, out)
    print(f"served samples (onnxruntime, acceptance {rate:.4f}): {out}")


def cmd_bench(args):
    """Regenerate BENCHMARKS.md (fidelity tables of papers 000-004 and speed) from measured runs."""
    from tfgan_mix.benchmarks.run import render_report, run_bench  # TensorFlow: see the module docstring

    if args.render:
        if args.only is not None or args.work or args.resume:
            raise ValueError("--render measures nothing: it takes no --only, --work or --resume")
        path = render_report(args.out, quick=args.quick, command="tfgan-mix bench" + (" --quick" if args.quick else "")
                             + " --render")
        print(f"wrote {path}")
        return
    if args.resume and not args.work:
        raise ValueError("--resume needs --work: the folder of the bench whose finished runs are reused")
    if args.work and os.path.exists(args.work) and os.listdir(args.work) and not args.resume:
        raise FileExistsError(f"--work {args.work} is not empty; give an empty or new folder, or add --resume "
                              "to reuse the runs finished there")
    only = None if args.only is None else [name.strip() for name in args.only.split(",") if name.strip()]
    command = ("tfgan-mix bench" + (" --quick" if args.quick else "") + (f" --only {','.join(only)}" if only else "")
               + (" --resume" if args.resume else ""))
    start = time.perf_counter()
    path = run_bench(args.out, quick=args.quick, work_dir=args.work, only=only, log=lambda m: print(m, flush=True),
                     command=command, resume=args.resume)
    print(f"wrote {path} in {(time.perf_counter() - start) / 60:.1f} minutes")


# ---------------------------------------------------------------------- option parsing
def _apply_preset(args):
    """Fill what the command line left out from ``--preset``; explicit flags win."""
    preset = presets.load(args.preset) if args.preset else {}
    args.method = args.method or preset.get("method")
    args.data = args.data or preset.get("data")
    args.steps = args.steps or preset.get("steps")
    args.generators = args.generators or preset.get("generators")
    args.batch_size = args.batch_size or preset.get("batch_size", constants.BATCH_SIZE)
    args.preset_options = preset.get("options", {})
    missing = [flag for flag, value in (("--method", args.method), ("--data", args.data), ("--steps", args.steps))
               if not value]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (or give --preset NAME)")


def parse_options(config_path, assignments):
    """Options from ``--config FILE.json`` then ``--set key=value`` (values parsed as JSON when they
    parse, else kept as strings: ``--set loss=hinge --set generator_units=[64,64]``)."""
    options = {}
    if config_path:
        try:
            with open(config_path, encoding="utf-8") as f:
                loaded = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{config_path} is not valid JSON: {error}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_path} must hold a JSON object of option names to values")
        options.update(loaded)
    for item in assignments or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.3f}" for v in value) + "]"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _jit(value):
    return {"auto": "auto", "on": True, "off": False}[value]


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _unit_fraction(text):
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def _parser():
    parser = argparse.ArgumentParser(prog="tfgan-mix", description="Mixture-of-generators GANs: train, evaluate, sample.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("methods", help="list registered methods")
    p.set_defaults(run=cmd_methods)
    p = sub.add_parser("datasets", help="list built-in datasets and accepted data forms")
    p.set_defaults(run=cmd_datasets)
    p = sub.add_parser("presets", help="list training presets")
    p.set_defaults(run=cmd_presets)

    p = sub.add_parser("train", help="train a method with model.fit")
    p.add_argument("--method")
    p.add_argument("--data", help="built-in name, tfds:NAME[:SPLIT], or a .npy/.csv file")
    p.add_argument("--generators", type=_positive_int, help="K: generators, latent components or partitions")
    p.add_argument("--steps", type=_positive_int, help="generator updates")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--batch-size", type=_positive_int, help=f"global batch size (default {constants.BATCH_SIZE})")
    p.add_argument("--preset", help="a paper experiment's settings (see `tfgan-mix presets`); flags override it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", default="default", choices=["default", "mirrored", "multiworker", "tpu"])
    p.add_argument("--devices", type=_positive_int, help="replicas for --strategy mirrored")
    p.add_argument("--tpu", help="TPU address for --strategy tpu")
    p.add_argument("--jit-compile", default="auto", choices=["auto", "on", "off"],
                   help="XLA for the train step; auto: on for a one-device run (measured faster), "
                        "Keras's choice on several replicas or workers")
    p.add_argument("--steps-per-execution", type=_positive_int, default=1,
                   help="train steps per compiled call (use many on TPUs); must divide --epoch-steps' epoch length")
    p.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"],
                   help="compute dtype of the networks (variables, routers and losses stay float32)")
    p.add_argument("--config", help="JSON file of method options")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="method option (repeatable)")
    p.add_argument("--epoch-steps", type=_positive_int, default=constants.EPOCH_STEPS,
                   help="steps between logs, sample pictures and backups (the most a crash can lose)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over: replace a finished run, or an interrupted one (and its backup), in --out")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="metrics and pictures for a trained run")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True)
    p.add_argument("--num-samples", type=_positive_int, default=5000)
    p.add_argument("--json", help="where to write the metrics (default DIR/eval/metrics.json)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("sample", help="write samples of a run, a SavedModel version or an ONNX sampler to .npy")
    p.add_argument("run_dir", help="run directory, exported version directory, or model.onnx")
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("export", help="write a trained run as a SavedModel + ONNX sampler version")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="base directory; the version goes to BASE/<version>/")
    p.add_argument("--version", type=_positive_int, help="default: the next free integer")
    p.add_argument("--formats", default="savedmodel,onnx", help="comma-separated: savedmodel, onnx")
    p.add_argument("--reject", help="rejection rule (default: the method's): none, manifold, discriminator, drs, router, "
                                    "truncation, or a method's own")
    p.add_argument("--candidates", type=_positive_int,
                   help=f"candidates drawn per output row (default {constants.CANDIDATES}, for methods whose "
                        f"generator choice depends on z {constants.CANDIDATES} over the smallest generator share; "
                        f"calibration doubles it, at most {constants.MAX_CANDIDATES}, until the outlier target holds)")
    p.add_argument("--threshold", type=float, help="accept when the rule's score reaches this (default: calibrated)")
    p.add_argument("--outlier-target", type=_unit_fraction, default=0.001,
                   help="calibrate the threshold so at most this share of served samples are outliers")
    p.add_argument("--row-acceptance", type=_unit_fraction, default=0.99,
                   help="while keeping at least this share of each generator's rows accepted")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("serve", help="serve exported versions over TF Serving's REST and gRPC APIs")
    p.add_argument("base", help="the export base directory holding integer version directories")
    p.add_argument("--name", default="sampler", help="model name in request paths")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501, help="REST port")
    p.add_argument("--grpc-port", type=int, default=8500)
    p.add_argument("--max-body-bytes", type=_positive_int, default=constants.MAX_BODY_BYTES)
    p.add_argument("--max-batch", type=_positive_int, default=constants.MAX_BATCH)
    p.add_argument("--keep-versions", type=_positive_int, default=1,
                   help="serve the newest N loadable versions (TF Serving's 'latest N' policy)")
    p.add_argument("--idle-timeout", type=float, default=constants.IDLE_TIMEOUT_S,
                   help="seconds a connection may stay without sending a complete request header")
    p.add_argument("--workers", type=_positive_int, default=constants.SERVE_WORKERS,
                   help="predictions run at once per front")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("demo", help="train NPGAN on gaussians3, evaluate, draw pictures")
    p.add_argument("--out", default=os.path.join("runs", "demo"))
    p.add_argument("--steps", type=_positive_int, help="override the preset's step budget")
    p.add_argument("--num-samples", type=_positive_int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("bench", help="measure the papers' tables and speed; write BENCHMARKS.md")
    p.add_argument("--quick", action="store_true", help="smoke profile: minutes, figures are not results")
    p.add_argument("--out", default=".", help="folder for BENCHMARKS.md and benchmarks/results/ (default: here)")
    p.add_argument("--work", help="keep the trained runs in this (empty or new) folder instead of a temporary one")
    p.add_argument("--resume", action="store_true",
                   help="reuse the runs (and exports) a stopped bench finished in --work with the same settings")
    p.add_argument("--only", metavar="SECTIONS",
                   help="comma-separated sections to rerun (a paper's table such as paper000, a served target such as "
                        "served_grid25, or speed; an unknown name is refused with the list), replacing them in the "
                        "report already in --out")
    p.add_argument("--render", action="store_true",
                   help="measure nothing: rewrite the report in --out from its results.json, with the papers' "
                        "rankings as the code states them now")
    p.set_defaults(run=cmd_bench)
    return parser


if __name__ == "__main__":
    sys.exit(main())
