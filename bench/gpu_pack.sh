#!/usr/bin/env bash
# Everything a GPU machine without network needs besides its own torch, transformers, peft,
# accelerate and numpy, in one folder of at most 60 MiB that one device call carries:
#   wheels/                 the project's wheel and every dependency the image lacks, for
#                           CPython 3.12 manylinux x86_64 (the gguf and test extras included),
#                           plus setuptools and wheel for building the editable install offline
#   spider.tar.gz(.sha256)  Spider 1.0: dev, train and the other json files, every database
#   model/NAME/             a model's config, generation config and tokenizer files (no
#                           weights: bench/gpu_weights.sh carries those in pieces)
#   MANIFEST, SHA256SUMS    what it holds: sizes, sha256s, versions
# Run it where there is network; then, on the device, in the checkout:
#   make install EXTRAS=models,gguf,test PIP_ARGS="--no-index --find-links .carry/wheels"
set -euo pipefail

LIMIT=$((60 * 1024 * 1024))  # bytes: a device call carries 64 MiB with the checkout
IMAGE_HAS=(torch transformers peft accelerate numpy)  # the GPU image's own, never packed
PY_TAGS=(--only-binary=:all: --implementation cp --python-version 3.12
         --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
DEFAULT_MODEL=qwen2.5-coder-1.5b
OPTIONAL_MODEL=qwen2.5-coder-0.5b  # packed by default only where it is converted already

usage() {
  cat <<'EOF'
usage: bench/gpu_pack.sh [options]
  --out DIR           the folder to write (default .carry in the checkout; replaced whole)
  --spider-root DIR   Spider 1.0 (default $RF_SPIDER_ROOT, else ../shared/spider)
  --model NAME        an rf-model name whose config and tokenizer files to pack (repeatable;
                      default qwen2.5-coder-1.5b, and qwen2.5-coder-0.5b where converted);
                      one not converted yet is fetched first (rf-model fetch: minutes)
  -h, --help          this help
EOF
}

die() { echo "gpu_pack.sh: $*" >&2; exit "${2:-1}"; }
usage_error() { echo "gpu_pack.sh: $*" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=$root/.carry SPIDER=${RF_SPIDER_ROOT:-$root/../shared/spider} MODELS=()
while (($#)); do
  case $1 in
    --out|--spider-root|--model)
      (($# >= 2)) || usage_error "$1 needs a value"
      case $1 in
        --out) OUT=$2 ;;
        --spider-root) SPIDER=$2 ;;
        --model) MODELS+=("$2") ;;
      esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_pack.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# The checkout's venv (make install), else whatever rf-model is on PATH beside its python.
if [[ -x $root/.venv/bin/rf-model ]]; then
  BIN=$root/.venv/bin
elif command -v rf-model > /dev/null; then
  BIN=$(dirname "$(command -v rf-model)")
else
  die "rf-model not found: run make install" 2
fi
PY=$BIN/python
[[ -x $PY ]] || die "no python beside $BIN/rf-model: run make install" 2

# Check every input before writing anything.
catalog=$("$PY" -c 'from rf_core.model.loading import CATALOG; print(" ".join(CATALOG))') \
  || die "cannot read the model catalogue from $PY: run make install" 2
if ((${#MODELS[@]} == 0)); then
  MODELS=("$DEFAULT_MODEL")
  if "$BIN/rf-model" path "$OPTIONAL_MODEL" > /dev/null 2>&1; then MODELS+=("$OPTIONAL_MODEL"); fi
fi
for m in "${MODELS[@]}"; do
  [[ " $catalog " == *" $m "* ]] || usage_error "unknown model '$m' (known: $catalog)"
done
for f in dev.json train_spider.json tables.json database; do
  [[ -e $SPIDER/$f ]] || usage_error "Spider 1.0 not found at $SPIDER (no $f): pass --spider-root DIR or set RF_SPIDER_ROOT (its layout: ../shared/spider/README.md)"
done
SPIDER=$(cd "$SPIDER" && pwd)

log() { printf '[gpu_pack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
stage=$(mktemp -d "${TMPDIR:-/tmp}/gpu_pack.XXXXXX")  # outside the checkout: a failed run leaves nothing to carry
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/wheels" "$stage/model"
pip_quiet=(--quiet --disable-pip-version-check)

# (a) dependencies: resolve the project's requirements for the image's Python and platform,
# then download all but what the image has. The requirements come from pyproject.toml.
log "wheels: resolving for CPython 3.12 manylinux x86_64"
mapfile -t reqs < <("$PY" - "$root/pyproject.toml" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
for req in project["dependencies"] + extras["gguf"] + extras["test"]:
    print(req)
EOF
)
((${#reqs[@]})) || die "cannot read the requirements from $root/pyproject.toml"
reqs+=("setuptools>=70.1" wheel)  # the offline editable build (see the Makefile)
"$PY" -m pip install "${pip_quiet[@]}" --dry-run --ignore-installed --target "$stage/resolve" \
    "${PY_TAGS[@]}" --report "$stage/report.json" "${reqs[@]}" 2> "$stage/pip.log" \
  || die "resolving the dependencies failed (network? pip says: $(tail -n 1 "$stage/pip.log"))"
mapfile -t pins < <("$PY" - "$stage/report.json" "${IMAGE_HAS[@]}" <<'EOF'
import json, sys
from packaging.utils import canonicalize_name
skip = {canonicalize_name(n) for n in sys.argv[2:]}
for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]
    if canonicalize_name(meta["name"]) not in skip:
        print(f'{meta["name"]}=={meta["version"]}')
EOF
)
log "wheels: downloading ${#pins[@]}: ${pins[*]}"
"$PY" -m pip download "${pip_quiet[@]}" --no-deps "${PY_TAGS[@]}" -d "$stage/wheels" \
    "${pins[@]}" 2> "$stage/pip.log" \
  || die "pip download failed (network? pip says: $(tail -n 1 "$stage/pip.log"))"

# (b) the project as a wheel, built with the venv's setuptools from a copy of the checkout's
# tracked files (a build in place would write build/ and *.egg-info into the checkout)
log "wheels: building the project's wheel"
mkdir "$stage/src"
git -C "$root" ls-files -z | tar -C "$root" --null --ignore-failed-read -T - -cf - 2> /dev/null \
  | tar -C "$stage/src" -xf -
"$PY" -m pip wheel "${pip_quiet[@]}" --no-deps --no-build-isolation -w "$stage/wheels" \
    "$stage/src" > "$stage/pip.log" 2>&1 \
  || die "building the project's wheel failed: $(tail -n 1 "$stage/pip.log")"
rm -rf "$stage/src"

# (c) Spider, under a top folder spider/; sorted, owner-free and gzip -n: the same files
# give the same sha256
log "spider: packing $SPIDER"
members=()
for f in README.md dev.json train_spider.json train_others.json tables.json dev_gold.sql \
         train_gold.sql database; do
  if [[ -e $SPIDER/$f ]]; then members+=("$f"); fi
done
tar --sort=name --owner=0 --group=0 --numeric-owner --transform 's,^,spider/,' \
    -C "$SPIDER" -cf - "${members[@]}" | gzip -n -6 > "$stage/spider.tar.gz"
(cd "$stage" && sha256sum spider.tar.gz > spider.tar.gz.sha256)

# (d) each model's small files, from its converted folder (converted first where needed)
for m in "${MODELS[@]}"; do
  if ! src=$("$BIN/rf-model" path "$m" 2> /dev/null); then
    log "model: $m is not converted yet: rf-model fetch $m (downloads and converts once; minutes)"
    "$BIN/rf-model" fetch "$m" > "$stage/fetch.log" 2>&1 \
      || die "rf-model fetch $m failed: $(tail -n 1 "$stage/fetch.log")"
    src=$("$BIN/rf-model" path "$m")
  fi
  mkdir -p "$stage/model/$m"
  for f in config.json generation_config.json tokenizer.json tokenizer_config.json \
           special_tokens_map.json added_tokens.json chat_template.jinja chat_template.json \
           vocab.json merges.txt; do
    if [[ -f $src/$f ]]; then cp "$src/$f" "$stage/model/$m/"; fi
  done
  [[ -f $stage/model/$m/config.json && -f $stage/model/$m/tokenizer_config.json ]] \
    || die "$src lacks config.json or tokenizer_config.json: convert it again (rf-model fetch $m)"
  log "model: $m from $src"
done

# (e) the check: make install's requirements resolve from wheels/ alone for CPython 3.12,
# with the image's packages standing in as empty wheels and no index reachable
log "check: resolving reasonforge[models,gguf,test] offline from wheels/"
"$PY" - "$stage/stubs" <<'EOF'
import sys, zipfile
from pathlib import Path
out = Path(sys.argv[1])
out.mkdir()
# the image's versions as the issue gives them (accelerate and numpy: any recent)
for name, version in [("torch", "2.11.0"), ("transformers", "5.17.0"), ("peft", "0.21.0"),
                      ("accelerate", "1.10.0"), ("numpy", "2.3.0")]:
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(out / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA",
                     f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: gpu_pack\n"
                     "Root-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
EOF
project_wheel=$(cd "$stage/wheels" && ls reasonforge-*.whl)
if ! env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 \
    PIP_INDEX_URL=http://127.0.0.1:9/simple \
    "$PY" -m pip install "${pip_quiet[@]}" --dry-run --ignore-installed --no-index \
      --find-links "$stage/wheels" --find-links "$stage/stubs" --target "$stage/resolve" \
      "${PY_TAGS[@]}" --report "$stage/check.json" \
      "reasonforge[models,gguf,test] @ file://$stage/wheels/$project_wheel" \
      "setuptools>=70.1" > /dev/null 2> "$stage/pip.log"; then
  die "the wheels do not cover the install: $(grep -m1 -E 'ERROR|No matching' "$stage/pip.log" || tail -n 1 "$stage/pip.log")"
fi
checked=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["install"]))' \
  "$stage/check.json")
rm -rf "$stage/stubs" "$stage/resolve" "$stage"/*.json "$stage"/*.log

# (f) MANIFEST and SHA256SUMS; then the size limit, and only then the folder is replaced
sums=$(cd "$stage" && find . -type f -printf '%P\n' | sort | xargs -d '\n' sha256sum)
echo "$sums" > "$stage/SHA256SUMS"
total=$(find "$stage" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
{
  echo "# gpu_pack.sh, $(date -u '+%Y-%m-%d %H:%M') UTC: $(basename "$OUT") for CPython 3.12 manylinux x86_64"
  echo "# reasonforge $("$PY" -c 'import importlib.metadata as m; print(m.version("reasonforge"))')" \
       "at commit $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)"
  echo "# not packed, the image's own: ${IMAGE_HAS[*]} (and their dependencies)"
  echo "# check: reasonforge[models,gguf,test] resolves offline from wheels/ ($checked packages)"
  echo "# spider: $SPIDER: ${members[*]}"
  for m in "${MODELS[@]}"; do
    echo "# model/$m: $("$PY" -c 'import json, sys; c = json.load(open(sys.argv[1]))
print(c.get("architectures", ["?"])[0], "transformers", c.get("transformers_version", "?"))' \
      "$stage/model/$m/config.json")"
  done
  echo "# bytes  sha256  path"
  while read -r sum path; do
    printf '%10d  %s  %s\n' "$(stat -c %s "$stage/$path")" "$sum" "$path"
  done < "$stage/SHA256SUMS"
  echo "# total $total bytes"
} > "$stage/MANIFEST"
total=$(find "$stage" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
((total <= LIMIT)) || die "the pack is $(mib "$total"), over the $(mib "$LIMIT") limit; $OUT left as it was"

rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mv "$stage" "$OUT"
trap - EXIT
chmod 755 "$OUT"

{
  echo "$OUT: $(mib "$total") in all (limit $(mib "$LIMIT"))"
  printf '  %-30s %s\n' "wheels/ ($(find "$OUT/wheels" -name '*.whl' | wc -l) wheels)" "$(mib "$(du -sb "$OUT/wheels" | cut -f1)")"
  printf '  %-30s %s\n' "spider.tar.gz" "$(mib "$(stat -c %s "$OUT/spider.tar.gz")")"
  for m in "${MODELS[@]}"; do
    printf '  %-30s %s\n' "model/$m/" "$(mib "$(du -sb "$OUT/model/$m" | cut -f1)")"
  done
  echo "  MANIFEST, SHA256SUMS (check with: cd $(basename "$OUT") && sha256sum -c --quiet SHA256SUMS)"
}
