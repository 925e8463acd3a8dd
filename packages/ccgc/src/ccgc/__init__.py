"""CCGC: cluster-guided contrastive graph clustering (AAAI 2023)"""

__version__ = "0.1.0"
