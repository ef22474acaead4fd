"""Long work and training: the one task base every background job runs on (``tasks``: states,
Stop, time limit, slots, session cleanup) and its child-process runner (``task_process``), the
trainer with its typed settings and the one phase runner ``fit_phases`` (``trainer``), what a
step costs (``cost``), evaluation, the dense-vs-convnet experiment (``experiments``), training
on one's own images (``transfer``: ``OwnImagesRecipe``, ``OwnImagesJob``) and the grid of what
a layer's filters want to see (``filter_grid``), which is a task too."""
