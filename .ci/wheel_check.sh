#!/usr/bin/env bash
# What a user gets from `pip install caasl`: build the sdist and the wheel (from the sdist), install
# the wheel alone into a fresh virtual environment (torch pinned first, as the Makefile does, so
# that no dependency pulls a CUDA build), and from a temporary folder outside the repository run
# the commands, every example with its smallest arguments and the README's ```python blocks
# (those not marked `# not run`). A non-zero exit or a traceback in any output fails the check.
#
#   .ci/wheel_check.sh            # called by .ci/run after `make test`
#   KEEP=1 .ci/wheel_check.sh     # keep the temporary folder (its path is printed)
#   SRC=DIR .ci/wheel_check.sh    # build and take the examples and README from DIR (a clean
#                                 # export, e.g. `git archive HEAD`), not this checkout
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SRC=$(cd "${SRC:-$ROOT}" && pwd)
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/caasl-wheel-check.XXXXXX")
[ -n "${KEEP:-}" ] && echo "wheel check folder: $WORK" || trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
SECONDS=0

stage() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

# Run a command in $WORK/run, its output in a log; fail on a non-zero exit or a traceback.
check() {
    N=$((N + 1))
    local log
    log="$WORK/logs/$(printf '%02d' "$N")-$(basename "$1").log"
    stage "$*"
    if ! (cd "$WORK/run" && "$@") >"$log" 2>&1 || grep -q "Traceback (most recent call last)" "$log"; then
        tail -n 40 "$log"
        echo "wheel check: FAILED: $* (log: $log)" >&2
        exit 1
    fi
    tail -n 3 "$log"
}
N=0
mkdir -p "$WORK/run" "$WORK/logs"

stage "build the sdist and the wheel"
BUILD_PY=.venv/bin/python
[ -x "$BUILD_PY" ] || BUILD_PY=$PYTHON
"$BUILD_PY" -m pip install -q build
"$BUILD_PY" -m build --outdir "$WORK/dist" "$SRC" >"$WORK/logs/build.log" 2>&1 || {
    tail -n 40 "$WORK/logs/build.log"
    exit 1
}
ls "$WORK/dist"

stage "a fresh venv with torch==2.13.0, then the wheel alone"
"$PYTHON" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q torch==2.13.0
"$VPY" -m pip install -q "$WORK"/dist/caasl-*.whl
PATH=$WORK/venv/bin:$PATH
export PATH

# outside the repository: the installed package, not the source tree, is imported
check caasl --version
check "$VPY" -c "import caasl_envs, caasl_agent, sys; assert '$ROOT' not in caasl_envs.__file__ and '$SRC' not in caasl_envs.__file__; print(caasl_envs.__file__)"
check "$VPY" -m caasl_envs.manifest check
check caasl demo --episodes 2 --out demo
cat >"$WORK/run/tiny.yaml" <<'EOF'
base: cpu-quick
n_envs: 4
total_timesteps: 96
checkpoint_every_steps: 48
algorithm: {learning_starts: 24, batch_size: 8}
evaluation: {every_steps: 48, n_envs: 4, seed: 1, heldout_n_envs: 8, heldout_seed: 2}
EOF
check caasl train --config tiny.yaml --output-dir train --no-progress-bar
check caasl bench --suite tiny --episodes 2 --out bench \
    --agents random,observational,round-robin,caasl:caasl-linear-cpu-quick-v0,sb3:train/best_model.zip
# every example, with its smallest arguments (a new one runs with its defaults)
declare -A EXAMPLE_ARGS=(
    [train_caasl.py]="--timesteps 400 --d 3"
    [other_sb3_agents.py]="--timesteps 128 --eval-envs 2"
)
for example in "$SRC"/examples/*.py; do
    # shellcheck disable=SC2086 # the arguments are words
    check "$VPY" "$example" ${EXAMPLE_ARGS[$(basename "$example")]:-}
done

stage "the README's python blocks"
"$VPY" "$ROOT/.ci/readme_blocks.py" "$SRC/README.md" "$WORK/readme"
for block in "$WORK"/readme/readme_*.py; do
    [ -e "$block" ] || continue
    check "$VPY" "$block"
done

stage "wheel check passed"
