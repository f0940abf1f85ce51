#pragma once
// Named points between the steps of each node operation (every helper call
// boundary, before and after every state write). Tests install a hook that
// fails at one point; the operation then returns at once, skipping every
// rollback, as if the process had died there. Production never installs one.

#include <functional>
#include <string_view>

#include <absl/status/status.h>

#include "common/status.h"

namespace lbcsi::agent {

using CrashHook = std::function<absl::Status(std::string_view point)>;

// The status a hook returns to simulate a crash; IsSimulatedCrash() tells it apart.
absl::Status SimulatedCrash(std::string_view point);
bool IsSimulatedCrash(const absl::Status& status);

// In NodeService's operations: stop here when a test's hook says so. The one
// definition, so every operation passes its points the same way.
#define CHECKPOINT(point) RETURN_IF_ERROR(Checkpoint(point))

// Every point the node service passes, for tests that walk all of them.
inline constexpr std::string_view kCrashPoints[] = {
    "stage.before_intent",         "stage.after_intent",         "stage.after_attach",
    "stage.after_probe",           "stage.after_format",         "stage.after_mount",
    "stage.before_done",           "stage.after_done",           "unstage.before_intent",
    "unstage.after_intent",        "unstage.after_unmount",      "unstage.after_detach",
    "unstage.after_remove",        "publish.before_intent",      "publish.after_intent",
    "publish.after_publish",       "publish.after_done",         "unpublish.before_intent",
    "unpublish.after_intent",      "unpublish.after_unpublish",  "unpublish.after_remove",
    "eph_publish.before_intent",   "eph_publish.after_intent",   "eph_publish.after_create",
    "eph_publish.after_created",   "eph_publish.after_attach",   "eph_publish.after_probe",
    "eph_publish.after_format",    "eph_publish.after_mount",    "eph_publish.after_publish",
    "eph_publish.after_done",      "eph_unpublish.after_intent", "eph_unpublish.after_unpublish",
    "eph_unpublish.after_unmount", "eph_unpublish.after_detach", "eph_unpublish.after_delete",
    "eph_unpublish.after_remove",
};

}  // namespace lbcsi::agent
