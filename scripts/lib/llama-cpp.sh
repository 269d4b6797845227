# Sourced by the scripts that measure troupe against llama.cpp (bench-vs-llama-cpp.sh,
# bench-vs-llama-rpc.sh): where llama.cpp is, and one measurement with it. Not run on its own.
#
# llama_cpp_bin: the directory holding llama-bench and ggml-rpc-server. $LLAMA_CPP_BIN when set;
# else llama.cpp is built once (about 8 minutes on 2 cores) into ~/.cache/troupe/llama.cpp from the
# source release that the npm package node-llama-cpp carries (the npm registry is reachable where
# the web is not). llama.cpp is not a Debian package; it is only a yardstick: troupe neither links
# nor runs it.
llama_cpp_bin() {
  if [ -n "${LLAMA_CPP_BIN:-}" ]; then echo "$LLAMA_CPP_BIN"; return; fi
  local cache="$HOME/.cache/troupe/llama.cpp"
  local bin="$cache/src/build/bin"
  if [ ! -x "$bin/llama-bench" ] || [ ! -x "$bin/ggml-rpc-server" ]; then
    local version="${NODE_LLAMA_CPP_VERSION:-3.22.1}"
    if [ ! -d "$cache/src" ]; then
      echo "building llama.cpp from node-llama-cpp@$version's source bundle into $cache" >&2
      mkdir -p "$cache"
      (cd "$cache" && npm pack --silent "node-llama-cpp@$version" > /dev/null && tar xzf "node-llama-cpp-$version.tgz")
      git clone -q "$cache/package/llama/gitRelease.bundle" "$cache/src"
    fi
    cmake -S "$cache/src" -B "$cache/src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_RPC=ON \
      -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF > /dev/null
    ninja -C "$cache/src/build" llama-bench ggml-rpc-server > /dev/null
  fi
  echo "$bin"
}

# llama_bench_run LLAMA_BENCH PROMPT TOKENS OUT [FLAGS...]: llama-bench (FLAGS: the model, threads,
# the RPC servers ...) once on a PROMPT-token prompt and once decoding TOKENS tokens at the depth
# that prompt leaves, as troupe bench measures them; {"prefill": tok/s, "decode": ms/token} in OUT.
llama_bench_run() {
  local llama_bench="$1" prompt="$2" tokens="$3" out="$4"
  shift 4
  "$llama_bench" "$@" -r 1 -o json -p "$prompt" -n 0 > "$out.pp" 2> "$out.err" &&
  "$llama_bench" "$@" -r 1 -o json -p 0 -n "$tokens" -d "$prompt" > "$out.tg" 2>> "$out.err" ||
    { cat "$out.err" >&2; exit 1; }
  python3 -c "import json,sys; pp=json.load(open(sys.argv[1]))[0]; tg=json.load(open(sys.argv[2]))[0]
json.dump({'prefill': pp['avg_ts'], 'decode': 1000 / tg['avg_ts']}, open(sys.argv[3], 'w'))" "$out.pp" "$out.tg" "$out"
  rm -f "$out.pp" "$out.tg" "$out.err"
}
