"""Statistical disclosure control: the single gate every published count passes.

``gate.protect`` is the only producer of ``ProtectedRelease`` objects, and
``publication`` accepts nothing else. Policies live in ``policies/*.toml``.
"""

from .policy import DEFAULT_POLICY, Policy, PolicyError, load_policy, preset_names

__all__ = ["DEFAULT_POLICY", "Policy", "PolicyError", "load_policy", "preset_names"]
