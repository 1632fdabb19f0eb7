"""Training presets: one JSON file per paper experiment, ``{method, data, generators, steps,
batch_size, options, source}``. ``tfgan-mix train --preset NAME`` and ``tfgan-mix demo`` use them."""
import json
import os

_HERE = os.path.dirname(__file__)


def list_presets():
    return sorted(name[:-5] for name in os.listdir(_HERE) if name.endswith(".json"))


def load(name):
    path = os.path.join(_HERE, f"{name}.json")
    if not os.path.exists(path):
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
