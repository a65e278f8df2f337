from django.core.management.base import BaseCommand

from points.services import expire_holds


class Command(BaseCommand):
    help = "End the open holds that are past their expiry."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(f"expire_holds: {expire_holds()} hold(s) expired.")
