#!/usr/bin/env bash
# Installs what kiln needs from Debian's packages (and, with --tests, what its tests and benchmarks
# need), through the machine's configured apt sources. Needs root; prints the command otherwise.
set -euo pipefail

runtime_pkgs=(crun runc tini gpgv debian-archive-keyring util-linux ca-certificates)
# docker.io and iproute2: the swarm tests run a dockerd per network namespace (never on the host's own).
test_pkgs=(skopeo umoci podman docker-registry dpkg gnupg xz-utils busybox-static openssl mmdebstrap haproxy uidmap chromium docker.io iproute2)

pkgs=("${runtime_pkgs[@]}")
if [[ "${1:-}" == "--tests" ]]; then pkgs+=("${test_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "prerequisites: all installed"
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  echo "prerequisites missing: ${missing[*]}" >&2
  echo "fix: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "prerequisites: installed"
