#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "callvault/limits.h"
#include "workload/names.h"
#include "workload/people.h"
#include "workload/random.h"
#include "workload/vocabulary.h"
#include "workload/workload.h"

namespace callvault::workload {
namespace {

constexpr int64_t kUsPerMs = 1000;
constexpr int64_t kUsPerMinute = 60LL * 1000 * 1000;
constexpr int64_t kUsPerDay = 24LL * 60 * kUsPerMinute;
constexpr uint32_t kMsPerMinute = 60 * 1000;
// Keeps the scaled transcript well inside limits::kMaxTranscriptBytes.
constexpr double kMaxTranscriptWords = 500000;

template <typename T>
const T& PickOne(Rng& rng, std::span<const T> list) {
  return list[rng.Below(list.size())];
}

// `k` distinct values of [0, n), in random order; k <= n.
std::vector<uint32_t> Distinct(Rng& rng, uint32_t n, uint32_t k) {
  std::vector<uint32_t> out;
  while (out.size() < k) {
    const auto v = static_cast<uint32_t>(rng.Below(n));
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  return out;
}

std::string Fill(std::string_view pattern, std::string_view company, std::string_view ours) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size()) {
      out += pattern[i + 1] == 'c' ? company : ours;
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

std::string FirstName(const Participant& p) { return p.name.substr(0, p.name.find(' ')); }

}  // namespace

class Generator::Impl {
 public:
  explicit Impl(GeneratorOptions options)
      : opt_(std::move(options)),
        rng_(opt_.seed),
        vocab_(LoadVocabulary(opt_.words_path)),
        staff_(MakeStaff(opt_.seed, std::max<uint32_t>(1, opt_.owners), opt_.company_domain,
                         opt_.company_name)) {}

  Call Next(CallKind* kind_out) {
    const CallKind kind = PickKind();
    if (kind_out != nullptr) *kind_out = kind;
    Call call;
    call.call_id = Uuid(rng_);
    const auto owner = static_cast<uint32_t>(rng_.Below(staff_.size()));
    const Account account = PickAccount();
    FillIdentity(&call, kind, owner);
    FillTimes(&call, kind);
    FillDescription(&call, kind);
    if (kind == CallKind::kDialer) {
      FillDialerPeople(&call, owner, account);
    } else {
      FillMeetingPeople(&call, owner, account);
    }
    FillTitleAndTags(&call, account);
    FillCrm(&call, account);
    FillTranscript(&call);
    FillInsights(&call, kind, account);
    return call;
  }

  const GeneratorOptions& options() const { return opt_; }
  const std::vector<std::string>& words() const { return vocab_->words(); }

 private:
  CallKind PickKind() {
    const double u = rng_.Uniform();
    if (u < opt_.dialer_fraction) return CallKind::kDialer;
    if (u < opt_.dialer_fraction + opt_.long_fraction) return CallKind::kLongMeeting;
    return CallKind::kMeeting;
  }

  // Larger accounts have more calls: the first indexes are picked more often.
  Account PickAccount() {
    const double u = rng_.Uniform();
    return MakeAccount(opt_.seed, static_cast<uint32_t>(u * u * kAccounts));
  }

  void FillIdentity(Call* call, CallKind kind, uint32_t owner) {
    if (kind == CallKind::kDialer) {
      call->source_system = SourceSystem::kDialer;
      call->source_call_id = "dl-" + Hex(rng_, 16);
    } else {
      const double u = rng_.Uniform();
      call->source_system = u < 0.45   ? SourceSystem::kZoom
                            : u < 0.75 ? SourceSystem::kTeams
                            : u < 0.90 ? SourceSystem::kMeet
                                       : SourceSystem::kWebex;
      call->source_call_id = MeetingSourceId(call->source_system);
    }
    call->workspace_id = "ws-" + std::to_string(owner % std::max<uint32_t>(1, opt_.workspaces));
    call->owner_user_id = staff_[owner].user_id;
    const uint32_t teams = std::max<uint32_t>(1, opt_.teams);
    call->team_ids.push_back("t-" + std::to_string(owner % teams));
    if (teams > 1 && rng_.Chance(0.2)) {
      call->team_ids.push_back("t-" + std::to_string((owner + 1) % teams));
    }
  }

