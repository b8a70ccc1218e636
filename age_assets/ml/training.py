"""Fitting a (tail) model on cached features or on image stacks, with early stopping."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from age_assets.ml.features import Preprocess, model_input
from age_assets.ml.progress import Log, Progress
from age_assets.ml.specs import FitSpec

REGRESSION_LOSSES = ("mae", "mse", "huber")


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


class TrainingStalled(RuntimeError):
    """The model gives every input the same output: a saturated (dead) output that cannot learn."""


def same_for_every_input(outputs: np.ndarray) -> bool:
    """Whether every row of ``outputs`` is the same, up to float32 rounding."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return bool(outputs.std(axis=0).max() <= 1e-7 * max(1.0, np.abs(outputs).max()))


class OutputWatch(keras.callbacks.Callback):
    """Stops training after the first epoch that leaves every probe input with the same output.

    A saturated sigmoid or softmax, or a layer of ReLUs that all died, has no gradient left: the
    epochs after it change nothing, so the run stops there. Early stopping then restores the best
    epoch's weights, and ``fit`` fails only if those give every input the same output too.
    """

    def __init__(self, probe: Any):
        super().__init__()
        self.probe = probe
        self.stalled_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if same_for_every_input(self.model.predict(self.probe, batch_size=256, verbose=0)):
            self.stalled_at = epoch + 1
            self.model.stop_training = True


class EpochProgress(keras.callbacks.Callback):
    """Logs each epoch's progress in batches (``ml.progress``): epochs of several minutes on a CPU."""

    def __init__(self, log: Log):
        super().__init__()
        self.log = log
        self.progress: Progress | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.progress = Progress(self.log, f"epoch {epoch + 1}", self.params.get("steps") or 0, unit="batches")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.progress is not None and self.progress.total:
            self.progress.advance(1)


class StackBatches(keras.utils.PyDataset):
    """Shuffled batches of rows from ``.npy`` stacks on disk (one stack per model input), read in
    worker threads ahead of training.

    Each batch maps its files anew and reads just its rows, so resident memory holds a few batches
    however large the stacks grow (a fourfold augmented training split's features, say).
    ``transform`` turns the rows read (one array, or a tuple for several stacks) into model input.
    """

    def __init__(self, stacks: list[Path], targets: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                 transform: Callable[[Any], Any] | None = None, workers: int = 2):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.stacks, self.targets, self.transform = list(stacks), targets, transform
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(targets)) if shuffle else np.arange(len(targets))

    def __len__(self) -> int:
        return math.ceil(len(self.targets) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray]:
        rows = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        parts = []
        for path in self.stacks:
            stack = np.load(path, mmap_mode="r")
            parts.append(np.asarray(stack[rows]))
            del stack
        x = parts[0] if len(parts) == 1 else tuple(parts)
        return (self.transform(x) if self.transform else x), self.targets[rows]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.targets))


def image_batches(images: Path, targets: np.ndarray, preprocess: Preprocess, batch_size: int, shuffle: bool,
                  seed: int = 0) -> StackBatches:
    """Batches of a uint8 image stack as the float input a backbone expects."""
    return StackBatches([images], targets, batch_size, shuffle, seed, lambda x: model_input(x, preprocess))


def _optimizer(spec: FitSpec) -> keras.optimizers.Optimizer:
    optimizers = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}
    if spec.optimizer not in optimizers:
        raise ValueError(f"unknown optimizer {spec.optimizer!r}; use one of {', '.join(optimizers)}")
    return optimizers[spec.optimizer](learning_rate=spec.learning_rate)


def fit(
    model: keras.Model,
    train: tuple[object, np.ndarray | None],
    valid: tuple[object, np.ndarray | None],
    spec: FitSpec,
    metric: str | keras.metrics.Metric,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    loss: str | Callable | None = None,
    probe: Any = None,
    log: Log | None = None,
) -> dict[str, list[float]]:
    """Compile and fit ``model``; keep the weights of the epoch with the best validation ``metric``.

    ``train`` and ``valid`` are (inputs, targets) pairs, or (PyDataset, None). ``loss`` replaces
    ``spec.loss`` where a loss is not one of Keras' names. Raises ``TrainingDiverged`` when the loss
    stops being finite, and ``TrainingStalled`` when every input of ``probe`` (some validation
    inputs) gets the same output after an epoch. ``log`` gets each epoch's progress.
    """
    keras.utils.set_random_seed(spec.seed)
    model.compile(optimizer=_optimizer(spec), loss=loss or spec.loss, metrics=[metric])
    name = metric if isinstance(metric, str) else metric.name
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(monitor=f"val_{name}", patience=spec.patience,
                                      restore_best_weights=True, mode="min" if name == "mae" else "max"),
    ]
    if log:
        callbacks.append(EpochProgress(log))
    watch = OutputWatch(probe) if probe is not None else None
    if watch:
        callbacks.append(watch)
    if on_epoch:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, dict(logs or {}))))
    x, y = train
    history = model.fit(
        x, y, validation_data=valid if valid[1] is not None else valid[0],
        epochs=spec.epochs, batch_size=spec.batch_size if y is not None else None,
        shuffle=True, callbacks=callbacks, verbose=0,
    ).history
    losses = history.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        raise TrainingDiverged(
            f"training loss became {losses[-1] if losses else 'undefined'} at epoch {len(losses)}; "
            f"try a lower learning_rate than {spec.learning_rate}"
        )
    stalled_at = watch.stalled_at if watch else None
    if stalled_at is None:
        return history
    outputs = np.asarray(model.predict(probe, batch_size=256, verbose=0))
    if same_for_every_input(outputs):
        regressor = loss is None and spec.loss in REGRESSION_LOSSES
        hint = ", the output 'linear', or the loss 'mae'" if regressor else ""
        raise TrainingStalled(
            f"after epoch {stalled_at} every validation face gets the same output "
            f"({float(outputs.reshape(len(outputs), -1)[0, 0]):.4g}), and so it does with the best epoch's weights: "
            f"the output saturated or every unit before it died, and it can no longer learn. Try a lower "
            f"learning_rate than {spec.learning_rate}{hint}"
        )
    return history
