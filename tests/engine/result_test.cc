// Result<T>: reading the value of an error terminates with the status
// printed, in every build type (this binary is built with NDEBUG in the
// release preset, where the former assert() vanished and *Result read an
// empty std::optional: undefined behaviour, usually garbage, no message).
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "callvault/status.h"
#include "callvault/version.h"

namespace callvault {
namespace {

Result<std::string> Fails() { return Status::NotFound("no such widget"); }
Result<std::vector<int>> FailsVector() { return Status::Corruption("record failed authentication"); }

TEST(ResultDeathTest, ValueOnErrorTerminatesWithTheStatus) {
  EXPECT_DEATH(
      {
        auto r = Fails();
        std::string v = r.value();
        std::fprintf(stderr, "read %zu bytes\n", v.size());
      },
      "Result<T>::value\\(\\) called on an error: not_found: no such widget");
}

TEST(ResultDeathTest, DereferenceOnErrorTerminatesWithTheStatus) {
  EXPECT_DEATH(
      {
        const auto r = FailsVector();
        std::fprintf(stderr, "first %d\n", (*r).at(0));
      },
      "called on an error: corruption: record failed authentication");
  EXPECT_DEATH(
      {
        auto r = FailsVector();
        std::fprintf(stderr, "size %zu\n", r->size());
      },
      "called on an error: corruption: record failed authentication");
  EXPECT_DEATH(
      {
        std::string moved = Fails().value();  // the && overload
        std::fprintf(stderr, "%s\n", moved.c_str());
      },
      "called on an error: not_found");
}

TEST(ResultTest, ValueOfASuccessIsReturned) {
  Result<std::string> r = std::string("ok value");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "ok value");
  EXPECT_EQ(r->size(), 8u);
  EXPECT_EQ(std::move(r).value(), "ok value");
}

Result<std::unique_ptr<int>> MoveOnly() { return std::make_unique<int>(7); }

TEST(ResultTest, DereferenceOfATemporaryMovesTheValueOut) {
  // Compiles only with operator*() &&: a unique_ptr cannot be copied out of
  // the const& overload the temporary used to bind to.
  std::unique_ptr<int> p = *MoveOnly();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
  EXPECT_DEATH(
      {
        std::string moved = *Fails();
        std::fprintf(stderr, "%s\n", moved.c_str());
      },
      "called on an error: not_found");
}

TEST(VersionTest, HeaderAndLibraryAgree) {
  EXPECT_STREQ(LibraryVersion(), CALLVAULT_VERSION_STRING);
  EXPECT_EQ(std::string(CALLVAULT_VERSION_STRING),
            std::to_string(kVersionMajor) + "." + std::to_string(kVersionMinor) + "." +
                std::to_string(kVersionPatch));
  EXPECT_LE(kMinReadableStoreFormatVersion, kStoreFormatVersion);
}

}  // namespace
}  // namespace callvault
