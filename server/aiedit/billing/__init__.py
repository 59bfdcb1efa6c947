"""Hosted mode's credits: the ledger (`ledger.py`), prices (`pricing.py`), Stripe
(`stripe_billing.py`) and their settings (`settings.py`, a TOML file)."""
