#include "workload/people.h"

#include <set>

#include "workload/names.h"

namespace callvault::workload {
namespace {

constexpr uint64_t kStaffSalt = 0x57AFF;
constexpr uint64_t kAccountSalt = 0xACC0;
constexpr uint64_t kContactSalt = 0xC0A7;

template <typename T>
const T& Pick(std::span<const T> list, uint64_t h) {
  return list[h % list.size()];
}

std::string FullName(uint64_t h) {
  std::string name(Pick(names::FirstNames(), h));
  name += ' ';
  name += Pick(names::LastNames(), h >> 20);
  return name;
}

std::string EmailLocal(uint64_t h) {
  return Lower(Pick(names::FirstNames(), h)) + "." + Lower(Pick(names::LastNames(), h >> 20));
}

}  // namespace

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string PhoneFromHash(uint64_t h) {
  const uint64_t area = 201 + h % 798;
  const uint64_t exchange = 200 + (h >> 12) % 800;
  const uint64_t line = (h >> 24) % 10000;
  std::string digits = std::to_string(line);
  digits.insert(0, 4 - digits.size(), '0');
  return "+1" + std::to_string(area) + std::to_string(exchange) + digits;
}

std::string CharsFromHash(uint64_t h, size_t n, std::string_view alphabet) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (i % 8 == 7) h = SplitMix64(h);
    out.push_back(alphabet[h % alphabet.size()]);
    h /= alphabet.size();
  }
  return out;
}

std::string Hex(Rng& rng, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n);
  uint64_t bits = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i % 16 == 0) bits = rng.Next();
    out.push_back(kHex[bits & 15]);
    bits >>= 4;
  }
  return out;
}

std::string Uuid(Rng& rng) {
  std::string h = Hex(rng, 32);
  h[12] = '4';                                 // version 4
  h[16] = "89ab"[rng.Below(4)];                // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::vector<Participant> MakeStaff(uint64_t seed, uint32_t count, const std::string& domain,
                                   const std::string& company) {
  std::vector<Participant> staff;
  std::set<std::string> emails;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t h = Mix(seed, kStaffSalt, i);
    Participant p;
    p.name = FullName(h);
    std::string local = EmailLocal(h);
    for (int n = 2; emails.count(local + "@" + domain) != 0; ++n) {
      local = EmailLocal(h) + std::to_string(n);
    }
    p.email = local + "@" + domain;
    emails.insert(p.email);
    p.phone = PhoneFromHash(SplitMix64(h));
    p.title = std::string(Pick(names::InternalTitles(), h >> 40));
    p.company = company;
    p.affiliation = Affiliation::kInternal;
    p.user_id = "u-" + std::to_string(i);
    staff.push_back(std::move(p));
  }
  return staff;
}

Account MakeAccount(uint64_t seed, uint32_t index) {
  const uint64_t h = Mix(seed, kAccountSalt, index);
  const auto stems = names::CompanyStems();
  const auto endings = names::CompanyEndings();
  std::string base(stems[index % stems.size()]);
  base += endings[(index / stems.size()) % endings.size()];
  Account account;
  account.index = index;
  account.name = base + " " + std::string(Pick(names::CompanyKinds(), h));
  account.domain = Lower(base) + "." + std::string(Pick(names::TopLevelDomains(), h >> 16));
  return account;
}

Participant MakeContact(uint64_t seed, const Account& account, uint32_t contact) {
  const uint64_t h = Mix(seed ^ kContactSalt, account.index, contact);
  Participant p;
  p.name = FullName(h);
  p.email = EmailLocal(h) + "@" + account.domain;
  p.phone = PhoneFromHash(SplitMix64(h));
  p.title = std::string(Pick(names::ExternalTitles(), h >> 40));
  p.company = account.name;
  p.affiliation = Affiliation::kExternal;
  return p;
}

}  // namespace callvault::workload
