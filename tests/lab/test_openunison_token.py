"""The openunison token refresher's pure parts: schedule, JTI, the token file (no lab needed)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from conformance.lab.openunison_token import Issued, jti_of, main, next_refresh, write_token


def _jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_renews_at_80_percent_of_the_lifetime_or_when_told() -> None:
    assert next_refresh(1000.0, 1600.0) == 1480.0
    assert next_refresh(1000.0, 1600.0, refresh_after_s=2) == 1002.0


def test_jti_of_a_token_and_a_clear_error_for_anything_else() -> None:
    assert jti_of(_jwt({"jti": "abc", "sub": "x"})) == "abc"
    for bad in ("not-a-jwt", _jwt({"sub": "x"}), "a.%%%.c"):
        with pytest.raises(ValueError, match="jti"):
            jti_of(bad)


def test_the_token_file_is_private_replaced_whole_and_its_metadata_holds_no_token(tmp_path: Path) -> None:
    out = tmp_path / "dir" / "ou-token"
    token = _jwt({"jti": "one"})
    issued = Issued(token, "one", 10.0, 610.0)
    assert token not in repr(issued)
    write_token(out, issued)
    assert out.read_text() == token
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    meta = json.loads((tmp_path / "dir" / "ou-token.json").read_text())
    assert meta == {"jti": "one", "issued_at": 10.0, "expires_at": 610.0}
    write_token(out, Issued(_jwt({"jti": "two"}), "two", 20.0, 620.0))
    assert jti_of(out.read_text()) == "two"
    assert sorted(p.name for p in out.parent.iterdir()) == ["ou-token", "ou-token.json"]  # no temp files left


def test_a_non_positive_refresh_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--server=https://127.0.0.1:1", "--ca=/x", "--client-cert=/x", "--client-key=/x", "--namespace=n"]
    args += ["--service-account=s", "--pod=p", "--audience=api", "--out=/tmp/x", "--refresh-after-s=0"]
    with pytest.raises(SystemExit):
        main(args)
    assert "--refresh-after-s must be positive" in capsys.readouterr().err
