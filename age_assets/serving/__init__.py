"""Using a trained model: find faces in pictures, crop them as the training faces were cropped, run
the exported model. Plain NumPy, OpenCV, Pillow, LiteRT and ONNX Runtime: no TensorFlow, no Dagster."""
