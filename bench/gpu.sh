#!/usr/bin/env bash
# bench/gpu.sh — the one prepared run for a lent GPU machine (H100/H200, DESIGN.md: PyTorch 2.x
# with CUDA in a Python venv, no Node, no internet). Run from the repository root, with the
# working tree (dist/ built, node_modules/ carried) and a node binary:
#
#   NODE=/path/to/node PYTHON=/path/to/venv/bin/python bash bench/gpu.sh
#
# Steps, each under its own timeout and all under one budget (GPU_SH_BUDGET_S, default 540 s, so
# that it ends inside one 10-minute device command), each reported PASS / FAIL / SKIP:
#   1. find the CUDA libtorch (the Python torch's package folder: include/ + lib/, as
#      native/find-libtorch.mjs does through LIBTORCH) and build the addon against it — in a
#      copy of native/ under a temp folder, so the tree's CPU addon is never overwritten; the
#      commands below load the copy through EMBTUNE_ADDON;
#   2. `embtune doctor` (lists cuda:N with name and memory, runs a checked forward/backward);
#   3. `node --test dist/test/torch/device_cuda.test.js`: cuda:0 embeddings and reranker scores
#      of the fixture models against the CPU ones (1e-5), LoRA gradients with checkpointing
#      replaying GPU dropout, doctor naming each GPU;
#   4. timings. `bench:embed` and `bench:train` take no --device (they time the CPU engine beside
#      a CPU PyTorch baseline), so they are not run here; instead the CLI is timed on cuda:0 and
#      on the CPU with the same inputs: `embtune embed` of 512 AgriEval answers with a random
#      model of Qwen3-Embedding-0.6B's exact shapes (written by bench/train.js --write-model),
#      and 5 LoRA steps of `embtune train` on that model (batch 4 × (1 + 1 + 2) texts);
#   5. bench/serve on this machine's CPUs, 20 s phases, when 130 s of the budget are left: the
#      server's event-loop lag where cores are not scarce (issue 11), beside an idle loop's.
#
# It never changes GPU settings: nvidia-smi is only asked to list the GPUs. Nothing is installed.
# Where ../shared is missing (fixtures, AgriEval) the steps that need it are skipped and say so;
# set EMBTUNE_SHARED to its path. GPU_SH_DEVICE=cpu GPU_SH_SKIP_BUILD=1 runs steps 2–4 against the
# tree's own addon on the CPU (a dry run of the script's mechanics on a machine without a GPU);
# GPU_SH_TIMING_MODEL=DIR times that model folder instead of writing the 0.6B-shaped one.
# GPU_SH_ALLOW_CPU_TORCH=1 lets step 1 build against a CPU-only Python torch (to try the build itself).
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
NODE=${NODE:-$(command -v node || true)}
PYTHON=${PYTHON:-$(command -v python3 || true)}
DEVICE=${GPU_SH_DEVICE:-cuda:0}
BUDGET=${GPU_SH_BUDGET_S:-540}
SHARED=${EMBTUNE_SHARED:-$REPO/../shared}
START=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/embtune-gpu.XXXXXX")
LOG=$WORK/log
mkdir -p "$LOG"
SUMMARY=()
trap 'rm -rf "$WORK"' EXIT

say() { printf 'gpu.sh: %s\n' "$*" >&2; }
record() { SUMMARY+=("$(printf '%-6s %-28s %s' "$1" "$2" "$3")"); say "$1 $2 $3"; }
left() { echo $((BUDGET - (SECONDS - START))); }
# run NAME LIMIT_S CMD...: the command under min(LIMIT, what the budget has left); its output in $LOG/NAME.
run() {
  local name=$1 limit=$2
  shift 2
  local remaining
  remaining=$(left)
  if ((remaining < 10)); then
    record SKIP "$name" "budget of ${BUDGET}s spent"
    return 2
  fi
  ((limit > remaining)) && limit=$remaining
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$LOG/$name" 2>&1
  local rc=$?
  local took=$((SECONDS - t0))
  if ((rc == 0)); then
    record PASS "$name" "${took}s"
  elif ((rc == 124 || rc == 137)); then
    record FAIL "$name" "timed out after ${limit}s; last lines:"
    tail -n 8 "$LOG/$name" | sed 's/^/         /' >&2
  else
    record FAIL "$name" "exit $rc after ${took}s; last lines:"
    tail -n 12 "$LOG/$name" | sed 's/^/         /' >&2
  fi
  return $rc
}

