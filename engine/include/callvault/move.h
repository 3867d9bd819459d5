// Tenant moves between stores (docs/operations.md "Moving a tenant",
// docs/decisions/0022-tenant-move.md). The types of Store::MoveTenantOut and
// Store::MoveTenantIn; callvault::MoveTenant (store.h) wires two open stores.
#ifndef CALLVAULT_MOVE_H_
#define CALLVAULT_MOVE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "callvault/status.h"

namespace callvault {

// Carries one segment of a move to the destination (its MoveTenantIn) and
// returns the destination's reply (signed; passed on as it came), or its
// error.
using MoveTransport = std::function<Result<std::string>(std::string_view segment)>;

struct MoveOptions {
  // Rows per segment. Default: 512.
  uint32_t rows_per_segment = 512;
  // Catch-up rounds before the fence: a round copies what changed since the
  // previous one; the move fences once a round found fewer than
  // `fence_below_changes` changed rows, or after `max_catch_up_rounds`.
  // Defaults: 8 rounds, 64 rows.
  uint32_t max_catch_up_rounds = 8;
  uint32_t fence_below_changes = 64;
  // For tests: called with each segment's type ('B' begin, 'R' rows, 'C'
  // commit, 'Q' query, 'A' abort) after it is sent. Default: none.
  std::function<void(char type)> after_segment;
};

struct MoveReport {
  std::string move_id;      // hex
  std::string destination;  // hex store id
  bool resumed = false;     // a fenced move left by a crash was finished
  uint64_t rows = 0;        // rows of the tenant's column family at the switch
  std::string digest;       // hex multiset digest of those rows (both sides agreed;
                            // docs/format.md "Move bundle")
  uint64_t rows_sent = 0;   // rows copied, caught up and deleted, in total
  uint32_t catch_up_rounds = 0;
  // Rows read from the tenant's family by the fenced round (the last
  // catch-up and the verdict): feed events after the last round, the rows
  // of the calls they name, the rows that make no feed events (holds, pins,
  // dictionaries, the version counter, recording manifests and the chunks of
  // those that changed). Not the whole family (decision 0043).
  uint64_t fence_rows_read = 0;
  // The change feed was trimmed during the copy (the event after a round's
  // position was gone): the rounds from then on diffed two snapshots of the
  // whole family, as before decision 0043.
  bool feed_fallback = false;
  uint64_t copy_micros = 0;   // begin to fence
  uint64_t fence_micros = 0;  // writes refused until the destination switched
  uint64_t total_micros = 0;
  uint64_t receipt_sequence = 0;  // the source's moved_out receipt
};

}  // namespace callvault

#endif  // CALLVAULT_MOVE_H_
