"""Session-state keys that cross pages (one place, documented).

Pages never reach into each other; what one page leaves for another lives in
``st.session_state`` under these keys, per browser session.
"""

#: ``cnnlib.training.TrainingJob`` of this session's current or last MNIST training (or absent).
TRAINING_JOB = "mnist_training_job"
#: The Keras model trained on the MNIST page (``keras.Model``, (28, 28, 1) → 10), or absent.
TRAINED_MODEL = "mnist_trained_model"
#: Short description of ``TRAINED_MODEL`` (dataset, recipe, test accuracy) for other pages.
TRAINED_MODEL_INFO = "mnist_trained_model_info"
#: The last digit drawn (or uploaded) on the MNIST page, preprocessed: (28, 28) float32 in [0, 1],
#: light digit on dark background, as MNIST.
DRAWN_DIGIT = "mnist_drawn_digit"
#: Class names of ``TRAINED_MODEL``'s outputs (tuple/list of str, e.g. digits or Fashion-MNIST's
#: 10 names), set by the MNIST page with the model.
TRAINED_MODEL_CLASSES = "mnist_page_model_classes"
