"""The fuzz targets' judges, in process and without atheris: what they accept passes, and each
check fails on what it is there to catch (a fuzzing run that cannot fail would prove nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import hostile
from tests.atheris import envelope_corpus as envelopes
from tests.atheris import envelope_oracle, intake_corpus, intake_oracle
from vault.crypto.envelope import HEADER_SIZE
from vault.errors import DecryptionFailed

GENUINE = envelopes.genuine_envelopes()
THREE_FRAMES = next(g for g in GENUINE if len(g.plaintext) == 2 * envelopes.FS + 7)


def decrypt_plan(expectation: envelopes.Expectation, chunking: int = 0) -> envelopes.Plan:
    return envelopes.Plan(envelopes.DECRYPT, expectation, chunking)


@pytest.mark.parametrize("chunking", range(len(envelopes.CHUNKINGS)))
def test_every_genuine_envelope_is_accepted_under_every_chunking(chunking: int) -> None:
    for genuine in GENUINE:
        plan = decrypt_plan(genuine.expectation, chunking)
        assert envelope_oracle.check_decrypt(genuine.blob, plan) == "accepted"


def test_a_genuine_envelope_is_refused_as_another_object_or_under_a_wrong_key() -> None:
    genuine = GENUINE[0]
    assert genuine.expectation is envelopes.OBJECT_A
    as_other = decrypt_plan(envelopes.OBJECT_B)
    assert envelope_oracle.check_decrypt(genuine.blob, as_other) == "foreign-header"
    wrong_key = envelopes.read_plan(7 << 5)
    assert wrong_key.expectation is envelopes.WRONG_KEY
    assert envelope_oracle.check_decrypt(genuine.blob, wrong_key) == "no-frame"


def test_an_envelope_cut_at_a_frame_boundary_is_refused_after_its_verified_frames() -> None:
    plan = decrypt_plan(THREE_FRAMES.expectation)
    assert envelope_oracle.check_decrypt(THREE_FRAMES.blob[: THREE_FRAMES.frame_end(1)], plan) == (
        "one-frame"
    )
    assert envelope_oracle.check_decrypt(THREE_FRAMES.blob[: THREE_FRAMES.frame_end(2)], plan) == (
        "more-frames"
    )


def test_a_decryption_that_ends_on_anything_but_a_genuine_envelope_is_a_forgery() -> None:
    genuine, expected = THREE_FRAMES, THREE_FRAMES.expectation
    size = genuine.frame_size
    frames = [genuine.plaintext[at : at + size] for at in range(0, len(genuine.plaintext), size)]
    envelope_oracle.require_genuine(genuine.blob, frames, expected)  # the real thing passes
    with pytest.raises(envelope_oracle.AcceptedForgery, match="not a genuine envelope"):
        envelope_oracle.require_genuine(genuine.blob[: genuine.frame_end(2)], frames[:2], expected)
    with pytest.raises(envelope_oracle.AcceptedForgery, match="not a genuine envelope"):
        envelope_oracle.require_genuine(genuine.blob, frames, envelopes.OBJECT_B)
    with pytest.raises(envelope_oracle.AcceptedForgery, match="other plaintext"):
        envelope_oracle.require_genuine(genuine.blob, [*frames[:2], b"x" * 7], expected)
    with pytest.raises(envelope_oracle.AcceptedForgery, match="number of frames"):
        envelope_oracle.require_genuine(genuine.blob, [b"".join(frames)], expected)


def test_frames_yielded_before_a_failure_must_be_genuine_and_in_place() -> None:
    genuine, expected = THREE_FRAMES, THREE_FRAMES.expectation
    first = genuine.plaintext[: genuine.frame_size]
    envelope_oracle.require_verified_prefix(genuine.blob + b"tail", [first], expected)
    with pytest.raises(envelope_oracle.AcceptedForgery):
        envelope_oracle.require_verified_prefix(genuine.blob, [bytes(len(first))], expected)
    tampered = bytearray(genuine.blob)
    tampered[HEADER_SIZE + 5] ^= 1  # inside the first frame
    with pytest.raises(envelope_oracle.AcceptedForgery):
        envelope_oracle.require_verified_prefix(bytes(tampered), [first], expected)


def test_a_decryption_failure_that_carries_detail_is_caught() -> None:
    envelope_oracle.require_opaque(DecryptionFailed())
    chained = DecryptionFailed()
    chained.__cause__ = ValueError("which check failed")
    with pytest.raises(AssertionError, match="not opaque"):
        envelope_oracle.require_opaque(chained)
    shown = DecryptionFailed()
    shown.__context__ = KeyError("detail")
    with pytest.raises(AssertionError, match="not opaque"):
        envelope_oracle.require_opaque(shown)


def test_the_header_parser_accepts_genuine_headers_only() -> None:
    for genuine in GENUINE:
        assert envelope_oracle.check_header(genuine.header, as_view=True)
    bad_frame_size = bytearray(GENUINE[0].header)
    bad_frame_size[6:10] = bytes(4)
    assert not envelope_oracle.check_header(bytes(bad_frame_size), as_view=False)
    assert not envelope_oracle.check_header(GENUINE[0].header[:-1], as_view=False)


def test_every_envelope_seed_is_judged_as_its_name_says() -> None:
    for name, data in envelopes.seeds().items():
        plan = envelopes.read_plan(data[0])
        if plan.action == envelopes.HEADER_ONLY:
            assert envelope_oracle.check_header(data[1 : 1 + HEADER_SIZE], as_view=False), name
        else:
            progress = envelope_oracle.check_decrypt(data[1:], plan)
            assert (progress == "accepted") == ("chunking" in name), name


def test_every_intake_seed_is_judged_without_a_failure(tmp_path: Path) -> None:
    accepted = set()
    for name, data in intake_corpus.seeds().items():
        plan = intake_corpus.read_plan(data[0])
        upload = intake_corpus.upload_of(plan, data[1:])
        if intake_oracle.check_upload(upload, plan, tmp_path) == intake_oracle.ACCEPTED:
            accepted.add(name.rsplit("-chunk-", 1)[0].removesuffix("-fixed-checksums"))
    assert {"plain-png", "metadata-jpeg", "metadata-tiff", "text-pdf"} <= accepted
    assert not accepted & {"raw-zip", "raw-bigtiff", "ifd-loop-tiff"}


def test_sanitised_output_with_something_left_to_remove_is_caught(tmp_path: Path) -> None:
    limits = intake_corpus.limits(4096)
    clean = intake_oracle.sanitise(hostile.plain_png(), limits, tmp_path)
    intake_oracle.require_stable(clean, limits, tmp_path)
    with_metadata = intake_oracle.Outcome("image/png", (), None, hostile.png_with_metadata())
    with pytest.raises(AssertionError, match="changed when sanitised again"):
        intake_oracle.require_stable(with_metadata, limits, tmp_path)
    cut = intake_oracle.Outcome("image/png", (), None, clean.data[:-20])
    with pytest.raises(AssertionError, match="refused when sanitised again"):
        intake_oracle.require_stable(cut, limits, tmp_path)
    other_pages = intake_oracle.Outcome("image/tiff", (), 2, hostile.plain_tiff())
    with pytest.raises(AssertionError, match="read differently"):
        intake_oracle.require_stable(other_pages, limits, tmp_path)


def test_a_descriptor_or_child_process_left_behind_is_caught(tmp_path: Path) -> None:
    before = intake_oracle.open_fd_count()
    intake_oracle.require_nothing_left(spool_dir=tmp_path, open_fds_before=before, after_pdf=True)
    with open(tmp_path / "left", "wb"), pytest.raises(AssertionError, match="file descriptor"):
        intake_oracle.require_nothing_left(
            spool_dir=tmp_path, open_fds_before=before, after_pdf=False
        )
    with pytest.raises(AssertionError, match="spool folder"):
        intake_oracle.require_nothing_left(
            spool_dir=tmp_path, open_fds_before=before, after_pdf=False
        )
    (tmp_path / "left").unlink()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(AssertionError, match="child process"):
            intake_oracle.require_nothing_left(
                spool_dir=tmp_path, open_fds_before=before + 10, after_pdf=True
            )
    finally:
        child.kill()
        child.wait()


def test_a_png_has_its_checksums_put_right_only_when_the_plan_says_so() -> None:
    png = bytearray(hostile.plain_png())
    png[40] ^= 1  # inside IDAT: its CRC no longer matches
    body = bytes(png[len(intake_corpus.PNG.prefix) :])
    png_plan = intake_corpus.plan_byte(intake_corpus.PNG)
    fixed = intake_corpus.read_plan(png_plan | 0x20)
    as_is = intake_corpus.read_plan(png_plan)
    assert fixed.fix_png_checksums
    assert not as_is.fix_png_checksums
    assert intake_corpus.upload_of(as_is, body) == bytes(png)
    repaired = intake_corpus.upload_of(fixed, body)
    assert repaired != bytes(png)
    assert intake_corpus.with_png_checksums(repaired) == repaired
