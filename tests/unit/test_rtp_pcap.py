"""The RTP pcap writer, checked with a small independent pcap/RTP reader."""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from hotline.sipua.rtp_pcap import (
    DTMF_EVENTS,
    PT_PCMU,
    PT_TELEPHONE_EVENT,
    SAMPLES_PER_PACKET,
    RtpStream,
    caller_media,
    iter_valid_dtmf,
    pcm16_to_ulaw,
    write_pcap,
)
from tests.audio import write_tone


@dataclass
class Captured:
    time: float
    src_port: int
    dst_port: int
    version: int
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def read_pcap(path: Path) -> list[Captured]:
    """Parse a classic pcap of Ethernet/IPv4/UDP/RTP frames, checking every header."""
    data = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    packets, offset = [], 24
    while offset < len(data):
        seconds, micros, captured, original = struct.unpack("<IIII", data[offset : offset + 16])
        assert captured == original <= snaplen
        frame = data[offset + 16 : offset + 16 + captured]
        assert len(frame) == captured
        offset += 16 + captured
        assert frame[12:14] == b"\x08\x00"  # IPv4
        ip = frame[14:34]
        assert ip[0] == 0x45 and ip[9] == 17  # no options, UDP
        assert struct.unpack("!H", ip[2:4])[0] == len(frame) - 14
        words = struct.unpack("!10H", ip)
        total = sum(words)
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
        assert total == 0xFFFF, "IPv4 header checksum"
        src_port, dst_port, udp_length, _ = struct.unpack("!HHHH", frame[34:42])
        assert udp_length == len(frame) - 34
        rtp = frame[42:]
        first, second, sequence, timestamp, ssrc = struct.unpack("!BBHII", rtp[:12])
        packets.append(
            Captured(
                seconds + micros / 1e6,
                src_port,
                dst_port,
                first >> 6,
                bool(second & 0x80),
                second & 0x7F,
                sequence,
                timestamp,
                ssrc,
                rtp[12:],
            )
        )
    return packets


def test_audio_packets_are_20ms_pcmu_with_continuous_numbering(tmp_path: Path) -> None:
    seconds = 0.5
    tone = tmp_path / "tone.wav"
    write_tone(tone, seconds, 440, rate=16000, amplitude=8000)
    stream = caller_media(tone, "")
    pcap = tmp_path / "audio.pcap"

    written = write_pcap(pcap, stream.packets)
    packets = read_pcap(pcap)

    assert written == len(packets) == math.ceil(seconds * 8000 / SAMPLES_PER_PACKET)
    assert {p.payload_type for p in packets} == {PT_PCMU}
    assert {p.version for p in packets} == {2}
    assert {len(p.payload) for p in packets} == {SAMPLES_PER_PACKET}
    assert len({p.ssrc for p in packets}) == 1
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
    for before, after in zip(packets, packets[1:], strict=False):
        assert after.sequence == (before.sequence + 1) % 65536
        assert after.timestamp - before.timestamp == SAMPLES_PER_PACKET
        assert after.time - before.time == pytest.approx(0.020, abs=1e-6)


def test_dtmf_events_follow_rfc4733(tmp_path: Path) -> None:
    digits = "2*22#"
    stream = caller_media(None, digits)
    pcap = tmp_path / "dtmf.pcap"
    write_pcap(pcap, stream.packets)
    packets = read_pcap(pcap)

    assert {p.payload_type for p in packets} == {PT_TELEPHONE_EVENT}
    events: dict[int, list[Captured]] = {}
    for packet in packets:
        events.setdefault(packet.timestamp, []).append(packet)
    assert len(events) == len(digits), "each digit has its own RTP timestamp, repeats included"
    for digit, (_, event_packets) in zip(digits, sorted(events.items()), strict=True):
        decoded = [struct.unpack("!BBH", p.payload) for p in event_packets]
        assert {code for code, _, _ in decoded} == {DTMF_EVENTS[digit]}
        assert event_packets[0].marker and not any(p.marker for p in event_packets[1:])
        ended = [bool(flags & 0x80) for _, flags, _ in decoded]
        assert ended[-3:] == [True, True, True] and not any(ended[:-3])
        durations = [duration for _, _, duration in decoded]
        assert durations == sorted(durations) and durations[0] > 0
    sequences = [p.sequence for p in packets]
    assert sequences == [(sequences[0] + i) % 65536 for i in range(len(packets))]
    assert [p.time for p in packets] == sorted(p.time for p in packets)


def test_stream_duration_covers_audio_and_digits(tmp_path: Path) -> None:
    tone = tmp_path / "tone.wav"
    write_tone(tone, 0.2, 440, amplitude=8000)
    stream = caller_media(tone, "1")
    last = max(p.at for p in stream.packets)
    assert stream.duration >= last > 0.2


def test_a_key_after_a_leading_pause_goes_out_at_its_time(tmp_path: Path) -> None:
    """A replay times packets from the first one: a schedule that starts with a pause (the
    first key 8 s into the call) is sent silence first, or the key would go out at once."""
    stream = RtpStream()
    stream.add_pause(8.0)
    stream.add_dtmf("5")
    pcap = tmp_path / "later.pcap"
    write_pcap(pcap, stream.packets)
    packets = read_pcap(pcap)
    first_key = next(p for p in packets if p.payload_type == PT_TELEPHONE_EVENT)
    assert packets[0].payload_type == PT_PCMU
    assert first_key.time - packets[0].time == pytest.approx(8.0, abs=0.03)


def test_sequence_numbers_wrap(tmp_path: Path) -> None:
    stream = RtpStream(ssrc=1, first_sequence=65534, first_timestamp=2**32 - 160)
    stream.add_ulaw(b"\xff" * SAMPLES_PER_PACKET * 4)
    pcap = tmp_path / "wrap.pcap"
    write_pcap(pcap, stream.packets)
    packets = read_pcap(pcap)
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in packets] == [2**32 - 160, 0, 160, 320]


def test_ulaw_matches_the_g711_reference() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # the C reference, gone in Python 3.13
    every_sample = b"".join(v.to_bytes(2, "little") for v in range(65536))
    assert pcm16_to_ulaw(every_sample) == audioop.lin2ulaw(every_sample, 2)


def test_ulaw_properties() -> None:
    def encode(sample: int) -> int:
        return pcm16_to_ulaw(struct.pack("<h", sample))[0]

    assert encode(0) == 0xFF  # μ-law silence
    assert encode(1000) & 0x80 and not encode(-1000) & 0x80  # sign bit
    assert encode(1000) & 0x7F == encode(-1000) & 0x7F
    loud = [encode(v) & 0x7F for v in (100, 1000, 10000, 32767)]
    assert loud == sorted(loud, reverse=True)  # bigger magnitude, smaller (inverted) code


def test_invalid_digit_is_rejected() -> None:
    with pytest.raises(ValueError):
        list(iter_valid_dtmf("12x"))