  std::string MeetingSourceId(SourceSystem system) {
    static constexpr std::string_view kAlnum =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    switch (system) {
      case SourceSystem::kZoom:
        return std::to_string(10000000000ULL + rng_.Below(89999999999ULL));
      case SourceSystem::kTeams:
        return "19:meeting_" + CharsFromHash(rng_.Next(), 32, kAlnum) + "@thread.v2";
      case SourceSystem::kMeet:
        return CharsFromHash(rng_.Next(), 3, "abcdefghijklmnopqrstuvwxyz") + "-" +
               CharsFromHash(rng_.Next(), 4, "abcdefghijklmnopqrstuvwxyz") + "-" +
               CharsFromHash(rng_.Next(), 3, "abcdefghijklmnopqrstuvwxyz");
      default:
        return Hex(rng_, 32);
    }
  }

  uint32_t DrawDurationMs(CallKind kind) {
    double ms = 0;
    switch (kind) {
      case CallKind::kDialer:
        ms = std::clamp(rng_.LogNormal(80.0, 0.8), 12.0, 3600.0) * 1000;
        break;
      case CallKind::kMeeting:
        ms = std::clamp(43.0 + 15.0 * rng_.Normal(), 8.0, 89.0) * kMsPerMinute;
        break;
      case CallKind::kLongMeeting:
        ms = (90.0 + 90.0 * rng_.Uniform()) * kMsPerMinute;
        break;
    }
    return static_cast<uint32_t>(ms);
  }

  void FillTimes(Call* call, CallKind kind) {
    const int64_t span_us = std::max<int64_t>(1, opt_.span_days) * kUsPerDay;
    call->started_at = opt_.start_us + static_cast<int64_t>(rng_.Below(span_us));
    call->duration_ms = DrawDurationMs(kind);
    const int64_t duration_us = int64_t{call->duration_ms} * kUsPerMs;
    if (kind != CallKind::kDialer) {
      constexpr int64_t kQuarter = 15 * kUsPerMinute;
      call->scheduled_start = call->started_at - call->started_at % kQuarter;
      const int64_t planned = std::max<int64_t>(1, (duration_us + kQuarter / 2) / kQuarter);
      call->scheduled_end = call->scheduled_start + planned * kQuarter;
    }
    call->created_at = call->started_at + duration_us + rng_.Range(1, 10) * kUsPerMinute;
    call->updated_at = call->created_at + rng_.Range(0, 30) * kUsPerMinute;
  }

  void FillDescription(Call* call, CallKind kind) {
    const bool dialer = kind == CallKind::kDialer;
    call->direction = dialer ? (rng_.Chance(0.7) ? Direction::kOutbound : Direction::kInbound)
                             : Direction::kConference;
    call->media = dialer ? Media::kAudio : Media::kVideo;
    const auto languages = names::Languages();
    call->language = rng_.Chance(0.85) ? std::string(languages[0])
                                       : std::string(languages[1 + rng_.Below(languages.size() - 1)]);
    call->status = "completed";
    call->scope = (dialer || rng_.Chance(0.8)) ? CallScope::kExternal : CallScope::kInternal;
  }

  void FillDialerPeople(Call* call, uint32_t owner, const Account& account) {
    Participant rep = staff_[owner];
    Participant contact = MakeContact(opt_.seed, account, rng_.Below(kContactsPerAccount));
    if (rng_.Chance(0.3)) contact.email.clear();
    call->participants = {std::move(rep), std::move(contact)};
    NumberSpeakers(call);
  }

  void FillMeetingPeople(Call* call, uint32_t owner, const Account& account) {
    const auto total = static_cast<uint32_t>(2 + std::floor(7 * std::pow(rng_.Uniform(), 1.6)));
    const auto staff = static_cast<uint32_t>(staff_.size());
    if (staff < 2) call->scope = CallScope::kExternal;
    const bool internal_only = call->scope == CallScope::kInternal;
    const uint32_t internal = internal_only
                                  ? std::min(total, staff)
                                  : std::min({1 + static_cast<uint32_t>(rng_.Below(3)), total - 1, staff});
    call->participants.push_back(staff_[owner]);
    for (uint32_t v : Distinct(rng_, staff - 1, internal - 1)) {
      call->participants.push_back(staff_[v >= owner ? v + 1 : v]);  // skips the owner
    }
    if (!internal_only) {
      const uint32_t external = std::min(total - internal, kContactsPerAccount);
      for (uint32_t c : Distinct(rng_, kContactsPerAccount, external)) {
        Participant p = MakeContact(opt_.seed, account, c);
        if (!rng_.Chance(0.2)) p.phone.clear();
        call->participants.push_back(std::move(p));
      }
    }
    for (auto& p : call->participants) {
      if (p.affiliation == Affiliation::kInternal) p.phone.clear();
    }
    NumberSpeakers(call);
  }

