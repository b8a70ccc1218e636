"""model_card: MODEL_CARD.md beside the exported model's files, from the run's own report and splits.

An asset of its own after both exported_model and evaluation_report, rather than a step inside
exported_model: the export does not wait for the evaluation (nor is rebuilt when only the report's
wording changes), and the card still lies in the export's folder, so it travels with the files.
"""

import dagster as dg

from age_assets.artifacts import Export, ImageSet, Report
from age_assets.assets.names import EVALUATION
from age_assets.assets.versioning import VersionedConfig, code_version, data_version
from age_assets.datasets.manifest import SPLITS
from age_assets.ml.model_card import CARD, model_card as card_text
from age_assets.storage import atomic_write_text


class ModelCardConfig(VersionedConfig):
    pass


MODEL_CARD_VERSION = code_version("1", ModelCardConfig)


@dg.asset(
    code_version=MODEL_CARD_VERSION,
    kinds={"markdown"},
    group_name=EVALUATION,
    description=f"`{CARD}` in the exported model's folder: what the model is, its data and splits, its test "
                "figures overall, per age band and per group, its interval coverage, how it runs, its limits.",
)
def model_card(config: ModelCardConfig, exported_model: Export, evaluation_report: Report,
               image_arrays: ImageSet) -> dg.MaterializeResult:
    labels = {split: image_arrays.labels(split) for split in SPLITS if split in image_arrays.splits}
    text = card_text(evaluation_report.report(), exported_model.info(), labels)
    path = exported_model.folder / CARD
    atomic_write_text(path, text)
    fingerprint = data_version(MODEL_CARD_VERSION, config, exported_model.fingerprint,
                               evaluation_report.fingerprint, image_arrays.fingerprint)
    return dg.MaterializeResult(data_version=dg.DataVersion(fingerprint), metadata={
        "card": dg.MetadataValue.md(text),
        "path": dg.MetadataValue.path(str(path)),
        "folder": dg.MetadataValue.path(str(exported_model.folder)),
    })
