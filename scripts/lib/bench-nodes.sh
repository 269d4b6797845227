# Sourced by the benchmark scripts that run caf-nodes on 127.0.0.1 (bench-tls.sh,
# bench-prefill-nodes.sh): the default model, a work directory, and nodes that are stopped when
# the script ends. Not run on its own.

# bench_model PATH: PATH made absolute (nodes serve from --models /); a missing default is
# generated once: a TinyLlama-shaped Q4_0 synth.
bench_model() {
  local model="$1"
  [ -f "$model" ] || build/bin/troupe synth --shape tinyllama --type q4_0 --out "$model" >&2
  echo "$(cd "$(dirname "$model")" && pwd)/$(basename "$model")"
}

# $work, removed at exit together with every node started by start_node.
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# start_node NAME [PREFIX...] -- [ARGS...]: starts a caf-node ($NODE_THREADS threads, default 1; any free port; models
# from /, no memory limit) behind PREFIX (e.g. taskset -c 0); its log is $work/NAME.log, its port
# file $work/NAME.port; its pid is appended to `pids` and left in $last_pid.
start_node() {
  local name="$1"; shift
  local prefix=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do prefix+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  rm -f "$work/$name.port"
  "${prefix[@]}" build/bin/caf-node --port 0 --models / --threads "${NODE_THREADS:-1}" --memory-limit 0 --port-file "$work/$name.port" "$@" \
    2>"$work/$name.log" &
  last_pid=$!
  pids+=("$last_pid")
}

# node_endpoint NAME: 127.0.0.1:PORT of a node start_node started, once it listens (30 s at most).
node_endpoint() {
  for _ in $(seq 300); do [ -s "$work/$1.port" ] && break; sleep 0.1; done
  [ -s "$work/$1.port" ] || { echo "caf-node $1 did not start:" >&2; cat "$work/$1.log" >&2; exit 1; }
  echo "127.0.0.1:$(cat "$work/$1.port")"
}
