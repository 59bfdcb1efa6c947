"""Hosted mode: people's accounts (sign-up, sign-in, profile), their page sessions, support
messages, usage analytics they can opt out of, and the throttles that keep sign-up and sign-in
from being abused. The pages are web/account.py; the credit ledger is billing/."""
