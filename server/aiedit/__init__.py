"""aiedit: AI image operations for GIMP, Krita and Photoshop."""

__version__ = "0.1.0"
