"""Training, evaluation and preprocessing of the Fashion-MNIST product classifier."""
