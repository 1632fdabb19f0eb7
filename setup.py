"""Install tfgan_mix.

The repository's top-level application folders ``training/``, ``export/``, ``serving/`` and
``benchmarks/`` are installed as sub-packages of ``tfgan_mix`` (``tfgan_mix.training`` and so on)
through ``package_dir``, so an install never claims generic top-level import names in site-packages.
"""
from setuptools import setup

setup(
    name="tfgan_mix",
    version="0.1.0",
    description="Mixture-of-generators GANs for Keras 3 / TensorFlow: train, export, serve.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=[
        "tfgan_mix",
        "tfgan_mix.core",
        "tfgan_mix.layers",
        "tfgan_mix.methods",
        "tfgan_mix.data",
        "tfgan_mix.training",
        "tfgan_mix.training.presets",
        "tfgan_mix.export",
        "tfgan_mix.serving",
        "tfgan_mix.benchmarks",
    ],
    package_dir={
        "tfgan_mix": "tfgan_mix",
        "tfgan_mix.training": "training",
        "tfgan_mix.training.presets": "training/presets",
        "tfgan_mix.export": "export",
        "tfgan_mix.serving": "serving",
        "tfgan_mix.benchmarks": "benchmarks",
    },
    package_data={"tfgan_mix.training.presets": ["*.json"], "tfgan_mix.benchmarks": ["notes/*.md"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "tensorboard>=2.21,<2.22",  # the TensorBoard callback writes its summaries with it
        "tensorflow-datasets>=4.9.8,<5",
        "tf-keras-vis>=0.8.7,<0.9",
        "onnx>=1.17,<2",
        "tf2onnx>=1.17,<1.18",
        "onnxruntime>=1.20,<2",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "scikit-learn>=1.5,<2",
        "matplotlib>=3.8,<4",
        "tensorflow-serving-api>=2.19,<2.22",  # the PredictionService protos the gRPC server speaks
        "grpcio>=1.60,<2",
        "starlette>=0.40,<2",  # the REST front (TF Serving's REST API)
        "uvicorn>=0.30,<1",  # serves it; model_server subclasses its h11 protocol for the header deadline
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            "pytest-xdist>=3.5,<4",  # the suite runs in two processes (pyproject addopts)
            "pyyaml>=6,<7",  # tests/test_deploy.py parses the KServe manifests
        ],
        # The speed section's PyTorch reference (benchmarks/torch_npgan.py); the suite never needs it.
        # 2.13 is the CPU build pip finds without a download of CUDA libraries on our machines.
        "bench": ["torch>=2.13,<2.14"],
    },
    entry_points={"console_scripts": ["tfgan-mix=tfgan_mix.training.cli:main"]},
)
