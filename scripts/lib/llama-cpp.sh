# Sourced by the scripts that measure troupe against llama.cpp (bench-vs-llama-cpp.sh,
# bench-vs-llama-rpc.sh). Not run on its own.
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
