#!/usr/bin/env bash
# Installs the Debian packages callvault needs to build, test and benchmark.
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
pkgs=(build-essential cmake make pkg-config
      librocksdb-dev libsodium-dev libzstd-dev libssl-dev
      libflatbuffers-dev flatbuffers-compiler
      libgtest-dev libgmock-dev libbenchmark-dev
      libcli11-dev nlohmann-json3-dev libfmt-dev
      wamerican python3 python3-matplotlib
      softhsm2 libp11-kit-dev)  # the PKCS#11 provider: its header; SoftHSM2 for its tests
# `install-deps.sh sanitizers`: also clang and its runtimes (asan-ubsan, tsan presets).
if [ "${1:-}" = "sanitizers" ]; then
  pkgs+=(clang libclang-rt-14-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
