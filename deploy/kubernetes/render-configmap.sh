#!/usr/bin/env bash
# Regenerates configmap.yaml from signaldb.dist.toml (a test fails when they differ).
set -euo pipefail
cd "$(dirname "$0")"
{
  cat <<'HEAD'
# The ConfigMap carries signaldb.dist.toml verbatim (a test keeps them identical); edit a copy for your
# deployment. Every key is documented there. Regenerate with ./render-configmap.sh.
apiVersion: v1
kind: ConfigMap
metadata:
  name: signaldb-compactor
data:
  signaldb.toml: |
HEAD
  sed -e 's/^\(.\)/    \1/' ../../signaldb.dist.toml
} > configmap.yaml
