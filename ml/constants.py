"""The dataset's fixed facts, in one place. No torch import: the producer may read these."""

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASSES)
IMAGE_SIZE = 28

# Pixel mean and std of the 60,000 training images on the 0-1 scale.
MEAN = 0.2860
STD = 0.3530
