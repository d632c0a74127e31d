"""Fill the test provider's database: ``python -m tests.oidc_provider.fill`` with

    client CLIENT_ID SECRET REDIRECT_URI   the gateway, a confidential RS256 client
    user NAME PASSWORD EMAIL [GROUP ...]   a person and exactly these groups

(run again to change a person's groups, as a directory's admin would)."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402


def main(argv: list[str]) -> None:
    call_command("migrate", verbosity=0)
    what, *args = argv
    if what == "client":
        client_id, secret, redirect = args
        Application.objects.filter(client_id=client_id).delete()
        Application.objects.create(
            name="llm gateway",
            client_id=client_id,
            client_secret=secret,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=redirect,
            algorithm=Application.RS256_ALGORITHM,
            skip_authorization=True,
        )
    elif what == "user":
        name, password, email, *groups = args
        user = User.objects.filter(username=name).first() or User(username=name)
        user.email = email
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get_or_create(name=g)[0] for g in groups])
    else:
        raise SystemExit(f"unknown: {what}")


if __name__ == "__main__":
    main(sys.argv[1:])
