// CV_SANITIZED is defined in ASan and TSan builds: gcc names them with
// __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__, clang with __has_feature.
// Tests of timing or of where the allocator places memory skip or loosen
// their checks there.
#ifndef CALLVAULT_TESTS_TESTUTIL_SANITIZERS_H_
#define CALLVAULT_TESTS_TESTUTIL_SANITIZERS_H_

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CV_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CV_SANITIZED 1
#endif
#endif

#endif  // CALLVAULT_TESTS_TESTUTIL_SANITIZERS_H_
