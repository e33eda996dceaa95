"""skuaudit: shelf audits from a phone camera.

The package holds every computation; the Streamlit pages only draw what it returns.
"""

from __future__ import annotations

__version__ = "0.1.0"
