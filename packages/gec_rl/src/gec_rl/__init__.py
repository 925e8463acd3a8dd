"""GEC: optimistic posterior sampling for interactive decision making, with an exact regret harness"""

__version__ = "0.1.0"
