"""Looking inside a network: layers, activations, grids and receptive fields
(``features``), saliency maps (``saliency``), what a filter wants to see (``visualize``) and
ImageNet classification with ResNet50 (``imagenet``) and a 2-D map of feature vectors
(``data_map``)."""
