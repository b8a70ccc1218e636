"""Per backbone and kind of training, the settings measured best on 2 CPU cores: the asset configs'
defaults.

How far down a backbone trains trades accuracy against the cost of its epochs, and that trade
differs per backbone: MobileNetV3Small's last five inverted-residual blocks train on cached
feature maps of the fourfold augmented training split; EfficientNet-Lite0's last five blocks
(from ``block6a``) and final convolution, and MobileNetV2's last block and final convolution, on
the plain split, whose feature pass costs a quarter of the augmented one's. The learning rate
decays along a cosine to 0 over the given epochs (``training.learning_rate``), and patience lets
every epoch run: the last, smallest steps are where the validation score is best. Lite0 runs five
epochs: of six, the fifth was the best in both its trainings, and the sixth cost 2.3 minutes each.
The face-domain MobileNet trains its last two blocks (from ``conv_pad_12``) on each training face and
one augmented copy of it (the first two of augmented_train's copies): on UTKFace validation
(mirror-averaged, 5 epochs, cosine) a regressor scored 4.33 years so, against 4.43 on the plain split,
4.52 for the last block alone and 4.61 for a head on its frozen pooled features; and FG-NET's photos
4.64 against 5.04 (README, Results: training for other cameras).
Backbones not measured here train their head alone on a frozen backbone (README, Results).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from age_assets.ml.specs import Schedule, TrainOn


@dataclass(frozen=True, kw_only=True)
class Recipe:
    train_last: int = 0
    train_on: TrainOn = "plain"
    copies: int = 0
    epochs: int = 60
    patience: int = 8
    learning_rate: float = 3e-4
    schedule: Schedule = "cosine"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


KINDS = ("model", "classifier")

CPU_RECIPES: dict[tuple[str, str], Recipe] = {
    ("mobilenet_v3_small", "model"): Recipe(train_last=77, train_on="augmented", epochs=3, patience=3),
    ("mobilenet_v3_small", "classifier"): Recipe(train_last=77, train_on="augmented", epochs=3, patience=3),
    ("efficientnet_lite0", "model"): Recipe(train_last=46, train_on="plain", epochs=5, patience=5),
    ("efficientnet_lite0", "classifier"): Recipe(train_last=46, train_on="plain", epochs=5, patience=5),
    ("mobilenet_v1_faces", "model"): Recipe(train_last=13, train_on="augmented", copies=2, epochs=5, patience=5),
    ("mobilenet_v1_faces", "classifier"): Recipe(train_last=13, train_on="augmented", copies=2, epochs=5, patience=5),
    ("mobilenet_v2", "model"): Recipe(train_last=11, train_on="plain", epochs=8, patience=8),
    ("mobilenet_v2", "classifier"): Recipe(train_last=11, train_on="plain", epochs=6, patience=6),
}
"""(backbone, kind) -> settings; a kind is ``model`` (regressor) or ``classifier``."""

UNMEASURED = Recipe(train_last=0, train_on="plain", epochs=100, patience=10, learning_rate=1e-3, schedule="constant")
"""A frozen backbone with a head trained on cached pooled features: cheap and never far off."""


def cpu_recipe(backbone: str, kind: str) -> Recipe:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of training {kind!r}; use one of {', '.join(KINDS)}")
    return CPU_RECIPES.get((backbone, kind), UNMEASURED)