finish() {
  echo
  echo "== bench/gpu.sh summary ($((SECONDS - START))s of ${BUDGET}s, device $DEVICE) =="
  printf '%s\n' "${SUMMARY[@]}"
  [[ -n "${TIMINGS:-}" ]] && printf '%s\n' "$TIMINGS"
  exit "${1:-0}"
}

# ---------------------------------------------------------------- 0. what is here
if [[ -z "$NODE" || ! -x "$NODE" ]]; then
  record FAIL node "no node binary: set NODE=/path/to/node (carry it with the tree; DESIGN.md)"
  finish 1
fi
say "node $("$NODE" --version), repo $REPO, device $DEVICE, budget ${BUDGET}s"
if command -v nvidia-smi >/dev/null 2>&1; then
  timeout 20 nvidia-smi -L >&2 || say "nvidia-smi -L failed"
else
  say "no nvidia-smi on PATH"
fi
if [[ ! -f dist/src/cli/main.js ]]; then
  record FAIL dist "dist/ is not built: run npx tsc -p tsconfig.json before carrying the tree"
  finish 1
fi
if [[ ! -d node_modules/node-addon-api ]]; then
  record FAIL node_modules "node_modules/ missing (node-addon-api, the CLI's packages): carry it with the tree"
  finish 1
fi
HAVE_SHARED=0
[[ -d "$SHARED/fixtures/models/qwen3-tiny" ]] && HAVE_SHARED=1 && export EMBTUNE_SHARED=$SHARED
((HAVE_SHARED)) || say "no shared folder at $SHARED (fixtures, AgriEval): the parity test and the timings are skipped"

# ---------------------------------------------------------------- 1. the addon against the CUDA libtorch
if [[ "${GPU_SH_SKIP_BUILD:-0}" == 1 ]]; then
  record SKIP build "GPU_SH_SKIP_BUILD=1: the tree's own addon"
else
  if [[ -z "$PYTHON" ]]; then
    record FAIL build "no python: set PYTHON to the venv's python (the CUDA PyTorch)"
    finish 1
  fi
  TORCH_DIR=$(timeout 120 "$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>"$LOG/python") || {
    record FAIL build "$PYTHON cannot import torch: $(tail -n 1 "$LOG/python")"
    finish 1
  }
  timeout 120 "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "cxx11abi", torch.compiled_with_cxx11_abi())' >&2 || true
  if [[ ! -e "$TORCH_DIR/lib/libtorch_cuda.so" && "${GPU_SH_ALLOW_CPU_TORCH:-0}" != 1 ]]; then
    record FAIL build "$TORCH_DIR/lib has no libtorch_cuda.so: not a CUDA PyTorch"
    finish 1
  fi
  cp -r native "$WORK/native"
  rm -rf "$WORK/native/build"
  # binding.gyp asks node for node-addon-api's headers from the copy's folder: NODE_PATH finds the tree's.
  # The wheel's libtorch uses the ABI torch reports; binding.gyp pins _GLIBCXX_USE_CXX11_ABI=1 (the
  # wheels of PyTorch ≥ 2.7 and Debian's), so a pre-cxx11 wheel is rebuilt with 0.
  if [[ "$(timeout 60 "$PYTHON" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))' 2>/dev/null)" == 0 ]]; then
    sed -i 's/_GLIBCXX_USE_CXX11_ABI=1/_GLIBCXX_USE_CXX11_ABI=0/' "$WORK/native/binding.gyp"
  fi
  # (timeout runs programs, not shell functions: the build is one env command.)
  BUILD=(env LIBTORCH="$TORCH_DIR" NODE_PATH="$REPO/node_modules" PATH="$(dirname "$NODE"):$PATH" JOBS="${JOBS:-max}" "$NODE" "$WORK/native/build.mjs")
  if ! run build 420 "${BUILD[@]}"; then
    # Newer libtorch headers may need C++20; one retry with it if the first failure said so.
    if grep -q 'C++20\|c++20\|requires.*std=c++2' "$LOG/build" && (($(left) > 60)); then
      sed -i 's/-std=c++17/-std=c++20/' "$WORK/native/binding.gyp"
      run build_cxx20 360 "${BUILD[@]}" || finish 1
    else
      finish 1
    fi
  fi
  ADDON=$WORK/native/build/Release/embtune_torch.node
  [[ -f "$ADDON" ]] || ADDON=$(find "$WORK/native/build" -name 'embtune_torch.node' | head -n 1)
  if [[ -z "$ADDON" ]]; then
    record FAIL build "no embtune_torch.node under $WORK/native/build"
    finish 1
  fi
  export EMBTUNE_ADDON=$ADDON
  say "EMBTUNE_ADDON=$EMBTUNE_ADDON"
fi

