"""Long work and training: the one task base (``tasks``) and its child-process runner
(``task_process``), the trainer and its typed settings (``trainer``), what a step costs
(``cost``), evaluation, the dense-vs-convnet experiment (``experiments``) and transfer
learning on one's own images (``transfer``)."""
