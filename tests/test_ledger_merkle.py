"""RFC 6962 Merkle hashing and proofs against the transparency-dev vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from aegis.ledger.chain import chain_records
from aegis.ledger.merkle import ProofError, leaf_hash, node_hash, verify_consistency, verify_inclusion

VECTORS = Path("/work/shared/vectors/merkle")
if not VECTORS.is_dir():
    VECTORS = Path(__file__).parent / "vectors" / "merkle"


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(case: dict) -> list[bytes]:
    return [_b64(p) for p in case["proof"] or []]


def test_vectors_are_present() -> None:
    assert len(_cases("inclusion")) > 50 and len(_cases("consistency")) > 50


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case), _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vectors(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), _proof(case))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_rfc6962_hashes_of_known_tree() -> None:
    # RFC 6962 reference tree: the empty-string leaf and a two-leaf root from the
    # Certificate Transparency test data.
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == (
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")


def test_ledger_leaves_are_rfc6962_leaves() -> None:
    records = [b"first", b"second record"]
    _, leaves = chain_records(bytes(32), records, with_leaves=True)
    assert leaves == leaf_hash(records[0]) + leaf_hash(records[1])
