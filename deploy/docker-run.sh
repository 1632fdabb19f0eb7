#!/usr/bin/env bash
# Serve an export base with TensorFlow Serving's own container, the same REST (8501) and gRPC (8500)
# API that `tfgan-mix serve` speaks:
#
#   deploy/docker-run.sh exported/np            # BASE as written by `tfgan-mix export RUN --out BASE`
#   curl -d '{"instances": [1, 2, 3]}' http://127.0.0.1:8501/v1/models/sampler:predict
#
# The base is mounted read-only at /models/sampler (models.config's base_path); new versions
# exported into it are picked up by TF Serving's file-system poll, and models.config is re-read
# every 60 s, so its version policy can be changed without a restart.
set -euo pipefail

BASE="${1:?usage: deploy/docker-run.sh EXPORT_BASE [IMAGE]}"
IMAGE="${2:-tensorflow/serving:latest}"  # pin a tag no older than the TensorFlow that exported
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE="$(cd "$BASE" && pwd)"

exec docker run --rm --name tfgan-mix-sampler \
  -p 127.0.0.1:8500:8500 -p 127.0.0.1:8501:8501 \
  --mount "type=bind,source=${BASE},target=/models/sampler,readonly" \
  --mount "type=bind,source=${HERE}/models.config,target=/models/models.config,readonly" \
  "$IMAGE" \
  --model_config_file=/models/models.config \
  --model_config_file_poll_wait_seconds=60 \
  --file_system_poll_wait_seconds=2 \
  --rest_api_timeout_in_ms=30000
