"""`flask --app app worker`: deliver grades to the LMS; run as many as you like (rows are leased)."""
import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from attendance.lms.grade_worker import run_worker


@click.command("worker")
@click.option("--interval", type=float, default=None, help="Seconds between polls of the outbox")
@with_appcontext
def worker_command(interval):
    """Deliver attendance grades (AGS scores) until stopped."""
    app = current_app._get_current_object()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo("Grade worker started.")
    run_worker(app, stop, interval)
    click.echo("Grade worker stopped.")
