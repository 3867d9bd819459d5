// Status and Result<T>: how every callvault operation reports success or
// failure. No exception crosses the callvault API; every fallible call
// returns one of these, and both are [[nodiscard]].
//
// Messages never contain call content, caller-supplied identifiers or key
// bytes: they name the field, the limit or the step that failed.
//
// Thread safety: a Status or Result is a value; distinct objects may be used
// from distinct threads without synchronisation.
#ifndef CALLVAULT_STATUS_H_
#define CALLVAULT_STATUS_H_

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace callvault {

// Do not renumber: the CLI maps these to exit codes and --json prints them.
enum class Code : int {
  kOk = 0,
  // The caller passed something malformed: bad JSON, a missing required
  // field, a field over its documented limit, an invalid id.
  kInvalidArgument = 1,
  // The tenant, call or receipt named does not exist.
  kNotFound = 2,
  // The tenant (or store) to create exists already.
  kAlreadyExists = 3,
  // The operation is valid but the state forbids it (e.g. a store opened
  // for another region, a purge of a tenant that is still being created).
  kFailedPrecondition = 4,
  // The tenant was purged (or is being purged): its data is gone for good.
  kTenantPurged = 5,
  // Stored bytes failed authentication or a format check. Never returned
  // for caller input; always means damaged or tampered storage.
  kCorruption = 6,
  // The file system or RocksDB failed (write, fsync, rename, read).
  kIOError = 7,
  // A guard or capacity limit tripped (too many results, too large a batch).
  kResourceExhausted = 8,
  // The keys cannot open the store: wrong key directory, a destroyed KEK
  // generation, or a keyring older than the store (rollback).
  kKeyError = 9,
  // Something that should be impossible happened; a bug.
  kInternal = 10,
  // The operation is not supported by this build or provider.
  kNotSupported = 11,
  // The tenant moved to another store (Store::MoveTenantOut): retry the
  // operation there; the message names the destination store id. Writes
  // get it from the moment the move fences the tenant, every operation
  // once the source has purged its copy.
  kMoved = 12,
  // A write named an expected version (PutCall, UpdateCall, DeleteCall) and
  // the call's current version differs, or the call was expected absent
  // (expected version 0) and exists: another writer changed it first.
  // Nothing was changed; read the call again and retry.
  kConflict = 13,
  // Store::ReadChanges: the token is behind the change feed's horizon (the
  // events after it were trimmed), ahead of the feed, or follows an event
  // the feed no longer holds (lost at a crash with sync_writes off, rolled
  // back by a restore, or another incarnation of the tenant). The consumer
  // must resync (e.g. ListCalls) and start again from a new token.
  kOutOfRange = 14,
};

// Returns a stable lower-case name for `code`, e.g. "invalid_argument".
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
  static Status TenantPurged(std::string m) { return {Code::kTenantPurged, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
  static Status KeyError(std::string m) { return {Code::kKeyError, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status NotSupported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
  static Status Moved(std::string m) { return {Code::kMoved, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {Code::kOutOfRange, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corruption: record failed authentication".
  std::string ToString() const;

  // Marks a deliberately ignored status; greppable.
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

namespace internal {
// Called by Result<T>::value(), operator* and operator-> on a Result that
// holds an error: prints the status (which never holds personal data or key
// bytes) to stderr and aborts, in every build type.
[[noreturn]] inline void DieOnErrorResult(const Status& status) {
  std::fprintf(stderr, "callvault: Result<T>::value() called on an error: %s\n",
               status.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace internal

// A value of type T, or the Status that explains why there is none.
//
// Check ok() before reading the value: value(), operator* and operator-> on
// a Result that holds an error terminate the process (std::abort) after
// printing the status to stderr, in every build type (never undefined
// behaviour):
//   auto store = callvault::Store::Open(options, "/var/lib/cv");
//   if (!store.ok()) return store.status();  // or log store.status().ToString()
//   (*store)->ListTenants();                 // only now
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "Result built from an OK status without a value");
    if (status_.ok()) status_ = Status::Internal("Result built from OK status without value");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok(). On an error: prints the status and aborts.
  T& value() & { CheckOk(); return *value_; }
  const T& value() const& { CheckOk(); return *value_; }
  T&& value() && { CheckOk(); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // On a temporary (`*store.GetCall(...)`) the value is moved out, not bound
  // by reference to a Result that dies at the end of the full expression.
  T&& operator*() && { return std::move(*this).value(); }

 private:
  void CheckOk() const {
    if (!status_.ok() || !value_.has_value()) internal::DieOnErrorResult(status_);
  }

  Status status_;
  std::optional<T> value_;
};

}  // namespace callvault

#define CV_CONCAT_INNER_(a, b) a##b
#define CV_CONCAT_(a, b) CV_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define CV_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::callvault::Status cv_status_ = (expr);     \
    if (!cv_status_.ok()) return cv_status_;     \
  } while (0)

#define CV_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// `CV_ASSIGN_OR_RETURN(auto x, FunctionReturningResult());`
#define CV_ASSIGN_OR_RETURN(lhs, expr) \
  CV_ASSIGN_OR_RETURN_IMPL_(CV_CONCAT_(cv_result_, __LINE__), lhs, expr)

#endif  // CALLVAULT_STATUS_H_
