"""A 122-style Monday, compressed: the share of the peak hour's calls in each hour (pure).

The shape of a utility hotline's Monday: quiet at night, a steep climb from 07:00 (people find
what broke over the weekend), the peak at 09:00-10:00, a slow decline through the afternoon and
evening. Only the shape matters here; `segments` scales it to a peak rate and squeezes the 24
hours into a few minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

MONDAY = (
    0.12, 0.07, 0.05, 0.04, 0.04, 0.06, 0.15, 0.40,  # 00-07
    0.75, 1.00, 0.95, 0.85, 0.75, 0.70, 0.70, 0.65,  # 08-15
    0.60, 0.55, 0.50, 0.45, 0.40, 0.30, 0.22, 0.16,  # 16-23
)  # fmt: skip


@dataclass(frozen=True)
class Segment:
    hour: int
    start_s: float  # from the start of the compressed day
    length_s: float
    rate: float  # the hour's calls per second, compressed
    calls: int


def segments(peak_rate: float, day_s: float, profile: tuple[float, ...] = MONDAY) -> list[Segment]:
    """One segment per hour: `day_s` seconds for the whole day, `peak_rate` calls/s at the
    busiest hour; an hour whose share rounds to no call is left out."""
    hour_s = day_s / len(profile)
    out = []
    for hour, share in enumerate(profile):
        rate = peak_rate * share
        calls = round(rate * hour_s)
        if calls:
            out.append(Segment(hour, hour * hour_s, hour_s, rate, calls))
    return out