  static void NumberSpeakers(Call* call) {
    for (size_t i = 0; i < call->participants.size(); ++i) {
      call->participants[i].speaker_id = static_cast<uint32_t>(i + 1);
    }
  }

  void FillTitleAndTags(Call* call, const Account& account) {
    const Participant& other = call->participants.back();
    if (call->source_system == SourceSystem::kDialer) {
      const bool out = call->direction == Direction::kOutbound;
      call->title = (out ? "Call with " : "Inbound call from ") + other.name + " (" + account.name + ")";
      call->tags.push_back(out ? (rng_.Chance(0.5) ? "cold-call" : "follow-up") : "inbound");
    } else if (call->scope == CallScope::kInternal) {
      call->title = Fill(PickOne(rng_, names::InternalMeetingTitles()), account.name, opt_.company_name);
      call->tags.push_back("internal");
    } else {
      const names::Stage& stage = PickOne(rng_, names::ExternalStages());
      call->title = Fill(stage.title, account.name, opt_.company_name);
      call->tags.emplace_back(stage.tag);
    }
    if (rng_.Chance(0.2)) call->tags.push_back("priority");
    if (rng_.Chance(0.1)) call->tags.push_back("coaching");
  }

  void FillCrm(Call* call, const Account& account) {
    if (call->scope != CallScope::kExternal || !rng_.Chance(0.75)) return;
    const bool salesforce = (call->workspace_id.back() - '0') % 2 == 0;
    const char* system = salesforce ? "salesforce" : "hubspot";
    const uint64_t account_hash = Mix(opt_.seed, 0xC4A, account.index);
    call->crm_links.push_back({system, CrmObjectType::kAccount, CrmId(salesforce, "001", account_hash)});
    if (call->source_system != SourceSystem::kDialer) {
      if (rng_.Chance(0.6)) {
        const uint64_t h = Mix(account_hash, 0x0BB, rng_.Below(3));
        call->crm_links.push_back({system, CrmObjectType::kOpportunity, CrmId(salesforce, "006", h)});
      }
      return;
    }
    const uint64_t contact_hash = Mix(account_hash, 0xC0, rng_.Next());
    if (rng_.Chance(0.5)) {
      call->crm_links.push_back({system, CrmObjectType::kContact, CrmId(salesforce, "003", contact_hash)});
    } else if (rng_.Chance(0.5)) {
      call->crm_links.push_back({system, CrmObjectType::kLead, CrmId(salesforce, "00Q", contact_hash)});
    }
  }

  static std::string CrmId(bool salesforce, std::string_view prefix, uint64_t h) {
    if (!salesforce) return std::to_string(1000000000ULL + h % 9000000000ULL);
    return std::string(prefix) +
           CharsFromHash(h, 12, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
  }

  // Appends `n` Zipf words as sentence text: capitalised, with occasional
  // commas and full stops, ending in '.' or '?'.
  void AppendWords(Rng& rng, size_t n, std::string* out) const {
    bool capital = true;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t bits = rng.Next();
      if (i > 0) out->push_back(' ');
      const size_t at = out->size();
      vocab_->Append(vocab_->SampleFrom(bits), out);
      if (capital) (*out)[at] = static_cast<char>((*out)[at] - 'a' + 'A');
      capital = false;
      const uint64_t low = bits & 0x7FF;  // independent of the 53 bits SampleFrom uses
      if (i + 1 == n) {
        out->push_back(low < 200 ? '?' : '.');
      } else if (low < 170) {
        out->push_back('.');
        capital = true;
      } else if (low < 300) {
        out->push_back(',');
      }
    }
  }

