#pragma once
// Which sanitizer this build runs under, for the few places that behave differently there: GCC
// defines __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__, clang (the fuzzers) answers __has_feature.
// QE_ADDRESS_SANITIZER and QE_THREAD_SANITIZER are 1 or 0.

#if defined(__SANITIZE_ADDRESS__)
#define QE_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QE_ADDRESS_SANITIZER 1
#endif
#endif
#ifndef QE_ADDRESS_SANITIZER
#define QE_ADDRESS_SANITIZER 0
#endif

#if defined(__SANITIZE_THREAD__)
#define QE_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QE_THREAD_SANITIZER 1
#endif
#endif
#ifndef QE_THREAD_SANITIZER
#define QE_THREAD_SANITIZER 0
#endif
