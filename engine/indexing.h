// What a call contributes to its tenant's indexes: the blind hashes of its
// attributes, its index keys and its summary part. Every hash is keyed with
// the tenant's index subkey, so a purge shreds the indexes with the data.
#ifndef CALLVAULT_ENGINE_INDEXING_H_
#define CALLVAULT_ENGINE_INDEXING_H_

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "callvault/call.h"
#include "callvault/secret.h"
#include "callvault/store.h"

namespace callvault::indexing {

// Blind-hash domains. Do not change: they are part of the on-disk format.
inline constexpr char kCallDomain = 'C';
inline constexpr char kSourceDomain = 'S';
inline constexpr char kOwnerDomain = 'O';
inline constexpr char kWorkspaceDomain = 'W';
inline constexpr char kParticipantDomain = 'E';
inline constexpr char kCrmDomain = 'K';
inline constexpr char kTagDomain = 'G';

std::string CallHash(const SecretBytes& index_key, std::string_view call_id);
// "" when the call has no source_call_id.
std::string SourceHash(const SecretBytes& index_key, const Call& call);
std::string OwnerHash(const SecretBytes& index_key, std::string_view owner);
std::string WorkspaceHash(const SecretBytes& index_key, std::string_view workspace);
// `subject`: a normalised email or phone.
std::string ParticipantHash(const SecretBytes& index_key, std::string_view subject);
std::string CrmHash(const SecretBytes& index_key, std::string_view system, CrmObjectType type,
                    std::string_view object_id);
std::string TagHash(const SecretBytes& index_key, std::string_view tag);

// The emails and phones a call references (participants, and CRM object ids
// that are emails or phones), normalised, without duplicates.
std::set<std::string> Subjects(const Call& call);

// The keyed hashes of a call's owner, workspace, subjects (in Subjects'
// order) and CRM links (in the call's order): both its index keys and its
// summary are made of them, so a put computes them once.
struct AttributeHashes {
  std::string owner, workspace;  // empty when the call has none
  std::vector<std::string> subjects, crm;
};
AttributeHashes HashAttributes(const SecretBytes& index_key, const Call& call);

// Every index key of a call whose primary hash is `call_hash` (time,
// updated, owner, workspace, participant and CRM entries; not the source
// index, which has a value). `hashes` is HashAttributes of the call.
std::set<std::string> IndexKeys(const AttributeHashes& hashes, const Call& call,
                                std::string_view call_hash);
std::set<std::string> IndexKeys(const SecretBytes& index_key, const Call& call,
                                std::string_view call_hash);
// The plaintext of the call's summary part.
std::string SummaryBytes(const SecretBytes& index_key, const AttributeHashes& hashes,
                         const Call& call);

}  // namespace callvault::indexing

#endif  // CALLVAULT_ENGINE_INDEXING_H_
