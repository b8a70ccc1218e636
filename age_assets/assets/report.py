"""evaluation_report: test-split metrics of every model, the ensemble and every classifier."""

import json
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from age_assets.artifacts import PROBABILITY_COLUMNS, Ensemble, Export, ImageSet, Report, TrainedModel
from age_assets.assets.metadata import png
from age_assets.assets.names import EVALUATION
from age_assets.assets.outputs import cost_metadata
from age_assets.assets.versioning import VersionedConfig, code_version, data_version
from age_assets.ml.evaluation import classifier_metrics, has_votes, markdown_report, regressor_metrics
from age_assets.ml.groups import group_report
from age_assets.ml.intervals import IntervalTable, interval_scores, intervals_markdown
from age_assets.plots import error_distribution, group_errors, predicted_vs_true
from age_assets.resources import Storage
from age_assets.storage import atomic_write_text, build_once


class ReportConfig(VersionedConfig):
    pass


REPORT_VERSION = code_version("6", ReportConfig)


def _test_intervals(exported_model: Export, ages: np.ndarray, labels: pd.DataFrame) -> dict:
    """Coverage and width on the test split of the export's intervals, applied to the ensemble's ages
    (what the export computes, to its agreement check)."""
    table = IntervalTable.from_json(exported_model.info()["intervals"])
    return interval_scores(labels["real_age"].to_numpy(), table(ages))


def report_asset(backbones: list[str]) -> dg.AssetsDefinition:
    models = [f"model_{b}" for b in backbones]
    classifiers = [f"classifier_{b}" for b in backbones]
    bucket_models = [*classifiers, "bucket_ensemble"]

    @dg.asset(
        ins={name: dg.AssetIn() for name in models + bucket_models},
        code_version=REPORT_VERSION,
        kinds={"pandas", "markdown"},
        group_name=EVALUATION,
        description="Test-split metrics for every model, the ensemble and every classifier (of ages too, for "
                    "classifiers over years); "
                    "the ensemble per gender, race and age band; the coverage and width of the exported model's "
                    "age intervals; "
                    "`<data dir>/reports/evaluation.json` and `evaluation.md`.",
    )
    def evaluation_report(
        context: dg.AssetExecutionContext, config: ReportConfig, image_arrays: ImageSet, ensemble: Ensemble,
        exported_model: Export, storage: Storage, **trained: TrainedModel,
    ) -> dg.Output[Report]:
        started = time.perf_counter()
        fingerprint = data_version(REPORT_VERSION, config, image_arrays.fingerprint, ensemble.fingerprint,
                                   exported_model.fingerprint, {k: v.fingerprint for k, v in sorted(trained.items())})
        labels = image_arrays.labels("test")
        buckets = {name: trained[name].predictions("test") for name in bucket_models}
        predictions = {name: trained[name].predictions("test")["age"].to_numpy()
                       for name in models + classifiers if trained[name].predicts_age}
        predictions["ensemble"] = ensemble.predictions("test")["age"].to_numpy()
        report = {
            "dataset": {"test_images": len(labels), "target": ensemble.info()["target"],
                        "has_apparent_age": has_votes(labels)},
            "ages": {name: regressor_metrics(pred, labels) for name, pred in predictions.items()},
            "classifiers": {name: classifier_metrics(buckets[name]["bucket"].to_numpy(), labels)
                            for name in classifiers},
        }
        if len(classifiers) > 1:
            averaged = np.mean([buckets[name][PROBABILITY_COLUMNS].to_numpy() for name in classifiers], axis=0)
            report["classifiers"]["classifiers_averaged"] = classifier_metrics(averaged.argmax(axis=1), labels)
        report["classifiers"]["bucket_ensemble"] = classifier_metrics(buckets["bucket_ensemble"]["bucket"].to_numpy(),
                                                                      labels)
        report["groups"] = group_report(predictions["ensemble"], labels)
        report["intervals"] = _test_intervals(exported_model, predictions["ensemble"], labels)
        markdown = markdown_report(report) + intervals_markdown(report["intervals"])
        truth = labels["real_age"].to_numpy()

        def build(folder: Path) -> None:
            (folder / "evaluation.json").write_text(json.dumps(report, indent=1))
            (folder / "evaluation.md").write_text(markdown)
            (folder / "predicted_vs_true.png").write_bytes(
                predicted_vs_true({n: (truth, p) for n, p in predictions.items()}))
            (folder / "errors.png").write_bytes(error_distribution({n: p - truth for n, p in predictions.items()}))
            (folder / "groups.png").write_bytes(group_errors(report["groups"]["groups"],
                                                             report["groups"]["overall"]["mae"]))

        folder = storage.artifact("evaluation_report", fingerprint)
        reused = build_once(folder, build)
        for name in ("evaluation.json", "evaluation.md"):
            atomic_write_text(storage.root / "reports" / name, (folder / name).read_text())
        context.log.info(markdown)
        best = min(report["ages"], key=lambda n: report["ages"][n]["mae"])
        return dg.Output(Report(folder, fingerprint), data_version=dg.DataVersion(fingerprint), metadata={
            "report": dg.MetadataValue.md(markdown),
            "test_mae_ensemble": round(report["ages"]["ensemble"]["mae"], 2),
            "test_mae_best_single": round(min(m["mae"] for n, m in report["ages"].items() if n != "ensemble"), 2),
            "best": best,
            "bucket_accuracy_best_classifier": round(max((m["accuracy"] for m in report["classifiers"].values()),
                                                         default=0.0), 3),
            "predicted_vs_true": png((folder / "predicted_vs_true.png").read_bytes(), "predicted vs true"),
            "errors": png((folder / "errors.png").read_bytes(), "error distribution"),
            "groups": png((folder / "groups.png").read_bytes(), "ensemble MAE per group"),
            "groups_above_overall": ", ".join(report["groups"]["above_overall"]) or "none",
            "json": dg.MetadataValue.path(str(storage.root / "reports" / "evaluation.json")),
            **cost_metadata(folder, started, reused),
        })

    return evaluation_report
