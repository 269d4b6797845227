#pragma once
// The atoms of the troupe protocol (CAF 0.17: at most 10 characters each). What each one
// asks and answers: actors/protocol/interfaces.h.
#include <caf/atom.hpp>

namespace troupe {
namespace proto {

// -- atoms (at most 10 characters) --------------------------------------------------------

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using info_atom = caf::atom_constant<caf::atom("info")>;
using spawn_atom = caf::atom_constant<caf::atom("spawnstage")>;
using peer_atom = caf::atom_constant<caf::atom("peer")>;
using next_atom = caf::atom_constant<caf::atom("setnext")>;
using end_session_atom = caf::atom_constant<caf::atom("endsession")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using load_atom = caf::atom_constant<caf::atom("load")>;  // node -> its own new stage (local only)
using watch_atom = caf::atom_constant<caf::atom("watch")>;  // supervision -> its watcher (local only)
using ping_atom = caf::atom_constant<caf::atom("ping")>;    // supervisor -> node (heartbeat)
using progress_atom = caf::atom_constant<caf::atom("progress")>;  // supervisor -> node (a stage's progress)
using fault_atom = caf::atom_constant<caf::atom("fault")>;  // test -> stage (fault injection)
using tick_atom = caf::atom_constant<caf::atom("tick")>;    // supervisor -> itself (heartbeat timer)
using reprobe_atom = caf::atom_constant<caf::atom("reprobe")>;  // node -> itself (idle re-probing, --reprobe-idle)
using flush_atom = caf::atom_constant<caf::atom("flush")>;  // stage -> itself (run the pending batch)
using hop_ping_atom = caf::atom_constant<caf::atom("hopping")>;  // stage -> next stage (hop round trip)
using hop_pong_atom = caf::atom_constant<caf::atom("hoppong")>;  // next stage -> stage
using shard_offer_atom = caf::atom_constant<caf::atom("shardoffer")>;  // client -> node (weights transfer)
using shard_chunk_atom = caf::atom_constant<caf::atom("shardchunk")>;
using shard_done_atom = caf::atom_constant<caf::atom("sharddone")>;

}  // namespace proto
}  // namespace troupe
