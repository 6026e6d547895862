"""A small pure-Python writer of RTP pcap files for SIPp's ``play_pcap_audio``.

SIPp replays the UDP payloads of a pcap with the capture's own timing, so the
whole caller-side media of a test call (speech, then RFC 4733 DTMF events) is
written as one RTP stream: one SSRC, continuous sequence numbers and
timestamps. One stream matters: Asterisk drops an RFC 4733 end packet whose
timestamp equals the previous event's, so replaying the stock per-digit pcaps
(all captured with the same timestamp) would lose repeated digits such as "22".
"""

from __future__ import annotations

import array
import random
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 8000
PACKET_MS = 20
SAMPLES_PER_PACKET = SAMPLE_RATE * PACKET_MS // 1000  # 160 samples = 160 bytes of PCMU
PT_PCMU = 0
PT_TELEPHONE_EVENT = 101

DTMF_EVENTS = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    **{c: 12 + i for i, c in enumerate("ABCD")},
}
DTMF_TONE_MS = 120
DTMF_GAP_MS = 120
DTMF_VOLUME = 10  # -10 dBm0, as most phones send
END_REPEATS = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
_SRC_MAC = bytes.fromhex("020000000001")
_DST_MAC = bytes.fromhex("020000000002")


@dataclass(frozen=True)
class RtpPacket:
    at: float  # seconds from the start of the stream
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes

    def to_bytes(self) -> bytes:
        first = 0x80  # version 2, no padding, no extension, no CSRC
        second = (0x80 if self.marker else 0) | self.payload_type
        header = struct.pack(
            "!BBHII", first, second, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
        )
        return header + self.payload


