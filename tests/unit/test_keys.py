"""API keys: the keys file and HPS_API_KEYS read with their defaults, every mistake refused
naming the file (or variable) and the line, keys found by their hash, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from docparse.settings import AuthSettings
from gateway.keys import KeyConfigError, exposure_warning, hash_key, load_keyring, main, new_key

ALICE, BOB = "dp_alice-secret", "dp_bob-secret"
H1, H2 = hash_key("one"), hash_key("two")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    return path


def keys_file(tmp_path: Path) -> Path:
    return write(tmp_path, f"""\
# the gateway's callers
keys:
  - name: alice
    sha256: {hash_key(ALICE)}
    limits:
      concurrent_requests: 2
      pages_per_minute: 600
  - name: bob
    sha256: {hash_key(BOB).upper()}
""")


def test_the_file_and_the_variable_give_named_keys_with_their_limits_and_the_defaults(tmp_path):
    auth = AuthSettings(
        api_keys_file=keys_file(tmp_path),
        api_keys=f"carol:{hash_key('dp_carol')}",
        quota_requests_per_minute=30,
        quota_concurrent_requests=8,
    )
    ring = load_keyring(auth)
    assert [key.name for key in ring.keys] == ["carol", "alice", "bob"]
    alice = ring.find(ALICE)
    assert alice is not None and alice.name == "alice"
    # Her own limits win; what she leaves out is the default.
    assert (alice.limits.concurrent_requests, alice.limits.pages_per_minute) == (2, 600)
    assert alice.limits.requests_per_minute == 30
    bob = ring.find(BOB)  # a hash in capitals is the same hash
    assert bob is not None and bob.limits.concurrent_requests == 8
    assert ring.find("dp_carol").name == "carol"
    assert ring.find("dp_mallory") is None and ring.find(ALICE + " ") is None


def test_no_keys_configured_is_keys_off():
    assert not load_keyring(AuthSettings()).enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keys:\n  - name: alice\n    sha256: abc\n", "keys.yaml:2: sha256: must be 64 hex digits"),
        (f"keys:\n  - name: a\n    sha256: {H1}\n  - name: al ice\n    sha256: {H2}\n",
         "keys.yaml:4: name: must be 1-64 letters"),
        (f"keys:\n  - name: a\n    sha256: {H1}\n    limits: {{pages_per_minute: -1}}\n",
         "keys.yaml:2: limits.pages_per_minute: Input should be greater than or equal to 0"),
        (f"keys:\n  - name: a\n    sha256: {H1}\n    limit: {{}}\n", "keys.yaml:2: limit: Extra inputs"),
        (f"keys:\n  - name: a\n    sha256: {H1}\n  - name: a\n    sha256: {H2}\n",
         "keys.yaml:4: the name 'a' is used already at"),
        (f"keys:\n  - name: a\n    sha256: {H1}\n  - name: b\n    sha256: {H1}\n",
         "keys.yaml:4: the same key as at"),
        ("keys:\n  - name: a\n    sha256: " + "1" * 64 + "\n", "keys.yaml:2: sha256: must be 64 hex digits"),
        ("keys:\n  - name: a\n   sha256: x\n", "keys.yaml:3: not valid YAML"),
        ("keys: []\n", "keys.yaml:1: expected a 'keys:' list with at least one entry"),
        ("- name: a\n", "keys.yaml:1: expected a 'keys:' list"),
        ("", "keys.yaml:1: expected a 'keys:' list"),
        ("keys:\n  - alice\n", "keys.yaml:2: expected an entry with name and sha256"),
    ],
)
def test_a_wrong_keys_file_is_refused_naming_the_file_and_the_line(tmp_path, text, message):
    with pytest.raises(KeyConfigError) as refused:
        load_keyring(AuthSettings(api_keys_file=write(tmp_path, text)))
    assert message in str(refused.value)


def test_a_missing_keys_file_is_refused_naming_it(tmp_path):
    with pytest.raises(KeyConfigError, match=r"HPS_API_KEYS_FILE .*nowhere.yaml: cannot be read"):
        load_keyring(AuthSettings(api_keys_file=tmp_path / "nowhere.yaml"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" , ", "HPS_API_KEYS has no keys"),
        (f"a:{H1},b:dp_plain-key", "HPS_API_KEYS entry 2: sha256: must be 64 hex digits"),
        ("dp_plain-key", "HPS_API_KEYS entry 1: sha256: must be 64 hex digits"),
    ],
)
def test_a_wrong_inline_key_is_refused_without_repeating_it(value, message):
    with pytest.raises(KeyConfigError) as refused:
        load_keyring(AuthSettings(api_keys=value))
    assert message in str(refused.value)
    assert "dp_plain-key" not in str(refused.value)  # a key pasted by mistake is not logged


def test_the_start_up_warning_is_for_an_open_gateway_beyond_loopback():
    no_keys = load_keyring(AuthSettings())
    assert "listens on 0.0.0.0" in exposure_warning("0.0.0.0", no_keys)
    assert exposure_warning("gateway.internal", no_keys) is not None
    for loopback in ("127.0.0.1", "::1", "[::1]", "localhost"):
        assert exposure_warning(loopback, no_keys) is None
    with_keys = load_keyring(AuthSettings(api_keys=f"a:{H1}"))
    assert exposure_warning("0.0.0.0", with_keys) is None


def test_new_keys_are_random_and_prefixed():
    first, second = new_key(), new_key()
    assert first != second and first.startswith("dp_") and len(first) > 40


def test_the_cli_prints_a_key_once_and_an_entry_that_loads(tmp_path, capsys):
    assert main(["new", "alice", "--concurrent-requests", "2", "--pages-per-minute", "600"]) == 0
    printed = capsys.readouterr().out
    key = next(line.strip() for line in printed.splitlines() if line.strip().startswith("dp_"))
    entry = printed.split("(under keys:):\n\n", 1)[1].split("\n\n", 1)[0]
    ring = load_keyring(AuthSettings(api_keys_file=write(tmp_path, "keys:\n" + entry + "\n")))
    alice = ring.find(key)
    assert alice is not None and alice.limits.concurrent_requests == 2 and alice.limits.pages_per_minute == 600
    inline = printed.rsplit("limits): ", 1)[1].strip()
    assert load_keyring(AuthSettings(api_keys=inline)).find(key).name == "alice"


def test_the_cli_hashes_an_existing_key(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(ALICE + "\n"))
    assert main(["hash"]) == 0
    assert capsys.readouterr().out.strip() == hash_key(ALICE)


def test_the_cli_refuses_a_name_that_cannot_be_a_label(capsys):
    with pytest.raises(SystemExit):
        main(["new", "alice smith"])
    assert "name: must be 1-64 letters" in capsys.readouterr().err
