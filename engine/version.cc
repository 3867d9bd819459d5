#include "callvault/version.h"

namespace callvault {

const char* LibraryVersion() { return CALLVAULT_VERSION_STRING; }

}  // namespace callvault
