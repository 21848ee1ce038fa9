"""How a track sounds: volume and the audio filters of ``/filter``, as FFmpeg ``-af`` chains.

A plain sound (no filter, 100 %) lets an Opus stream pass through FFmpeg
without decoding; anything else is decoded, filtered and encoded again, which
costs CPU (docs/BENCHMARKS.md), so only while someone asked for it.

Nightcore, vaporwave and speed play the track faster or slower: ``speed`` is
how many seconds of the track one second of playback covers, so the player's
position stays right.
"""

from __future__ import annotations

from dataclasses import dataclass

from cogs.music.errors import MusicError

MIN_SPEED, MAX_SPEED = 0.5, 2.0
"""``atempo``'s range in one stage."""
# Resampling first gives asetrate a known input rate whatever the source's rate is.
_RATE = 48_000


@dataclass(frozen=True, slots=True)
class AudioFilter:
    name: str
    chain: str
    """FFmpeg ``-af`` filters."""
    speed: float = 1.0

    @property
    def label(self) -> str:
        return f"speed ×{self.speed:g}" if self.name == "speed" else self.name


def _retime(name: str, factor: float) -> AudioFilter:
    """Faster and higher (or slower and lower), like a record played at another speed."""
    rate = round(_RATE * factor)
    return AudioFilter(name, f"aresample={_RATE},asetrate={rate},aresample={_RATE}", factor)


PRESETS = {
    "bassboost": AudioFilter("bassboost", "bass=g=10:f=110:w=0.6"),
    "nightcore": _retime("nightcore", 1.25),
    "vaporwave": _retime("vaporwave", 0.8),
    "8d": AudioFilter("8d", "apulsator=hz=0.125"),
}


def speed(factor: float) -> AudioFilter:
    """Play faster or slower at the same pitch."""
    if not MIN_SPEED <= factor <= MAX_SPEED:
        raise MusicError(f"Pick a speed from {MIN_SPEED:g} to {MAX_SPEED:g}.")
    return AudioFilter("speed", f"atempo={factor:.3f}", factor)


def saved(name: str | None, factor: float) -> AudioFilter | None:
    """The filter saved as ``name`` (:attr:`AudioFilter.name`) and ``factor`` (its speed);
    None for none, or for one this version does not have."""
    if name == "speed" and MIN_SPEED <= factor <= MAX_SPEED:
        return speed(factor)
    return PRESETS.get(name or "")


def checked_volume(percent: int) -> int:
    """``percent`` if it is a volume the player takes; MusicError otherwise."""
    if not 0 <= percent <= 200:
        raise MusicError("Pick a volume from 0 to 200 %.")
    return percent


@dataclass(frozen=True, slots=True)
class Sound:
    """What the player asks FFmpeg for besides the stream: volume (1.0 = 100 %) and a filter."""

    volume: float = 1.0
    filter: AudioFilter | None = None

    @property
    def speed(self) -> float:
        return self.filter.speed if self.filter is not None else 1.0

    @property
    def plain(self) -> bool:
        """Nothing to change: an Opus stream can be copied."""
        return self.filter is None and abs(self.volume - 1.0) < 1e-6

    def chain(self) -> str | None:
        """The ``-af`` argument, None when nothing is to change."""
        parts = [self.filter.chain] if self.filter is not None else []
        if abs(self.volume - 1.0) >= 1e-6:
            parts.append(f"volume={self.volume:.3f}")
        return ",".join(parts) or None
