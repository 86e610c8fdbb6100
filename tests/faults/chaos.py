"""The chaos thread: one fault at a time, on a proxy and of a kind drawn with a fixed seed.

Faults (see tests/faultproxy.py):

``down``   the proxy resets every open connection and refuses new ones for 0.5-3 s, then is up.
``delay``  every read through the proxy is held 50-500 ms, for 0.5-3 s.
``cut``    the connection that carries the next 0-64 KiB (upstream or downstream, drawn) is reset
           mid-message; armed for at most 3 s (it fires only if traffic passes meanwhile).
``partition``  ``down`` for the drawn proxy and a second one at once: the case where a failed
           write cannot be undone either (the database refuses the row, and the store the
           deletion of the object just written), which leaves the orphans the sweep is for.

Between two faults there is a pause of 0.1-0.5 s. ``stop`` ends the current fault at once and
leaves every proxy up, undelayed and disarmed; ``last_fault_ended`` is when that happened.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

from tests.faultproxy import Direction, FaultProxy

FAULT_KINDS = ("down", "delay", "cut", "partition")
FAULT_SECONDS = (0.5, 3.0)
DELAY_SECONDS = (0.05, 0.5)
CUT_BYTES = (0, 64 * 1024)
CUT_ARMED_SECONDS = 3.0
PAUSE_SECONDS = (0.1, 0.5)
NEVER = sys.maxsize  # a cut this far away never fires: how a cut is disarmed


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str  # "a+b" for a partition
    started: float  # time.monotonic()
    ended: float
    fired: bool  # a cut that reset a connection (down and delay always "fire")


class Chaos:
    """Runs in a thread of its own between ``start`` and ``stop``."""

    def __init__(self, proxies: dict[str, FaultProxy], *, seed: int) -> None:
        self._proxies = proxies
        self._random = random.Random(seed)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)
        self.faults: list[Fault] = []
        self.last_fault_ended = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the chaos thread did not stop"
        self.heal()

    def heal(self) -> None:
        """Every proxy up, undelayed and disarmed."""
        for proxy in self._proxies.values():
            proxy.cut_after(NEVER)
            proxy.delay(0)
            proxy.up()
        self.last_fault_ended = time.monotonic()

    def by_kind_and_target(self) -> dict[str, int]:
        counted = Counter(f"{f.kind}:{f.target}" for f in self.faults if f.fired)
        return dict(sorted(counted.items()))

    def _run(self) -> None:
        while not self._stopping.is_set():
            names = sorted(self._proxies)
            target = self._random.choice(names)
            kind = self._random.choice(FAULT_KINDS)
            started = time.monotonic()
            if kind == "partition":
                other = self._random.choice([name for name in names if name != target])
                fired = self._partition(self._proxies[target], self._proxies[other])
                target = "+".join(sorted((target, other)))
            else:
                fired = getattr(self, f"_{kind}")(self._proxies[target])
            self.faults.append(Fault(kind, target, started, time.monotonic(), fired))
            self._stopping.wait(self._random.uniform(*PAUSE_SECONDS))

    def _down(self, proxy: FaultProxy) -> bool:
        seconds = self._random.uniform(*FAULT_SECONDS)
        proxy.down()
        self._stopping.wait(seconds)
        proxy.up()
        return True

    def _partition(self, first: FaultProxy, second: FaultProxy) -> bool:
        seconds = self._random.uniform(*FAULT_SECONDS)
        first.down()
        second.down()
        self._stopping.wait(seconds)
        first.up()
        second.up()
        return True

    def _delay(self, proxy: FaultProxy) -> bool:
        seconds = self._random.uniform(*FAULT_SECONDS)
        proxy.delay(self._random.uniform(*DELAY_SECONDS))
        self._stopping.wait(seconds)
        proxy.delay(0)
        return True

    def _cut(self, proxy: FaultProxy) -> bool:
        directions: tuple[Direction, ...] = ("upstream", "downstream")
        direction = self._random.choice(directions)
        cuts = proxy.cuts
        proxy.cut_after(self._random.randint(*CUT_BYTES), direction=direction)
        deadline = time.monotonic() + CUT_ARMED_SECONDS
        while proxy.cuts == cuts and time.monotonic() < deadline:
            if self._stopping.wait(0.05):
                break
        proxy.cut_after(NEVER)
        return proxy.cuts > cuts
