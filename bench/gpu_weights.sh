#!/usr/bin/env bash
# A catalogue model's real weights to a GPU machine that has no network and takes at most
# 64 MiB per command: its GGUF (what `rf-model fetch NAME` keeps beside hf/) in pieces of at
# most 60 MiB, one folder per piece, so that one device call carries one piece by naming its
# folder; the device gathers them outside the checkout, joins, checks and converts them.
#
#   here:      bench/gpu_weights.sh split qwen2.5-coder-1.5b
#              -> .carry-weights/qwen2.5-coder-1.5b/01/{part,SHA256SUMS} ... 18/
#   device, one call per piece, carrying .carry-weights/qwen2.5-coder-1.5b/NN:
#              bench/gpu_weights.sh receive qwen2.5-coder-1.5b
#   device, once all are there (after make install):
#              bench/gpu_weights.sh join qwen2.5-coder-1.5b
#
# Pieces live in /tmp/rf-weights/NAME on the device, which lasts only while it stays warm.
set -euo pipefail

PIECE=$((60 * 1024 * 1024))
GATHER=/tmp/rf-weights

usage() {
  cat <<'EOF'
usage: bench/gpu_weights.sh split NAME [--out DIR] [--piece-size BYTES] [--sha256 H --size N]
       bench/gpu_weights.sh receive NAME [NN] [--from DIR] [--into DIR]
       bench/gpu_weights.sh join NAME [--from DIR] [--into DIR] [--sha256 H --size N] [--no-convert]

  split     NAME's GGUF from the model cache (rf-model fetch NAME), checked against the
            catalogue, into DIR/NAME/NN/part (default DIR .carry-weights; pieces of at most
            60 MiB) with the sha256 of every piece and of the whole in each NN/SHA256SUMS
  receive   on the device: copy the carried piece(s) from DIR/NAME/NN (default DIR
            .carry-weights; every piece there, or only NN) to the --into folder (default
            /tmp/rf-weights/NAME) and check each; needs nothing installed. By hand:
              mkdir -p /tmp/rf-weights/NAME && cp .carry-weights/NAME/NN/part /tmp/rf-weights/NAME/NN.part \
                && cp .carry-weights/NAME/NN/SHA256SUMS /tmp/rf-weights/NAME/
  join      on the device: check the pieces in the --from folder (default /tmp/rf-weights/NAME),
            append them into DIR/model.gguf (default DIR the model cache's folder for NAME),
            check its size and sha256 against the catalogue (or --size/--sha256), convert it
            with rf-model and print the transformers folder (--no-convert: the GGUF's path)
EOF
}

die() { echo "gpu_weights.sh: $*" >&2; exit "${2:-1}"; }
usage_error() { echo "gpu_weights.sh: $*" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)

(($#)) || { usage >&2; exit 2; }
case $1 in
  -h|--help) usage; exit 0 ;;
  split|receive|join) MODE=$1; shift ;;
  *) usage_error "unknown mode '$1' (split, receive or join)" ;;
esac
(($#)) && [[ $1 != -* ]] || usage_error "$MODE needs a model NAME"
NAME=$1
shift
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || usage_error "bad model name '$NAME'"
OUT='' FROM='' INTO='' SHA='' SIZE='' CONVERT=1 ONLY=''
if [[ $MODE == receive && $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  ONLY=$(printf '%02d' "$((10#$1))")
  shift
fi
while (($#)); do
  case $1 in
    --out|--from|--into|--sha256|--size|--piece-size)
      (($# >= 2)) || usage_error "$1 needs a value"
      case $1 in
        --out) OUT=$2 ;;
        --from) FROM=$2 ;;
        --into) INTO=$2 ;;
        --sha256) [[ $2 =~ ^[0-9a-f]{64}$ ]] || usage_error "--sha256 takes 64 hex digits"; SHA=$2 ;;
        --size) [[ $2 =~ ^[0-9]+$ ]] || usage_error "--size takes a number of bytes"; SIZE=$2 ;;
        --piece-size)
          [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0 && $2 <= PIECE)) \
            || usage_error "--piece-size takes bytes from 1 to $PIECE"
          PIECE=$2 ;;
      esac
      shift ;;
    --no-convert) CONVERT=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown option '$1' for $MODE" ;;
  esac
  shift
