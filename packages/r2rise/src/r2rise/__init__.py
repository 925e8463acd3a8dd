"""R2RISE: explaining imitation learning through demonstration frames"""

__version__ = "0.1.0"
