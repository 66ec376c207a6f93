"""
Protobuf's wire format written by hand, for tests that need bytes no
binding would produce (nesting past the decoders' limits) or that must not
depend on the descriptor under test.
"""

from __future__ import annotations


def field(number: int, payload: bytes | int) -> bytes:
    """
    @return: one protobuf field as written on the wire: a varint (wire type
        0) for an int, else length-delimited (wire type 2).
    """

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload
