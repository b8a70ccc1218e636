"""Passes artifact handles between assets as small JSON pointers under the storage root."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from age_assets import retention
from age_assets.artifacts import Ensemble, Export, ImageSet, Manifest, Report, TrainedModel
from age_assets.resources import Storage
from age_assets.storage import Pointer, atomic_write_text

if TYPE_CHECKING:
    from dagster._core.execution.context.system import StepExecutionContext

Handle = Manifest | ImageSet | TrainedModel | Ensemble | Export | Report
HANDLE_TYPES = {cls.__name__: cls for cls in (Manifest, ImageSet, TrainedModel, Ensemble, Export, Report)}


class MissingUpstreamError(RuntimeError):
    """An input asset was never materialized, or its artifact has since been deleted."""


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Stores, per asset, a pointer to its artifact folder; the arrays themselves never move.

    Unlike pickling the output, this keeps the stored state readable (``cat`` a pointer) and lets a
    missing upstream fail with a message that says what to materialize.

    Runs never hand each other artifacts: each output is also recorded under the run's id, and a
    step reads an upstream that its own run materialized from there; one from outside its run is
    the version that was current when the run started (its last materialization before then in
    the event log). Each input's fingerprint and where it came from show in the step's metadata.
    """

    storage: Storage

    @property
    def _root(self) -> Path:
        return self.storage.root

    def handle_output(self, context: dg.OutputContext, obj: Handle) -> None:
        asset = ".".join(context.asset_key.path)
        text = Pointer(type(obj).__name__, Path(obj.folder), obj.fingerprint).text(self._root)
        atomic_write_text(Pointer.path(self._root, asset, context.run_id), text)
        atomic_write_text(Pointer.path(self._root, asset), text)
        if self.storage.keep_versions:
            running, pinned = running_runs(context.step_context.instance, self._root)
            chosen = retention.removable({asset: retention.versions(self._root).get(asset, [])},
                                         self.storage.keep_versions, retention.in_use(self._root, running, pinned))
            if chosen:
                freed = retention.remove(chosen)
                context.log.info(f"removed {len(chosen)} old version(s) of {asset}, {retention.gigabytes(freed)}")

    def load_input(self, context: dg.InputContext) -> Handle:
        key = context.asset_key
        name = key.to_user_string()
        needed_by = context.op_def.name if context.has_asset_key else name
        hint = (f"Materialize it together with what needs it: dg launch --assets '*{needed_by}' "
                f"(or: dagster asset materialize -m age_assets --select '*{needed_by}')")
        asset = ".".join(key.path)
        step = _step(context)
        pointer, source = (Pointer.read(self._root, asset, step.run_id) if step else None), "this run"
        if pointer is None:
            pointer, source = self._before_the_run(step, context.asset_key, asset), "before this run"
        if pointer is None:
            raise MissingUpstreamError(f"asset '{name}' has not been materialized under {self._root}. {hint}")
        if not pointer.folder.is_dir():
            raise MissingUpstreamError(f"the artifact of asset '{name}' ({pointer.folder}) is gone. {hint}")
        context.add_input_metadata({"fingerprint": pointer.fingerprint, "materialized": source})
        return HANDLE_TYPES[pointer.type](pointer.folder, pointer.fingerprint)

    def _before_the_run(self, step: StepExecutionContext | None, key: dg.AssetKey, asset: str) -> Pointer | None:
        """The version of ``asset`` that was current when this run started: its last materialization
        before then in the instance's event log, or the latest pointer where the log has none (an
        artifact built under another Dagster instance) or outside a run."""
        latest = Pointer.read(self._root, asset)
        run = step.instance.get_run_record_by_id(step.run_id) if step and latest else None
        if step is None or latest is None or run is None:
            return latest
        fingerprint = _fingerprint_before(step.instance, key, run.create_timestamp.timestamp())
        if fingerprint is None:
            return latest
        return Pointer(latest.type, self.storage.artifact(asset, fingerprint), fingerprint)


def _step(context: dg.InputContext) -> StepExecutionContext | None:
    """The step loading the input, or None where a value is loaded outside a run."""
    try:
        return context.step_context
    except dg.DagsterInvariantViolationError:
        return None


RUNNING = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
           dg.DagsterRunStatus.STARTED)


def running_runs(instance: dg.DagsterInstance, root: Path) -> tuple[list[str], list[Path]]:
    """The ids of the instance's runs that have not finished, and the artifact folders they may
    still read from before they started (each asset's last materialization before each run)."""
    runs = instance.get_run_records(dg.RunsFilter(statuses=list(RUNNING)))
    pinned: list[Path] = []
    for run in runs:
        for asset in (root / "artifacts").glob("*"):
            fingerprint = _fingerprint_before(instance, dg.AssetKey(asset.name), run.create_timestamp.timestamp())
            if fingerprint is not None:
                pinned.append(asset / fingerprint)
    return [run.dagster_run.run_id for run in runs], pinned


def _fingerprint_before(instance: dg.DagsterInstance, key: dg.AssetKey, timestamp: float) -> str | None:
    """The fingerprint of ``key``'s last materialization before ``timestamp`` in the event log."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, before_timestamp=timestamp), limit=1).records
    materialization = records[0].asset_materialization if records else None
    fingerprint = materialization.metadata.get("fingerprint") if materialization else None
    return None if fingerprint is None else str(fingerprint.value)
