// The workload of crash_points_test (T3), the state a crash at any of its
// points must recover to, and the checks of that state.
#ifndef CALLVAULT_TESTS_CRASH_CRASH_POINTS_WORKLOAD_H_
#define CALLVAULT_TESTS_CRASH_CRASH_POINTS_WORKLOAD_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "callvault/store.h"

namespace callvault::crashpoints {

enum class Op { kCreate, kPut, kPurge, kRotate, kMoveShard };
struct Step {
  Op op;
  std::string tenant;
  std::vector<int> calls;  // kPut: one call is PutCall, more are PutCalls;
                           // kMoveShard: {the target shard}
};

// The prepared store (PrepareStore): "base" live with calls 100-102; "old"
// purged (it had 200, 201). Two tenants per shard, so the workload also
// opens a second shard.
const std::vector<Step>& Workload();
Status PrepareStore(const std::string& dir);
Options StoreOptions(const std::string& keys);
// The same on `env` (a FaultEnv: the store and its key directory both go
// through it), for the power-cut children.
Options StoreOptions(const std::string& keys, rocksdb::Env* env);
Call TestCall(const std::string& tenant, int idx);
Status RunStep(Store* store, const Step& s);

struct TenantExpect {
  bool live = false;
  std::map<int, Call> calls;  // the live incarnation's acknowledged calls
  std::set<int> gone;         // calls of purged incarnations: never readable
  int rotations = 0;          // key rotations of the live incarnation that returned
  bool rotating = false;      // the crash was in one more: undone or finished
  // Shard moves (decision 0057): the shard the tenant was moved to (-1:
  // none); a move in flight (rotating) leaves it there (finished) or in
  // its old shard (undone).
  int shard = -1;
};
struct Expectation {
  std::map<std::string, TenantExpect> tenants;
  std::vector<std::string> receipts;  // tenant ids of the receipts, in order
};

// A shard move (kMoveShard, decision 0057) is a key rotation into another
// shard: the same, and the tenant is in the target shard exactly when it
// finished.
// A key rotation (kRotate) keeps the tenant's calls whether recovery undoes
// it or finishes it; which one is checked for consistency (CheckRecovered:
// key version 2 with one key_rotation receipt, or 1 with none).

// A crash at `point` during workload step `step`.
struct Crash {
  int step = -1;
  std::string point;
};
// The state recovery must reach after `kill` (nullptr: no crash). A create
// rolls back unless it reached its ACTIVE registry write; a purge, whose
// first point follows its PURGING registry write, rolls forward.
Expectation Expected(const Crash* kill);

// Reopens the store in dir/db (keys in dir/keys), which runs recovery;
// checks it (CheckRecovered); exercises every tenant id (ExerciseIds); then
// reopens once more. Reports through gtest.
void VerifyCase(const std::string& dir, const Expectation& e);
// After recovery: no tenant CREATING or PURGING; one KEK and one keyring
// generation, sealed under it, holding exactly the live tenants' keys; the
// shards' column families exactly the live tenants'; each tenant as `e`
// says (live: key, family, every acknowledged call equal, nothing else;
// not live: PURGED or unknown, unreadable, unwritable); receipts one per
// purge that began, in order, signed and chained; every record decrypts.
void CheckRecovered(Store& st, const std::string& keys, const Expectation& e);
// The ids stay usable: purge and re-create what is live, create and purge
// what is not.
void ExerciseIds(Store& st, const Expectation& e);

}  // namespace callvault::crashpoints

#endif  // CALLVAULT_TESTS_CRASH_CRASH_POINTS_WORKLOAD_H_
