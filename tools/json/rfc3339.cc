// RFC 3339 date-times <-> microseconds since the Unix epoch.
#include <cstdio>

#include "tools/json/call_json.h"

namespace callvault::json {
namespace {

constexpr int64_t kUsPerSecond = 1000000;
constexpr int64_t kSecondsPerDay = 86400;

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, int64_t* m, int64_t* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yoe + era * 400 + (*m <= 2);
}

int64_t DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// A cursor over the text; every Read* returns false when the text does not
// match, leaving the message to the caller.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool Digits(size_t n, int64_t* out) {
    if (s_.size() - pos_ < n) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      const char c = s_[pos_ + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    *out = v;
    return true;
  }
  bool Char(std::string_view any_of) {
    if (pos_ >= s_.size() || any_of.find(s_[pos_]) == std::string_view::npos) return false;
    ++pos_;
    return true;
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool AtEnd() const { return pos_ == s_.size(); }
  // Reads a fraction's digits (at least one) as microseconds, truncating.
  bool Fraction(int64_t* micros) {
    int64_t v = 0;
    size_t n = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (n < 6) v = v * 10 + (s_[pos_] - '0');
      ++n;
      ++pos_;
    }
    for (size_t i = n; i < 6; ++i) v *= 10;
    *micros = v;
    return n > 0;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

Status Invalid(const char* what) {
  return Status::InvalidArgument(std::string("invalid RFC 3339 date-time: ") + what);
}

// Parses "(Z|z|+hh:mm|-hh:mm)" into an offset in seconds east of UTC.
Status ReadOffset(Scanner& sc, int64_t* offset_s) {
  if (sc.Char("Zz")) {
    *offset_s = 0;
    return Status::OK();
  }
  const char sign = sc.Peek();
  int64_t hh = 0, mm = 0;
  if (!sc.Char("+-") || !sc.Digits(2, &hh) || !sc.Char(":") || !sc.Digits(2, &mm)) {
    return Invalid("expected 'Z' or a +hh:mm offset");
  }
  if (hh > 23 || mm > 59) return Invalid("offset out of range");
  *offset_s = (sign == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
  return Status::OK();
}

}  // namespace

Result<int64_t> ParseRfc3339(std::string_view text) {
  Scanner sc(text);
  int64_t y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, frac = 0, offset_s = 0;
  if (!sc.Digits(4, &y) || !sc.Char("-") || !sc.Digits(2, &mo) || !sc.Char("-") ||
      !sc.Digits(2, &d)) {
    return Invalid("expected a YYYY-MM-DD date");
  }
  if (!sc.Char("Tt ")) return Invalid("expected 'T' after the date");
  if (!sc.Digits(2, &h) || !sc.Char(":") || !sc.Digits(2, &mi) || !sc.Char(":") ||
      !sc.Digits(2, &s)) {
    return Invalid("expected an HH:MM:SS time");
  }
  if (sc.Char(".") && !sc.Fraction(&frac)) return Invalid("expected digits after '.'");
  CV_RETURN_IF_ERROR(ReadOffset(sc, &offset_s));
  if (!sc.AtEnd()) return Invalid("unexpected characters after the offset");
  if (mo < 1 || mo > 12) return Invalid("month out of range");
  if (d < 1 || d > DaysInMonth(y, mo)) return Invalid("day out of range");
  if (h > 23 || mi > 59 || s > 60) return Invalid("time out of range");  // 60: leap second
  const int64_t seconds = DaysFromCivil(y, mo, d) * kSecondsPerDay + h * 3600 + mi * 60 + s - offset_s;
  return seconds * kUsPerSecond + frac;
}

std::string FormatRfc3339(int64_t micros) {
  constexpr int64_t kMin = -62167219200LL * kUsPerSecond;    // 0000-01-01T00:00:00Z
  constexpr int64_t kMax = 253402300799LL * kUsPerSecond + 999999;  // 9999-12-31T23:59:59.999999Z
  micros = micros < kMin ? kMin : micros > kMax ? kMax : micros;
  int64_t seconds = micros / kUsPerSecond;
  int64_t frac = micros % kUsPerSecond;
  if (frac < 0) {
    frac += kUsPerSecond;
    --seconds;
  }
  int64_t days = seconds / kSecondsPerDay;
  int64_t rem = seconds % kSecondsPerDay;
  if (rem < 0) {
    rem += kSecondsPerDay;
    --days;
  }
  int64_t y = 0, m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld",
                        static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                        static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                        static_cast<long long>(rem % 60));
  if (frac != 0) n += std::snprintf(buf + n, sizeof buf - n, ".%06lld", static_cast<long long>(frac));
  return std::string(buf, n) + "Z";
}

}  // namespace callvault::json
