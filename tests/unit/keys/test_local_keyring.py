"""The local keyring file: permissions, round trips, destruction, concurrent writers."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from keys.errors import (
    InsecureKeyring,
    KeyDestroyed,
    KeyNotFound,
    KeyringCorrupt,
    KeyUnwrapFailed,
)
from keys.local import LocalKeyringProvider

KEY = bytes(range(32))
OWNER = "case:1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "keys" / "keyring.json"


@pytest.fixture
def provider(keyring_path: Path) -> LocalKeyringProvider:
    return LocalKeyringProvider(keyring_path)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def root_keys_in(path: Path) -> dict[str, dict[str, str]]:
    document = json.loads(path.read_bytes())
    return dict(document["root_keys"])


def test_keyring_is_created_0600_in_a_0700_folder(
    provider: LocalKeyringProvider, keyring_path: Path
) -> None:
    assert not keyring_path.exists()

    root_key_id = provider.create_root_key(description="test")

    assert mode_of(keyring_path) == 0o600
    assert mode_of(keyring_path.parent) == 0o700
    assert root_key_id.startswith("local:")
    assert list(root_keys_in(keyring_path)) == [root_key_id]
    # Only the keyring and its lock file: no temporary file left behind.
    assert sorted(p.name for p in keyring_path.parent.iterdir()) == [
        "keyring.json",
        "keyring.json.lock",
    ]


def test_check_creates_an_empty_keyring(provider: LocalKeyringProvider, keyring_path: Path) -> None:
    provider.check()

    assert mode_of(keyring_path) == 0o600
    assert root_keys_in(keyring_path) == {}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_a_keyring_others_can_access(
    provider: LocalKeyringProvider, keyring_path: Path, mode: int
) -> None:
    root_key_id = provider.create_root_key(description="test")
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER)
    keyring_path.chmod(mode)
    before = keyring_path.read_bytes()

    for attempt in (
        provider.check,
        lambda: provider.create_root_key(description="another"),
        lambda: provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER),
        lambda: provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=OWNER),
        lambda: provider.destroy_root_key(root_key_id),
    ):
        with pytest.raises(InsecureKeyring) as caught:
            attempt()
        assert str(keyring_path) in str(caught.value)
        assert "chmod 600" in str(caught.value)

    assert keyring_path.read_bytes() == before  # nothing written, nothing destroyed
    keyring_path.chmod(0o600)
    assert provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=OWNER) == KEY


def test_refuses_a_keyring_owned_by_someone_else(
    provider: LocalKeyringProvider, keyring_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider.create_root_key(description="test")
    before = keyring_path.read_bytes()
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)

    with pytest.raises(InsecureKeyring, match="not owned by the user"):
        provider.create_root_key(description="another")

    monkeypatch.undo()
    assert keyring_path.read_bytes() == before


def test_refuses_a_symlinked_keyring(tmp_path: Path) -> None:
    real = LocalKeyringProvider(tmp_path / "real" / "keyring.json")
    real.create_root_key(description="test")
    link = tmp_path / "link" / "keyring.json"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(real.path)

    with pytest.raises(InsecureKeyring, match="symbolic link"):
        LocalKeyringProvider(link).check()


def test_refuses_a_folder_others_can_write(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o770)

    with pytest.raises(InsecureKeyring, match="chmod 700"):
        LocalKeyringProvider(folder / "keyring.json").create_root_key(description="test")

    assert not (folder / "keyring.json").exists()


def test_refuses_a_file_that_is_not_a_keyring(
    provider: LocalKeyringProvider, keyring_path: Path
) -> None:
    provider.check()
    keyring_path.write_text('{"something": "else"}')

    with pytest.raises(KeyringCorrupt):
        provider.create_root_key(description="test")

    assert keyring_path.read_text() == '{"something": "else"}'


def test_wrap_unwrap_round_trip_across_instances(
    provider: LocalKeyringProvider, keyring_path: Path
) -> None:
    root_key_id = provider.create_root_key(description="test")
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER)

    again = LocalKeyringProvider(keyring_path)

    assert again.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=OWNER) == KEY
    assert KEY not in keyring_path.read_bytes()


def test_unwrap_with_the_wrong_owner_fails(provider: LocalKeyringProvider) -> None:
    root_key_id = provider.create_root_key(description="test")
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER)

    with pytest.raises(KeyUnwrapFailed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner="case:other")


def test_unwrap_of_a_flipped_byte_fails(provider: LocalKeyringProvider) -> None:
    root_key_id = provider.create_root_key(description="test")
    wrapped = bytearray(provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER))
    wrapped[20] ^= 0x80

    with pytest.raises(KeyUnwrapFailed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=bytes(wrapped), owner=OWNER)


def test_unwrap_under_another_root_key_fails(provider: LocalKeyringProvider) -> None:
    first = provider.create_root_key(description="first")
    second = provider.create_root_key(description="second")
    wrapped = provider.wrap(root_key_id=first, key=KEY, owner=OWNER)

    with pytest.raises(KeyUnwrapFailed):
        provider.unsafe_unwrap(root_key_id=second, wrapped=wrapped, owner=OWNER)


def test_unknown_root_key_is_not_found(provider: LocalKeyringProvider) -> None:
    provider.create_root_key(description="test")

    with pytest.raises(KeyNotFound):
        provider.wrap(root_key_id="local:unknown", key=KEY, owner=OWNER)
    with pytest.raises(KeyNotFound):
        provider.unsafe_unwrap(root_key_id="local:unknown", wrapped=b"x" * 61, owner=OWNER)


def test_destroyed_root_key_is_gone_for_good(
    provider: LocalKeyringProvider, keyring_path: Path
) -> None:
    root_key_id = provider.create_root_key(description="test")
    kept = provider.create_root_key(description="kept")
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER)
    material = root_keys_in(keyring_path)[root_key_id]["key"]

    provider.destroy_root_key(root_key_id)

    with pytest.raises(KeyDestroyed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=OWNER)
    with pytest.raises(KeyDestroyed):
        provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER)
    with pytest.raises(KeyDestroyed):  # another process (a fresh instance) agrees
        LocalKeyringProvider(keyring_path).unsafe_unwrap(
            root_key_id=root_key_id, wrapped=wrapped, owner=OWNER
        )
    entries = root_keys_in(keyring_path)
    assert entries[root_key_id]["state"] == "destroyed"
    assert "key" not in entries[root_key_id]
    assert material not in keyring_path.read_text()
    assert base64.b64decode(material) not in keyring_path.read_bytes()
    assert entries[kept]["state"] == "active"


def test_a_destroy_by_another_process_is_seen_by_a_warm_instance(
    provider: LocalKeyringProvider, keyring_path: Path
) -> None:
    root_key_id = provider.create_root_key(description="test")
    wrapped = provider.wrap(root_key_id=root_key_id, key=KEY, owner=OWNER)
    assert provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=OWNER) == KEY

    LocalKeyringProvider(keyring_path).destroy_root_key(root_key_id)  # the cache is warm here

    with pytest.raises(KeyDestroyed):
        provider.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=OWNER)


def test_destroy_twice_and_destroy_unknown_are_harmless(
    provider: LocalKeyringProvider, keyring_path: Path
) -> None:
    root_key_id = provider.create_root_key(description="test")
    provider.destroy_root_key(root_key_id)
    after_first = keyring_path.read_bytes()

    provider.destroy_root_key(root_key_id)
    provider.destroy_root_key("local:never-existed")

    assert keyring_path.read_bytes() == after_first


def test_concurrent_threads_lose_no_key(provider: LocalKeyringProvider, keyring_path: Path) -> None:
    created: list[str] = []

    def create_some() -> None:
        for _ in range(10):
            created.append(provider.create_root_key(description="thread"))

    threads = [threading.Thread(target=create_some) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(created) == 60
    assert set(root_keys_in(keyring_path)) == set(created)


def test_concurrent_processes_lose_no_key(keyring_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from keys.local import LocalKeyringProvider\n"
        "provider = LocalKeyringProvider(Path(sys.argv[1]))\n"
        "for _ in range(15):\n"
        "    print(provider.create_root_key(description='process'))\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(keyring_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    created: list[str] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        created.extend(out.split())

    assert len(created) == 60
    assert set(root_keys_in(keyring_path)) == set(created)
    assert mode_of(keyring_path) == 0o600
