"""The time options of the commands that print times: tcpdump's -t family and --utc."""

from __future__ import annotations

import argparse
import sys

from portlens.cli.common import UsageError
from portlens.report.clock import STYLES, Clock, style_of_count


def time_args(p: argparse.ArgumentParser, *, styles: bool = True) -> None:
    """--utc, and with ``styles`` tcpdump's -t family (a command whose times are all relative,
    like ladder's, takes --utc alone: for the absolute start it names)."""
    g = p.add_argument_group("times (text output; JSON/CSV always carry ts_ns, UTC)")
    g.add_argument("--utc", action="store_true",
                   help="UTC instead of the local time zone (which tcpdump uses, and which "
                        "is named once on standard error)")
    if not styles:
        return
    g.add_argument("-t", dest="t_count", action="count", default=0,
                   help="tcpdump's: -t no time, -tt seconds since 1970, -ttt since the "
                        "previous line, -tttt date and time, -ttttt since the first line")
    g.add_argument("--time-format", choices=STYLES, metavar="STYLE",
                   help=f"the same by name: {', '.join(STYLES)} (default: time, the time of "
                        "day)")


def clock(args: argparse.Namespace) -> Clock:
    """The Clock of the command's text output; -t... and --time-format must agree."""
    count = getattr(args, "t_count", 0)
    named = getattr(args, "time_format", None)
    try:
        by_count = style_of_count(count)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if named is not None and count and named != by_count:
        raise UsageError(f"-{'t' * count} and --time-format {named} disagree")
    return Clock(named or by_count, utc=getattr(args, "utc", False))


class ZoneNote:
    """Names the zone on standard error once, before the first time printed: standard output
    stays what tcpdump would print."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.done = not clock.zoned

    def __call__(self, ts_ns: int) -> None:
        if not self.done:
            self.done = True
            label = self.clock.zone_label(ts_ns)
            if label:
                sys.stdout.flush()
                print(f"portlens: {label}", file=sys.stderr, flush=True)
