"""Sections of the pages that need more than one file, each named for what a learner sees
(e.g. ``mnist_experiment``: the Train-on-MNIST page's "Dense vs convnet" tab). A section
belongs to its page: no other page imports it."""
