"""Scheduled retraining, and a sensor that reruns the graph when the raw data changes.

Both are stopped by default: retraining costs hours of CPU, so a user switches them on in the UI
(or with ``dagster schedule start`` / ``dagster sensor start``) when they want it.
"""

from __future__ import annotations

import dagster as dg

from age_assets.assets.names import EVALUATION, MODELS
from age_assets.resources import DatasetSource

DEFAULT_RETRAIN_CRON = "0 3 * * 1"
"""Mondays at 03:00."""

RETRAINED = dg.AssetSelection.groups(MODELS, EVALUATION)
"""Regressors, classifiers, both ensembles, the exported model and the report, trained on the stored data assets."""


def retraining_schedule(cron: str = DEFAULT_RETRAIN_CRON) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="weekly_retraining",
        cron_schedule=cron,
        target=RETRAINED,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Retrains every model, classifier, the ensemble, the report and the exported model on the stored data."
        ),
    )


@dg.sensor(
    name="raw_data_changed",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=600,
    description="Reruns the graph from raw_dataset when the dataset's files change (added, removed, "
                "edited images; a replaced archive). The first evaluation only records the current state.",
)
def raw_data_changed(context: dg.SensorEvaluationContext, dataset: DatasetSource) -> dg.SensorResult:
    state = dataset.state()
    if context.cursor is None:
        return dg.SensorResult(skip_reason=f"recorded the state of {dataset.describe()}", cursor=state)
    if context.cursor == state:
        return dg.SensorResult(skip_reason=f"{dataset.describe()} is unchanged", cursor=state)
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=state)], cursor=state)
