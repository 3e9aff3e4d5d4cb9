#!/usr/bin/env bash
# Installs the build and test dependencies from the distribution's packages
# (Debian 12 / Ubuntu 24.04). Uses sudo when not run as root. Safe to re-run.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcxxopts-dev libyaml-cpp-dev
  libpcre2-dev libicu-dev libgtest-dev
  python3 python3-jinja2 curl
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The e2e tests run the OpenAI Node SDK: Node.js and npm from the distribution unless a
# node/npm (e.g. NodeSource's nodejs, which bundles npm) is already on PATH.
command -v node > /dev/null || packages+=(nodejs)
command -v npm > /dev/null || packages+=(npm)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
