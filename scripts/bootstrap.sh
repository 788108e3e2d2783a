#!/usr/bin/env bash
# Creates or updates .venv and installs what is missing, system packages included.
# Idempotent and quick when nothing changed. Usage: scripts/bootstrap.sh [--system]
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=${1:-}
if [[ "$want_system" == "--system" ]]; then
    missing=()
    command -v chromium >/dev/null 2>&1 || [[ -x /usr/bin/chromium ]] || missing+=(chromium)
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    command -v dot >/dev/null 2>&1 || missing+=(graphviz)
    # The cython tests compile C: Debian's build-essential brings gcc, make and the libc headers.
    { command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } || missing+=(build-essential)
    # The HPC tests start a single-node SLURM (slurmctld + slurmd) with munge on this machine.
    { [[ -x /usr/sbin/slurmctld ]] && [[ -x /usr/sbin/slurmd ]] && command -v sbatch >/dev/null 2>&1; } \
        || missing+=(slurmctld slurmd slurm-client)
    [[ -x /usr/sbin/munged ]] || missing+=(munge)
    if (( ${#missing[@]} )); then
        echo "bootstrap: installing system packages: ${missing[*]}"
        sudo_cmd=()
        [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
else
    command -v dot >/dev/null 2>&1 || {
        echo "bootstrap: installing graphviz"
        sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
        "${sudo_cmd[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq graphviz >/dev/null
    }
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "bootstrap: creating .venv"
    "$python" -m venv .venv
fi
if [[ ! -x .venv/bin/uv ]]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check uv
fi
# Reinstall only when the project metadata changed.
stamp=.venv/.switchyard-stamp
digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$digest" ]]; then
    echo "bootstrap: installing switchyard and its dependencies into .venv"
    .venv/bin/uv pip install -q --python .venv/bin/python -e ".[test]"
    echo "$digest" > "$stamp"
fi
