#include "engine/info_log.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>
#include <algorithm>
#include <string_view>

namespace callvault {

namespace {

constexpr uint64_t kMaxBytes = 16u << 20;  // then LOG becomes LOG.old
constexpr size_t kMaxLine = 16u << 10;     // longer lines are cut

class InfoLog final : public rocksdb::Logger {
 public:
  explicit InfoLog(std::string dir)
      : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL),
        path_(std::move(dir) + "/LOG") {}
  ~InfoLog() override { CloseFile(); }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char buf[kMaxLine];
    struct timeval now;
    ::gettimeofday(&now, nullptr);
    struct tm t;
    const time_t secs = now.tv_sec;
    ::localtime_r(&secs, &t);
    int n = std::snprintf(buf, sizeof buf, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld %llx ",
                          t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                          t.tm_sec, static_cast<long>(now.tv_usec),
                          static_cast<unsigned long long>(
                              std::hash<std::thread::id>()(std::this_thread::get_id())));
    if (n < 0) n = 0;
    size_t len = static_cast<size_t>(n);
    va_list copy;
    va_copy(copy, ap);
    int m = std::vsnprintf(buf + len, sizeof buf - len, format, copy);
    va_end(copy);
    if (m > 0) len = std::min(sizeof buf - 1, len + static_cast<size_t>(m));
    if (len == 0 || buf[len - 1] != '\n') {
      if (len == sizeof buf - 1) --len;
      buf[len++] = '\n';
    }
    if (IsOptionsFileRefusal(std::string_view(buf, len - 1))) return;
    Write(buf, len);
  }

 protected:
  rocksdb::Status CloseImpl() override {
    CloseFile();
    return rocksdb::Status::OK();
  }

 private:
  void CloseFile() {
    std::lock_guard<std::mutex> l(mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Never fails and never asserts: a line that cannot be written is
  // dropped, and counted.
  void Write(const char* data, size_t len) {
    std::lock_guard<std::mutex> l(mu_);
    if (fd_ >= 0 && size_ + len > kMaxBytes) {
      ::close(fd_);
      fd_ = -1;
      ::rename(path_.c_str(), (path_ + ".old").c_str());
    }
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd_ < 0) {
        // Before RocksDB has made the instance directory there is no LOG
        // to write to, nor anything to report later.
        if (errno != ENOENT) ++dropped_;
        return;
      }
      off_t end = ::lseek(fd_, 0, SEEK_END);
      size_ = end > 0 ? static_cast<uint64_t>(end) : 0;
    }
    if (dropped_ > 0) {
      char note[96];
      int n = std::snprintf(note, sizeof note, "(callvault: %llu info log lines dropped: write failed)\n",
                            static_cast<unsigned long long>(dropped_));
      if (n > 0 && WriteAll(note, static_cast<size_t>(n))) dropped_ = 0;
    }
    if (!WriteAll(data, len)) ++dropped_;
  }

  bool WriteAll(const char* data, size_t len) {
    while (len > 0) {
      ssize_t w = ::write(fd_, data, len);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;  // ENOSPC, EIO, ...: drop the rest of the line
      data += w;
      len -= static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
    }
    return true;
  }

  const std::string path_;
  std::mutex mu_;
  int fd_ = -1;            // GUARDED_BY(mu_)
  uint64_t size_ = 0;      // GUARDED_BY(mu_)
  uint64_t dropped_ = 0;   // GUARDED_BY(mu_)
};

class DiscardingInfoLog final : public rocksdb::Logger {
 public:
  DiscardingInfoLog() : rocksdb::Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

class HookInfoLog final : public rocksdb::Logger {
 public:
  HookInfoLog(callvault::Logger hook, std::string source)
      : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL),
        hook_(std::move(hook)),
        source_(std::move(source)) {}

  void Logv(const char* format, va_list ap) override { Emit(LogLevel::kInfo, format, ap); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    LogLevel ours = LogLevel::kInfo;
    switch (level) {
      case rocksdb::InfoLogLevel::DEBUG_LEVEL: ours = LogLevel::kDebug; break;
      case rocksdb::InfoLogLevel::WARN_LEVEL: ours = LogLevel::kWarn; break;
      case rocksdb::InfoLogLevel::ERROR_LEVEL:
      case rocksdb::InfoLogLevel::FATAL_LEVEL: ours = LogLevel::kError; break;
      default: break;
    }
    Emit(ours, format, ap);
  }

 private:
  void Emit(LogLevel level, const char* format, va_list ap) {
    char buf[kMaxLine];
    va_list copy;
    va_copy(copy, ap);
    int m = std::vsnprintf(buf, sizeof buf, format, copy);
    va_end(copy);
    if (m < 0) return;
    size_t len = std::min(sizeof buf - 1, static_cast<size_t>(m));
    while (len > 0 && buf[len - 1] == '\n') --len;
    if (IsOptionsFileRefusal(std::string_view(buf, len))) return;
    hook_(level, source_, std::string_view(buf, len));
  }

  const callvault::Logger hook_;
  const std::string source_;
};

}  // namespace

bool IsOptionsFileRefusal(std::string_view line) {
  return line.size() >= kOptionsFileRefused.size() &&
         line.compare(line.size() - kOptionsFileRefused.size(), kOptionsFileRefused.size(),
                      kOptionsFileRefused) == 0 &&
         line.find("persist options") != std::string_view::npos;
}

std::shared_ptr<rocksdb::Logger> NewHookInfoLog(Logger hook, std::string source) {
  return std::make_shared<HookInfoLog>(std::move(hook), std::move(source));
}

std::shared_ptr<rocksdb::Logger> NewInfoLog(const std::string& dir) {
  return std::make_shared<InfoLog>(dir);
}

std::shared_ptr<rocksdb::Logger> NewDiscardingInfoLog() {
  return std::make_shared<DiscardingInfoLog>();
}

}  // namespace callvault
