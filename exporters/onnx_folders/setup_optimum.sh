#!/usr/bin/env bash
# Create (or reuse) .cache/venv-optimum: a small venv holding optimum-onnx and the transformers it
# needs (requirements-optimum.txt), that falls back to .cache/venv-exporters for everything else
# (torch, onnx, onnxruntime). Idempotent (stamped by the requirements' sha256).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
base="$root/.cache/venv-exporters"
venv="$root/.cache/venv-optimum"
reqs="$root/exporters/onnx_folders/requirements-optimum.txt"
stamp="$venv/.mmrt-requirements.sha256"
want="$(sha256sum "$reqs" | cut -d' ' -f1)"
[[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && exit 0
bash "$root/exporters/setup.sh"
base_py="$(sed -n 's/^executable = //p' "$base/pyvenv.cfg")"
[[ -x "$venv/bin/python" ]] || "$base_py" -m venv "$venv"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
base_site="$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -f "$site/zz-venv-exporters.pth"   # install with --no-deps into a venv that sees nothing else
"$venv/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q --no-deps -r "$reqs"
echo "$base_site" > "$site/zz-venv-exporters.pth"
echo "$want" > "$stamp"