done
[[ -n $SHA && -n $SIZE || -z $SHA && -z $SIZE ]] || usage_error "--sha256 and --size go together"

# rf_core's python: the checkout's venv (make install), else the one beside rf-model on PATH
py() {
  local bin
  if [[ -x $root/.venv/bin/rf-model ]]; then bin=$root/.venv/bin
  elif command -v rf-model > /dev/null; then bin=$(dirname "$(command -v rf-model)")
  else die "rf-model not found: run make install${1:+ ($1)}" 2
  fi
  [[ -x $bin/python ]] || die "no python beside $bin/rf-model: run make install" 2
  echo "$bin/python"
}
model_dir() {  # the model cache's folder for NAME, as rf-model computes it
  local p
  p=$(py "or pass --into") || exit $?
  "$p" -c 'import sys; from rf_core.model.loading import model_dir
print(model_dir(sys.argv[1]))' "$NAME"
}
expected() {  # "SIZE SHA256" of NAME's GGUF: --size/--sha256, else the catalogue's
  local p
  if [[ -n $SHA ]]; then echo "$SIZE $SHA"; return; fi
  p=$(py "or pass --size and --sha256") || exit $?
  "$p" -c 'import sys; from rf_core.model.loading import CATALOG
spec = CATALOG.get(sys.argv[1])
print(f"{spec.size} {spec.sha256}" if spec else "")' "$NAME"
}
want() {
  local e
  e=$(expected) || exit $?
  [[ -n $e ]] || usage_error "'$NAME' is not in the model catalogue (rf-model list); pass --size and --sha256"
  read -r WANT_SIZE WANT_SHA <<< "$e"
}

