"""Transfer syntaxes the archive accepts and negotiates (PS3.5 Annex A / PS3.6 Table A-1)."""

from __future__ import annotations

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_2000 = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
MPEG2_MPML = "1.2.840.10008.1.2.4.100"
MPEG4_AVC = "1.2.840.10008.1.2.4.102"

UNCOMPRESSED = (IMPLICIT_VR_LE, EXPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE)
COMPRESSED = (
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS,
    JPEG_2000_LOSSLESS,
    JPEG_2000,
    HTJ2K_LOSSLESS,
    HTJ2K_LOSSLESS_RPCL,
    HTJ2K,
    RLE_LOSSLESS,
    MPEG2_MPML,
    MPEG4_AVC,
)
KNOWN_TRANSFER_SYNTAXES = frozenset(UNCOMPRESSED + COMPRESSED)
# Not negotiated over DIMSE (STOW-RS and `archive import` take them): HTJ2K and video, which
# few modalities send and whose presentation contexts would only lengthen every negotiation.
NOT_OVER_DIMSE = frozenset({HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K, MPEG2_MPML, MPEG4_AVC})
# What the DIMSE door accepts for storage (C-STORE, and C-GET's sub-operations), derived from
# the lists above so the doors cannot drift apart; the native little endian ones first.
DIMSE_STORAGE_TRANSFER_SYNTAXES = [EXPLICIT_VR_LE, IMPLICIT_VR_LE] + [
    ts for ts in UNCOMPRESSED + COMPRESSED
    if ts not in (EXPLICIT_VR_LE, IMPLICIT_VR_LE) and ts not in NOT_OVER_DIMSE]
# Image syntaxes whose pixel data are lossy: once stored so, no lossless representation exists.
LOSSY = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR_LOSSLESS, JPEG_2000, HTJ2K})
