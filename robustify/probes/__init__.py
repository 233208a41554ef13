"""Probes beyond noise, built on the layers below: model-written rewrites, leakage, compare.

Import the module you need (:mod:`.rewrite`, :mod:`.leakage`, :mod:`.compare`); this
package imports nothing heavy by itself.
"""

from __future__ import annotations

__all__: list[str] = []
