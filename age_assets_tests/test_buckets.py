import numpy as np
import pytest

from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket


@pytest.mark.parametrize("age, label", [
    (0, "0-2"), (2, "0-2"), (3, "3-9"), (9, "3-9"), (10, "10-20"), (20, "10-20"), (21, "21-27"),
    (27, "21-27"), (28, "28-45"), (45, "28-45"), (46, "46-65"), (65, "46-65"), (66, "66+"), (116, "66+"),
])
def test_every_boundary_age(age: int, label: str) -> None:
    assert BUCKET_LABELS[int(age_to_bucket(age))] == label


def test_predictions_round_to_the_nearest_year() -> None:
    assert age_to_bucket(np.array([2.49, 2.5001, 65.4, 65.6, -3.0, 140.0])).tolist() == [0, 1, 5, 6, 0, 6]