class RtpStream:
    """Builds packets for one SSRC, keeping sequence numbers and timestamps continuous."""

    def __init__(
        self,
        ssrc: int | None = None,
        first_sequence: int | None = None,
        first_timestamp: int | None = None,
    ) -> None:
        rng = random.SystemRandom()
        self.ssrc = rng.getrandbits(32) if ssrc is None else ssrc
        self.sequence = rng.getrandbits(15) if first_sequence is None else first_sequence
        self.timestamp = rng.getrandbits(31) if first_timestamp is None else first_timestamp
        self.clock = 0.0  # seconds of media time written so far
        self.packets: list[RtpPacket] = []

    def _emit(
        self, payload_type: int, marker: bool, timestamp: int, payload: bytes, at: float
    ) -> None:
        self.packets.append(
            RtpPacket(
                at,
                payload_type,
                marker,
                self.sequence & 0xFFFF,
                timestamp & 0xFFFFFFFF,
                self.ssrc,
                payload,
            )
        )
        self.sequence += 1

    def add_ulaw(self, ulaw: bytes) -> None:
        """Audio as 20 ms PCMU packets; the last one is padded with μ-law silence."""
        first = True
        for start in range(0, len(ulaw), SAMPLES_PER_PACKET):
            chunk = ulaw[start : start + SAMPLES_PER_PACKET].ljust(SAMPLES_PER_PACKET, b"\xff")
            self._emit(PT_PCMU, first, self.timestamp, chunk, self.clock)
            first = False
            self.timestamp += SAMPLES_PER_PACKET
            self.clock += PACKET_MS / 1000

    def add_pause(self, seconds: float) -> None:
        """Silence on the wire: no packets, but media time and the RTP clock move on. A pause
        before anything was sent is sent as μ-law silence instead: a replay (SIPp's
        play_pcap_audio) times the packets from the first one, so a leading gap would vanish
        and keys meant for later would go out at once."""
        if not self.packets:
            self.add_ulaw(b"\xff" * round(seconds * SAMPLE_RATE))
            return
        samples = round(seconds * SAMPLE_RATE)
        self.timestamp += samples
        self.clock += samples / SAMPLE_RATE

    def add_dtmf(self, digit: str, tone_ms: int = DTMF_TONE_MS, gap_ms: int = DTMF_GAP_MS) -> None:
        """One RFC 4733 event: a packet every 20 ms with growing duration, then 3 end packets."""
        event = DTMF_EVENTS[digit.upper()]
        event_timestamp = self.timestamp
        steps = max(1, tone_ms // PACKET_MS)
        for step in range(1, steps + 1):
            duration = step * SAMPLES_PER_PACKET
            last = step == steps
            repeats = END_REPEATS if last else 1
            for _ in range(repeats):
                flags = (0x80 if last else 0) | DTMF_VOLUME
                payload = struct.pack("!BBH", event, flags, duration)
                self._emit(
                    PT_TELEPHONE_EVENT,
                    step == 1,
                    event_timestamp,
                    payload,
                    self.clock + (step - 1) * PACKET_MS / 1000,
                )
        self.timestamp += steps * SAMPLES_PER_PACKET
        self.clock += steps * PACKET_MS / 1000
        self.add_pause(gap_ms / 1000)

    @property
    def duration(self) -> float:
        return self.clock


def wav_to_ulaw(path: Path) -> bytes:
    """Any audio file pydub can read → 8 kHz mono μ-law bytes."""
    from pydub import AudioSegment  # imported here: only calls with audio need it

    segment = (
        AudioSegment.from_file(path).set_frame_rate(SAMPLE_RATE).set_channels(1).set_sample_width(2)
    )
    return pcm16_to_ulaw(segment.raw_data)


_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _ulaw_byte(sample: int) -> int:
    """G.711 μ-law of one signed 16-bit sample, bit-exact with the ITU/Sun reference
    (and CPython's old audioop.lin2ulaw): work on the 14-bit magnitude, bias 33."""
    value = sample >> 2
    mask = 0x7F if value < 0 else 0xFF
    magnitude = min(abs(value), 8159) + 0x21
    segment = next((i for i, end in enumerate(_SEGMENT_ENDS) if magnitude <= end), None)
    if segment is None:  # full scale
        return 0x7F ^ mask
    return ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ mask


# Indexed by the sample's unsigned 16-bit pattern; audioop is gone from Python 3.13.
_ULAW_TABLE = bytes(
    _ulaw_byte(value - 0x10000 if value >= 0x8000 else value) for value in range(0x10000)
)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Little-endian signed 16-bit PCM → μ-law, one byte per sample."""
    samples = array.array("H")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(_ULAW_TABLE[s] for s in samples)


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(udp_payload: bytes, src_port: int, dst_port: int, ident: int) -> bytes:
    """Ethernet + IPv4 + UDP around one RTP packet (SIPp rewrites addresses and ports)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(udp_payload), 0) + udp_payload
    src_ip, dst_ip = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    ip_header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0, src_ip, dst_ip
    )
    ip_header = ip_header[:10] + struct.pack("!H", _ipv4_checksum(ip_header)) + ip_header[12:]
    return _DST_MAC + _SRC_MAC + b"\x08\x00" + ip_header + udp


def write_pcap(
    path: Path,
    packets: Iterable[RtpPacket],
    *,
    src_port: int = 40000,
    dst_port: int = 40002,
    start_time: float = 1_700_000_000.0,
) -> int:
    """Write the packets as a classic little-endian pcap; returns how many were written."""
    count = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for count, packet in enumerate(packets, start=1):
            frame = _frame(packet.to_bytes(), src_port, dst_port, count)
            micros = round((start_time + packet.at) * 1_000_000)
            out.write(
                struct.pack(
                    "<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)
                )
            )
            out.write(frame)
    return count


def caller_media(audio: Path | None, dtmf: str, *, pause_between: float = 0.5) -> RtpStream:
    """The caller's media: the audio file (if any), then the DTMF digits."""
    stream = RtpStream()
    if audio is not None:
        stream.add_ulaw(wav_to_ulaw(audio))
        if dtmf:
            stream.add_pause(pause_between)
    for digit in dtmf:
        stream.add_dtmf(digit)
    return stream


def iter_valid_dtmf(dtmf: str) -> Iterator[str]:
    for digit in dtmf:
        if digit.upper() not in DTMF_EVENTS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        yield digit
