"""Code and data versions that follow the parameters an asset was built with.

Dagster keeps run config out of data versions. Each asset therefore derives its data version from
its code version, the parameters that shape its output and its inputs' fingerprints; and its code
version includes a hash of its config defaults, so that editing a default in code marks the asset
(and, through the changed data version, everything downstream) unsynced.
"""

from typing import Any

import dagster as dg

from age_assets.storage import fingerprint

NOT_IN_VERSION = {"workers"}
"""Config fields that change how fast an asset is built, never what it contains."""

class VersionedConfig(dg.Config):
    """A Config whose fields shape the output, except those in ``NOT_IN_VERSION``."""

    def params(self) -> dict[str, Any]:
        return self.model_dump(exclude=NOT_IN_VERSION)

def code_version(revision: str, config: type[VersionedConfig]) -> str:
    """``revision`` (bump it when the code's output changes) plus a hash of the config defaults."""
    return f"{revision}.{fingerprint(config().params())[:8]}"

def data_version(code: str, config: VersionedConfig, *inputs: Any) -> str:
    return fingerprint(code, config.params(), *inputs)
