"""Ctrl-C during training: a flag the loop polls between steps, so an interrupt saves a
loadable checkpoint instead of tearing a step in half."""
import signal
import sys
import threading


class StopFlag:
    """SIGINT handler for the duration of training: the first Ctrl-C asks the loop to save
    and stop between steps; further ones while saving only say to wait (the save is atomic
    anyway); a third one outside a save raises KeyboardInterrupt."""

    def __init__(self, log=None):
        self.requested = False
        self.saving = False
        self.count = 0
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._previous = None

    def __call__(self):
        return self.requested

    def _handler(self, signum, frame):
        self.count += 1
        self.requested = True
        if self.count == 1:
            self.log("\ninterrupt: saving the last checkpoint after this step (Ctrl-C again "
                     "to force)")
        elif self.saving or self.count == 2:
            self.log("interrupt: still saving, please wait")
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False
