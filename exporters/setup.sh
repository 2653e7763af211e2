#!/usr/bin/env bash
# Create (or reuse) the exporters' virtual environment at <repo>/.cache/venv-exporters
# and install the pinned requirements. Idempotent: when the installed requirements
# already match exporters/requirements.txt (recorded in a stamp file), it does nothing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.cache/venv-exporters"
reqs="${repo_root}/exporters/requirements.txt"
stamp="${venv}/.mmrt-requirements.sha256"

want="$(sha256sum "${reqs}" | cut -d' ' -f1)"
if [[ -x "${venv}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "setup.sh: creating ${venv}" >&2
    python3 -m venv "${venv}"
fi
echo "setup.sh: installing ${reqs} (PyTorch's Linux wheels bring ~4 GB of CUDA libraries)" >&2
# No pip cache: the venv itself is the cache (the stamp above skips reinstalls),
# and a second copy of the ~3 GB of wheels only raises the peak disk use.
"${venv}/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q -r "${reqs}"
echo "${want}" > "${stamp}"
