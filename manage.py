#!/usr/bin/env python
"""Django's command-line utility for Ash (`python manage.py serve` starts everything)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ash.settings")
    from ash.eventloop import import_daphne_on_chosen_loop

    import_daphne_on_chosen_loop()  # first: Django's setup imports Daphne, whose reactor makes its loop
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
