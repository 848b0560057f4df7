"""One checksum for every derived artefact (feature caches, shared views, caption stores).

Why CRC-32 (``zlib.crc32``): the artefacts are protected against accidental
damage (a flipped bit, a torn write, garbage from a bad disk), not against an
adversary, and CRC-32 detects every single-bit flip and every burst of up to
32 bits. Measured on float32 buffers it runs at about 3.7 GB/s against 0.7 GB/s
for BLAKE2b, so checking a cached training batch costs far less than the step
(``bimors bench`` prints the ratio). It ships with Python; xxhash would be one
more dependency.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import torch

#: Name and version of the checksum, stored beside each value so another may replace it.
ALGORITHM = "crc32"
#: Key of the checksum in a safetensors file's metadata.
METADATA_KEY = "bimors_crc32"


def of_bytes(*parts: bytes | bytearray | memoryview) -> str:
    """CRC-32 of the concatenated ``parts`` as 8 hex digits."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return f"{crc:08x}"


def of_tensor(value: torch.Tensor) -> str:
    """CRC-32 of a tensor's dtype, shape and bytes (a reinterpreted or reshaped one differs)."""
    t = value.detach().cpu().contiguous()
    head = f"{t.dtype}|{tuple(t.shape)}|".encode()
    return of_bytes(head, t.reshape(-1).view(torch.uint8).numpy().data)


def of_texts(texts: Iterable[str]) -> str:
    """CRC-32 of several strings, each length-prefixed so their boundaries count."""
    parts: list[bytes] = []
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        parts += [f"{len(data)}:".encode(), data]
    return of_bytes(*parts)