  // Draws from its own stream, so transcript_scale changes nothing else.
  void FillTranscript(Call* call) {
    Rng rng(rng_.Next());
    const auto speakers = static_cast<uint32_t>(call->participants.size());
    const double wpm = static_cast<double>(rng.Range(150, 210));
    const double minutes = call->duration_ms / double{kMsPerMinute};
    const double scaled = std::min(kMaxTranscriptWords, minutes * wpm * opt_.transcript_scale);
    const auto total = static_cast<size_t>(std::max(1.0, std::round(scaled)));
    const double ms_per_word = call->duration_ms / static_cast<double>(total);
    call->transcript.reserve(total / 12 + 1);
    uint32_t speaker = static_cast<uint32_t>(rng.Below(speakers));
    for (size_t word = 0; word < total;) {
      const auto want = static_cast<size_t>(std::clamp(rng.LogNormal(12.0, 0.7), 2.0, 40.0));
      const size_t n = std::min(want, total - word);
      TranscriptSegment seg;
      seg.speaker_id = speaker + 1;
      seg.start_ms = static_cast<uint32_t>(word * ms_per_word);
      const double spoken = n * ms_per_word * (0.8 + 0.2 * rng.Uniform());
      seg.end_ms = std::min(call->duration_ms, static_cast<uint32_t>(seg.start_ms + spoken));
      seg.confidence = static_cast<float>(0.99 - 0.29 * std::pow(rng.Uniform(), 2));
      seg.text.reserve(n * 10);
      AppendWords(rng, n, &seg.text);
      call->transcript.push_back(std::move(seg));
      word += n;
      if (speakers > 1) speaker = (speaker + 1 + rng.Below(speakers - 1)) % speakers;
    }
  }

  std::string Summary(CallKind kind, const Call& call, const Account& account,
                      std::string_view topic) {
    const double target = kind == CallKind::kDialer
                              ? static_cast<double>(rng_.Range(200, 600))
                              : std::clamp(rng_.LogNormal(3000.0, 0.25), 1500.0, 8000.0);
    std::string s = FirstName(call.participants.front()) + " met with " +
                    (call.scope == CallScope::kInternal ? std::string("the team") : account.name) +
                    " to discuss " + std::string(topic) + ".";
    while (static_cast<double>(s.size()) < target) {
      s.push_back(' ');
      AppendWords(rng_, static_cast<size_t>(rng_.Range(8, 20)), &s);
    }
    return s;
  }

  void FillInsights(Call* call, CallKind kind, const Account& account) {
    Insights& in = call->insights;
    const bool dialer = kind == CallKind::kDialer;
    const auto topics = names::Topics();
    for (uint32_t t : Distinct(rng_, topics.size(), rng_.Range(dialer ? 1 : 2, dialer ? 3 : 6))) {
      in.topics.emplace_back(topics[t]);
    }
    in.summary = Summary(kind, *call, account, in.topics.front());
    const int64_t items = rng_.Range(dialer ? 0 : 1, dialer ? 2 : 6);
    for (int64_t i = 0; i < items; ++i) {
      ActionItem item;
      item.text = std::string(PickOne(rng_, names::ActionVerbs())) + " ";
      AppendWords(rng_, static_cast<size_t>(rng_.Range(3, 8)), &item.text);
      const Participant& p = call->participants[rng_.Below(call->participants.size())];
      if (rng_.Chance(0.8)) item.owner_user_id = p.user_id;
      in.action_items.push_back(std::move(item));
    }
    const auto trackers = names::Trackers();
    for (uint32_t t : Distinct(rng_, trackers.size(), rng_.Range(0, 5))) {
      in.trackers.push_back({std::string(trackers[t]), static_cast<uint32_t>(rng_.Range(1, 15))});
    }
    in.model_name = "gpt-4o";
    in.model_version = "2024-08-06";
  }

  GeneratorOptions opt_;
  Rng rng_;
  std::shared_ptr<const Vocabulary> vocab_;
  std::vector<Participant> staff_;
};

Generator::Generator(GeneratorOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Generator::~Generator() = default;
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;

Call Generator::Next() { return impl_->Next(nullptr); }
Call Generator::Next(CallKind* kind) { return impl_->Next(kind); }

std::vector<Call> Generator::Batch(size_t n) {
  std::vector<Call> calls;
  calls.reserve(n);
  for (size_t i = 0; i < n; ++i) calls.push_back(impl_->Next(nullptr));
  return calls;
}

const GeneratorOptions& Generator::options() const { return impl_->options(); }
const std::vector<std::string>& Generator::words() const { return impl_->words(); }

std::string RandomBytes(uint64_t seed, size_t n) {
  std::string out(n, '\0');
  Rng rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = rng.Next();
    std::memcpy(out.data() + i, &v, 8);
  }
  if (i < n) {
    const uint64_t v = rng.Next();
    std::memcpy(out.data() + i, &v, n - i);
  }
  return out;
}

size_t TranscriptBytes(const Call& call) {
  size_t bytes = 0;
  for (const auto& seg : call.transcript) bytes += seg.text.size();
  return bytes;
}

}  // namespace callvault::workload
