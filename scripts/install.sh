#!/usr/bin/env bash
# Installs whatever is missing for cuntong on a Debian 12 machine: apt packages, the venv,
# and the project with its Python dependencies. Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(sed -e 's/#.*//' -e '/^\s*$/d' scripts/apt-packages.txt | awk '{print $1}')
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    # Packages that ship services must not start them: the stack runs its own copies.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    $SUDO rm -f /usr/sbin/policy-rc.d
fi

PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
# Re-install only when the dependency list changed since the last install.
stamp=.venv/.cuntong-installed
if [[ ! -f $stamp ]] || ! cmp -s pyproject.toml "$stamp"; then
    .venv/bin/pip install -q -e '.[dev]'
    cp pyproject.toml "$stamp"
fi
