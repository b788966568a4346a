"""The shortcut-neutral arms (issue 35, item 3): how an image reaches the input size, and whether
every file goes through one re-encode. Declared here, apart from data_setup.decode which applies
them, so that the run parameters (s3f_kit.config) and a model's record (s3f_preprocessing) can
name them without importing OpenCV (every command's --help imports those two).
"""

# How an image reaches the input size (issue 35, item 3; RunConfig's `resize`). The paper squashes
# every image to H×W whatever its aspect ratio, so the distortion — and its spectral signature —
# falls on whichever class has non-square files. The two aspect-preserving arms: "crop" resizes
# the short side to fit and centre-crops the long one; "reflect" resizes the long side to fit and
# fills the rest by mirroring the image (never constant bars, whose edges and level would mark
# the non-square class).
RESIZE_MODES = ("squash", "crop", "reflect")
PAPER_RESIZE = RESIZE_MODES[0]
# RunConfig's `reencode`: every file, after its decode and resize, is encoded once more as a JPEG
# of this quality in the run's mode and decoded again, so that the last codec every tensor
# passed through is the same one on the same 8×8 grid, whatever format, mode and quality each
# class was stored in. 75 is libjpeg's (and Pillow's) default quality.
REENCODE_QUALITY = 75
