"""Fitting a (tail) model on cached features or on image stacks, with early stopping."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from age_assets.ml.features import Preprocess, model_input
from age_assets.ml.progress import Log, Progress
from age_assets.ml.specs import FitSpec
from age_assets.storage import atomic_write_text

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


class ResumedState(keras.callbacks.Callback):
    """What Keras' ``BackupAndRestore`` leaves out, saved beside its checkpoint after every epoch and
    restored when training resumes: the history so far and early stopping's state (best score,
    epochs since, best weights), so that a resumed run stops and keeps the epoch an unbroken one would.

    Keep it before ``BackupAndRestore`` in the callbacks: an epoch's state is then on disk before
    the checkpoint that says the epoch finished.
    """

    def __init__(self, folder: Path, stopping: keras.callbacks.EarlyStopping, log: Log | None = None):
        super().__init__()
        self.folder, self.stopping, self.log = folder, stopping, log
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        state, finished = self.folder / "state.json", self.folder / "training_metadata.json"
        self.history = {}
        if not (state.is_file() and finished.is_file()):
            return
        saved = json.loads(state.read_text())
        done = int(json.loads(finished.read_text())["epoch"])
        self.history = {name: values[:done] for name, values in saved["history"].items()}
        stopping = self.stopping
        stopping.best, stopping.wait, stopping.best_epoch = saved["best"], saved["wait"], saved["best_epoch"]
        if (self.folder / "best.npz").is_file():
            with np.load(self.folder / "best.npz") as best:
                self.stopping.best_weights = [best[f"arr_{i}"] for i in range(len(best.files))]
        if self.log:
            self.log(f"resuming at epoch {done + 1} from {self.folder}")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.stopping.best_weights is not None:
            np.savez(self.folder / "best.npz.tmp.npz", *self.stopping.best_weights)
            os.replace(self.folder / "best.npz.tmp.npz", self.folder / "best.npz")
        atomic_write_text(self.folder / "state.json", json.dumps({
            "history": self.history, "best": self.stopping.best, "wait": self.stopping.wait,
            "best_epoch": self.stopping.best_epoch}))


class StackBatches(keras.utils.PyDataset):
    """Shuffled batches of rows from ``.npy`` stacks on disk (one stack per model input), read in
    worker threads ahead of training.

    Each batch maps its files anew and reads just its rows, so resident memory holds a few batches
    however large the stacks grow (a fourfold augmented training split's features, say).
    ``draws`` (one count per row, default 1) oversamples: a row drawn twice appears twice an epoch.
    ``transform`` turns the rows read (one array, or a tuple for several stacks) into model input.
    """

    def __init__(self, stacks: list[Path], targets: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0,
                 transform: Callable[[Any], Any] | None = None, workers: int = 2, draws: np.ndarray | None = None):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.stacks, self.targets, self.transform = list(stacks), targets, transform
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rows = np.arange(len(targets)) if draws is None else np.repeat(np.arange(len(targets)), draws)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.rows) if shuffle else self.rows

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

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
            self.order = self.rng.permutation(self.rows)


def image_batches(images: Path, targets: np.ndarray, preprocess: Preprocess, batch_size: int, shuffle: bool,
                  seed: int = 0, draws: np.ndarray | None = None) -> StackBatches:
    """Batches of a uint8 image stack as the float input a backbone expects."""
    return StackBatches([images], targets, batch_size, shuffle, seed, lambda x: model_input(x, preprocess),
                        draws=draws)


def learning_rate(spec: FitSpec, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``spec.learning_rate``, constant or decayed along a half cosine to 0 at the end of the last epoch.

    A few epochs over a large augmented split overfit from the second on at a constant rate; the
    decay takes the last epochs in small steps, where the validation score is best, instead of
    leaving the choice to the noise of one large step.
    """
    if spec.schedule == "constant":
        return spec.learning_rate
    if spec.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(spec.learning_rate, max(1, spec.epochs * steps_per_epoch))
    raise ValueError(f"unknown schedule {spec.schedule!r}; use 'constant' or 'cosine'")


def _optimizer(spec: FitSpec, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    optimizers = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}
    if spec.optimizer not in optimizers:
        raise ValueError(f"unknown optimizer {spec.optimizer!r}; use one of {', '.join(optimizers)}")
    return optimizers[spec.optimizer](learning_rate=learning_rate(spec, steps_per_epoch))


def _steps_per_epoch(x: object, y: np.ndarray | None, batch_size: int) -> int:
    if y is None:
        return len(x)  # type: ignore[arg-type]  # a PyDataset: its batches
    return math.ceil(len(y) / batch_size)


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
    checkpoints: Path | None = None,
    tensorboard: Path | None = None,
) -> dict[str, list[float]]:
    """Compile and fit ``model``; keep the weights of the epoch with the best validation ``metric``.

    ``train`` and ``valid`` are (inputs, targets) pairs, or (PyDataset, None). ``loss`` replaces
    ``spec.loss`` where a loss is not one of Keras' names. Raises ``TrainingDiverged`` when the loss
    stops being finite, and ``TrainingStalled`` when every input of ``probe`` (some validation
    inputs) gets the same output after an epoch. ``log`` gets each epoch's progress. With
    ``checkpoints`` (a folder named for everything that shapes the training) each epoch is saved
    there, a killed fit resumes after the last saved epoch, and the folder goes when training ends.
    With ``tensorboard`` (a folder) TensorBoard logs go there, where the ``tensorboard`` package is
    installed (the ``tracking`` extra); ``log`` says so where it is not.
    """
    keras.utils.set_random_seed(spec.seed)
    x, y = train
    optimizer = _optimizer(spec, _steps_per_epoch(x, y, spec.batch_size))
    model.compile(optimizer=optimizer, loss=loss or spec.loss, metrics=[metric])
    name = metric if isinstance(metric, str) else metric.name
    stopping = keras.callbacks.EarlyStopping(monitor=f"val_{name}", patience=spec.patience,
                                             restore_best_weights=True, mode="min" if name == "mae" else "max")
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.TerminateOnNaN(), stopping]
    resumed = ResumedState(checkpoints, stopping, log) if checkpoints else None
    if checkpoints and resumed:
        callbacks += [resumed, keras.callbacks.BackupAndRestore(str(checkpoints))]
    if log:
        callbacks.append(EpochProgress(log))
    if tensorboard and importlib.util.find_spec("tensorboard"):
        callbacks.append(keras.callbacks.TensorBoard(str(tensorboard), write_graph=False))
    elif tensorboard and log:
        log("no TensorBoard logs: the tensorboard package is not installed (pip install 'age_assets[tracking]')")
    watch = OutputWatch(probe) if probe is not None else None
    if watch:
        callbacks.append(watch)
    if on_epoch:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e, dict(logs or {}))))
    history = model.fit(
        x, y, validation_data=valid if valid[1] is not None else valid[0],
        epochs=spec.epochs, batch_size=spec.batch_size if y is not None else None,
        shuffle=True, callbacks=callbacks, verbose=0,
    ).history
    if resumed:
        history = resumed.history
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
