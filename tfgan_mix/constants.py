"""Defaults shared by more than one module, each defined once here.

Plain Python values and no imports, so the command line can show them (``tfgan-mix --help``)
without loading TensorFlow.
"""

# ---- training (training/train.py's TrainSpec, ``tfgan-mix train``)
BATCH_SIZE = 256  # global batch size
EPOCH_STEPS = 500  # steps between logs, sample pictures and backups (the most a crash can lose)

# ---- export (export/calibration.py's default_candidates, ``tfgan-mix export --candidates``)
CANDIDATES = 8  # candidates per output row where a row's candidates share its generator
MAX_CANDIDATES = 64  # the most drawn where the generator choice depends on z (CANDIDATES / smallest share)

# ---- serving (serving/model_server.py's Limits, ``tfgan-mix serve``)
MAX_BODY_BYTES = 1 << 20  # a REST request body, and a gRPC message
MAX_BATCH = 1024  # rows per request
IDLE_TIMEOUT_S = 15.0  # a connection that sends no complete request header within this is closed
SERVE_WORKERS = 4  # predictions running at once, per front (REST and gRPC)

# ---- noise: the distributions a method's ``noise_spec`` may name, and how the model card spells
# each one. ONNX clients draw the noise themselves from the card's spelling: export/client.py in
# Python, serving/node/sample.js in JavaScript (tests/test_cli_fast.py checks that file's table).
NOISE_CARD_NAMES = {
    "uniform": "uniform(-1, 1)",
    "normal": "normal(0, 1)",
    "uniform01": "uniform(0, 1)",  # the generator choice ``u``
}
LATENT_PRIORS = ("uniform", "normal")  # what GANConfig.noise may choose for z
