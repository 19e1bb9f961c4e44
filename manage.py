#!/usr/bin/env python
"""Django's command-line utility for Ash (`python manage.py serve` starts everything)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ash.settings")
    from ash.runtime.eventloop import use_for_new_loops

    use_for_new_loops()  # first: Django's setup imports Daphne, whose reactor then makes its loop
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
