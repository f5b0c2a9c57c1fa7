#!/usr/bin/env bash
# Gradescope runs this once on its Ubuntu image: PyTorch's CPU build (a plain `pip install torch` brings CUDA's,
# several GB), then labkit from this zip with the dependencies its pyproject.toml names.
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv >/dev/null
python3 -m pip install --upgrade pip
python3 -m pip install torch --index-url https://download.pytorch.org/whl/cpu
python3 -m pip install /autograder/source/lab
