#!/usr/bin/env bash
# Install mmdiff and everything it needs into a virtual environment, idempotently.
#
#   bash tools/setup_env.sh            # the package and its runtime stack
#   bash tools/setup_env.sh --tests    # plus the test extras (pytest, Stability-AI's ldm:
#                                      # stable-diffusion-sdkit 2.1.5)
#                                      # and the data-set extra
#   bash tools/setup_env.sh --datasets # plus the reference data pipelines'
#                                      # packages (albumentations for Albu)
#   bash tools/setup_env.sh --deepspeed  # plus DeepSpeed (trains on GPUs;
#                                      # installs and constructs on CPU; not in
#                                      # --tests: once installed, every
#                                      # `import mmengine.runner` imports it)
#
# Environment:
#   MMDIFF_VENV        virtual environment to use/create (default: <repo>/.venv)
#   PYTHON             interpreter that creates it (default: python3)
#   MMDIFF_WHEELHOUSE  folder searched first for a prebuilt mmcv 2.1.0 wheel
#                      (default: <repo>/../shared/wheels when it exists)
#
# mmcv 2.x has no wheel on PyPI. Without a matching wheel, mmcv 2.1.0 is
# compiled from source with its C++ ops (about 35-55 minutes on 2 cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMDIFF_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
WHEELHOUSE=${MMDIFF_WHEELHOUSE:-}
if [ -z "$WHEELHOUSE" ] && [ -d "$ROOT/../shared/wheels" ]; then
  WHEELHOUSE=$(cd "$ROOT/../shared/wheels" && pwd)
fi
EXTRAS=runtime
for arg in "$@"; do
  case "$arg" in
    --tests) EXTRAS="$EXTRAS-tests-datasets" ;;
    --datasets) EXTRAS="$EXTRAS-datasets" ;;
    --deepspeed) EXTRAS="$EXTRAS-deepspeed" ;;
    *) echo "mmdiff setup: unknown option $arg (use --tests, --datasets, --deepspeed)" >&2; exit 2 ;;
  esac
done
has() { case "$EXTRAS" in *"-$1"*) return 0 ;; *) return 1 ;; esac; }

