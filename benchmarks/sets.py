"""The data sets the tuning tools and the benchmark measure on, besides the built-in digits."""

from labkit.data import DataConfig

FASHION = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist: the raw idx files
# The hard set: Fashion-MNIST classes 0-5, the first 300 of each in its training file.
HARD = DataConfig(source=f"fashionmnist:{FASHION}", classes=tuple(range(6)), per_class=300)
FASHION_TRAIN_FILE = 60_000  # images in Fashion-MNIST's training file; labkit's idx source puts its test file after