# ---------------------------------------------------------------- 2. doctor
run doctor 120 "$NODE" dist/src/cli/main.js doctor
sed 's/^/         /' "$LOG/doctor" | head -n 40 >&2

# ---------------------------------------------------------------- 3. CUDA parity against the CPU
if ((HAVE_SHARED)); then
  run device_cuda_test 300 "$NODE" --test dist/test/torch/device_cuda.test.js
  grep -E '^# (pass|fail|skipped)' "$LOG/device_cuda_test" | sed 's/^/         /' >&2
  if [[ "$DEVICE" == cuda* ]] && grep -q '^# skipped [1-9]' "$LOG/device_cuda_test"; then
    record FAIL device_cuda_test "tests were skipped: this addon sees no CUDA device"
  fi
else
  record SKIP device_cuda_test "no $SHARED/fixtures"
fi

# ---------------------------------------------------------------- 4. timings: embed and train on $DEVICE and on the CPU
TIMINGS=""
if ((HAVE_SHARED)) && [[ -f "$SHARED/data/zh_agri/agrieval/beir/corpus.jsonl" ]]; then
  head -n 512 "$SHARED/data/zh_agri/agrieval/beir/corpus.jsonl" >"$WORK/texts.jsonl"
  head -n 40 "$SHARED/fixtures/mining/swift/v6.0.0/a_labeled_list.swift.jsonl" >"$WORK/train.jsonl"
  MODEL_SPEC='{"folder":"'"$WORK"'/qwen3-0.6b","config":{"model_type":"qwen3","vocab_size":151669,"hidden_size":1024,"intermediate_size":3072,"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,"rms_norm_eps":1e-6,"rope_theta":1000000,"hidden_act":"silu","tie_word_embeddings":true,"max_position_embeddings":32768},"seed":0}'
  MODEL=${GPU_SH_TIMING_MODEL:-$WORK/qwen3-0.6b}
  if [[ -n "${GPU_SH_TIMING_MODEL:-}" ]] || run write_model 180 "$NODE" dist/bench/train.js --write-model "$MODEL_SPEC"; then
    for dev in "$DEVICE" cpu; do
      tag=${dev//:/}
      if run "embed_$tag" 150 "$NODE" dist/src/cli/main.js embed --model "$MODEL" --input "$WORK/texts.jsonl" --device "$dev" --batch-size 32 --output "$WORK/emb_$tag.safetensors"; then
        TIMINGS+="  embed $dev: $(grep -o 'embedded .*' "$LOG/embed_$tag" | tail -n 1)"$'\n'
      fi
      if run "train_$tag" 150 "$NODE" dist/src/cli/main.js train --model "$MODEL" --dataset "$WORK/train.jsonl" --device "$dev" \
        --train-type lora --per-device-train-batch-size 4 --gradient-accumulation-steps 1 --max-steps 5 --logging-steps 1 \
        --save-steps 1000 --split-dataset-ratio 0 --max-length 128 --output-dir "$WORK/run_$tag"; then
        TIMINGS+="  train $dev: 5 LoRA steps, batch 4 x (1+1+negatives) texts <= 128 tokens, $(grep -o '[0-9/]* steps  [0-9.]* steps/s' "$LOG/train_$tag" | tail -n 1), $(grep -o 'trained in .*' "$LOG/train_$tag" | tail -n 1)"$'\n'
      fi
      [[ "$dev" == cpu ]] && break
    done
    TIMINGS="timings (wall time of each command is on its PASS line):"$'\n'"$TIMINGS"
  fi
else
  record SKIP timings "no AgriEval corpus under $SHARED/data"
fi

# ---------------------------------------------------------------- 5. serve's event-loop lag on this machine's cores
# bench/serve on the CPU (issue 11): its < 20 ms lag target cannot be judged on the 2-core dev VM, where an
# idle event loop alone reaches 12–21 ms; this machine's many cores can. Shorter phases fit the budget.
if ((HAVE_SHARED)) && (($(left) >= 130)); then
  run serve_lag 130 "$NODE" dist/bench/serve.js --duration 20 --saturate-duration 5
  TIMINGS+="serve (CPU, 20 s phases):"$'\n'"$(grep -E '^(batched|sequential)|throughput:|lag while' "$LOG/serve_lag" | sed 's/^/  /')"$'\n'
elif ((HAVE_SHARED)); then
  record SKIP serve_lag "under 130 s of the budget left"
else
  record SKIP serve_lag "no $SHARED/fixtures"
fi

FAILED=0
for line in "${SUMMARY[@]}"; do [[ "$line" == FAIL* ]] && FAILED=1; done
finish "$FAILED"
