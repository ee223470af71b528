#pragma once
// What the two tests of the quantization configuration share (tst_config_file: the file format;
// tst_config_resolve: overrides, resolution and validation): the model's layer names, a minimal
// document, and a check that turns a qe::Error into a test failure.

#include "common/error.h"
#include "quant/config.h"

#include <QString>
#include <QtTest>

#include <set>
#include <string>

namespace qe::test {

inline const std::set<std::string> kLayers = {"conv1", "conv2", "fc1", "fc2", "features.0/Conv"};

// A minimal valid document with `layers` (JSON text) and optional extra top-level members.
inline QString document(const QString& extra)
{
    return R"({"format": "quantexplorer-config", "version": 1)" + (extra.isEmpty() ? QString() : ", " + extra) +
           "}";
}

}  // namespace qe::test

// Runs `statement`; a qe::Error fails the test with its message instead of aborting the run.
#define QE_NO_ERROR(statement)                                                                       \
    do {                                                                                             \
        try {                                                                                        \
            statement;                                                                               \
        } catch (const qe::Error& e) {                                                               \
            QFAIL(e.what());                                                                         \
        }                                                                                            \
    } while (0)
