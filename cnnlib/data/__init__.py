"""Data as arrays: decoded images and their conversions (``images``), the built-in sample
photos (``samples``), digits prepared the way MNIST was (``digits``), MNIST and
Fashion-MNIST (``mnist``), the trainer's data seam (``training_data``) and the shortcut lab's
cues stamped on images (``shortcuts``)."""
