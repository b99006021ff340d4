"""The ``dli-monitor`` command's entry point; ``python -m monitor`` runs the same."""

from __future__ import annotations


def main() -> int:
    """Run the command; its exit status."""
    # Before the imports below, which take most of a second: a SIGTERM from then on is a
    # graceful stop, not the default kill (see monitor.app.shutdown).
    from monitor.app import shutdown

    shutdown.hold()
    from monitor.cli import main as command

    return command()


if __name__ == "__main__":
    raise SystemExit(main())