say() { printf '==> [mmdiff setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

# Skip everything when nothing that decides the install changed since the last
# successful run (the stamp is written only at the very end).
STAMP="$VENV/.mmdiff-setup-$EXTRAS"
# The package is installed as a copy (that is what ships configs/ and tools/
# in mmdiff/.mim for `mmdiff::` bases), so its sources are part of the key.
KEY=$(cd "$ROOT" && { cat requirements/*.txt setup.py "${BASH_SOURCE[0]}"; \
      find mmdiff configs tools -type f \( -name '*.py' -o -name '*.yml' -o -name '*.sh' \) \
        -not -path 'mmdiff/.mim/*' | LC_ALL=C sort | xargs cat; \
      cat model-index.yml mmdiff_scope.py mmdiff_scope.pth 2>/dev/null; } | sha256sum | cut -c1-16)
# The stamp alone is not trusted: the installed versions are compared with the
# pins (and `pip check` run) every time; drift (e.g. a later `pip install X`
# that downgraded a pinned package) is repaired by installing the pins again.
R="$ROOT/requirements"
PINS=("$R/torch.txt" "$R/mminstall.txt" "$R/runtime.txt" --no-deps "$R/runtime-nodeps.txt")
if has tests; then PINS+=("$R/tests.txt" --no-deps "$R/tests-nodeps.txt"); fi
if has datasets; then PINS+=(--no-deps "$R/datasets.txt"); fi
if has deepspeed; then PINS+=("$R/deepspeed.txt"); fi
check_env() { "$PY" "$ROOT/mmdiff/utils/envcheck.py" "${PINS[@]}"; }
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && \
   "$PY" -c "import mmdiff, mmseg, mmdet, panopticapi; from mmcv.ops import nms" 2>/dev/null; then
  if DRIFT=$(check_env 2>&1); then
    say "environment $VENV is up to date ($EXTRAS; versions match the pins)"
    exit 0
  fi
  say "environment $VENV has drifted from the pins; installing them again:"
  printf '    %s\n' "$DRIFT"
fi

if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  say "installing torch (requirements/torch.txt)"
  "${PIP[@]}" -r "$ROOT/requirements/torch.txt"
fi

if ! "$PY" -c "import mmcv, sys; from mmcv.ops import nms; sys.exit(mmcv.__version__ != '2.1.0')" 2>/dev/null; then
  if [ -n "$WHEELHOUSE" ] && ls "$WHEELHOUSE"/mmcv-2.1.0-*.whl >/dev/null 2>&1 && \
     "${PIP[@]}" --only-binary mmcv --find-links "$WHEELHOUSE" -r "$ROOT/requirements/mminstall.txt"; then
    say "mmcv 2.1.0 installed from the wheelhouse $WHEELHOUSE"
  else
    say "no usable mmcv 2.1.0 wheel${WHEELHOUSE:+ in $WHEELHOUSE}: building it from source with its C++ ops"
    say "(about 35-55 minutes on 2 cores; the compiler output below shows progress)"
    "${PIP[@]}" "setuptools<70" wheel ninja
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" --no-build-isolation --no-binary mmcv -v -r "$ROOT/requirements/mminstall.txt"
  fi
fi

say "installing the runtime stack (requirements/runtime.txt)"
"${PIP[@]}" -r "$ROOT/requirements/runtime.txt"
"${PIP[@]}" --no-deps -r "$ROOT/requirements/runtime-nodeps.txt"

if has tests; then
  say "installing the test extras (requirements/tests*.txt)"
  "${PIP[@]}" -r "$ROOT/requirements/tests.txt"
  "${PIP[@]}" --no-deps -r "$ROOT/requirements/tests-nodeps.txt"
fi
if has datasets; then
  # --no-deps: albumentations/albucore ask for opencv-python-headless, a
  # second cv2 beside mmcv's opencv-python; their other needs are listed.
  say "installing the data-set extra (requirements/datasets.txt)"
  "${PIP[@]}" --no-deps -r "$ROOT/requirements/datasets.txt"
fi
if has deepspeed; then
  # DeepSpeed ships an sdist that imports torch to build: without
  # --no-build-isolation pip would fetch a second (CUDA, multi-GB) torch.
  say "installing DeepSpeed (requirements/deepspeed.txt)"
  "${PIP[@]}" --no-build-isolation -r "$ROOT/requirements/deepspeed.txt"
fi

say "installing mmdiff"
# A regular (non-editable) install: mmengine finds `mmdiff::` configs under
# the installed package's .mim folder, which an editable install lacks.
"${PIP[@]}" --no-deps --no-build-isolation --force-reinstall "$ROOT"

if "$PY" -m pip list 2>/dev/null | grep -qiE '^(torchvision|timm|open[-_]clip[-_]torch) '; then
  echo "mmdiff setup: torchvision/timm/open_clip is installed in $VENV; it breaks 'import transformers'" \
       "on CPU torch. Remove it: $PY -m pip uninstall torchvision timm open_clip_torch" >&2
  exit 1
fi
"$PY" -c "import mmdiff, mmseg, mmdet, mmcv, torch, diffusers, transformers; from mmcv.ops import nms
print('mmdiff', mmdiff.__version__, '| torch', torch.__version__, '| mmcv', mmcv.__version__,
      '| mmseg', mmseg.__version__, '| mmdet', mmdet.__version__, '| diffusers', diffusers.__version__,
      '| transformers', transformers.__version__)"
if ! DRIFT=$(check_env 2>&1); then
  printf '%s\n' "$DRIFT" >&2
  echo "mmdiff setup: after installing, $VENV still differs from the pins in requirements/ (above)." \
       "A package installed there by hand conflicts with them: uninstall it ($PY -m pip uninstall NAME)" \
       "or use a fresh environment (MMDIFF_VENV=...)." >&2
  exit 1
fi
echo "$KEY" > "$STAMP"
say "done: $VENV ($EXTRAS)"
