"""Segmentation networks: the MinkUNet-style sparse UNet (baseline and RLSeg-style backbone) and the SalsaNext-style
range-image CNN. nn.Modules only; training wiring lives in :mod:`lidar_robust.module`."""

MODEL_NAMES = ("minkunet", "rlseg", "salsanext")
