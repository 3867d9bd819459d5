// Named crash points for the crash tests (testing.md T3). Debian's RocksDB is
// a release build without its own kill points, so callvault has these.
//
// A point is armed in a test's child process with ArmKillPoint(name, hit),
// or for a whole process through the environment variable
// CALLVAULT_KILL_POINT="name" or "name:hit". When execution passes an armed
// point for the hit-th time the process sends itself SIGKILL, or, if a test
// set one with SetKillPointAction, runs that action instead (crash_points_test
// cuts the power of its FaultFS there) and carries on. Disarmed points cost
// one relaxed atomic load.
//
// Every CV_KILL_POINT also puts its name, at compile time, into the ELF
// section "cv_kill_points" (a pointer to the literal), so CompiledKillPoints()
// lists every point linked into the binary, whether or not it ever ran:
// crash_points_test asserts that its runs reach each one, so a new point
// cannot be left out of the suite.
#ifndef CALLVAULT_ENGINE_KILL_POINT_H_
#define CALLVAULT_ENGINE_KILL_POINT_H_

#include <functional>
#include <string>
#include <vector>

namespace callvault::testing {

void ArmKillPoint(const std::string& name, int hit = 1);
void DisarmKillPoints();
// Start recording the names of points passed (armed or not).
void RecordKillPoints(bool on);
std::vector<std::string> KillPointsSeen();
void KillPoint(const char* name);
// Run `action` at the armed point instead of SIGKILL (nullptr: SIGKILL).
// It runs without the kill point's lock: other threads pass points
// meanwhile (the armed one has fired and does not fire again).
void SetKillPointAction(std::function<void()> action);
// The names of every CV_KILL_POINT in the binary, sorted, without repeats.
std::vector<std::string> CompiledKillPoints();

}  // namespace callvault::testing

#define CV_KILL_POINT(name)                                                        \
  do {                                                                             \
    [[maybe_unused]] static const char* cv_kill_point_name_                        \
        __attribute__((used, section("cv_kill_points"))) = name;                   \
    ::callvault::testing::KillPoint(name);                                         \
  } while (0)

#endif  // CALLVAULT_ENGINE_KILL_POINT_H_
