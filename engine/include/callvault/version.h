// The library version and the on-disk format versions this build reads and
// writes. docs/compatibility.md says what a minor and a major version may
// change and how a store written by another version is opened or refused.
//
// The CMake project version is read from the three CALLVAULT_VERSION_*
// macros below (one source of truth): the shared library's version and
// SONAME, the CMake package version and the pkg-config version follow them.
#ifndef CALLVAULT_VERSION_H_
#define CALLVAULT_VERSION_H_

#include <cstdint>

#define CALLVAULT_VERSION_MAJOR 0
#define CALLVAULT_VERSION_MINOR 1
#define CALLVAULT_VERSION_PATCH 0
// "0.1.0"
#define CALLVAULT_VERSION_STRING "0.1.0"

namespace callvault {

inline constexpr int kVersionMajor = CALLVAULT_VERSION_MAJOR;
inline constexpr int kVersionMinor = CALLVAULT_VERSION_MINOR;
inline constexpr int kVersionPatch = CALLVAULT_VERSION_PATCH;

// The store format version (the store header's "format", docs/format.md)
// that Store::Open with create_if_missing writes into a new store, and to
// which a writable open raises a store of an older readable format (format
// 2 adds call versions, docs/decisions/0028; format 3 the change feed,
// docs/decisions/0030).
inline constexpr uint32_t kStoreFormatVersion = 3;
// The oldest store format version this build opens. A store whose header
// says a version outside [kMinReadableStoreFormatVersion,
// kStoreFormatVersion] is refused by Store::Open with kNotSupported and left
// untouched (a newer one: "store format version is newer than this build
// reads"; an older one: "store format version is older than this build
// reads").
inline constexpr uint32_t kMinReadableStoreFormatVersion = 1;
// Versions of the sealed records and the keyring inside a store of format
// kStoreFormatVersion (docs/format.md); read and written.
inline constexpr uint32_t kEnvelopeVersion = 1;
inline constexpr uint32_t kKeyringVersion = 1;

// The version of the library actually linked, e.g. "0.1.0". Differs from
// CALLVAULT_VERSION_STRING when the headers a program was compiled with do
// not match the shared library it runs with.
const char* LibraryVersion();

}  // namespace callvault

#endif  // CALLVAULT_VERSION_H_
