"""Suite-wide set-up.

Tests send Ctrl-C (SIGINT) to the portlens processes they start. A shell that starts the suite
as a background job without job control (`cmd &` in a script, nohup, some CI runners) starts
it with SIGINT ignored, every child inherits that, and a Python started with SIGINT ignored
keeps ignoring it: those tests would then see portlens run to the end. With a handler of its
own here, the children start with the default action (exec resets handled signals), as they
would from a terminal."""

from __future__ import annotations

import signal

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
