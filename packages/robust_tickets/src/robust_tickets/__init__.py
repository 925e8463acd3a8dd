"""Robust lottery tickets for pre-trained language models (ACL 2022)"""

__version__ = "0.1.0"
