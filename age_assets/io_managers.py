"""Passes artifact handles between assets as small JSON pointers under the storage root."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from age_assets.artifacts import Ensemble, Export, ImageSet, Manifest, TrainedModel
from age_assets.resources import Storage
from age_assets.storage import Pointer, atomic_write_text

Handle = Manifest | ImageSet | TrainedModel | Ensemble | Export
HANDLE_TYPES = {cls.__name__: cls for cls in (Manifest, ImageSet, TrainedModel, Ensemble, Export)}


class MissingUpstreamError(RuntimeError):
    """An input asset was never materialized, or its artifact has since been deleted."""


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Stores, per asset, a pointer to its artifact folder; the arrays themselves never move.

    Unlike pickling the output, this keeps the stored state readable (``cat`` a pointer) and lets a
    missing upstream fail with a message that says what to materialize.
    """

    storage: Storage

    @property
    def _root(self) -> Path:
        return self.storage.root

    def handle_output(self, context: dg.OutputContext, obj: Handle) -> None:
        pointer = Pointer(type(obj).__name__, Path(obj.folder), obj.fingerprint)
        atomic_write_text(Pointer.path(self._root, '.'.join(context.asset_key.path)), pointer.text(self._root))

    def load_input(self, context: dg.InputContext) -> Handle:
        key = context.asset_key
        name = key.to_user_string()
        needed_by = context.op_def.name if context.has_asset_key else name
        hint = (f"Materialize it together with what needs it: dg launch --assets '*{needed_by}' "
                f"(or: dagster asset materialize -m age_assets --select '*{needed_by}')")
        pointer = Pointer.read(self._root, '.'.join(key.path))
        if pointer is None:
            raise MissingUpstreamError(f"asset '{name}' has not been materialized under {self._root}. {hint}")
        if not pointer.folder.is_dir():
            raise MissingUpstreamError(f"the artifact of asset '{name}' ({pointer.folder}) is gone. {hint}")
        return HANDLE_TYPES[pointer.type](pointer.folder, pointer.fingerprint)
