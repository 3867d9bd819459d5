#include "workload/names.h"

namespace callvault::workload::names {
namespace {

using SV = std::string_view;

constexpr SV kFirst[] = {
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark",
    "Ashley", "Steven", "Emily", "Andrew", "Michelle", "Joshua", "Amanda", "Kevin", "Melissa",
    "Brian", "Rebecca", "Priya", "Wei", "Carlos", "Sofia", "Ahmed", "Fatima", "Hiroshi", "Yuki",
    "Olga", "Lars", "Ines", "Mateo", "Chloe", "Noah", "Aisha", "Ravi", "Elena", "Diego",
    "Hannah", "Omar", "Grace", "Lucas"};

constexpr SV kLast[] = {
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Chen", "Kim", "Singh",
    "Muller", "Rossi", "Tanaka", "Kowalski", "Novak", "Larsen"};

constexpr SV kStems[] = {"Blue", "North", "Silver", "Red", "Green", "Bright", "Stone", "Iron",
                         "Clear", "Swift", "Summit", "Harbor", "Cedar", "Maple", "Pine", "River",
                         "Sun", "Star", "Cloud", "Rock", "Oak", "Eagle", "Falcon", "Granite",
                         "Crystal", "Golden", "Prairie", "Coastal", "Atlas", "Vertex"};

constexpr SV kEndings[] = {"peak", "wind", "field", "bridge", "gate", "point", "stream", "line",
                           "works", "forge", "path", "light", "wave", "ridge", "craft", "dale",
                           "haven", "mark", "port", "shore"};

constexpr SV kKinds[] = {"Inc", "Systems", "Labs", "Group", "Technologies", "Health",
                         "Logistics", "Financial", "Software", "Partners", "Energy", "Retail"};

constexpr SV kTlds[] = {"com", "com", "com", "io", "co", "net", "ai", "de", "co.uk"};

constexpr SV kInternalTitles[] = {
    "Account Executive", "Senior Account Executive", "Sales Development Representative",
    "Customer Success Manager", "Solutions Engineer", "Sales Manager", "VP Sales",
    "Account Manager", "Sales Engineer", "Regional Director"};

constexpr SV kExternalTitles[] = {
    "CTO", "CFO", "VP Engineering", "Head of Operations", "IT Director", "Procurement Manager",
    "Product Manager", "Software Engineer", "Data Analyst", "Director of Finance",
    "Operations Manager", "CEO", "Head of Security", "Marketing Manager", "Office Manager"};

constexpr SV kTopics[] = {
    "pricing", "security review", "integration", "onboarding", "implementation timeline",
    "budget", "contract terms", "renewal", "competitor comparison", "product roadmap",
    "data migration", "user adoption", "support escalation", "reporting", "single sign-on",
    "compliance", "procurement process", "pilot scope", "success criteria", "training",
    "api access", "performance", "expansion", "discount request", "legal review",
    "stakeholder alignment", "next steps", "use cases", "deployment", "billing"};

constexpr SV kTrackers[] = {"pricing", "competitor:acme", "competitor:globex", "budget",
                            "timeline", "next-steps", "objection:price", "objection:timing",
                            "decision-maker", "security", "legal", "discount", "churn-risk",
                            "upsell", "filler-words"};

constexpr SV kVerbs[] = {"Send", "Schedule", "Share", "Review", "Follow up on", "Prepare",
                         "Confirm", "Draft", "Update", "Loop in legal on", "Check", "Book"};

constexpr SV kLanguages[] = {"en-US", "en-GB", "en-AU", "de-DE", "fr-FR", "es-ES", "pt-BR",
                             "nl-NL", "ja-JP"};

constexpr Stage kStages[] = {
    {"%c <> %o | Discovery", "discovery"},
    {"%o demo for %c", "demo"},
    {"%c - technical deep dive", "technical"},
    {"Pricing and proposal review with %c", "negotiation"},
    {"%c renewal discussion", "renewal"},
    {"%c onboarding kickoff", "onboarding"},
    {"%c quarterly business review", "qbr"},
    {"%c support escalation", "support"},
    {"Security questionnaire walkthrough - %c", "security"}};

constexpr SV kInternalMeetingTitles[] = {
    "Weekly pipeline review", "Team standup", "Forecast call", "Deal review: %c",
    "Enablement: objection handling", "Account planning: %c", "Sales and CS sync",
    "Quarterly kickoff", "Coaching session", "Win/loss review: %c"};

}  // namespace

std::span<const std::string_view> FirstNames() { return kFirst; }
std::span<const std::string_view> LastNames() { return kLast; }
std::span<const std::string_view> CompanyStems() { return kStems; }
std::span<const std::string_view> CompanyEndings() { return kEndings; }
std::span<const std::string_view> CompanyKinds() { return kKinds; }
std::span<const std::string_view> TopLevelDomains() { return kTlds; }
std::span<const std::string_view> InternalTitles() { return kInternalTitles; }
std::span<const std::string_view> ExternalTitles() { return kExternalTitles; }
std::span<const std::string_view> Topics() { return kTopics; }
std::span<const std::string_view> Trackers() { return kTrackers; }
std::span<const std::string_view> ActionVerbs() { return kVerbs; }
std::span<const std::string_view> Languages() { return kLanguages; }
std::span<const Stage> ExternalStages() { return kStages; }
std::span<const std::string_view> InternalMeetingTitles() { return kInternalMeetingTitles; }

}  // namespace callvault::workload::names
