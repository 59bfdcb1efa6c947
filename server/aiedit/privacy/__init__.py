"""A person's rights over what the server holds about them: a copy of it all (`export`), and
erasure (`erase`). Retention (the sweeper) lives with the jobs (`JobRunner.expire`)."""


class UnknownUser(LookupError):
    """No such user."""
