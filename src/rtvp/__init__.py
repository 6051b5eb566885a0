"""rtvp: open-vocabulary and closed-set industrial defect detection (MMIOC benchmark builder + RTVPNet)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
