// Start-up reconcile: the records say what was intended, the helper's
// inventory says what is really mounted and attached. Half-done operations are
// finished (removals) or undone (creations); completed ones are left alone,
// because kubelet will call again for them. A record that cannot be read, or
// whose undo fails for good (not a transient error), is quarantined: moved
// aside, logged, counted and reported by Probe, so that one bad record never
// keeps the node from serving the others.

#include <set>

#include "agent/metrics.h"
#include "agent/node_service.h"
#include "agent/request_checks.h"
#include "common/logging.h"
#include "common/status.h"

namespace lbcsi::agent {

using state::EphemeralPhase;
using state::PublishPhase;
using state::StagePhase;
using state::VolumeRecord;

absl::StatusOr<int> NodeService::Reconcile(absl::Time deadline) {
  ASSIGN_OR_RETURN(hv1::InventoryResponse inv, deps_.helper->Inventory(HelperDeadline(deadline)));
  ASSIGN_OR_RETURN(std::vector<std::string> files, deps_.store->RecordFiles());
  auto quarantine = [&](const std::string& file, std::string_view reason, const absl::Status& why) {
    absl::Status moved = deps_.store->Quarantine(file);
    LOG(kError, "reconcile: quarantined a state record it cannot use; the volume needs a look",
        {"file", file}, {"reason", reason}, {"status", why}, {"moved", moved.ok()},
        {"quarantine_dir", deps_.store->quarantine_dir()});
    if (moved.ok()) {
      quarantined_.fetch_add(1);
      if (deps_.metrics != nullptr) {
        deps_.metrics->Increment(kQuarantinedTotal, {{"reason", std::string(reason)}});
      }
    }
    return moved;
  };
  std::vector<VolumeRecord> records;
  for (const std::string& file : files) {
    absl::StatusOr<VolumeRecord> rec = deps_.store->LoadFile(file);
    if (rec.ok()) {
      records.push_back(*std::move(rec));
    } else if (!IsTransient(rec.status())) {
      RETURN_IF_ERROR(quarantine(file, "unreadable", rec.status()));
    } else {
      return rec.status();
    }
  }
  std::set<std::string> mounted;
  for (const auto& m : inv.mounts()) mounted.insert(m.path());
  std::set<std::string> attached;
  for (const auto& a : inv.attached()) attached.insert(a.volume_uuid());

  int changed = 0;
  absl::Status first_error;
  for (VolumeRecord& rec : records) {
    InFlight::Guard guard = inflight_.TryAcquire(rec.volume_id);
    if (!guard.held()) continue;  // a CSI call got there first; it converges itself
    absl::Status s = [&]() -> absl::Status {
      if (rec.ephemeral) {
        if (rec.ephemeral->phase != EphemeralPhase::kPublished) {
          LOG(kInfo, "reconcile: finishing the removal of an inline volume",
              {"volume_id", rec.volume_id});
          ++changed;
          return DeleteEphemeral(rec, deadline, /*from_reconcile=*/true);
        }
        if (!mounted.count(rec.ephemeral->target_path)) {
          LOG(kWarn,
              "reconcile: inline volume is not mounted at its target (node restarted?); "
              "kept until kubelet publishes or unpublishes it",
              {"volume_id", rec.volume_id});
        }
        return absl::OkStatus();
      }
      bool dirty = false;
      for (auto it = rec.publishes.begin(); it != rec.publishes.end();) {
        if (it->second.phase == PublishPhase::kPublished) {
          if (!mounted.count(it->first)) {
            LOG(kWarn, "reconcile: published target is not mounted; kubelet will publish again",
                {"volume_id", rec.volume_id});
          }
          ++it;
          continue;
        }
        hv1::UnpublishRequest ureq;
        ureq.set_target_path(it->first);
        RETURN_IF_ERROR(deps_.helper->Unpublish(ureq, HelperDeadline(deadline)).status());
        it = rec.publishes.erase(it);
        dirty = true;
      }
      if (rec.stage && rec.stage->phase != StagePhase::kStaged && rec.publishes.empty()) {
        LOG(kInfo, "reconcile: undoing a half-done stage or finishing an unstage",
            {"volume_id", rec.volume_id});
        ++changed;
        return TearDownStage(rec, deadline, /*undo=*/true);
      }
      if (rec.stage && rec.stage->phase == StagePhase::kStaged &&
          (!attached.count(rec.volume_uuid) ||
           (!rec.stage->block && !mounted.count(rec.stage->path)))) {
        LOG(kWarn, "reconcile: staged volume is not attached or mounted; kubelet will stage again",
            {"volume_id", rec.volume_id});
      }
      if (dirty) {
        ++changed;
        return deps_.store->Put(rec);
      }
      return absl::OkStatus();
    }();
    if (!s.ok() && !IsTransient(s) && !IsSimulatedCrash(s)) {
      // Final: retrying cannot fix it, and failing here would keep Probe
      // not-ready for every other volume.
      RETURN_IF_ERROR(quarantine(state::Store::FileName(rec.volume_id), "undo failed", s));
    } else if (!s.ok()) {
      LOG(kWarn, "reconcile failed for a volume", {"volume_id", rec.volume_id}, {"status", s});
      if (first_error.ok()) first_error = s;
    }
  }
  if (!first_error.ok()) return first_error;
  return changed;
}

}  // namespace lbcsi::agent
