"""Names inside an export folder, shared by the code that writes exports (``ml/export.py``) and the
code that runs them (``serving/``): neither imports the other."""

DESCRIPTION = "export.json"
"""Written beside the exported files: image size, bucket labels, members, agreement with Keras."""
