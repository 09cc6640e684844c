"""What one capture file contributed to a run (FileStats): kept apart from the merge
(sources/merge.py, numpy) so that `packets --stats`, whose counts come from the compiled core,
fills it without importing numpy."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FileStats"]


@dataclass
class FileStats:
    """What one file contributed: capinfos' per-file numbers and the merge's findings."""

    path: str
    format: str = ""
    """pcap or pcapng (empty when the file could not be opened)."""
    compression: str | None = None
    linktype: int | None = None
    """The link type of the file's first interface."""
    frames: int = 0
    wire_bytes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    backwards: int = 0
    """Frames stamped earlier than a frame before them in the same file."""
    largest_step_back_ns: int = 0
    first_backwards_frame: int | None = None
    """The file's own frame number of the first frame that went back in time."""
    frames_cut: int = 0
    """Frames longer than the frame cap (256 KiB), cut to it by the reader."""
    error: str | None = None

    def record(self) -> dict[str, object]:
        return {"path": self.path, "format": self.format or None,
                "compression": self.compression, "linktype": self.linktype, "frames": self.frames,
                "wire_bytes": self.wire_bytes, "first_ns": self.first_ns,
                "last_ns": self.last_ns, "backwards": self.backwards,
                "largest_step_back_ns": self.largest_step_back_ns, "error": self.error}

    def cut_warning(self) -> str | None:
        """One line for stderr when frames were cut at the frame cap, else None."""
        if not self.frames_cut:
            return None
        n = self.frames_cut
        return (f"{self.path}: {n:,} frame{'s' if n != 1 else ''} captured more than 262,144 "
                f"bytes (256 KiB, the frame cap: libpcap's largest snapshot length) and "
                f"{'were' if n != 1 else 'was'} cut to it (checksums unverified)")

    def backwards_warning(self) -> str | None:
        """One line for stderr when time ran backwards in the file, else None."""
        if not self.backwards:
            return None
        times = "once" if self.backwards == 1 else f"{self.backwards:,} times"
        return (f"{self.path}: time runs backwards {times} (first at frame "
                f"{self.first_backwards_frame}, by up to {self.largest_step_back_ns / 1e9:.6f} s);"
                f" those frames are read in file order")
