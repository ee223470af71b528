#!/usr/bin/env bash
# Installs the Debian packages in scripts/debian-packages.txt that are missing. As root it runs
# apt-get; otherwise it prints the command to run and fails. A package whose command is already
# on PATH from elsewhere counts as present (e.g. npm bundled with a NodeSource nodejs, which
# conflicts with Debian's npm package).
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t wanted < <(grep -v '^\s*#' debian-packages.txt | grep -v '^\s*$')
missing=()
for package in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || command -v "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
