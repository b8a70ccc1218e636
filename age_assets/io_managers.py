"""Passes artifact handles between assets as small JSON pointers under the storage root."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from age_assets.artifacts import Ensemble, ImageSet, Manifest, TrainedModel
from age_assets.storage import atomic_write_text

Handle = Manifest | ImageSet | TrainedModel | Ensemble
HANDLE_TYPES = {cls.__name__: cls for cls in (Manifest, ImageSet, TrainedModel, Ensemble)}


class MissingUpstreamError(RuntimeError):
    """An input asset was never materialized, or its artifact has since been deleted."""


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Stores, per asset, a pointer to its artifact folder; the arrays themselves never move.

    Unlike pickling the output, this keeps the stored state readable (``cat`` a pointer) and lets a
    missing upstream fail with a message that says what to materialize.
    """

    data_dir: str

    def _pointer(self, key: dg.AssetKey) -> Path:
        return Path(self.data_dir).resolve() / "pointers" / f"{'.'.join(key.path)}.json"

    def handle_output(self, context: dg.OutputContext, obj: Handle) -> None:
        root = Path(self.data_dir).resolve()
        record = {"type": type(obj).__name__, "folder": str(Path(obj.folder).relative_to(root)),
                  "fingerprint": obj.fingerprint}
        atomic_write_text(self._pointer(context.asset_key), json.dumps(record, indent=1))

    def load_input(self, context: dg.InputContext) -> Handle:
        key = context.asset_key
        name = key.to_user_string()
        pointer = self._pointer(key)
        needed_by = context.op_def.name if context.has_asset_key else name
        hint = (f"Materialize it together with what needs it: "
                f"dagster asset materialize -m age_assets --select '*{needed_by}'")
        if not pointer.exists():
            raise MissingUpstreamError(f"asset '{name}' has not been materialized under {self.data_dir}. {hint}")
        record = json.loads(pointer.read_text())
        folder = Path(self.data_dir).resolve() / record["folder"]
        if not folder.is_dir():
            raise MissingUpstreamError(f"the artifact of asset '{name}' ({folder}) is gone. {hint}")
        return HANDLE_TYPES[record["type"]](folder, record["fingerprint"])
