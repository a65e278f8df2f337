"""`createsuperuser` in English throughout.

Django's command asks for the password, confirms it and reports success in
English it does not translate ("Password:", "Superuser created successfully."),
while the field prompts and validation errors follow the active language, which
is Korean here: half the dialogue came out in each. Korean throughout would mean
rewriting Django's prompts, so the command runs untranslated, as Django's own
`@no_translations` commands do. The points ledger still writes its rows in the
default language (`points.services` chooses it itself).
"""

from django.contrib.auth.management.commands import createsuperuser
from django.core.management.base import no_translations


class Command(createsuperuser.Command):
    @no_translations
    def handle(self, *args: object, **options: object) -> None:
        return super().handle(*args, **options)
