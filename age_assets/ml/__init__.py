"""Plain image and model code: NumPy, PIL, albumentations, Keras; no Dagster here."""
