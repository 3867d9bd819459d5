#include "tests/crash/crash_points_workload.h"

#include <filesystem>

#include "tests/crash/crash_util.h"
#include "tests/testutil/testutil.h"

namespace callvault::crashpoints {

namespace {
constexpr int64_t kT0 = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
}  // namespace

const std::vector<Step>& Workload() {
  static const std::vector<Step> steps = {
      {Op::kCreate, "t1", {}},  {Op::kPut, "t1", {1}},    {Op::kPut, "t1", {2, 3}},
      {Op::kRotate, "t1", {}},  {Op::kPurge, "t1", {}},   {Op::kCreate, "old", {}}, {Op::kPut, "old", {7}},
      {Op::kPurge, "base", {}}, {Op::kCreate, "t1", {}},  {Op::kPut, "t1", {4, 5}},
      // Shard 0 holds "old" and "t1" (full at two): "t2" opens shard 1 and
      // "t1" moves there (decision 0057), its copy in the other shard.
      {Op::kCreate, "t2", {}},  {Op::kPut, "t2", {8}},    {Op::kMoveShard, "t1", {1}},
      {Op::kPut, "t1", {6}},
  };
  return steps;
}

Call TestCall(const std::string& tenant, int idx) {
  Call c = testutil::MakeCall(tenant + "-call-" + std::to_string(idx), kT0 + idx * 1000,
                              "m-" + tenant + "-" + std::to_string(idx));
  c.created_at = kT0 + idx;
  c.updated_at = kT0 + idx;
  return c;
}

Options StoreOptions(const std::string& keys) {
  Options o = testutil::DefaultOptions(keys);
  o.max_tenants_per_shard = 2;
  return o;
}

Options StoreOptions(const std::string& keys, rocksdb::Env* env) {
  auto kp = NewFileKeyProvider(keys, {.create_if_missing = true, .env = env});
  if (!kp.ok()) std::abort();
  Options o = testutil::DefaultOptions(*kp);
  o.env = env;
  o.max_tenants_per_shard = 2;
  return o;
}

Status RunStep(Store* store, const Step& s) {
  switch (s.op) {
    case Op::kCreate:
      return store->CreateTenant({.tenant_id = s.tenant}).status();
    case Op::kPurge:
      return store->PurgeTenant(s.tenant).status();
    case Op::kRotate:
      return store->RotateTenantKey(s.tenant).status();
    case Op::kMoveShard:
      return store->MoveTenantToShard(s.tenant, static_cast<uint32_t>(s.calls.at(0))).status();
    case Op::kPut: {
      std::vector<Call> calls;
      for (int i : s.calls) calls.push_back(TestCall(s.tenant, i));
      if (calls.size() == 1) return store->PutCall(s.tenant, calls[0]).status();
      return store->PutCalls(s.tenant, calls).status();
    }
  }
  return Status::Internal("unknown step");
}

Status PrepareStore(const std::string& dir) {
  std::filesystem::create_directories(dir);
  auto st = Store::Open(StoreOptions(dir + "/keys"), dir + "/db");
  CV_RETURN_IF_ERROR(st.status());
  CV_RETURN_IF_ERROR((*st)->CreateTenant({.tenant_id = "base"}).status());
  CV_RETURN_IF_ERROR((*st)->CreateTenant({.tenant_id = "old"}).status());
  CV_RETURN_IF_ERROR(
      (*st)
          ->PutCalls("base", {TestCall("base", 100), TestCall("base", 101), TestCall("base", 102)})
          .status());
  CV_RETURN_IF_ERROR((*st)->PutCalls("old", {TestCall("old", 200), TestCall("old", 201)}).status());
  return (*st)->PurgeTenant("old").status();
}

Expectation Prepared() {
  Expectation e;
  e.tenants["base"].live = true;
  for (int i : {100, 101, 102}) e.tenants["base"].calls[i] = TestCall("base", i);
  e.tenants["old"].gone = {200, 201};
  e.tenants["t1"];
  e.receipts = {"old"};
  return e;
}

Expectation Expected(const Crash* kill) {
  Expectation e = Prepared();
  for (size_t i = 0; i < Workload().size(); ++i) {
    const Step& s = Workload()[i];
    TenantExpect& t = e.tenants[s.tenant];
    const bool in_flight = kill != nullptr && static_cast<int>(i) == kill->step;
    switch (s.op) {
      case Op::kCreate:
        if (!in_flight || kill->point == "create.after_active") t.live = true;
        break;
      case Op::kPurge:
        for (const auto& [idx, c] : t.calls) t.gone.insert(idx);
        t.calls.clear();
        t.live = false;
        t.rotations = 0;
        t.rotating = false;
        t.shard = -1;
        e.receipts.push_back(s.tenant);
        break;
      case Op::kPut:
        for (int idx : s.calls) t.calls[idx] = TestCall(s.tenant, idx);
        break;
      case Op::kRotate:
        if (!in_flight) ++t.rotations;
        else t.rotating = true;
        break;
      case Op::kMoveShard:
        t.shard = s.calls.at(0);
        if (!in_flight) ++t.rotations;
        else t.rotating = true;
        break;
    }
    if (in_flight) break;
  }
  return e;
}

void CheckRecovered(Store& st, const std::string& keys, const Expectation& e) {
  auto tenants = st.ListTenants();
  ASSERT_OK(tenants);
  std::map<std::string, TenantInfo> by_id;
  std::set<std::pair<uint32_t, std::string>> live_families;
  std::set<uint64_t> live_ids;
  for (const auto& t : *tenants) {
    EXPECT_TRUE(t.state == TenantState::kActive || t.state == TenantState::kPurged)
        << t.tenant_id << " left " << TenantStateName(t.state) << " after recovery";
    by_id[t.tenant_id] = t;
    if (t.state == TenantState::kActive) {
      live_families.emplace(t.shard, t.column_family);
      live_ids.insert(t.internal_id);
    }
  }

  // Keys: one KEK, one keyring generation under it, holding exactly the
  // live tenants' keys. Older keyrings (which hold purged keys) are gone.
  crashtest::KeyDirFiles files = crashtest::ScanKeyDir(keys);
  EXPECT_EQ(files.keks.size(), 1u) << "KEK files: " << ::testing::PrintToString(files.keks);
  EXPECT_EQ(files.keyrings.size(), 1u) << "keyrings: " << ::testing::PrintToString(files.keyrings);
  EXPECT_TRUE(files.other.empty())
      << "stray files in the key directory: " << ::testing::PrintToString(files.other);
  auto ring = crashtest::ReadNewestKeyring(keys);
  ASSERT_OK(ring);
  if (!files.keks.empty()) {
    EXPECT_EQ(ring->kek_generation, files.keks.back());
  }
  std::set<uint64_t> ring_ids;
  std::map<uint64_t, int> versions;
  for (const auto& d : ring->deks) {
    ring_ids.insert(d.first);
    ++versions[d.first];
  }
  EXPECT_EQ(ring_ids, live_ids) << "keyring DEKs vs live tenants";
  // Every record readable under exactly one key: a key rotation, undone or
  // finished, leaves one version per tenant.
  for (const auto& [id, n] : versions) EXPECT_EQ(n, 1) << "key versions of internal id " << id;

  // Column families: exactly the live tenants', in their shards.
  std::set<std::pair<uint32_t, std::string>> families;
  const auto shard_paths = st.ShardPaths();
  for (uint32_t i = 0; i < shard_paths.size(); ++i) {
    auto names = crashtest::ListFamilies(shard_paths[i]);
    ASSERT_OK(names);
    for (const auto& n : *names) families.emplace(i, n);
  }
  EXPECT_EQ(families, live_families) << "column families vs live tenants";

  for (const auto& [id, te] : e.tenants) {
    SCOPED_TRACE("tenant " + id);
    auto d = st.DescribeTenant(id);
    if (te.live) {
      ASSERT_OK(d);
      EXPECT_EQ(d->state, TenantState::kActive);
      bool has_version = false;
      for (const auto& k : ring->deks)
        has_version |= k == std::make_pair(d->internal_id, d->key_version);
      EXPECT_TRUE(has_version) << "live tenant without its key version";
      EXPECT_TRUE(families.count({d->shard, d->column_family})) << "live tenant without its family";
      for (const auto& [idx, call] : te.calls) {
        auto got = st.GetCall(id, call.call_id);
        ASSERT_OK(got);
        EXPECT_EQ(*got, call) << "call " << idx;
      }
      for (int idx : te.gone) {
        if (te.calls.count(idx)) continue;
        EXPECT_EQ(st.GetCall(id, TestCall(id, idx).call_id).status().code(), Code::kNotFound)
            << "purged call " << idx;
      }
      auto n = st.CountCalls(id);
      ASSERT_OK(n);
      EXPECT_EQ(*n, te.calls.size());
    } else {
      if (d.ok()) {
        EXPECT_EQ(d->state, TenantState::kPurged);
        EXPECT_FALSE(ring->Has(d->internal_id)) << "a tenant that is not live kept its key";
        EXPECT_FALSE(families.count({d->shard, d->column_family}));
      } else {
        EXPECT_CODE(d, Code::kNotFound);
      }
      std::set<int> idxs = te.gone;
      idxs.insert(1);
      for (int idx : idxs) {
        auto got = st.GetCall(id, TestCall(id, idx).call_id);
        EXPECT_TRUE(got.status().code() == Code::kTenantPurged ||
                    got.status().code() == Code::kNotFound)
            << "read of a tenant that is not live: " << got.status().ToString();
      }
      auto put = st.PutCall(id, TestCall(id, 999));
      EXPECT_TRUE(put.status().code() == Code::kTenantPurged ||
                  put.status().code() == Code::kNotFound)
          << "put to a tenant that is not live: " << put.status().ToString();
    }
  }

  // Receipts: one per purge that began, in order, chained and signed.
  auto receipts = st.ListReceipts();
  ASSERT_OK(receipts);
  std::vector<std::string> receipt_tenants;
  std::set<uint64_t> receipt_ids;
  std::map<uint64_t, int> rotation_receipts;  // internal id -> key_rotation receipts
  for (const auto& r : *receipts) {
    if (r.kind == "key_rotation") {
      ++rotation_receipts[r.tenant_internal_id];
      EXPECT_EQ(r.key_versions_destroyed.size(), 1u) << "receipt " << r.sequence;
      continue;
    }
    receipt_tenants.push_back(r.tenant_id);
    EXPECT_TRUE(receipt_ids.insert(r.tenant_internal_id).second) << "two receipts for one purge";
    EXPECT_FALSE(live_ids.count(r.tenant_internal_id)) << "a receipt for a live tenant";
    EXPECT_EQ(r.kind, "tenant_purge") << "receipt " << r.sequence;
    EXPECT_FALSE(r.key_versions_destroyed.empty()) << "receipt " << r.sequence;
    EXPECT_NE(r.kek_generation_retired, 0u) << "receipt " << r.sequence << " names no retired KEK";
    EXPECT_LT(r.kek_generation_retired, r.kek_generation_current) << "receipt " << r.sequence;
  }
  EXPECT_EQ(receipt_tenants, e.receipts);
  // Rotations: a live tenant's key version is 1 + its rotations that
  // finished, each with its receipt; one in flight at the crash either.
  for (const auto& [id, te] : e.tenants) {
    if (!te.live) continue;
    auto d = st.DescribeTenant(id);
    ASSERT_OK(d);
    const int finished = rotation_receipts[d->internal_id];
    EXPECT_EQ(d->key_version, 1u + finished) << id;
    EXPECT_TRUE(finished == te.rotations || (te.rotating && finished == te.rotations + 1))
        << id << ": " << finished << " key_rotation receipts, " << te.rotations
        << " rotations returned" << (te.rotating ? " and one in flight" : "");
    // A shard move: in its target shard once finished, in its old one if
    // undone (one authoritative copy: the families checked above).
    if (te.shard >= 0) {
      const bool moved = !te.rotating || finished == te.rotations + 1;
      if (moved) {
        EXPECT_EQ(static_cast<int>(d->shard), te.shard) << id << ": the move finished";
      } else {
        EXPECT_NE(static_cast<int>(d->shard), te.shard) << id << ": the move was undone";
      }
    }
  }
  auto pk = st.SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
  for (const auto& [id, t] : by_id) {
    if (t.state != TenantState::kPurged) continue;
    bool found = false;
    for (const auto& r : *receipts) found |= r.tenant_internal_id == t.internal_id;
    EXPECT_TRUE(found) << "purged tenant " << id << " has no receipt";
  }

  auto v = st.Verify();
  ASSERT_OK(v);
  EXPECT_EQ(v->records_failed, 0u) << ::testing::PrintToString(v->failures);
}

// After recovery the ids stay usable: purge what is live, create what is not.
void ExerciseIds(Store& st, const Expectation& e) {
  for (const auto& [id, te] : e.tenants) {
    SCOPED_TRACE("exercise tenant " + id);
    Call c = TestCall(id, 500);
    if (te.live) {
      ASSERT_OK(st.PurgeTenant(id));
      EXPECT_CODE(st.GetCall(id, TestCall(id, 1).call_id), Code::kTenantPurged);
      ASSERT_OK(st.CreateTenant({.tenant_id = id}));
      ASSERT_OK(st.PutCall(id, c));
      auto got = st.GetCall(id, c.call_id);
      ASSERT_OK(got);
      EXPECT_EQ(*got, c);
      for (const auto& [idx, old] : te.calls)
        EXPECT_CODE(st.GetCall(id, old.call_id), Code::kNotFound);
    } else {
      ASSERT_OK(st.CreateTenant({.tenant_id = id}));
      ASSERT_OK(st.PutCall(id, c));
      ASSERT_OK(st.PurgeTenant(id));
    }
  }
  auto receipts = st.ListReceipts();
  ASSERT_OK(receipts);
  auto pk = st.SigningPublicKey();
  ASSERT_OK(pk);
  EXPECT_OK(VerifyReceiptChain(*receipts, *pk));
}

// Reopens the store at dir (recovery), checks, exercises, reopens again.
void VerifyCase(const std::string& dir, const Expectation& e) {
  const std::string keys = dir + "/keys";
  {
    auto st = Store::Open(StoreOptions(keys), dir + "/db");
    ASSERT_OK(st);
    CheckRecovered(**st, keys, e);
    ExerciseIds(**st, e);
  }
  auto again = Store::Open(StoreOptions(keys), dir + "/db");
  ASSERT_OK(again);
  for (const auto& [id, te] : e.tenants) {
    auto d = (*again)->DescribeTenant(id);
    ASSERT_OK(d);
    EXPECT_EQ(d->state, te.live ? TenantState::kActive : TenantState::kPurged) << id;
  }
  EXPECT_EQ(crashtest::ScanKeyDir(keys).keks.size(), 1u);
}

}  // namespace callvault::crashpoints
