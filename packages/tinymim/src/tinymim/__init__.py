"""TinyMIM: distilling MIM-pretrained ViTs into small ViTs (CVPR 2023)"""

__version__ = "0.1.0"
