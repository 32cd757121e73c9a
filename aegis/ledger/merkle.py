"""RFC 6962 / RFC 9162 Merkle tree hashing and proof verification.

Ledger leaves are RFC 6962 leaves (``SHA-256(0x00 || record)``, computed in C by
sha_chain.c), so inclusion and consistency proofs can be served over the same
entries; these verifiers are checked against the transparency-dev test vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_LEN = 32


class ProofError(ValueError):
    """A proof that does not prove what it claims."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hashes(*hashes: bytes) -> None:
    if any(len(h) != HASH_LEN for h in hashes):
        raise ProofError("hashes must be 32 bytes")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by ``proof`` that leaf number ``index`` (hash ``leaf``) is in a
    tree of ``size`` leaves (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} outside a tree of size {size}")
    _check_hashes(leaf, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless ``proof`` shows leaf ``index`` is in the tree with ``root``."""
    _check_hashes(root)
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Raise ProofError unless ``proof`` shows the tree of ``size1`` leaves and ``root1``
    is a prefix of the tree of ``size2`` leaves and ``root2`` (RFC 9162 section 2.1.4.2)."""
    if not 0 <= size1 <= size2:
        raise ProofError(f"sizes {size1} and {size2} are not a prefix and a tree")
    _check_hashes(*proof)
    if size1 == 0:
        raise ProofError("no consistency proof starts from the empty tree")
    if size1 == size2:
        if proof:
            raise ProofError("equal trees need an empty proof")
        if root1 != root2:
            raise ProofError("equal sizes but different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hashes(root1, root2)
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a complete subtree: its root is the implied first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is longer than needed")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof is shorter than needed")
    if fr != root1 or sr != root2:
        raise ProofError("consistency proof does not lead to both roots")
