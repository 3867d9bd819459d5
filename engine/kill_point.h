// Named crash points for the crash tests (testing.md T3). Debian's RocksDB is
// a release build without its own kill points, so callvault has these.
//
// A point is armed in a test's child process with ArmKillPoint(name, hit),
// or for a whole process through the environment variable
// CALLVAULT_KILL_POINT="name" or "name:hit". When execution passes an armed
// point for the hit-th time the process sends itself SIGKILL. Disarmed
// points cost one relaxed atomic load.
#ifndef CALLVAULT_ENGINE_KILL_POINT_H_
#define CALLVAULT_ENGINE_KILL_POINT_H_

#include <string>
#include <vector>

namespace callvault::testing {

void ArmKillPoint(const std::string& name, int hit = 1);
void DisarmKillPoints();
// Start recording the names of points passed (armed or not).
void RecordKillPoints(bool on);
std::vector<std::string> KillPointsSeen();
void KillPoint(const char* name);

}  // namespace callvault::testing

#define CV_KILL_POINT(name) ::callvault::testing::KillPoint(name)

#endif  // CALLVAULT_ENGINE_KILL_POINT_H_
