#include "engine/kill_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

namespace callvault::testing {

namespace {
std::atomic<bool> g_active{false};
std::mutex g_mu;
std::string g_name;            // GUARDED_BY(g_mu)
int g_remaining = 0;           // GUARDED_BY(g_mu)
bool g_record = false;         // GUARDED_BY(g_mu)
std::vector<std::string> g_seen;  // GUARDED_BY(g_mu)
std::function<void()> g_action;   // GUARDED_BY(g_mu)

struct EnvArm {
  EnvArm() {
    const char* v = std::getenv("CALLVAULT_KILL_POINT");
    if (v == nullptr || *v == '\0') return;
    std::string s(v);
    int hit = 1;
    size_t colon = s.rfind(':');
    if (colon != std::string::npos) {
      hit = std::atoi(s.c_str() + colon + 1);
      s.resize(colon);
    }
    ArmKillPoint(s, hit < 1 ? 1 : hit);
  }
};
const EnvArm g_env_arm;
}  // namespace

void ArmKillPoint(const std::string& name, int hit) {
  std::lock_guard<std::mutex> l(g_mu);
  g_name = name;
  g_remaining = hit;
  g_active.store(true, std::memory_order_relaxed);
}

void DisarmKillPoints() {
  std::lock_guard<std::mutex> l(g_mu);
  g_name.clear();
  g_remaining = 0;
  g_active.store(g_record, std::memory_order_relaxed);
}

void RecordKillPoints(bool on) {
  std::lock_guard<std::mutex> l(g_mu);
  g_record = on;
  if (on) g_seen.clear();
  g_active.store(on || !g_name.empty(), std::memory_order_relaxed);
}

std::vector<std::string> KillPointsSeen() {
  std::lock_guard<std::mutex> l(g_mu);
  return g_seen;
}

void KillPoint(const char* name) {
  if (!g_active.load(std::memory_order_relaxed)) return;
  std::unique_lock<std::mutex> l(g_mu);
  if (g_record) g_seen.emplace_back(name);
  if (!g_name.empty() && g_name == name && --g_remaining == 0) {
    if (g_action) {
      // Run without the lock: an action may wait for another thread that
      // passes kill points meanwhile (recording_ingest_test takes a backup
      // while a writer waits at its point); this point fires once.
      std::function<void()> action = g_action;
      l.unlock();
      action();
      return;
    }
    ::kill(::getpid(), SIGKILL);
    ::pause();
  }
}

void SetKillPointAction(std::function<void()> action) {
  std::lock_guard<std::mutex> l(g_mu);
  g_action = std::move(action);
}

}  // namespace callvault::testing

// Bounds of the section CV_KILL_POINT fills (made by the linker for any
// section named like a C identifier). Weak: a binary without any point.
extern "C" {
extern const char* __start_cv_kill_points[] __attribute__((weak));
extern const char* __stop_cv_kill_points[] __attribute__((weak));
}

namespace callvault::testing {

std::vector<std::string> CompiledKillPoints() {
  std::set<std::string> names;
  if (__start_cv_kill_points != nullptr) {
    for (const char** p = __start_cv_kill_points; p < __stop_cv_kill_points; ++p) {
      if (*p != nullptr) names.insert(*p);
    }
  }
  return {names.begin(), names.end()};
}

}  // namespace callvault::testing
