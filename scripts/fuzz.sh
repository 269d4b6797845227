#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (-fsanitize=fuzzer,address,undefined)
# into build-fuzz/ and runs each for FUZZ_SECONDS (default 60) from seed corpora cut from the
# model files. A crash stops the run with the input saved under build-fuzz/crashes/<target>/;
# fix the reader and copy the input to tests/fuzz/regressions/<target>/, where
# tests/test_hostile_inputs replays it through the g++-built readers.
#
#   scripts/fuzz.sh                  build and run every target
#   scripts/fuzz.sh gguf wire        only these
#   FUZZ_SECONDS=10 scripts/fuzz.sh  shorter runs
#   FUZZ_SEED=0 scripts/fuzz.sh      a new random seed each run (default 1: a run explores the same
#                                    inputs each time, so what a clean checkout's run finds, such as
#                                    CI's, is found again here by the same command)
# Needs clang and libclang-rt-14-dev (scripts/apt-packages.txt); exits 0 with a note without them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
seed="${FUZZ_SEED:-1}"
models="${TROUPE_MODELS_DIR:-$(cd .. && pwd)/shared/models}"
out=build-fuzz
all_targets=(gguf safetensors tokenizer_model hf_config wire)
targets=("${@:-${all_targets[@]}}")
[ $# -eq 0 ] && targets=("${all_targets[@]}")

CXX="${FUZZ_CXX:-clang++}"
if ! command -v "$CXX" > /dev/null || ! echo 'int main(){}' | "$CXX" -x c++ -fsanitize=fuzzer-no-link - -o /dev/null 2> /dev/null; then
  echo "fuzz: $CXX with libFuzzer not found (apt-get install clang libclang-rt-14-dev); skipped"
  exit 0
fi
mkdir -p "$out/obj" "$out/crashes"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
       -fno-sanitize-recover=undefined -I. $(pkg-config --cflags nlohmann_json 2> /dev/null || true))
torch_dir=/usr/include/torch/csrc/api/include
# The file readers are compiled here, instrumented; the architectures' own key readers and the
# rest of the model core they pull in come from the g++ build (scripts/build.sh), uninstrumented.
format_sources=(models/format/*.cpp)
core_libs=(build/models/arch/libtroupe_arch.a build/models/vocab/libtroupe_vocab.a build/models/quant/libtroupe_quant.a
           build/models/machine/libtroupe_machine.a)
for lib in "${core_libs[@]}"; do
  [ -f "$lib" ] || { echo "fuzz: $lib missing: run scripts/build.sh first" >&2; exit 1; }
done

# Compiles one source to an object (skipped when the object is newer than the source and every
# header it may include: an object built against an older struct layout would crash).
compile() {
  local src="$1" obj="$out/obj/$(echo "$1" | tr / _).o"
  shift
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || find models actors tests/fuzz -name '*.h' -newer "$obj" | grep -q .; then
    "$CXX" "${flags[@]}" "$@" -c "$src" -o "$obj"
  fi
  echo "$obj"
}

build_target() {
  local t="$1" objs=() libs=()
  if [ "$t" = wire ]; then
    objs+=("$(compile actors/protocol/wire_tensor.cpp)" "$(compile actors/protocol/wire_tensor_convert.cpp -I"$torch_dir")"
           "$(compile tests/fuzz/fuzz_wire.cpp -I"$torch_dir")")
    libs+=(-ltorch_cpu -lc10)
  else
    for s in "${format_sources[@]}"; do objs+=("$(compile "$s")"); done
    objs+=("$(compile "tests/fuzz/fuzz_$t.cpp")")
    libs+=("${core_libs[@]}" -ltorch_cpu -lc10 -lspdlog -lfmt -lpthread)
  fi
  "$CXX" "${flags[@]}" -fsanitize=fuzzer "${objs[@]}" "${libs[@]}" -o "$out/fuzz_$t"
}

python3 tests/fuzz/make_seeds.py "$models" "$out/seeds"
status=0
for t in "${targets[@]}"; do
  echo "== fuzz_$t: building"
  build_target "$t"
  mkdir -p "$out/corpus/$t" "$out/crashes/$t"
  regressions=()
  [ -d "tests/fuzz/regressions/$t" ] && regressions=("tests/fuzz/regressions/$t")
  echo "== fuzz_$t: running $seconds s"
  if ! TROUPE_MODELS_DIR="$models" ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
      "$out/fuzz_$t" -seed="$seed" -max_total_time="$seconds" -max_len=16384 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$out/crashes/$t/" "$out/corpus/$t" "$out/seeds/$t" "${regressions[@]}" \
      > "$out/fuzz_$t.log" 2>&1; then
    status=1
    echo "fuzz_$t FOUND A CRASH: see $out/fuzz_$t.log and $out/crashes/$t/"
  fi
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$out/fuzz_$t.log" | sed "s/^/fuzz_$t: /" || true
done
exit $status
