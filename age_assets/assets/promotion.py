"""promoted_model: the export that predict and serve use, replaced by a new export only when that one
is not worse on the reference faces; and the blocking check that refuses a worse one."""

import dagster as dg
from pydantic import Field

from age_assets.artifacts import Export, ImageSet
from age_assets.assets.names import MODELS
from age_assets.promotion import PROMOTED, Decision, decide
from age_assets.resources import Storage
from age_assets.storage import Pointer

DEFAULT_TOLERANCE_YEARS = 0.1
"""Members of the same settings move by 0.05-0.1 years of validation MAE between trainings."""


class PromotionGate(dg.ConfigurableResource):
    """How much worse than the promoted model a new export may be and still replace it
    (``AGE_ASSETS_PROMOTION_TOLERANCE``)."""

    tolerance_years: float = Field(default=DEFAULT_TOLERANCE_YEARS, ge=0,
                                   description="Largest rise in MAE on the reference faces that counts as noise")


def _decision(storage: Storage, gate: PromotionGate, image_arrays: ImageSet, exported_model: Export) -> Decision:
    challenger = Pointer("Export", exported_model.folder, exported_model.fingerprint)
    return decide(storage.root, challenger, image_arrays.images("test"), image_arrays.labels("test"),
                  gate.tolerance_years)


@dg.asset_check(asset="exported_model", blocking=True, additional_ins={"image_arrays": dg.AssetIn("image_arrays")},
                description="A new export is not worse than the promoted model, on the reference faces, by more "
                            "than the promotion tolerance; a worse one is not promoted.")
def not_worse_than_promoted(image_arrays: ImageSet, exported_model: Export, storage: Storage,
                            promotion: PromotionGate) -> dg.AssetCheckResult:
    decision = _decision(storage, promotion, image_arrays, exported_model)
    return dg.AssetCheckResult(passed=decision.promote, severity=dg.AssetCheckSeverity.ERROR,
                               description=decision.message(), metadata=decision.metadata())


@dg.asset(
    group_name=MODELS,
    kinds={"tflite", "onnx"},
    ins={"image_arrays": dg.AssetIn(), "exported_model": dg.AssetIn()},
    description="The export in use: `age-assets predict` and `serve` run it. A new export replaces it only if "
                "its MAE on the reference faces (the test split of the first promotion) is not worse by more "
                "than the tolerance.",
)
def promoted_model(context: dg.AssetExecutionContext, image_arrays: ImageSet, exported_model: Export,
                   storage: Storage, promotion: PromotionGate) -> dg.Output[Export]:
    decision = _decision(storage, promotion, image_arrays, exported_model)
    if not decision.promote:
        raise dg.Failure(description=f"{exported_model.folder} was not promoted: {decision.message()}",
                         metadata=decision.metadata())
    previous = Pointer.read(storage.root, PROMOTED)
    context.log.info(decision.message())
    return dg.Output(exported_model, data_version=dg.DataVersion(exported_model.fingerprint), metadata={
        **decision.metadata(), "fingerprint": exported_model.fingerprint,
        "replaced": previous.fingerprint if previous else ""})
