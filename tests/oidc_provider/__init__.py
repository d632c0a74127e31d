"""A real OpenID Connect provider for the single sign-on tests: django-oauth-toolkit with its
OIDC support on, run by daphne in a process of its own, with its own users, groups and
database (``fill.py`` fills it). Its ``groups`` claim lists the user's groups."""
