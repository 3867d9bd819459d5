// Process hardening for a process that holds call data in memory.
//
// A core dump of such a process holds plaintext (transcripts, participant
// details, derived keys): written into the working directory (often the
// store's), or collected by systemd-coredump or apport, it escapes the
// encryption at rest. The callvault CLI calls DisableCoreDumps() first
// thing in main(); an embedding service should do the same at start, before
// it opens a store (docs/operations.md, "Core dumps"). The library never
// does it behind the process's back: it is process-wide state.
#ifndef CALLVAULT_HARDENING_H_
#define CALLVAULT_HARDENING_H_

#include <string>

#include "callvault/status.h"

namespace callvault {

// Sets RLIMIT_CORE to 0 (soft and hard, so no child can raise it again) and
// marks the process not dumpable (prctl(PR_SET_DUMPABLE, 0)): no core file,
// no core piped to a crash collector, and no ptrace attach or
// /proc/<pid>/mem read by other processes of the same user. Idempotent.
// kIOError (naming the call that failed) if either cannot be set; the
// other is still applied.
[[nodiscard]] Status DisableCoreDumps();

// True if this process can write no core dump: RLIMIT_CORE is 0 and the
// process is not dumpable.
bool CoreDumpsDisabled();

// The check Store::Open makes of a store's directories before it writes
// (decision 0078): `store` (a symbolic link to a directory allowed), meta/,
// shards/, each shard's directory and its ingest/, damage-reports/, those
// that exist, must be owned by this process's effective uid and writable
// by nobody else; else kFailedPrecondition naming the directory and the
// chmod or chown that fixes it. Whoever else can write one could plant a
// link that RocksDB would write through. For a tool that writes into a
// store's directories without Store::Open (the CLI's `raw ldb`).
[[nodiscard]] Status CheckStoreDirectories(const std::string& store);

}  // namespace callvault

#endif  // CALLVAULT_HARDENING_H_
