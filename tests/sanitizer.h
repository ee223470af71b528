#pragma once
// Whether this test program runs under a sanitizer: scripts/test.sh's second pass (AddressSanitizer
// + UndefinedBehaviorSanitizer) or scripts/test-tsan.sh (ThreadSanitizer). There the work that is
// proportional to the images or iterations a test runs is cut, because memory errors, undefined
// behaviour and races do not depend on how many images pass through the same code, while the
// slowdown does. What needs the full count (accuracy bars, published numbers, reductions of an
// error that only show after many iterations) is checked by the normal pass, which runs the same
// test programs unchanged.

#include "common/sanitizers.h"

#if QE_ADDRESS_SANITIZER || QE_THREAD_SANITIZER
#define QE_SANITIZER_BUILD 1
#endif

namespace qe::test {

#ifdef QE_SANITIZER_BUILD
inline constexpr bool kSanitizerBuild = true;
#else
inline constexpr bool kSanitizerBuild = false;
#endif

// `normal`, or `underSanitizer` in a sanitizer build.
template <typename T>
constexpr T unlessSanitized(T normal, T underSanitizer)
{
    return kSanitizerBuild ? underSanitizer : normal;
}

}  // namespace qe::test