case $MODE in
split)
  want
  [[ -z $FROM && -z $INTO && $CONVERT == 1 ]] || usage_error "split takes --out, --piece-size, --sha256, --size"
  dir=$(model_dir)
  gguf=$dir/model.gguf
  [[ -f $gguf ]] || die "no $gguf: run rf-model fetch $NAME (where hf/ is there without model.gguf, remove $dir/hf first)"
  size=$(stat -c %s "$gguf")
  ((size == WANT_SIZE)) || die "$gguf has $size bytes, the catalogue $WANT_SIZE: remove $dir and run rf-model fetch $NAME"
  sum=$(sha256sum "$gguf" | cut -d' ' -f1)
  [[ $sum == "$WANT_SHA" ]] || die "$gguf fails its sha256 ($sum, expected $WANT_SHA): remove $dir and run rf-model fetch $NAME"
  n=$(((size + PIECE - 1) / PIECE))
  ((n <= 99)) || usage_error "$n pieces of $PIECE bytes: more than 99; take bigger pieces"
  OUT=${OUT:-$root/.carry-weights}
  tmp=$OUT/$NAME.tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  split -b "$PIECE" -d -a 2 --numeric-suffixes=1 "$gguf" "$tmp/p"
  : > "$tmp/SHA256SUMS"
  for p in "$tmp"/p[0-9][0-9]; do
    nn=${p##*/p}
    mkdir "$tmp/$nn" && mv "$p" "$tmp/$nn/part"
    echo "$(sha256sum "$tmp/$nn/part" | cut -d' ' -f1)  $nn.part" >> "$tmp/SHA256SUMS"
  done
  echo "$sum  model.gguf" >> "$tmp/SHA256SUMS"
  for d in "$tmp"/[0-9][0-9]; do cp "$tmp/SHA256SUMS" "$d/"; done
  rm "$tmp/SHA256SUMS"
  rm -rf "${OUT:?}/$NAME" && mv "$tmp" "$OUT/$NAME"
  echo "$OUT/$NAME: $n pieces of at most $PIECE bytes ($size bytes, sha256 $sum)"
  rel=$OUT/$NAME
  [[ $rel == "$root"/* ]] && rel=${rel#"$root"/}
  echo "device, one call per piece NN (01..$(printf '%02d' "$n")): carry [\"$rel/NN\"], command: bench/gpu_weights.sh receive $NAME"
  ;;

receive)
  [[ -z $OUT && -z $SHA && $CONVERT == 1 ]] || usage_error "receive takes NN, --from and --into"
  FROM=${FROM:-$root/.carry-weights}
  INTO=${INTO:-$GATHER/$NAME}
  pattern=${ONLY:-[0-9][0-9]}
  found=()
  for d in "$FROM/$NAME"/$pattern; do
    if [[ -f $d/part && -f $d/SHA256SUMS ]]; then found+=("$d"); fi
  done
  ((${#found[@]})) || die "no piece${ONLY:+ $ONLY} of $NAME in $FROM/$NAME: carry its folder (carry [\".carry-weights/$NAME/${ONLY:-NN}\"]) or make the pieces with bench/gpu_weights.sh split $NAME"
  mkdir -p "$INTO"
  for d in "${found[@]}"; do
    nn=${d##*/}
    cp "$d/part" "$INTO/$nn.part.tmp"
    cp "$d/SHA256SUMS" "$INTO/SHA256SUMS"
    want=$(awk -v f="$nn.part" '$2 == f {print $1}' "$INTO/SHA256SUMS")
    got=$(sha256sum "$INTO/$nn.part.tmp" | cut -d' ' -f1)
    [[ -n $want && $got == "$want" ]] || { rm -f "$INTO/$nn.part.tmp"; die "piece $nn fails its sha256 ($got, expected ${want:-none listed}): split again and carry it again"; }
    mv "$INTO/$nn.part.tmp" "$INTO/$nn.part"
  done
  have=$(find "$INTO" -maxdepth 1 -name '[0-9][0-9].part' | wc -l)
  total=$(grep -c '\.part$' "$INTO/SHA256SUMS")
  echo "$INTO: received ${found[*]##*/}; $have of $total pieces there"
  ;;

join)
  [[ -z $OUT ]] || usage_error "join takes --from, --into, --sha256, --size, --no-convert"
  want
  FROM=${FROM:-$GATHER/$NAME}
  [[ -f $FROM/SHA256SUMS ]] || die "no pieces of $NAME in $FROM (no SHA256SUMS): run bench/gpu_weights.sh receive $NAME in each piece's device call"
  mapfile -t listed < <(awk '$2 ~ /^[0-9][0-9]\.part$/ {print substr($2, 1, 2)}' "$FROM/SHA256SUMS")
  missing=()
  for nn in "${listed[@]}"; do
    if [[ ! -f $FROM/$nn.part ]]; then missing+=("$nn"); fi
  done
  ((${#missing[@]} == 0)) || die "missing pieces ${missing[*]} of ${#listed[@]} in $FROM: carry .carry-weights/$NAME/NN for each and run bench/gpu_weights.sh receive $NAME"
  bad=()
  for nn in "${listed[@]}"; do
    w=$(awk -v f="$nn.part" '$2 == f {print $1}' "$FROM/SHA256SUMS")
    [[ $(sha256sum "$FROM/$nn.part" | cut -d' ' -f1) == "$w" ]] || bad+=("$nn")
  done
  ((${#bad[@]} == 0)) || die "pieces ${bad[*]} in $FROM fail their sha256: carry and receive them again"
  if [[ -z $INTO ]]; then
    INTO=$(model_dir)
    CACHED=1
  fi
  mkdir -p "$INTO"
  gguf=$INTO/model.gguf
  for nn in "${listed[@]}"; do cat "$FROM/$nn.part"; done > "$gguf.tmp"
  size=$(stat -c %s "$gguf.tmp")
  sum=$(sha256sum "$gguf.tmp" | cut -d' ' -f1)
  if ((size != WANT_SIZE)) || [[ $sum != "$WANT_SHA" ]]; then
    rm -f "$gguf.tmp"
    die "the joined file has $size bytes, sha256 $sum; the catalogue says $WANT_SIZE bytes, $WANT_SHA: split $NAME again from a fresh rf-model fetch"
  fi
  mv "$gguf.tmp" "$gguf"
  echo "gpu_weights.sh: $gguf: ${#listed[@]} pieces, $size bytes, sha256 checked" >&2
  if ((CONVERT == 0)); then
    echo "$gguf"
    exit 0
  fi
  bin=$(py) || exit $?
  bin=$(dirname "$bin")
  if [[ -n ${CACHED:-} ]]; then
    # model.gguf in the cache's folder: fetch skips the download and converts it to hf/
    # beside it, so the name NAME resolves for every command
    "$bin/rf-model" fetch "$NAME" || die "rf-model fetch $NAME could not convert $gguf"
  else
    "$bin/rf-model" path "$gguf" || die "rf-model could not convert $gguf"
  fi
  ;;
esac
