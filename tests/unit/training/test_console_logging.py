import io
import logging
import sys

from rtvp.training.loggers import console_logging


def test_console_handler_follows_the_current_stderr(monkeypatch):
    log = logging.getLogger("rtvp")
    monkeypatch.setattr(log, "handlers", [])
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    console_logging()
    first.close()  # e.g. a test's capture that has ended
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("rtvp.training").warning("still shown")
    assert second.getvalue() == "still shown\n"
