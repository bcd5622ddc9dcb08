"""paysplit's built-in policies, one module per policy, each an ordinary plugin.

They are registered through the ``paysplit`` entry-point group exactly like a
vendor's plugin, use only the public API (:mod:`paysplit.phrases`,
:mod:`paysplit.policy`, the ledger models), and can each be disabled.
"""
